/**
 * What the pool counts, and the shapes it reports them in: {@link PoolState} (counts right now),
 * {@link PoolStats} (counters since creation plus the state) and the payloads of the pool's own
 * events. The pool's parts increment {@link Counters}; `stats()` and metrics.ts read snapshots.
 */
import type { DeadReason, RetireReason } from './health.js';
import type { PathTimeoutStats } from './path-timeout.js';

/** Pool state attached to errors and returned by `state()`. The names follow HikariCP's
 * `(total=…, active=…, idle=…, waiting=…)`; {@link PoolStats} repeats two of them as `size` and
 * `borrowed`. */
export interface PoolState {
  /** Open connections: idle + borrowed + being validated for a borrower. */
  total: number;
  /** Connections borrowed by callers (checked out and not yet released). */
  active: number;
  /** Connections free to be handed out right now. */
  idle: number;
  /** `getConnection` calls waiting for a connection. */
  waiting: number;
  /** Connection attempts in progress. */
  pending: number;
}

/** Counters since creation plus the current {@link PoolState}; see the README's "Observing the
 * pool". Counters only grow. */
export interface PoolStats extends PoolState {
  /** Same as `total`: open connections. */
  size: number;
  /** Same as `active`: connections borrowed by callers. */
  borrowed: number;
  /** The most connections the pool opens (`connectionLimit`). */
  max: number;
  /** Connections opened since the pool was created. */
  created: number;
  /** Connections closed since the pool was created (any reason). */
  destroyed: number;
  /** Failed connection attempts. */
  createErrors: number;
  /** Connections handed to callers. */
  acquires: number;
  /** `getConnection` calls failed with `POOL_ACQUIRE_TIMEOUT`. */
  acquireTimeouts: number;
  /** COM_PINGs sent to connections idle for `idlePingInterval`. */
  idlePings: number;
  /** Checkout validations: pings of connections idle longer than `validationSkipWindow`. */
  validations: number;
  /** Transparent retries of one-shot queries whose connection was closed before sending. */
  retries: number;
  /** `leak` events: connections held longer than `leakDetectionThreshold`. */
  leaks: number;
  /** `healthCheck()` calls, and how many of them rejected. */
  healthChecks: number;
  healthCheckFailures: number;
  /** Connections found dead, by how they were found. */
  dead: Record<DeadReason, number>;
  /** Idle age (ms) of the connections most recently found dead, newest last (all reasons but
   * `suspect`, whose age is inferred, not observed). */
  deadIdleMsRecent: number[];
  /** The smallest idle age (ms) at which a connection was ever found dead; the best evidence of
   * the middlebox timeout on the path. `null` until one is found. */
  deadIdleMsMin: number | null;
  /** The same evidence split by reason: recent idle ages (ms, newest last) and the smallest. */
  deadIdleMsByReason: Record<DeadReason, { recent: number[]; min: number | null }>;
  /** Hedged checkout: connections opened because a checkout ping was still unanswered after the
   * hedge delay. */
  hedges: number;
  /** Callers served by another connection while their checkout ping was still unanswered. */
  hedgeWins: number;
  /** Healthy connections closed because the pool was above connectionLimit once the hedged pings
   * had resolved. */
  hedgeSurplus: number;
  /** The delay after which an unanswered checkout ping is hedged, ms; null with hedging off. */
  hedgeDelayMs: number | null;
  /** Smoothed round trip of the path as the pool has seen it (answered pings; connects / 1.5
   * before the first), ms; null before any. */
  pathRttMs: number | null;
  /** What the pool learned about the path's idle timeout, and the keepalive and idle-ping
   * settings it applies now (see the README's "Learning the path's idle timeout"). */
  pathTimeout: PathTimeoutStats;
}

/** What {@link Counters.snapshot} adds from outside the counters. */
export interface StatsExtras {
  hedgeDelayMs: number | null;
  pathRttMs: number | null;
  pathTimeout: PathTimeoutStats;
}

/** Payload of the `dead` event. */
export interface DeadConnectionEvent {
  /** mysql2's `threadId` (the server's CONNECTION_ID()). */
  threadId: number | null;
  reason: DeadReason;
  /** How long the connection had been idle (without proof of life) when found dead, in ms. */
  idleMs: number;
}

/** Payload of the `evicted` event: a connection left the pool. */
export interface EvictedConnectionEvent {
  threadId: number | null;
  reason: DeadReason | RetireReason | 'destroyed';
}

/** Payload of the `leak` event. */
export interface LeakEvent {
  threadId: number | null;
  /** How long the connection has been held, in ms. */
  heldMs: number;
  /** Stack of the code that acquired it. */
  stack: string | undefined;
}

/** Payload of the `leakReleased` event: a connection reported by `leak` came back. */
export interface LeakReleasedEvent {
  threadId: number | null;
  /** How long it was held in all, in ms. */
  heldMs: number;
}

/** Payload of the `acquireTimeout` event. */
export interface AcquireTimeoutEvent {
  /** How long the caller waited, in ms. */
  waitedMs: number;
  poolState: PoolState;
}

export const DEAD_REASONS: readonly DeadReason[] = [
  'checkout-ping-timeout',
  'checkout-ping-error',
  'idle-ping-timeout',
  'idle-ping-error',
  'socket-end',
  'socket-error',
  'suspect',
];

/** How many idle ages of dead connections `stats()` remembers. */
const DEAD_AGE_HISTORY = 10;

/** The counters of one pool. Each part of the pool increments its own; nothing decrements. */
export class Counters {
  created = 0;
  destroyed = 0;
  createErrors = 0;
  acquires = 0;
  acquireTimeouts = 0;
  idlePings = 0;
  validations = 0;
  retries = 0;
  leaks = 0;
  healthChecks = 0;
  healthCheckFailures = 0;
  hedges = 0;
  hedgeWins = 0;
  hedgeSurplus = 0;
  readonly dead = Object.fromEntries(DEAD_REASONS.map((r) => [r, 0])) as Record<DeadReason, number>;
  readonly deadIdleMsRecent: number[] = [];
  deadIdleMsMin: number | null = null;
  readonly deadIdleMsByReason = Object.fromEntries(
    DEAD_REASONS.map((r) => [r, { recent: [] as number[], min: null as number | null }]),
  ) as Record<DeadReason, { recent: number[]; min: number | null }>;

  /** Counts one connection found dead after `idleMs` without proof of life. */
  countDead(reason: DeadReason, idleMs: number): void {
    this.dead[reason]++;
    const byReason = this.deadIdleMsByReason[reason];
    byReason.recent.push(idleMs);
    if (byReason.recent.length > DEAD_AGE_HISTORY) byReason.recent.shift();
    byReason.min = byReason.min === null ? idleMs : Math.min(byReason.min, idleMs);
    // A suspect's age is inferred from another connection's death, not observed.
    if (reason === 'suspect') return;
    this.deadIdleMsRecent.push(idleMs);
    if (this.deadIdleMsRecent.length > DEAD_AGE_HISTORY) this.deadIdleMsRecent.shift();
    this.deadIdleMsMin =
      this.deadIdleMsMin === null ? idleMs : Math.min(this.deadIdleMsMin, idleMs);
  }

  /** A fresh plain object: the counters now, with `state`, `max` and the extras. */
  snapshot(state: PoolState, max: number, extras: StatsExtras): PoolStats {
    return {
      ...state,
      size: state.total,
      borrowed: state.active,
      max,
      created: this.created,
      destroyed: this.destroyed,
      createErrors: this.createErrors,
      acquires: this.acquires,
      acquireTimeouts: this.acquireTimeouts,
      idlePings: this.idlePings,
      validations: this.validations,
      retries: this.retries,
      leaks: this.leaks,
      healthChecks: this.healthChecks,
      healthCheckFailures: this.healthCheckFailures,
      dead: { ...this.dead },
      deadIdleMsRecent: [...this.deadIdleMsRecent],
      deadIdleMsMin: this.deadIdleMsMin,
      deadIdleMsByReason: Object.fromEntries(
        DEAD_REASONS.map((r) => {
          const e = this.deadIdleMsByReason[r];
          return [r, { recent: [...e.recent], min: e.min }];
        }),
      ) as PoolStats['deadIdleMsByReason'],
      hedges: this.hedges,
      hedgeWins: this.hedgeWins,
      hedgeSurplus: this.hedgeSurplus,
      hedgeDelayMs: extras.hedgeDelayMs,
      pathRttMs: extras.pathRttMs,
      pathTimeout: { ...extras.pathTimeout },
    };
  }
}
