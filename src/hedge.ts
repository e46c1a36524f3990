/**
 * Hedged checkout: when a checkout ping is still unanswered after the hedge delay (path-rtt.ts:
 * derived from the round trips this pool has seen), a fresh connection is opened in parallel and
 * the caller takes whichever is ready first (checkout.ts decides who gets what). The pinged
 * connection keeps its whole `validationTimeout`: answered late, it is free again; never
 * answered, it is discarded as without a hedge.
 *
 * How hedges count against `connectionLimit` (the one rule, {@link Hedges.room}): connections open
 * or being opened never exceed `connectionLimit` + the hedged checkout pings still outstanding. So
 * there is at most one hedge per outstanding ping, extra connections exist only while such a ping
 * is outstanding, and once every one has resolved the pool is back within `connectionLimit`: a
 * connection that becomes free while the pool is above it is closed (`hedge-surplus`, in
 * checkout.ts), one that is borrowed is closed when it comes back. New connections still come
 * from connections.ts (generic-pool's slots, whose ceiling is twice `connectionLimit` with
 * hedging on), like any other.
 *
 * Timers owned here: one per armed hedge (the hedge delay), unref'd (the caller's pinged socket
 * holds the process), and the `setImmediate` that follows it so that a ping answer already read
 * in that turn of the event loop wins over the hedge. The immediate is NOT unref'd: it runs in the
 * same turn, and an unref'd immediate does not keep libuv from blocking in its poll phase, so it
 * would run only when some other timer or socket woke the loop (up to the ping's own timeout on a
 * black-holed path). Both are cancelled when the ping resolves or by {@link Hedges.stop}.
 */
import type { ResolvedConfig } from './config.js';
import type { PathRtt } from './path-rtt.js';
import type { Counters } from './stats.js';

/** What the hedges need from the rest of the pool. */
export interface HedgeParts {
  /** connections.ts: whether one more connection fits within connectionLimit + `extra`. */
  canOpen(extra: number): boolean;
  /** connections.ts: starts one connection attempt (the pool offers it to callers when it lands). */
  open(): void;
  /** connections.ts: open connections (attempts in progress are judged when they land). */
  count(): number;
}

/** The hedge of one checkout ping. */
export class Hedge {
  timer: NodeJS.Timeout | null = null;
  immediate: NodeJS.Immediate | null = null;
  /** A connection was opened for it: one allowance above connectionLimit until the ping ends. */
  started = false;
  /** The ping resolved (or the pool ended): nothing more happens. */
  done = false;
}

export class Hedges {
  /** Hedged pings still outstanding: each allows one connection above connectionLimit. */
  #outstanding = 0;
  readonly #armed = new Set<Hedge>();
  readonly #enabled: boolean;
  readonly #validationTimeout: number;
  readonly #limit: number;
  readonly #rtt: PathRtt;
  readonly #counters: Counters;
  readonly #parts: HedgeParts;

  constructor(
    options: Pick<ResolvedConfig, 'hedgeCheckout' | 'validationTimeout' | 'connectionLimit'>,
    rtt: PathRtt,
    counters: Counters,
    parts: HedgeParts,
  ) {
    this.#enabled = options.hedgeCheckout;
    this.#validationTimeout = options.validationTimeout;
    this.#limit = options.connectionLimit;
    this.#rtt = rtt;
    this.#counters = counters;
    this.#parts = parts;
  }

  /** Hedged checkout pings still outstanding (the allowance above connectionLimit). */
  get outstanding(): number {
    return this.#outstanding;
  }

  /** The hedge delay now, ms; null when hedging is off. */
  delay(): number | null {
    return this.#enabled ? this.#rtt.hedgeDelay() : null;
  }

  /**
   * Arms the hedge of a checkout ping that starts now: `due` runs once the hedge delay has passed
   * and the I/O of that turn has been read (so an answer that has already arrived is seen first),
   * unless {@link resolved} came before. Null when hedging is off, or when the delay is not below
   * `validationTimeout` (the ping's own verdict comes first: a slow but healthy path).
   */
  arm(due: (hedge: Hedge) => void): Hedge | null {
    if (!this.#enabled) return null;
    const delay = this.#rtt.hedgeDelay();
    if (delay >= this.#validationTimeout) return null;
    const hedge = new Hedge();
    this.#armed.add(hedge);
    hedge.timer = setTimeout(() => {
      hedge.timer = null;
      if (hedge.done) return;
      hedge.immediate = setImmediate(() => {
        hedge.immediate = null;
        if (!hedge.done) due(hedge);
      });
    }, delay);
    hedge.timer.unref();
    return hedge;
  }

  /** Open connections beyond what the rule allows right now (connectionLimit + the hedged pings
   * outstanding): a connection that becomes free while this is above 0 is closed. Attempts in
   * progress are not counted: each is judged when it lands. */
  surplus(): number {
    return this.#parts.count() - (this.#limit + this.#outstanding);
  }

  /** Whether a hedge fits: connections open or being opened stay below connectionLimit + the
   * hedged pings outstanding (this one included). */
  room(): boolean {
    return this.#parts.canOpen(this.#outstanding + 1);
  }

  /** Opens the hedge's connection if it fits; false if not (then the caller waits for its ping). */
  start(hedge: Hedge): boolean {
    if (hedge.done || hedge.started || !this.room()) return false;
    hedge.started = true;
    this.#outstanding++;
    this.#counters.hedges++;
    this.#parts.open();
    return true;
  }

  /** The hedge's ping resolved (either way): its timers go, and so does its allowance. */
  resolved(hedge: Hedge): void {
    if (hedge.done) return;
    hedge.done = true;
    this.#armed.delete(hedge);
    if (hedge.timer !== null) clearTimeout(hedge.timer);
    if (hedge.immediate !== null) clearImmediate(hedge.immediate);
    hedge.timer = null;
    hedge.immediate = null;
    if (hedge.started) this.#outstanding--;
  }

  /** end(): every armed hedge is cancelled. */
  stop(): void {
    for (const hedge of [...this.#armed]) this.resolved(hedge);
  }
}
