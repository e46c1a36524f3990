/**
 * When connections are checked, and what follows: the checkout verdict (lend, validate with a
 * ping, or discard), the pings themselves, the suspect sweep after a death, idle pings (and the
 * one read of the server's wait_timeout that bounds them), leak detection, and the housekeeper
 * (max lifetime, mysql2's maxIdle/idleTimeout rule, minIdle).
 *
 * Timers owned here: each connection's idle-ping and leak timers (stored on its record, cleared by
 * `ConnectionRecord.dispose`) and the pool's one housekeeping interval (cleared by `stop`). All
 * are unref'd: an idle pool never keeps the process alive.
 */
import type { EventEmitter } from 'node:events';
import createDebug from 'debug';
import type { PoolConnection } from 'mysql2';
import type { ResolvedConfig } from './config.js';
import { isUnusable, jitterDown, pingWithTimeout, readWaitTimeout } from './health.js';
import type { ConnectionRecord, DeadReason } from './health.js';
import { hold } from './process-hold.js';
import type { Counters, DeadConnectionEvent, LeakEvent, LeakReleasedEvent } from './stats.js';

const debug = createDebug('mysql2-keepalive-pool:pool');

/** The housekeeper's period: idle-timeout, max-lifetime and min-idle upkeep. */
const HOUSEKEEPING_MS = 1000;

/** How long a connection must have idled before it reads the server's wait_timeout for the pool:
 * never a connection a caller has just been given or is using in a loop, and never before a new
 * connection's first query (mysql2's own tests, and servers that answer only their own protocol,
 * observe what a fresh connection sends). */
export const WAIT_TIMEOUT_READ_IDLE_MS = 500;

/** Where the pool's one read of the server's wait_timeout stands. */
const READ_PENDING = 0;
const READ_RUNNING = 1;
const READ_DONE = 2;

/** Verdicts of {@link HealthMonitor.checkoutVerdict}. */
export const LEND = 0;
export const VALIDATE = 1;
export const DISCARD = 2;
export type CheckoutVerdict = typeof LEND | typeof VALIDATE | typeof DISCARD;

/** What the monitor needs from the rest of the pool. */
export interface MonitorParts {
  /** Every open connection. */
  readonly records: ReadonlyMap<PoolConnection, ConnectionRecord>;
  /** Idle connections, least recently released first. */
  idle(): readonly ConnectionRecord[];
  /** Closes the idle connections marked dead or retired. */
  evictOutOfService(): void;
  /** Lets waiting callers use whatever is free now. */
  dispatch(): void;
  /** Opens connections up to `minIdle`. */
  ensureMinimum(): void;
  /** Connections open and being opened. */
  count(): number;
  opening(): number;
  closed(): boolean;
  /** A ping was answered in `ms`: a round-trip sample (path-rtt.ts). */
  pingAnswered?(rec: ConnectionRecord, ms: number): void;
  /** A connection was found dead after `idleMs` without proof of life (path-timeout.ts). */
  died?(rec: ConnectionRecord, reason: DeadReason, idleMs: number): void;
  /** The idle-ping period now, ms (path-timeout.ts may have lowered the configured one). */
  idlePingInterval?(): number;
}

export class HealthMonitor {
  /** Why the most recent ping failed; the cause of a failed health check. */
  lastPingFailure: unknown = null;
  readonly #pool: EventEmitter;
  readonly #options: ResolvedConfig;
  readonly #counters: Counters;
  readonly #parts: MonitorParts;
  readonly #leakDetection: boolean;
  #housekeeper: NodeJS.Timeout | null = null;
  /** The server's wait_timeout in ms (0: unknown), read once per pool, lazily (see
   * {@link WAIT_TIMEOUT_READ_IDLE_MS}); only while idle pings are on, which it bounds. */
  #serverWaitTimeoutMs = 0;
  #waitTimeoutRead: typeof READ_PENDING | typeof READ_RUNNING | typeof READ_DONE;

  constructor(
    pool: EventEmitter,
    options: ResolvedConfig,
    counters: Counters,
    parts: MonitorParts,
  ) {
    this.#pool = pool;
    this.#options = options;
    this.#counters = counters;
    this.#parts = parts;
    this.#leakDetection = options.leakDetectionThreshold > 0;
    this.#waitTimeoutRead = options.idlePingInterval > 0 ? READ_PENDING : READ_DONE;
    this.#housekeeper = setInterval(() => this.#housekeep(), HOUSEKEEPING_MS);
    this.#housekeeper.unref();
  }

  /** end(): the housekeeper stops; per-connection timers go with their records. */
  stop(): void {
    if (this.#housekeeper) clearInterval(this.#housekeeper);
    this.#housekeeper = null;
  }

  // -------------------------------------------------------------------------------------------
  // Checkout and return
  // -------------------------------------------------------------------------------------------

  /**
   * Whether an idle connection may go to a caller as it is: LEND when it was used within
   * `validationSkipWindow` (a hot pool pays nothing), VALIDATE when it must answer a ping first
   * (or an idle ping is already asking), DISCARD when it is out of service, known closed or past
   * its lifetime.
   */
  checkoutVerdict(rec: ConnectionRecord, now: number): CheckoutVerdict {
    if (rec.outOfService || isUnusable(rec.conn)) return DISCARD;
    if (rec.pinging !== null) return VALIDATE;
    if (rec.lifetimeOver(now)) {
      rec.retired = 'max-lifetime';
      return DISCARD;
    }
    return rec.idleFor(now) <= this.#options.validationSkipWindow ? LEND : VALIDATE;
  }

  /** The checkout ping of a VALIDATE verdict, under `validationTimeout`; never rejects. An idle
   * ping already running is waited for rather than raced. */
  validate(rec: ConnectionRecord): Promise<boolean> {
    // A caller is waiting on this ping: it must keep the process alive.
    hold(rec);
    if (rec.pinging !== null) return rec.pinging;
    this.#counters.validations++;
    return this.ping(rec, 'checkout');
  }

  /** A connection was lent: leak detection starts (when on). */
  lent(rec: ConnectionRecord, stack: string | undefined): void {
    if (this.#leakDetection) this.#watchForLeak(rec, stack);
  }

  /** A connection came back: leak detection stops, and a reported leak is reported resolved. */
  returned(rec: ConnectionRecord, now: number): void {
    rec.borrowStack = undefined;
    if (rec.leakTimer) {
      clearTimeout(rec.leakTimer);
      rec.leakTimer = null;
    }
    // Checked apart from the timer: once the leak was reported, its timer is already gone.
    if (rec.leakReported) {
      rec.leakReported = false;
      const heldMs = now - rec.borrowedAt;
      debug(
        '%s: connection %d reported as a possible leak was released after %d ms',
        this.#options.name,
        rec.id,
        heldMs,
      );
      this.#pool.emit('leakReleased', {
        threadId: rec.conn.threadId ?? null,
        heldMs,
      } satisfies LeakReleasedEvent);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Pings and deaths
  // -------------------------------------------------------------------------------------------

  /** One ping at a time per connection; the verdict is shared with whoever waits for it. A
   * health-check ping of an idle connection counts as an idle ping when it fails. */
  ping(rec: ConnectionRecord, why: 'checkout' | 'idle' | 'health'): Promise<boolean> {
    const timeout = this.#options.validationTimeout;
    const started = Date.now();
    const clock = performance.now();
    const idleAtStart = rec.idleFor(started);
    const verdict = pingWithTimeout(rec.conn, timeout).then((outcome) => {
      rec.pinging = null;
      if (outcome.ok && !rec.dead) {
        rec.lastAliveAt = Date.now();
        this.#parts.pingAnswered?.(rec, performance.now() - clock);
        return true;
      }
      if (!outcome.ok) {
        this.lastPingFailure = outcome.timedOut
          ? new Error(`COM_PING not answered within ${timeout} ms`)
          : outcome.error;
        const reason: DeadReason =
          why === 'checkout'
            ? outcome.timedOut
              ? 'checkout-ping-timeout'
              : 'checkout-ping-error'
            : outcome.timedOut
              ? 'idle-ping-timeout'
              : 'idle-ping-error';
        this.foundDead(rec, reason, started, idleAtStart);
      }
      return false;
    });
    rec.pinging = verdict;
    return verdict;
  }

  /**
   * Records a dead connection and treats every idle connection that has gone at least half as
   * long without proof of life as dead too: whatever forgot this flow forgot theirs, and a
   * reconnect costs one handshake while a stale ping costs a whole validationTimeout. So a burst
   * or a run of callers pays the discovery about once, not once per connection. The idle ones
   * among them are closed at once.
   */
  foundDead(
    rec: ConnectionRecord,
    reason: DeadReason,
    now: number,
    idleMs = rec.idleFor(now),
  ): void {
    if (!rec.markDead(reason)) return;
    this.#countDead(rec, reason, idleMs);
    if (reason !== 'socket-end' && reason !== 'socket-error' && reason !== 'suspect') {
      const threshold = idleMs / 2;
      let suspects = 0;
      for (const other of this.#parts.records.values()) {
        if (other === rec || other.borrowed || other.pinging || other.outOfService) continue;
        const otherIdle = other.idleFor(now);
        if (otherIdle >= threshold && other.markDead('suspect')) {
          this.#countDead(other, 'suspect', otherIdle);
          suspects++;
        }
      }
      if (suspects > 0) {
        debug(
          '%s: %d idle connection(s) idle >= %d ms retired as suspects',
          this.#options.name,
          suspects,
          threshold,
        );
      }
    }
    this.#parts.evictOutOfService();
  }

  #countDead(rec: ConnectionRecord, reason: DeadReason, idleMs: number): void {
    this.#counters.countDead(reason, idleMs);
    this.#parts.died?.(rec, reason, idleMs);
    debug(
      '%s: connection %d found dead (%s) after %d ms idle',
      this.#options.name,
      rec.id,
      reason,
      idleMs,
    );
    this.#pool.emit('dead', {
      threadId: rec.conn.threadId ?? null,
      reason,
      idleMs,
    } satisfies DeadConnectionEvent);
  }

  // -------------------------------------------------------------------------------------------
  // Idle pings
  // -------------------------------------------------------------------------------------------

  /** A new connection: its idle pings start. */
  watch(rec: ConnectionRecord): void {
    this.#scheduleIdlePing(rec);
  }

  /** The server's wait_timeout in ms as read for this pool; 0 while unknown. */
  get serverWaitTimeoutMs(): number {
    return this.#serverWaitTimeoutMs;
  }

  /** The idle-ping period: the configured interval, kept below the server's wait_timeout so the
   * server never closes an idle pooled connection on its own. */
  #pingPeriod(): number {
    const interval = this.#parts.idlePingInterval?.() ?? this.#options.idlePingInterval;
    if (this.#serverWaitTimeoutMs > 0)
      return Math.min(interval, Math.floor(this.#serverWaitTimeoutMs * 0.8));
    return interval;
  }

  #scheduleIdlePing(rec: ConnectionRecord, delay?: number): void {
    if (this.#options.idlePingInterval <= 0 || this.#parts.closed()) return;
    let wait = delay ?? jitterDown(this.#pingPeriod(), 0.1);
    // Until the pool knows the server's wait_timeout, every connection looks again soon for the
    // moment it has idled long enough to read it.
    if (this.#waitTimeoutRead === READ_PENDING) wait = Math.min(wait, WAIT_TIMEOUT_READ_IDLE_MS);
    rec.pingTimer = setTimeout(() => this.#idlePingDue(rec), wait);
    rec.pingTimer.unref();
  }

  #idlePingDue(rec: ConnectionRecord): void {
    rec.pingTimer = null;
    if (this.#parts.closed() || rec.outOfService || !this.#parts.records.has(rec.conn)) return;
    const idle = rec.idleFor(Date.now());
    if (this.#waitTimeoutRead === READ_PENDING) {
      if (!rec.borrowed && rec.pinging === null && idle >= WAIT_TIMEOUT_READ_IDLE_MS) {
        this.#readWaitTimeout(rec);
      } else {
        this.#scheduleIdlePing(
          rec,
          Math.max(1, WAIT_TIMEOUT_READ_IDLE_MS - (rec.borrowed ? 0 : idle)),
        );
      }
      return;
    }
    const period = this.#pingPeriod();
    // A borrowed connection is never pinged (the borrower owns it); a recently used one is alive.
    if (rec.borrowed || rec.pinging || idle < period * 0.9) {
      this.#scheduleIdlePing(rec, Math.max(1, jitterDown(period, 0.1) - (rec.borrowed ? 0 : idle)));
      return;
    }
    this.#counters.idlePings++;
    void this.ping(rec, 'idle').then((alive) => {
      if (alive) this.#scheduleIdlePing(rec);
      else this.#parts.evictOutOfService();
    });
  }

  /**
   * The pool's one read of the server's wait_timeout, on an idle connection, reserved like an
   * idle ping: a borrower who picks it meanwhile waits for the verdict instead of racing it.
   * Answered: every connection's idle pings follow the new period. Not answered in time: the
   * connection is as dead as one whose ping timed out, and the next idle connection asks again.
   * Answered with an error (a server that speaks only the protocol closes a connection on any
   * query): never asked again, and pings keep `idlePingInterval`.
   */
  #readWaitTimeout(rec: ConnectionRecord): void {
    this.#waitTimeoutRead = READ_RUNNING;
    const started = Date.now();
    const idleAtStart = rec.idleFor(started);
    const verdict = readWaitTimeout(rec.conn, this.#options.validationTimeout).then((outcome) => {
      rec.pinging = null;
      if (outcome.ok) {
        this.#waitTimeoutRead = READ_DONE;
        this.#serverWaitTimeoutMs = outcome.ms;
        debug('%s: server wait_timeout %d ms', this.#options.name, outcome.ms);
      } else if (outcome.timedOut) {
        this.#waitTimeoutRead = READ_PENDING;
      } else {
        this.#waitTimeoutRead = READ_DONE;
        debug('%s: wait_timeout unreadable: %s', this.#options.name, outcome.error);
      }
      const alive = !rec.dead && !isUnusable(rec.conn) && (outcome.ok || !outcome.timedOut);
      if (alive) {
        rec.lastAliveAt = Date.now();
      } else {
        this.lastPingFailure = outcome.ok
          ? new Error('connection closed while reading wait_timeout')
          : outcome.timedOut
            ? new Error(
                `SELECT @@wait_timeout not answered within ${this.#options.validationTimeout} ms`,
              )
            : outcome.error;
        this.foundDead(
          rec,
          !outcome.ok && outcome.timedOut ? 'idle-ping-timeout' : 'idle-ping-error',
          started,
          idleAtStart,
        );
      }
      this.rearmIdlePings();
      return alive;
    });
    rec.pinging = verdict;
  }

  /** The idle-ping period changed (the wait_timeout read is over, or path-timeout.ts lowered or
   * restored it): every connection's next idle ping is due one (new) period after it was last
   * alive (or, when the read must be tried again, as soon as one has idled long enough).
   * Connections with a ping in flight reschedule when it answers. */
  rearmIdlePings(): void {
    if (this.#options.idlePingInterval <= 0 || this.#parts.closed()) return;
    const now = Date.now();
    const period = this.#pingPeriod();
    for (const other of this.#parts.records.values()) {
      if (other.outOfService || other.pinging !== null) continue;
      if (other.pingTimer) clearTimeout(other.pingTimer);
      other.pingTimer = null;
      const idle = other.borrowed ? 0 : other.idleFor(now);
      this.#scheduleIdlePing(other, Math.max(1, jitterDown(period, 0.1) - idle));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Leaks
  // -------------------------------------------------------------------------------------------

  #watchForLeak(rec: ConnectionRecord, stack: string | undefined): void {
    rec.borrowStack = stack;
    rec.leakReported = false;
    if (rec.leakTimer) clearTimeout(rec.leakTimer);
    rec.leakTimer = setTimeout(() => {
      rec.leakTimer = null;
      if (!rec.borrowed) return;
      rec.leakReported = true;
      this.#counters.leaks++;
      const heldMs = Date.now() - rec.borrowedAt;
      debug(
        '%s: possible leak: connection %d held for %d ms; acquired at %s',
        this.#options.name,
        rec.id,
        heldMs,
        stack,
      );
      this.#pool.emit('leak', {
        threadId: rec.conn.threadId ?? null,
        heldMs,
        stack,
      } satisfies LeakEvent);
    }, this.#options.leakDetectionThreshold);
    rec.leakTimer.unref();
  }

  // -------------------------------------------------------------------------------------------
  // Housekeeping
  // -------------------------------------------------------------------------------------------

  /** mysql2's idle rule (idle connections above maxIdle, or idle past idleTimeout when maxIdle <
   * connectionLimit, are closed, keeping minIdle) and max lifetime for idle connections. */
  #housekeep(): void {
    if (this.#parts.closed()) return;
    const now = Date.now();
    const o = this.#options;
    // Least recently released first, like mysql2's free list.
    const idle = this.#parts
      .idle()
      .filter((r) => r.pinging === null && !r.outOfService)
      .sort((a, b) => a.lastReleasedAt - b.lastReleasedAt);
    for (const rec of idle) {
      if (rec.lifetimeOver(now)) rec.retired = 'max-lifetime';
    }
    if (o.maxIdle < o.connectionLimit) {
      const live = idle.filter((r) => !r.retired);
      let count = live.length;
      for (const rec of live) {
        if (count <= o.minIdle) break;
        if (count > o.maxIdle || now - rec.lastReleasedAt > o.idleTimeout) {
          rec.retired = 'idle-timeout';
          count--;
        }
      }
    }
    this.#parts.evictOutOfService();
    this.#parts.dispatch();
    if (o.minIdle > 0 && this.#parts.count() < o.minIdle && this.#parts.opening() === 0) {
      this.#parts.ensureMinimum();
    }
  }
}
