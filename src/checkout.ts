/**
 * Checkout and return: what happens between `getConnection` and the caller's callback.
 *
 * One idle stack (LIFO, as mysql2: the most recently released connection goes out first, so a hot
 * pool stays inside the validation skip window), one FIFO of waiting callers, one acquire timer.
 * Every checkout takes the same path: an idle connection meets the health verdict in
 * `#serve` and is lent at once (used within the skip window: no waiter, timer or promise),
 * validated with a ping first (`#validateFor`), or discarded; a caller
 * with no idle connection to take waits in the FIFO, for a release or a new connection.
 *
 * Hedged checkout (hedge.ts): a caller whose checkout ping is slow gets a fresh connection opened
 * in parallel and takes whichever is ready first; while it waits so ("hedged"), it takes the first
 * connection that becomes free and needs no ping, in arrival order with the other waiters.
 *
 * Timer owned here: the acquire timer, armed for the oldest waiter only (waiters time out in
 * arrival order) and cleared when nobody waits. It is not unref'd: a caller waiting for a
 * connection is work in progress, like a pending request.
 */
import { AsyncResource } from 'node:async_hooks';
import type { EventEmitter } from 'node:events';
import type { PoolConnection } from 'mysql2';
import type { ResolvedConfig } from './config.js';
import { PoolError } from './errors.js';
import { isUnusable } from './health.js';
import type { ConnectionRecord } from './health.js';
import type { Hedge, Hedges } from './hedge.js';
import { LEND, VALIDATE } from './health-monitor.js';
import type { CheckoutVerdict } from './health-monitor.js';
import { setReleased } from './mysql2-parts.js';
import { hold, letGo } from './process-hold.js';
import type { AcquireTimeoutEvent, Counters, PoolState } from './stats.js';

/** The process object, read once: on Node 20 the global `process` is an accessor, a getter call
 * on every `process.nextTick` of the checkout path. (Not `import process from 'node:process'`:
 * in an ESM build that import makes node create process.stdin, stdout and stderr at load time.) */
const proc = process;

/** A getConnection callback. */
export type CheckoutCallback = (err: Error | null, conn?: PoolConnection) => void;

/** A caller of getConnection who is not served at once. */
interface Waiter {
  readonly callback: CheckoutCallback;
  /** The caller's async context, saved at getConnection: its callback runs in it, wherever the
   * connection comes from (a release, a socket, a ping answer). Null for a caller that restores
   * its context itself (a one-shot query, which enters it only where it matters). */
  readonly scope: AsyncResource | null;
  readonly enqueuedAt: number;
  /** The caller's stack, captured at getConnection (only when leak detection is on). */
  readonly stack: string | undefined;
  prev: Waiter | null;
  next: Waiter | null;
  /** A connection is being validated for this waiter. */
  checking: boolean;
  /** Its checkout ping is slow and a hedge was opened for it: it takes the first free connection
   * that needs no ping (while `checking` too). */
  hedged: boolean;
  settled: boolean;
}

/** What the checkout needs from the rest of the pool. */
export interface CheckoutParts {
  /** Health (health-monitor.ts): may this idle connection be lent as it is? */
  verdict(rec: ConnectionRecord, now: number): CheckoutVerdict;
  /** Health: the checkout ping of a VALIDATE verdict; never rejects. */
  validate(rec: ConnectionRecord): Promise<boolean>;
  /** Health: a connection was lent (leak detection). */
  lent(rec: ConnectionRecord, stack: string | undefined): void;
  /** Hedged checkout (hedge.ts). */
  readonly hedges: Hedges;
  /** Lifecycle (connections.ts). */
  canOpen(): boolean;
  opening(): number;
  open(): void;
  destroy(rec: ConnectionRecord): void;
  /** The pool. */
  closed(): boolean;
  state(): PoolState;
  recentCreateError(): unknown;
}

export class Checkout {
  /** Idle connections, least recently released first: checkout pops the last. */
  readonly #idle: ConnectionRecord[] = [];
  /** Waiting callers in arrival order (a doubly linked list through the waiters). */
  #first: Waiter | null = null;
  #last: Waiter | null = null;
  #waiting = 0;
  /** Waiters with a validation in progress for them. */
  #checking = 0;
  /** Of those, the waiters with a hedge under way (each counts on one connection attempt). */
  #hedged = 0;
  #acquireTimer: NodeJS.Timeout | null = null;
  #dispatching = false;
  #dispatchAgain = false;
  /** Someone listens for `acquire`, `release` or `enqueue` (set for good on the first listener):
   * until then they are not emitted, which spares two or three `emit` calls per checkout (an
   * `emit` nobody hears still costs more than the rest of a hot checkout's bookkeeping;
   * `listenerCount` as much). */
  #announce = false;
  readonly #pool: EventEmitter;
  readonly #options: ResolvedConfig;
  readonly #counters: Counters;
  readonly #parts: CheckoutParts;

  constructor(
    pool: EventEmitter,
    options: ResolvedConfig,
    counters: Counters,
    parts: CheckoutParts,
  ) {
    this.#pool = pool;
    this.#options = options;
    this.#counters = counters;
    this.#parts = parts;
    const watch = (event: string | symbol): void => {
      if (event === 'acquire' || event === 'release' || event === 'enqueue') this.#announce = true;
    };
    pool.on('newListener', watch);
    // `removeAllListeners()` takes `watch` too: from then on every event is emitted, so that a
    // listener added later is never missed.
    pool.on('removeListener', (_event: string | symbol, listener: unknown) => {
      if (listener === watch) this.#announce = true;
    });
  }

  /** Callers waiting for a connection. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Idle connections, least recently released first. */
  idle(): readonly ConnectionRecord[] {
    return this.#idle;
  }

  /** getConnection: the one path from a caller to its callback. `stack` is the caller's, when
   * leak detection wants it. `ownContext`: the caller restores its async context itself, so its
   * callback may run in any context; else the context is saved here if the caller must wait, and
   * the callback runs in it. */
  acquire(callback: CheckoutCallback, stack: string | undefined, ownContext = false): void {
    if (this.#first === null) {
      const rec = this.#idle.pop();
      if (rec !== undefined) {
        this.#serve(rec, null, callback, stack, ownContext);
        return;
      }
    }
    if (this.#idle.length === 0 && !this.#parts.canOpen()) {
      if (!this.#options.waitForConnections) {
        proc.nextTick(
          callback,
          new PoolError('POOL_NO_CONNECTIONS', 'No connections available.', {
            details: { poolState: this.#parts.state() },
          }),
        );
        return;
      }
      // As in mysql2, a caller for whom a connection is being opened is not in the queue: only
      // waiters beyond the connection attempts in progress count against queueLimit. (With the
      // database down every caller waits on an attempt; counting them all would refuse one more
      // caller than mysql2 does.)
      const queueLimit = this.#options.queueLimit;
      if (queueLimit > 0 && this.#waiting - this.#parts.opening() >= queueLimit) {
        proc.nextTick(
          callback,
          new PoolError('POOL_QUEUE_LIMIT', 'Queue limit reached.', {
            details: { poolState: this.#parts.state() },
          }),
        );
        return;
      }
      if (this.#announce) this.#pool.emit('enqueue');
      // Nothing idle, no room: a release or a closed slot will serve it.
      this.#enqueue(callback, stack, ownContext);
      return;
    }
    this.#enqueue(callback, stack, ownContext);
    this.dispatch();
  }

  /**
   * The step between an idle connection and a caller (`waiter`, or the caller of `acquire` when
   * nobody waits ahead of it): lend it at once, validate it first, or discard it and look again.
   */
  #serve(
    rec: ConnectionRecord,
    waiter: Waiter | null,
    callback: CheckoutCallback,
    stack: string | undefined,
    ownContext: boolean,
    now: number = Date.now(),
  ): void {
    const verdict = this.#parts.verdict(rec, now);
    if (verdict === LEND) {
      this.#lend(rec, now, stack);
      // nextTick, as mysql2 does: the callback never runs inside getConnection or a release.
      if (waiter === null) proc.nextTick(callback, null, rec.conn);
      else this.#settle(waiter, null, rec.conn);
      return;
    }
    const w = waiter ?? this.#enqueue(callback, stack, ownContext);
    if (verdict === VALIDATE) {
      this.#validateFor(w, rec);
      return;
    }
    letGo(rec);
    this.#parts.destroy(rec);
    this.dispatch();
  }

  /**
   * A connection that must prove it is alive before `waiter` gets it: the checkout ping, under
   * `validationTimeout`. The one place where a caller waits on a ping, so the hedge starts here:
   * still unanswered after the hedge delay, a fresh connection is opened in parallel and the
   * waiter takes whichever is ready first. Alive: it goes to the waiter (or, if the waiter has
   * been served or has given up meanwhile, to the next one, or back to the idle stack). Dead: it
   * is closed and the waiter looks again, first in line.
   */
  #validateFor(waiter: Waiter, rec: ConnectionRecord): void {
    waiter.checking = true;
    this.#checking++;
    const hedges = this.#parts.hedges;
    const hedge = hedges.arm((h) => this.#hedgeDue(waiter, h, rec));
    void this.#parts.validate(rec).then((alive) => {
      if (hedge !== null) hedges.resolved(hedge);
      rec.pingHedged = false;
      this.#unhedge(waiter);
      if (waiter.checking) {
        waiter.checking = false;
        this.#checking--;
      }
      if (this.#parts.closed()) return;
      if (!alive) {
        this.#parts.destroy(rec);
        this.dispatch();
      } else if (waiter.settled) {
        this.offer(rec);
      } else {
        this.#lend(rec, Date.now(), waiter.stack);
        this.#settle(waiter, null, rec.conn);
      }
    });
  }

  /** The hedge delay of `waiter`'s checkout ping (of `rec`) is over and the ping is still
   * unanswered. */
  #hedgeDue(waiter: Waiter, hedge: Hedge, rec: ConnectionRecord): void {
    if (waiter.settled || !waiter.checking || this.#parts.closed()) return;
    rec.pingHedged = true;
    // Set first: the new connection (or a release) finds the waiter hedged.
    waiter.hedged = true;
    this.#hedged++;
    if (!this.#parts.hedges.start(hedge)) this.#unhedge(waiter);
  }

  /** `waiter` no longer waits on a hedge. */
  #unhedge(waiter: Waiter): void {
    if (!waiter.hedged) return;
    waiter.hedged = false;
    this.#hedged--;
  }

  /** A connection free for use (new, released, or validated for a caller who has gone): closed if
   * the pool is above what hedge.ts allows now; else the first waiter in need gets it (or a hedged
   * one, when it needs no ping), else it goes on the idle stack. `now`: the clock, if the caller
   * has just read it. */
  offer(rec: ConnectionRecord, now?: number): void {
    if (this.#parts.closed()) return;
    if (this.#parts.hedges.surplus() > 0) {
      letGo(rec);
      rec.retired = 'hedge-surplus';
      this.#counters.hedgeSurplus++;
      this.#parts.destroy(rec);
      return;
    }
    const lendable = this.#hedged > 0 && this.#parts.verdict(rec, now ?? Date.now()) === LEND;
    const w = this.#firstTaker(lendable);
    if (w === null) {
      letGo(rec);
      // On the way to a caller the verdict checks this; on the way to the idle stack, here.
      if (isUnusable(rec.conn)) this.#parts.destroy(rec);
      else this.#idle.push(rec);
      return;
    }
    if (w.checking) this.#counters.hedgeWins++;
    this.#serve(rec, w, w.callback, w.stack, w.scope === null, now);
  }

  /** A released healthy connection; `now`: its release time, if it was released just now. */
  giveBack(rec: ConnectionRecord, now?: number): void {
    if (this.#announce) this.#pool.emit('release', rec.conn);
    this.offer(rec, now);
  }

  /** Idle connections first, then new ones within connectionLimit, for the waiters in need, in
   * arrival order. Safe to call at any time (a nested call runs once the current one ends). */
  dispatch(): void {
    if (this.#dispatching) {
      this.#dispatchAgain = true;
      return;
    }
    this.#dispatching = true;
    try {
      do {
        this.#dispatchAgain = false;
        if (this.#parts.closed()) return;
        for (let w = this.#firstInNeed(); w !== null; w = this.#firstInNeed()) {
          const rec = this.#idle.pop();
          if (rec === undefined) break;
          this.#serve(rec, w, w.callback, w.stack, w.scope === null);
        }
        // One attempt per waiter in need that no attempt in progress will serve (a hedged waiter
        // counts on the attempt of its hedge).
        let uncovered = this.#waiting - this.#checking + this.#hedged - this.#parts.opening();
        while (uncovered-- > 0 && this.#parts.canOpen()) this.#parts.open();
      } while (this.#dispatchAgain);
    } finally {
      this.#dispatching = false;
    }
  }

  /** Closes the idle connections that were marked dead or retired. */
  evictOutOfService(): void {
    if (this.#parts.closed()) return;
    const idle = this.#idle;
    const out: ConnectionRecord[] = [];
    let kept = 0;
    for (const rec of idle) {
      if (rec.outOfService) out.push(rec);
      else idle[kept++] = rec;
    }
    idle.length = kept;
    for (const rec of out) this.#parts.destroy(rec);
  }

  /** A connection attempt whose connect began at `startedAt` failed: the oldest waiter in need
   * gets its error (the database is down: fail fast), if it was already waiting when that connect
   * began (an attempt begun during an outage must not fail a caller who came after it healed);
   * the others keep their attempts, or get new ones after the back-off. */
  openFailed(error: unknown, startedAt: number): void {
    const w = this.#firstInNeed();
    if (w !== null && w.enqueuedAt <= startedAt) {
      const err = error instanceof Error ? error : new Error(String(error));
      try {
        (err as Error & { poolState?: PoolState }).poolState = this.#parts.state();
      } catch {
        /* frozen error objects are passed as they are */
      }
      this.#settle(w, err);
    }
    this.dispatch();
  }

  /** end(): every waiter fails with `error()`, the timers go, the idle stack is emptied. */
  close(error: () => Error): void {
    while (this.#first !== null) this.#settle(this.#first, error());
    this.#disarmAcquireTimer();
    this.#parts.hedges.stop();
    this.#idle.length = 0;
  }

  // -------------------------------------------------------------------------------------------

  /** Marks a connection as borrowed by a caller. */
  #lend(rec: ConnectionRecord, now: number, stack: string | undefined): void {
    const conn = rec.conn;
    rec.borrowed = true;
    rec.borrowedAt = now;
    hold(rec);
    setReleased(conn, false);
    this.#counters.acquires++;
    this.#parts.lent(rec, stack);
    if (this.#announce) this.#pool.emit('acquire', conn);
  }

  #enqueue(callback: CheckoutCallback, stack: string | undefined, ownContext: boolean): Waiter {
    const w: Waiter = {
      callback,
      // Saved now, in the caller's async context: the releaser's, the socket's are the wrong ones.
      scope: ownContext ? null : new AsyncResource('mysql2-keepalive-pool:waiter'),
      enqueuedAt: Date.now(),
      stack,
      prev: this.#last,
      next: null,
      checking: false,
      hedged: false,
      settled: false,
    };
    if (this.#last === null) this.#first = w;
    else this.#last.next = w;
    this.#last = w;
    this.#waiting++;
    this.#armAcquireTimer();
    return w;
  }

  /** The oldest waiter without a validation in progress for it. */
  #firstInNeed(): Waiter | null {
    let w = this.#first;
    while (w !== null && w.checking) w = w.next;
    return w;
  }

  /** The oldest waiter in need, or hedged when `lendable` (the connection needs no ping). */
  #firstTaker(lendable: boolean): Waiter | null {
    let w = this.#first;
    while (w !== null && w.checking && !(lendable && w.hedged)) w = w.next;
    return w;
  }

  #settle(w: Waiter, err: Error | null, conn?: PoolConnection): void {
    if (w.settled) return;
    w.settled = true;
    this.#unhedge(w);
    if (w.checking) {
      w.checking = false;
      this.#checking--;
    }
    if (w.prev === null) this.#first = w.next;
    else w.prev.next = w.next;
    if (w.next === null) this.#last = w.prev;
    else w.next.prev = w.prev;
    w.prev = w.next = null;
    if (--this.#waiting === 0) this.#disarmAcquireTimer();
    // nextTick, as mysql2 does: a throwing callback is an uncaught exception, never an unhandled
    // rejection of a promise chain.
    if (w.scope === null) proc.nextTick(w.callback, err, conn);
    else proc.nextTick(runInScope, w, err, conn);
  }

  /** Arms the acquire timer for the oldest waiter, unless armed. */
  #armAcquireTimer(): void {
    const timeout = this.#options.acquireTimeout;
    if (timeout <= 0 || this.#acquireTimer !== null || this.#first === null) return;
    const due = Math.max(1, this.#first.enqueuedAt + timeout - Date.now());
    this.#acquireTimer = setTimeout(this.#onAcquireTimer, due);
  }

  #disarmAcquireTimer(): void {
    if (this.#acquireTimer === null) return;
    clearTimeout(this.#acquireTimer);
    this.#acquireTimer = null;
  }

  /** Times out every waiter whose acquireTimeout is up, then re-arms for the next one. */
  readonly #onAcquireTimer = (): void => {
    this.#acquireTimer = null;
    const timeout = this.#options.acquireTimeout;
    const now = Date.now();
    while (this.#first !== null && now - this.#first.enqueuedAt >= timeout) {
      this.#timeOut(this.#first, now);
    }
    this.#armAcquireTimer();
  };

  #timeOut(w: Waiter, now: number): void {
    this.#counters.acquireTimeouts++;
    const state = this.#parts.state();
    const cause = this.#parts.recentCreateError();
    const waited = now - w.enqueuedAt;
    const err = new PoolError(
      'POOL_ACQUIRE_TIMEOUT',
      `${this.#options.name}: no connection available within acquireTimeout=${this.#options.acquireTimeout} ms ` +
        `(total=${state.total}, active=${state.active}, idle=${state.idle}, waiting=${state.waiting})` +
        (cause ? `; last connection attempt failed: ${(cause as Error).message}` : ''),
      { cause: cause ?? undefined, details: { poolState: state, waitedMs: waited } },
    );
    this.#pool.emit('acquireTimeout', {
      waitedMs: waited,
      poolState: state,
    } satisfies AcquireTimeoutEvent);
    this.#settle(w, err);
  }
}

/** Runs a waiter's callback in the async context of its getConnection call. */
function runInScope(w: Waiter, err: Error | null, conn?: PoolConnection): void {
  (w.scope as AsyncResource).runInAsyncScope(w.callback, null, err, conn);
}
