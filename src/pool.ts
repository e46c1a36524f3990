/**
 * The mysql2-shaped pool. generic-pool does the slot accounting (max, min, the waiting queue,
 * test-on-borrow); this class adds what it lacks for a database behind a middlebox: a waiter that
 * can be cancelled (acquire timeout, fast failure when the server is down, `end()`), eviction of a
 * specific idle connection the moment it dies, and the health layer of health.ts.
 */
import { AsyncResource } from 'node:async_hooks';
import diagnostics from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import createDebug from 'debug';
import * as genericPool from 'generic-pool';
import mysql from 'mysql2';
import type { PoolConnection, QueryError } from 'mysql2';
import * as mysqlPromise from 'mysql2/promise';
import type { Pool as PromisePool } from 'mysql2/promise';
import { describeConfig, resolveConfig } from './config.js';
import type { KeepalivePoolOptions, ResolvedConfig } from './config.js';
import { PoolError } from './errors.js';
import {
  ConnectionRecord,
  applySocketSettings,
  closeConnection,
  isUnusable,
  jitterDown,
  pingWithTimeout,
  readWaitTimeout,
} from './health.js';
import type { DeadReason, RetireReason } from './health.js';
import { metricsText } from './metrics.js';
import { preferTls } from './tls-preferred.js';

const debug = createDebug('mysql2-keepalive-pool:pool');

/** mysql2's internal classes we build on; their shapes are stable across mysql2 3.x. */
const PoolConnectionClass = (
  mysql as unknown as { PoolConnection: new (pool: unknown, opts: unknown) => PoolConnection }
).PoolConnection;
const ConnectionConfigClass = (
  mysql as unknown as { ConnectionConfig: new (opts: unknown) => MysqlConnectionConfig }
).ConnectionConfig;
const createQuery = (mysql as unknown as { createQuery: (...args: unknown[]) => MysqlQuery })
  .createQuery;

/**
 * mysql2's `mysql2:pool:connect` tracing channel. mysql2 publishes on it from its own pool's
 * getConnection, which this pool replaces, so we publish on it ourselves, with the same context
 * shape; channels are global by name, so subscribers (OpenTelemetry, APMs) see no difference.
 */
const poolConnectChannel =
  typeof diagnostics.tracingChannel === 'function'
    ? diagnostics.tracingChannel<object, PoolConnectTraceContext>('mysql2:pool:connect')
    : undefined;

/** The context object of a `mysql2:pool:connect` trace, as mysql2 builds it. */
interface PoolConnectTraceContext {
  database: string;
  serverAddress: string;
  serverPort: number | undefined;
}

/** Whether anyone listens, as mysql2 checks it: `TracingChannel.hasSubscribers` is missing on
 * Node 20 before 20.13, where the start channel tells. */
function tracing(channel: typeof poolConnectChannel): channel is NonNullable<typeof channel> {
  if (channel === undefined) return false;
  const c = channel as unknown as { hasSubscribers?: boolean; start?: { hasSubscribers: boolean } };
  return c.hasSubscribers ?? c.start?.hasSubscribers ?? false;
}

/*
 * Async context of result callbacks. mysql2 calls a query's callback where it parses the
 * answer, i.e. in the async context of the socket (of whoever caused the connection to be
 * opened), so without care an AsyncLocalStorage store would leak from one caller to the next.
 * query() and execute() therefore save the caller's context in an AsyncResource and enter it
 * around the result callback. Not `AsyncResource.bind`: on Node 20 it also defines a deprecated
 * `asyncResource` accessor pair (two `util.deprecate` wrappers) on every bound function, which
 * cost more than the rest of a pooled `SELECT 1` on the client (bench/README.md).
 */

interface MysqlConnectionConfig {
  [key: string]: unknown;
  namedPlaceholders?: boolean;
  stringifyObjects?: boolean;
  timezone?: string;
  trace?: boolean;
}

interface MysqlQuery extends EventEmitter {
  onResult?: (err: unknown, rows?: unknown, fields?: unknown) => void;
  namedPlaceholders?: boolean;
}

/** How long a polite COM_QUIT may take before the socket is simply destroyed. */
const QUIT_GRACE_MS = 1000;
/** Back-off after consecutive failed connection attempts: keeps a dead database from costing CPU. */
const CREATE_BACKOFF_MIN_MS = 50;
const CREATE_BACKOFF_MAX_MS = 2000;

/**
 * How long a connection attempt waits before it starts: 0 after a success, else 50 ms doubling per
 * consecutive failure up to 2 s, counted from the last failure. Counting from the failure (not from
 * the attempt) makes the back-off decay on its own: after a quiet spell longer than the delay, the
 * next caller connects at once instead of paying for an outage that is long over.
 *
 * @param consecutiveFailures - failed attempts since the last success
 * @param msSinceLastFailure - time since the most recent failure
 */
export function createBackoffMs(consecutiveFailures: number, msSinceLastFailure: number): number {
  if (consecutiveFailures <= 0) return 0;
  const delay = Math.min(
    CREATE_BACKOFF_MAX_MS,
    CREATE_BACKOFF_MIN_MS * 2 ** Math.min(consecutiveFailures - 1, 16),
  );
  return Math.max(0, delay - Math.max(0, msSinceLastFailure));
}
/** How many idle ages of dead connections `stats()` remembers. */
const DEAD_AGE_HISTORY = 10;
/** The housekeeper's period: idle-timeout, max-lifetime and min-idle upkeep. */
const HOUSEKEEPING_MS = 1000;

/** Pool state attached to errors and returned by {@link KeepalivePool.state}. The names follow
 * HikariCP's `(total=…, active=…, idle=…, waiting=…)`; {@link PoolStats} repeats two of them as
 * `size` and `borrowed`. */
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
}

const DEAD_REASONS: readonly DeadReason[] = [
  'checkout-ping-timeout',
  'checkout-ping-error',
  'idle-ping-timeout',
  'idle-ping-error',
  'socket-end',
  'socket-error',
  'suspect',
];

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

interface Waiter {
  readonly callback: (err: Error | null, conn?: PoolConnection) => void;
  /** generic-pool's request for this waiter, captured so that it can be withdrawn. */
  request: { reject(reason: unknown): void } | undefined;
  /** The caller's async context, saved when the waiter is parked (see `#handToParked`): its
   * callback runs in it, wherever the connection comes from. */
  scope: AsyncResource | null;
  /** The next parked waiter (the parked queue is linked through its waiters: no allocation). */
  nextParked: Waiter | null;
  settled: boolean;
  /** Set when the waiter is being failed (timeout, create error, end()). */
  failWith: Error | null;
  readonly enqueuedAt: number;
  /** The caller's stack, captured synchronously (only when leak detection is on). */
  readonly stack: string | undefined;
}

/** generic-pool's request queue, extended so that a waiter's request can be withdrawn.
 * generic-pool removes a request from its queue when the request rejects with a `TimeoutError`,
 * and skips requests that are no longer pending; we reuse exactly that path. */
const PriorityQueue = (
  genericPool as unknown as {
    PriorityQueue: new (size: number) => { enqueue(obj: unknown, priority?: number): void };
  }
).PriorityQueue;

class WithdrawableQueue extends PriorityQueue {
  lastEnqueued: { reject(reason: unknown): void } | undefined;
  override enqueue(obj: { reject(reason: unknown): void }, priority?: number): void {
    this.lastEnqueued = obj;
    super.enqueue(obj, priority);
  }
}
/** The generic-pool 3.9.0 internals the hot path uses (test/unit/generic-pool-contract.test.ts
 * and test/integration/hot-path.test.ts pin them). */
interface PooledResourceLike {
  readonly obj: PoolConnection;
  allocate(): void;
  deallocate(): void;
}
interface LoanLike {
  readonly pooledResource: PooledResourceLike;
  resolve(): void;
}
interface GenericPoolInternals {
  readonly _availableObjects: {
    readonly head: PooledResourceLike | undefined;
    shift(): PooledResourceLike | undefined;
  };
  readonly _resourceLoans: Map<PoolConnection, LoanLike>;
  readonly _factoryCreateOperations: Set<unknown>;
  _addPooledResourceToAvailableObjects(pooled: PooledResourceLike): void;
  _dispense(): void;
  readonly pending: number;
  readonly available: number;
  readonly spareResourceCapacity: number;
}

const RESOLVED = Promise.resolve();

/** generic-pool's record of a lent resource, for a connection lent by the hot path. release()
 * and destroy() call resolve() and read pooledResource; only drain(), which this pool never
 * calls, reads promise. generic-pool's own ResourceLoan allocates a promise per loan. */
class DirectLoan {
  constructor(readonly pooledResource: PooledResourceLike) {}
  resolve(): void {}
  get promise(): Promise<void> {
    return RESOLVED;
  }
}

/** Runs a parked waiter's callback in the async context of its getConnection call. */
function runInScope(waiter: Waiter, err: Error | null, conn?: PoolConnection): void {
  waiter.scope!.runInAsyncScope(waiter.callback, null, err, conn);
}

/** Rejects a generic-pool request. The name must be `TimeoutError`: that is what makes
 * generic-pool drop the request from its queue. It carries the error the caller gets. */
class WithdrawnRequest extends Error {
  override name = 'TimeoutError';
  constructor(readonly reason: Error) {
    super('withdrawn');
  }
}

/** Evicts what the pool marked dead or retired, plus mysql2's idle rule (see {@link housekeep}). */
class RecordEvictor {
  static records: WeakMap<object, ConnectionRecord> = new WeakMap();
  evict(_config: unknown, pooled: { obj: PoolConnection }): boolean {
    const rec = RecordEvictor.records.get(pooled.obj);
    return !rec || rec.dead !== null || rec.retired !== null;
  }
}

/**
 * A pool with mysql2's Pool surface whose connections never reach a caller stale.
 * Create it with {@link createPool}.
 */
export class KeepalivePool extends EventEmitter {
  /** mysql2's PoolConfig shape: `connectionConfig` plus the pool knobs. */
  readonly config: {
    connectionConfig: MysqlConnectionConfig;
    connectionLimit: number;
    queueLimit: number;
    waitForConnections: boolean;
    maxIdle: number;
    idleTimeout: number;
    resetOnRelease: boolean;
  };
  /** The fully resolved configuration (frozen). */
  readonly options: ResolvedConfig;
  /** Read by mysql2's PoolConnection. */
  _closed = false;

  readonly #gp: genericPool.Pool<PoolConnection>;
  readonly #queue: WithdrawableQueue;
  readonly #records = new Map<PoolConnection, ConnectionRecord>();
  readonly #waiters = new Set<Waiter>();
  /** Parked waiters in arrival order, linked through `nextParked` (see `#handToParked`).
   * Waiters that timed out stay linked until they reach the head, where they are skipped. */
  #parkedFirst: Waiter | null = null;
  #parkedLast: Waiter | null = null;
  /** The one acquireTimeout timer: it is armed for the oldest waiter (waiters time out in
   * arrival order), so a checkout creates no timer of its own. */
  #acquireTimer: NodeJS.Timeout | null = null;
  /** A pending look for parked waiters that generic-pool could serve (`#serveParkedSoon`). */
  #parkedCheck: NodeJS.Immediate | null = null;
  readonly #stats = {
    created: 0,
    destroyed: 0,
    createErrors: 0,
    acquires: 0,
    acquireTimeouts: 0,
    idlePings: 0,
    validations: 0,
    retries: 0,
    leaks: 0,
    healthChecks: 0,
    healthCheckFailures: 0,
    dead: Object.fromEntries(DEAD_REASONS.map((r) => [r, 0])) as Record<DeadReason, number>,
    deadIdleMsRecent: [] as number[],
    deadIdleMsMin: null as number | null,
    deadIdleMsByReason: Object.fromEntries(
      DEAD_REASONS.map((r) => [r, { recent: [] as number[], min: null as number | null }]),
    ) as Record<DeadReason, { recent: number[]; min: number | null }>,
  };
  /** Why the most recent ping failed; the cause of a failed health check. */
  #lastPingFailure: unknown = null;
  #nextId = 1;
  #consecutiveCreateFailures = 0;
  /** The server's wait_timeout in ms (0: unknown), read once by the first connection. */
  #serverWaitTimeout: Promise<number> | null = null;
  #lastCreateError: unknown = null;
  #housekeeper: NodeJS.Timeout | null = null;
  /** Connection attempts waiting out their back-off; end() cuts them short. */
  #backoffs = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  #endCallbacks: Array<(err?: Error | null) => void> | null = null;

  /** @param options - mysql2 pool options plus ours; see {@link KeepalivePoolOptions}. */
  constructor(options?: KeepalivePoolOptions | string, env: NodeJS.ProcessEnv = process.env) {
    super();
    const cfg = resolveConfig(options, env);
    this.options = cfg;
    const connectionConfig = new ConnectionConfigClass({ ...cfg.connection });
    hideSecrets(connectionConfig);
    connectionConfig.pool = this;
    this.config = {
      connectionConfig,
      connectionLimit: cfg.connectionLimit,
      queueLimit: cfg.queueLimit,
      waitForConnections: cfg.waitForConnections,
      maxIdle: cfg.maxIdle,
      idleTimeout: cfg.idleTimeout,
      resetOnRelease: cfg.resetOnRelease,
    };
    for (const warning of cfg.warnings) {
      process.emitWarning(`mysql2-keepalive-pool: ${warning}`, {
        code: 'MYSQL2_KEEPALIVE_POOL_CONFIG',
      });
    }
    this.#queue = new WithdrawableQueue(1);
    const GenericPool = (
      genericPool as unknown as {
        Pool: new (...args: unknown[]) => genericPool.Pool<PoolConnection>;
      }
    ).Pool;
    // The queue class is injected through the constructor: generic-pool calls `new PriorityQueue(n)`.
    const queue = this.#queue;
    const QueueFactory = function () {
      return queue;
    };
    this.#gp = new GenericPool(
      RecordEvictor,
      (genericPool as unknown as { Deque: unknown }).Deque,
      QueueFactory,
      {
        create: () => this.#create(),
        destroy: (conn: PoolConnection) => this.#destroy(conn),
        validate: (conn: PoolConnection) => this.#validate(conn),
      },
      {
        max: cfg.connectionLimit,
        min: cfg.minIdle,
        testOnBorrow: true,
        // LIFO like mysql2: the most recently used connection is handed out first, so a hot pool
        // stays inside the validation skip window.
        fifo: false,
        // Our housekeeper runs eviction; generic-pool then owns no timer at all.
        evictionRunIntervalMillis: 0,
        numTestsPerEvictionRun: cfg.connectionLimit,
        autostart: false,
      },
    );
    this.#gp.on('factoryCreateError', () => {
      /* reported to the waiter in #create; the listener only keeps EventEmitter quiet */
    });
    this.#gp.on('factoryDestroyError', () => {});
    this.#housekeeper = setInterval(() => this.#housekeep(), HOUSEKEEPING_MS);
    this.#housekeeper.unref();
    if (cfg.minIdle > 0) this.#gp.start();
    // The resolved configuration itself is logged once by config.ts (namespace :config).
    debug('%s: created', cfg.name);
  }

  /** The pool's name, as used in debug output. */
  get name(): string {
    return this.options.name;
  }

  // -------------------------------------------------------------------------------------------
  // Checkout and return
  // -------------------------------------------------------------------------------------------

  /** Borrows a connection (mysql2 semantics): validated if it idled past the skip window.
   * Traced on mysql2's `mysql2:pool:connect` channel, as mysql2's own pool does. */
  getConnection(
    callback: (err: NodeJS.ErrnoException | null, connection: PoolConnection) => void,
  ): void {
    if (tracing(poolConnectChannel)) {
      const c = this.config.connectionConfig as {
        database?: string;
        socketPath?: string;
        host?: string;
        port?: number;
      };
      const context: PoolConnectTraceContext = {
        database: c.database || '',
        serverAddress: c.socketPath || c.host || 'localhost',
        serverPort: c.socketPath ? undefined : c.port || 3306,
      };
      poolConnectChannel.traceCallback(this.#getConnection, 0, context, this, callback);
      return;
    }
    this.#getConnection(callback);
  }

  #getConnection(
    callback: (err: NodeJS.ErrnoException | null, connection: PoolConnection) => void,
  ): void {
    const cb = callback as (err: Error | null, conn?: PoolConnection) => void;
    if (this._closed) {
      process.nextTick(cb, this.#closedError());
      return;
    }
    // Nobody waits and the most recently released connection is inside the skip window: it is
    // handed over at once, with no waiter, timer or promise.
    if (this.#waiters.size === 0 && this.#lendIdle(cb)) return;
    const gp = this.#gp;
    const mustWait = gp.available < 1 && gp.spareResourceCapacity < 1;
    if (mustWait) {
      if (!this.config.waitForConnections) {
        process.nextTick(
          cb,
          new PoolError('POOL_NO_CONNECTIONS', 'No connections available.', {
            details: { poolState: this.state() },
          }),
        );
        return;
      }
      // As in mysql2, a caller for whom a connection is being opened is not in the queue: only
      // waiters beyond the connection attempts in progress count against queueLimit. (With the
      // database down every caller waits on an attempt; counting them all would refuse one more
      // caller than mysql2 does.)
      // (Counted only when there is a limit: state() walks every connection.)
      const queueLimit = this.config.queueLimit;
      if (queueLimit > 0 && this.#waiters.size - this.state().pending >= queueLimit) {
        process.nextTick(
          cb,
          new PoolError('POOL_QUEUE_LIMIT', 'Queue limit reached.', {
            details: { poolState: this.state() },
          }),
        );
        return;
      }
      this.emit('enqueue');
    }
    const waiter: Waiter = {
      callback: cb,
      request: undefined,
      scope: null,
      nextParked: null,
      settled: false,
      failWith: null,
      enqueuedAt: Date.now(),
      // Captured here, synchronously: after the wait only generic-pool's frames would be left.
      stack: this.options.leakDetectionThreshold > 0 ? acquiredHere() : undefined,
    };
    this.#waiters.add(waiter);
    this.#armAcquireTimer();
    if (mustWait) {
      // Saved now, in the caller's async context: the releaser's is the wrong one.
      waiter.scope = new AsyncResource('mysql2-keepalive-pool:waiter');
      if (this.#parkedLast === null) this.#parkedFirst = waiter;
      else this.#parkedLast.nextParked = waiter;
      this.#parkedLast = waiter;
      return;
    }
    this.#acquireFromGp(waiter);
  }

  /** The waiter joins generic-pool's queue: it gets a new connection or a validated idle one. */
  #acquireFromGp(waiter: Waiter): void {
    const acquired = this.#gp.acquire();
    waiter.request = this.#queue.lastEnqueued;
    // Both reactions are registered here, in the caller's async context (a waiter moved here
    // from the parked queue runs its callback in its saved one), so the callback runs in it too:
    // AsyncLocalStorage stays correct across a wait in the queue.
    acquired.then(
      (conn) => this.#handOver(waiter, conn),
      (err: unknown) =>
        this.#settle(waiter, err instanceof WithdrawnRequest ? err.reason : asError(err)),
    );
  }

  #handOver(waiter: Waiter, conn: PoolConnection): void {
    const rec = this.#records.get(conn);
    if (!rec || this._closed) {
      // end() ran while generic-pool was dispensing; the connection is already being closed.
      this.#settle(waiter, waiter.failWith ?? this.#closedError());
      return;
    }
    this.#lend(rec, Date.now(), waiter.stack);
    this.#settle(waiter, null, conn);
  }

  /** Marks a connection as borrowed by a caller. */
  #lend(rec: ConnectionRecord, now: number, stack: string | undefined): void {
    const conn = rec.conn;
    rec.borrowed = true;
    rec.borrowedAt = now;
    holdsProcess(conn, true);
    (conn as unknown as { _released: boolean })._released = false;
    this.#stats.acquires++;
    if (this.options.leakDetectionThreshold > 0) this.#watchForLeak(rec, stack);
    this.emit('acquire', conn);
  }

  /**
   * The hot path of getConnection: the most recently released idle connection (generic-pool's
   * head, LIFO), when it needs no decision (used within `validationSkipWindow`, not due for
   * retirement, no ping in flight, not known closed), is lent the way generic-pool's dispatch
   * lends it (a loan, the resource marked allocated) without its promise chain. Anything else
   * returns false and takes generic-pool's path, which validates.
   */
  #lendIdle(cb: (err: Error | null, conn?: PoolConnection) => void): boolean {
    const gp = this.#gp as unknown as GenericPoolInternals;
    const pooled = gp._availableObjects.head;
    if (pooled === undefined) return false;
    const rec = this.#records.get(pooled.obj);
    if (rec === undefined || rec.outOfService || rec.pinging !== null) return false;
    const now = Date.now();
    if (rec.idleFor(now) > this.options.validationSkipWindow) return false;
    if (rec.lifetimeOver(now) || isUnusable(rec.conn)) return false;
    gp._availableObjects.shift();
    gp._resourceLoans.set(rec.conn, new DirectLoan(pooled));
    pooled.allocate();
    this.#lend(rec, now, this.options.leakDetectionThreshold > 0 ? acquiredHere() : undefined);
    process.nextTick(cb, null, rec.conn);
    return true;
  }

  /** The oldest parked waiter still waiting, taken out of the parked queue. */
  #nextParked(): Waiter | undefined {
    for (let w = this.#parkedFirst; w !== null; w = this.#parkedFirst) {
      this.#parkedFirst = w.nextParked;
      if (this.#parkedFirst === null) this.#parkedLast = null;
      w.nextParked = null;
      if (!w.settled && w.failWith === null) return w;
    }
    return undefined;
  }

  /**
   * Lends a just-released healthy connection straight to the oldest parked waiter. A caller who
   * must wait (no idle connection, no room for another) is parked in our own queue rather than
   * generic-pool's, and the next release serves it directly: no promise chain per checkout, the
   * steady state of a pool with more concurrent callers than connections. Releases serve parked
   * waiters before generic-pool's queue: a waiter there always has a connection attempt or a
   * validation of its own in progress. A slot or an idle connection that appears any other way
   * goes to parked waiters through `#unparkServable`.
   */
  #handToParked(rec: ConnectionRecord): boolean {
    if (this.#parkedFirst === null) return false;
    const waiter = this.#nextParked();
    if (waiter === undefined) return false;
    this.#lend(rec, Date.now(), waiter.stack);
    this.#settle(waiter, null, rec.conn);
    return true;
  }

  /** As many parked waiters as generic-pool can serve now (idle connections, room for new
   * ones) move, oldest first, to its queue. */
  #unparkServable(): void {
    const gp = this.#gp as unknown as GenericPoolInternals;
    for (let n = gp.available + gp.spareResourceCapacity; n > 0; n--) {
      const w = this.#nextParked();
      if (w === undefined) return;
      this.#acquireFromGp(w);
    }
  }

  /** `#unparkServable` once generic-pool has settled what it is doing (a connection attempt or
   * a validation finishing lands in its idle list a few promise reactions later). */
  #serveParkedSoon(): void {
    if (this.#parkedFirst === null || this.#parkedCheck !== null || this._closed) return;
    this.#parkedCheck = setImmediate(() => {
      this.#parkedCheck = null;
      this.#unparkServable();
    });
  }

  /** Arms the acquireTimeout timer for the oldest waiter, unless armed. Not unref'd: a caller
   * waiting for a connection is work in progress, like a pending request. */
  #armAcquireTimer(): void {
    const timeout = this.options.acquireTimeout;
    if (timeout <= 0 || this.#acquireTimer !== null) return;
    for (const w of this.#waiters) {
      if (w.settled || w.failWith) continue;
      const due = Math.max(1, w.enqueuedAt + timeout - Date.now());
      this.#acquireTimer = setTimeout(() => this.#onAcquireTimer(), due);
      return;
    }
  }

  #disarmAcquireTimer(): void {
    if (this.#acquireTimer === null) return;
    clearTimeout(this.#acquireTimer);
    this.#acquireTimer = null;
  }

  /** Times out every waiter whose acquireTimeout is up, then re-arms for the next one. */
  #onAcquireTimer(): void {
    this.#acquireTimer = null;
    const timeout = this.options.acquireTimeout;
    const now = Date.now();
    for (const w of this.#waiters) {
      if (w.settled || w.failWith) continue;
      if (now - w.enqueuedAt < timeout) break;
      this.#onAcquireTimeout(w);
    }
    this.#armAcquireTimer();
  }

  #settle(waiter: Waiter, err: Error | null, conn?: PoolConnection): void {
    if (waiter.settled) return;
    waiter.settled = true;
    this.#waiters.delete(waiter);
    if (this.#waiters.size === 0) this.#disarmAcquireTimer();
    // nextTick, as mysql2 does: a throwing callback is an uncaught exception, never an unhandled
    // rejection of our promise chain.
    if (waiter.scope) process.nextTick(runInScope, waiter, err, conn);
    else process.nextTick(waiter.callback, err, conn);
  }

  /** Takes a waiter out of generic-pool's queue; it is then failed with `err` through the
   * rejection handler registered in its own async context. If generic-pool already dispensed a
   * connection to it, the connection wins. */
  #withdraw(waiter: Waiter, err: Error): void {
    if (waiter.settled || waiter.failWith) return;
    waiter.failWith = err;
    if (waiter.request) waiter.request.reject(new WithdrawnRequest(err));
    // A parked waiter is in no queue but ours, which skips settled waiters: it fails now.
    else if (waiter.scope) this.#settle(waiter, err);
  }

  #onAcquireTimeout(waiter: Waiter): void {
    this.#stats.acquireTimeouts++;
    const state = this.state();
    const cause = this.#recentCreateError();
    const waited = Date.now() - waiter.enqueuedAt;
    const err = new PoolError(
      'POOL_ACQUIRE_TIMEOUT',
      `${this.name}: no connection available within acquireTimeout=${this.options.acquireTimeout} ms ` +
        `(total=${state.total}, active=${state.active}, idle=${state.idle}, waiting=${state.waiting})` +
        (cause ? `; last connection attempt failed: ${(cause as Error).message}` : ''),
      { cause: cause ?? undefined, details: { poolState: state, waitedMs: waited } },
    );
    this.emit('acquireTimeout', {
      waitedMs: waited,
      poolState: state,
    } satisfies AcquireTimeoutEvent);
    this.#withdraw(waiter, err);
  }

  /** Called by mysql2's PoolConnection.release(). Releasing twice is harmless. */
  releaseConnection(connection: PoolConnection | { connection: PoolConnection }): void {
    const conn = unwrapConnection(connection);
    const rec = this.#records.get(conn);
    if (!rec || !rec.borrowed) return;
    rec.borrowed = false;
    rec.borrowStack = undefined;
    if (rec.leakTimer) {
      clearTimeout(rec.leakTimer);
      rec.leakTimer = null;
    }
    // Checked apart from the timer: once the leak was reported, its timer is already gone.
    if (rec.leakReported) {
      rec.leakReported = false;
      const heldMs = Date.now() - rec.borrowedAt;
      debug(
        '%s: connection %d reported as a possible leak was released after %d ms',
        this.name,
        rec.id,
        heldMs,
      );
      this.emit('leakReleased', {
        threadId: conn.threadId ?? null,
        heldMs,
      } satisfies LeakReleasedEvent);
    }
    const now = Date.now();
    rec.lastReleasedAt = now;
    rec.lastAliveAt = now;
    (conn as unknown as { _released: boolean })._released = true;
    holdsProcess(conn, false);
    if (this._closed) return;
    if (isUnusable(conn) || rec.dead) {
      this.#destroyLent(conn);
      return;
    }
    if (this.config.resetOnRelease) {
      conn.reset((err: unknown) => {
        if (err) {
          rec.retired = 'reset-failed';
          this.#destroyLent(conn);
          return;
        }
        this.#giveBack(rec);
      });
      return;
    }
    this.#giveBack(rec);
  }

  /** A released healthy connection goes to the oldest parked waiter, else back to generic-pool,
   * which serves its own queue. */
  #giveBack(rec: ConnectionRecord): void {
    this.emit('release', rec.conn);
    if (this.#handToParked(rec)) return;
    // generic-pool's release() step by step, without the promise it returns (its work is
    // synchronous; it rejects only for a resource it has not lent).
    const gp = this.#gp as unknown as GenericPoolInternals;
    const loan = gp._resourceLoans.get(rec.conn);
    if (loan === undefined) return;
    gp._resourceLoans.delete(rec.conn);
    loan.resolve();
    loan.pooledResource.deallocate();
    gp._addPooledResourceToAvailableObjects(loan.pooledResource);
    gp._dispense();
  }

  /** Destroys a lent connection; the slot it frees goes to a parked waiter (generic-pool has
   * already given it to its own queue if that had waiters). */
  #destroyLent(conn: PoolConnection): void {
    void this.#gp.destroy(conn).catch(noop);
    this.#unparkServable();
  }

  /** Called by mysql2's PoolConnection on `end`, `error` and `destroy()`. */
  _removeConnection(conn: PoolConnection): void {
    const rec = this.#records.get(conn);
    if (!rec) return;
    if (rec.borrowed) {
      // It failed in a caller's hands (mysql2 has already given the caller's command the error):
      // it leaves the pool now. The reason shows in `evicted`; it is not counted in the `dead`
      // stats, which are evidence about idle connections.
      rec.borrowed = false;
      if (isExplicitDestroy(conn)) {
        this.#destroyLent(conn);
        return;
      }
      rec.markDead(socketFailureReason(conn));
      // mysql2 calls here from inside its error handling, before it has told every pending
      // command (and before it sets `_fatalError`); closing the connection now would cut that
      // short and hand those commands a `POOL_CLOSED` instead of the real error.
      process.nextTick(() => this.#destroyLent(conn));
      return;
    }
    // A ping is in flight: its verdict (which this socket failure will produce at once) records
    // the death, with the right reason and the suspect sweep.
    if (rec.pinging) return;
    // An idle connection whose socket ended or failed leaves the pool now, not at the next borrow.
    this.#foundDead(rec, socketFailureReason(conn), Date.now());
    this.#evictNow();
  }

  // -------------------------------------------------------------------------------------------
  // generic-pool factory
  // -------------------------------------------------------------------------------------------

  async #create(): Promise<PoolConnection> {
    const lastFailure = this.#lastCreateError as { at: number } | null;
    const delay = createBackoffMs(
      this.#consecutiveCreateFailures,
      lastFailure ? Date.now() - lastFailure.at : 0,
    );
    if (delay > 0) {
      // Several attempts can wait at once (one per missing connection); end() cuts them all short.
      await new Promise<void>((resolve) => {
        const backoff = {
          timer: setTimeout(() => {
            this.#backoffs.delete(backoff);
            resolve();
          }, delay),
          resolve,
        };
        // A waiting caller is work in progress; an idle pool retrying for minIdle is not.
        if (this.#waiters.size === 0) backoff.timer.unref();
        this.#backoffs.add(backoff);
      });
    }
    if (this._closed) throw this.#closedError();
    const cc = this.config.connectionConfig;
    // A per-connection copy, as mysql2 does: changeUser mutates connection.config in place.
    const connConfig = Object.create(
      Object.getPrototypeOf(cc),
      Object.getOwnPropertyDescriptors(cc),
    ) as MysqlConnectionConfig;
    const conn = new PoolConnectionClass(this, { config: connConfig });
    if (this.options.sslMode === 'PREFERRED') preferTls(conn as never, this.name);
    try {
      await new Promise<void>((resolve, reject) => {
        (conn as unknown as { connect(cb: (err: unknown) => void): void }).connect((err) =>
          err ? reject(err) : resolve(),
        );
      });
    } catch (error) {
      closeConnection(conn, false, 0);
      this.#consecutiveCreateFailures++;
      this.#stats.createErrors++;
      this.#lastCreateError = { error, at: Date.now() };
      debug('%s: connection attempt failed: %s', this.name, (error as Error).message);
      this.#failOldestWaiter(error);
      throw error;
    }
    this.#consecutiveCreateFailures = 0;
    this.#lastCreateError = null;
    // The server is back: attempts still waiting out a back-off go now.
    for (const backoff of this.#backoffs) {
      clearTimeout(backoff.timer);
      backoff.resolve();
    }
    this.#backoffs.clear();
    const o = this.options;
    applySocketSettings(conn, {
      enableKeepAlive: o.enableKeepAlive,
      keepAliveInitialDelay: o.keepAliveInitialDelay,
      keepAliveInterval: o.keepAliveInterval,
      keepAliveCount: o.keepAliveCount,
      tcpUserTimeout: o.tcpUserTimeout,
      name: this.name,
    });
    const now = Date.now();
    const retireAt = o.maxLifetime > 0 ? now + jitterDown(o.maxLifetime, 0.025) : 0;
    const rec = new ConnectionRecord(this.#nextId++, conn, now, retireAt);
    // mysql2's PoolConnection handles the first `error` with a once-listener; a second one on an
    // idle connection would otherwise be an uncaught 'error' event.
    conn.on('error', noop);
    if (this._closed) {
      closeConnection(conn, true, QUIT_GRACE_MS);
      throw this.#closedError();
    }
    if (o.idlePingInterval > 0) {
      // The server's wait_timeout is the same for every connection of the pool: read it once, on
      // the first connection (a protocol-only server, as in mysql2's own tests, cannot answer it).
      this.#serverWaitTimeout ??= readWaitTimeout(conn, o.validationTimeout);
      rec.serverWaitTimeoutMs = await this.#serverWaitTimeout;
    }
    this.#records.set(conn, rec);
    RecordEvictor.records.set(conn, rec);
    this.#stats.created++;
    this.#scheduleIdlePing(rec);
    // Idle until generic-pool hands it to a waiter (which refs it again in the same tick).
    holdsProcess(conn, false);
    debug('%s: connection %d opened (thread %d)', this.name, rec.id, conn.threadId);
    this.emit('connection', conn);
    this.#serveParkedSoon();
    return conn;
  }

  async #destroy(conn: PoolConnection): Promise<void> {
    const rec = this.#records.get(conn);
    if (rec) {
      rec.dispose();
      this.#records.delete(conn);
      this.#stats.destroyed++;
      const reason = rec.dead ?? rec.retired ?? 'destroyed';
      debug('%s: connection %d closed (%s)', this.name, rec.id, reason);
      this.emit('evicted', {
        threadId: conn.threadId ?? null,
        reason,
      } satisfies EvictedConnectionEvent);
      // mysql2 closes connections idle past idleTimeout with destroy() (no COM_QUIT) unless
      // gracefulEnd is set; so does this pool.
      const graceful =
        rec.dead === null &&
        (rec.retired !== 'idle-timeout' || this.options.connection.gracefulEnd === true);
      closeConnection(conn, graceful, QUIT_GRACE_MS);
    } else {
      closeConnection(conn, false, 0);
    }
  }

  /**
   * Test-on-borrow. Returns synchronously-resolved `true` inside the skip window, so a hot pool
   * pays nothing; otherwise pings under `validationTimeout`. Never rejects (generic-pool would
   * turn a rejection into an unhandled one).
   */
  #validate(conn: PoolConnection): Promise<boolean> {
    const rec = this.#records.get(conn);
    if (!rec || rec.outOfService || isUnusable(conn)) return Promise.resolve(false);
    if (rec.pinging) {
      // An idle ping is running: wait for its verdict rather than racing it.
      holdsProcess(conn, true);
      return rec.pinging;
    }
    const now = Date.now();
    if (rec.lifetimeOver(now)) {
      rec.retired = 'max-lifetime';
      return Promise.resolve(false);
    }
    const idle = rec.idleFor(now);
    if (idle <= this.options.validationSkipWindow) return Promise.resolve(true);
    this.#stats.validations++;
    // A caller is waiting on this ping: it must keep the process alive.
    holdsProcess(conn, true);
    const verdict = this.#ping(rec, 'checkout');
    // Either way generic-pool may end up with something parked waiters can use: the connection
    // (when its own queue no longer wants it), or the slot of a dead one.
    void verdict.then(() => this.#serveParkedSoon());
    return verdict;
  }

  /** One ping at a time per connection; the verdict is shared with whoever waits for it. A
   * health-check ping of an idle connection counts as an idle ping when it fails. */
  #ping(rec: ConnectionRecord, why: 'checkout' | 'idle' | 'health'): Promise<boolean> {
    const started = Date.now();
    const idleAtStart = rec.idleFor(started);
    const verdict = pingWithTimeout(rec.conn, this.options.validationTimeout).then((outcome) => {
      rec.pinging = null;
      if (outcome.ok && !rec.dead) {
        rec.lastAliveAt = Date.now();
        return true;
      }
      if (!outcome.ok) {
        this.#lastPingFailure = outcome.timedOut
          ? new Error(`COM_PING not answered within ${this.options.validationTimeout} ms`)
          : outcome.error;
        const reason: DeadReason =
          why === 'checkout'
            ? outcome.timedOut
              ? 'checkout-ping-timeout'
              : 'checkout-ping-error'
            : outcome.timedOut
              ? 'idle-ping-timeout'
              : 'idle-ping-error';
        this.#foundDead(rec, reason, started, idleAtStart);
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
   * or a run of callers pays the discovery about once, not once per connection.
   */
  #foundDead(
    rec: ConnectionRecord,
    reason: DeadReason,
    now: number,
    idleMs = rec.idleFor(now),
  ): void {
    if (!rec.markDead(reason)) return;
    this.#countDead(rec, reason, idleMs);
    if (reason === 'socket-end' || reason === 'socket-error' || reason === 'suspect') return;
    const threshold = idleMs / 2;
    let suspects = 0;
    for (const other of this.#records.values()) {
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
        this.name,
        suspects,
        threshold,
      );
    }
    this.#evictNow();
  }

  #countDead(rec: ConnectionRecord, reason: DeadReason, idleMs: number): void {
    const s = this.#stats;
    s.dead[reason]++;
    const byReason = s.deadIdleMsByReason[reason];
    byReason.recent.push(idleMs);
    if (byReason.recent.length > DEAD_AGE_HISTORY) byReason.recent.shift();
    byReason.min = byReason.min === null ? idleMs : Math.min(byReason.min, idleMs);
    if (reason !== 'suspect') {
      s.deadIdleMsRecent.push(idleMs);
      if (s.deadIdleMsRecent.length > DEAD_AGE_HISTORY) s.deadIdleMsRecent.shift();
      s.deadIdleMsMin = s.deadIdleMsMin === null ? idleMs : Math.min(s.deadIdleMsMin, idleMs);
    }
    debug('%s: connection %d found dead (%s) after %d ms idle', this.name, rec.id, reason, idleMs);
    this.emit('dead', {
      threadId: rec.conn.threadId ?? null,
      reason,
      idleMs,
    } satisfies DeadConnectionEvent);
  }

  /** Removes dead and retired idle connections from generic-pool's available list right away. */
  #evictNow(): void {
    if (this._closed) return;
    (this.#gp as unknown as { _evict(): void })._evict();
  }

  #failOldestWaiter(error: unknown): void {
    for (const waiter of this.#waiters) {
      if (waiter.settled || waiter.failWith) continue;
      const err = asError(error);
      try {
        (err as Error & { poolState?: PoolState }).poolState = this.state();
      } catch {
        /* frozen error objects are passed as they are */
      }
      this.#withdraw(waiter, err);
      return;
    }
  }

  #recentCreateError(): unknown {
    const last = this.#lastCreateError as { error: unknown; at: number } | null;
    return last ? last.error : null;
  }

  // -------------------------------------------------------------------------------------------
  // Timers: idle pings, leak detection, housekeeping
  // -------------------------------------------------------------------------------------------

  /** The idle-ping period for a connection: the configured interval, kept below the server's
   * wait_timeout so the server never closes an idle pooled connection on its own. */
  #pingPeriod(rec: ConnectionRecord): number {
    const interval = this.options.idlePingInterval;
    if (rec.serverWaitTimeoutMs > 0)
      return Math.min(interval, Math.floor(rec.serverWaitTimeoutMs * 0.8));
    return interval;
  }

  #scheduleIdlePing(rec: ConnectionRecord, delay?: number): void {
    if (this.options.idlePingInterval <= 0 || this._closed) return;
    const wait = delay ?? jitterDown(this.#pingPeriod(rec), 0.1);
    rec.pingTimer = setTimeout(() => this.#idlePingDue(rec), wait);
    rec.pingTimer.unref();
  }

  #idlePingDue(rec: ConnectionRecord): void {
    rec.pingTimer = null;
    if (this._closed || rec.outOfService || !this.#records.has(rec.conn)) return;
    const period = this.#pingPeriod(rec);
    const now = Date.now();
    const idle = rec.idleFor(now);
    // A borrowed connection is never pinged (the borrower owns it); a recently used one is alive.
    if (rec.borrowed || rec.pinging || idle < period * 0.9) {
      this.#scheduleIdlePing(rec, Math.max(1, jitterDown(period, 0.1) - (rec.borrowed ? 0 : idle)));
      return;
    }
    this.#stats.idlePings++;
    void this.#ping(rec, 'idle').then((alive) => {
      if (alive) this.#scheduleIdlePing(rec);
      else this.#evictNow();
    });
  }

  #watchForLeak(rec: ConnectionRecord, stack: string | undefined): void {
    rec.borrowStack = stack;
    rec.leakReported = false;
    if (rec.leakTimer) clearTimeout(rec.leakTimer);
    rec.leakTimer = setTimeout(() => {
      rec.leakTimer = null;
      if (!rec.borrowed) return;
      rec.leakReported = true;
      this.#stats.leaks++;
      const heldMs = Date.now() - rec.borrowedAt;
      debug(
        '%s: possible leak: connection %d held for %d ms; acquired at %s',
        this.name,
        rec.id,
        heldMs,
        stack,
      );
      this.emit('leak', { threadId: rec.conn.threadId ?? null, heldMs, stack } satisfies LeakEvent);
    }, this.options.leakDetectionThreshold);
    rec.leakTimer.unref();
  }

  /** mysql2's idle rule (idle connections above maxIdle, or idle past idleTimeout when maxIdle <
   * connectionLimit, are closed, keeping minIdle) and max lifetime for idle connections. */
  #housekeep(): void {
    if (this._closed) return;
    const now = Date.now();
    const o = this.options;
    const idle = [...this.#records.values()].filter(
      (r) => !r.borrowed && !r.pinging && !r.outOfService,
    );
    for (const rec of idle) {
      if (rec.lifetimeOver(now)) rec.retired = 'max-lifetime';
    }
    if (o.maxIdle < o.connectionLimit) {
      // Oldest release first, like mysql2's free list.
      const live = idle
        .filter((r) => !r.retired)
        .sort((a, b) => a.lastReleasedAt - b.lastReleasedAt);
      let count = live.length;
      for (const rec of live) {
        if (count <= o.minIdle) break;
        if (count > o.maxIdle || now - rec.lastReleasedAt > o.idleTimeout) {
          rec.retired = 'idle-timeout';
          count--;
        }
      }
    }
    this.#evictNow();
    // Parked waiters are served by releases; a connection freed any other way reaches them here
    // at the latest.
    if (this.#parkedFirst !== null) this.#unparkServable();
    if (o.minIdle > 0 && this.#gp.size < o.minIdle && this.state().pending === 0) {
      (this.#gp as unknown as { _ensureMinimum(): void })._ensureMinimum();
    }
  }

  // -------------------------------------------------------------------------------------------
  // One-shot queries (mysql2 semantics, plus one safe retry)
  // -------------------------------------------------------------------------------------------

  /** Runs one query on a pooled connection and releases it (mysql2 semantics). Returns the
   * Query, so `.stream()` and its events work. */
  query(sql: unknown, values?: unknown, cb?: unknown): MysqlQuery {
    // The caller's async context, for the callback mysql2 calls from the socket's (see "Async
    // context of result callbacks" at the top). It is entered in the onResult wrapper below, which exists anyway, so a
    // query pays for no bound function of its own. Failures before the send (`fail`) already
    // run in the caller's context: getConnection calls back in it.
    const scope = new AsyncResource('mysql2-keepalive-pool:query');
    const cmdQuery = createQuery(sql, values, cb, this.config.connectionConfig);
    if (typeof cmdQuery.namedPlaceholders === 'undefined') {
      cmdQuery.namedPlaceholders = this.config.connectionConfig.namedPlaceholders;
    }
    const fail = (err: unknown): void => {
      if (typeof cmdQuery.onResult === 'function') cmdQuery.onResult(err);
      else cmdQuery.emit('error', err);
    };
    this.#withSendableConnection(fail, (conn) => {
      let queryError: unknown = null;
      const origOnResult = cmdQuery.onResult;
      if (origOnResult) {
        cmdQuery.onResult = (err, rows, fields) => {
          queryError = err || null;
          scope.runInAsyncScope(origOnResult, undefined, err, rows, fields);
        };
      } else {
        cmdQuery.once('error', (err: unknown) => {
          queryError = err;
        });
        forwardConnectionErrors(conn, cmdQuery);
      }
      (conn.query as unknown as (q: MysqlQuery) => MysqlQuery)(cmdQuery).once('end', () => {
        if (isReadOnlyError(queryError)) conn.destroy();
        else conn.release();
      });
    });
    return cmdQuery;
  }

  /** Prepares (cached per connection) and executes one statement, then releases. */
  execute(sql: unknown, values?: unknown, cb?: unknown): void {
    let callback = cb as ((err: unknown, rows?: unknown, fields?: unknown) => void) | undefined;
    let params = values;
    if (typeof values === 'function') {
      callback = values as typeof callback;
      params = [];
    }
    const done = callback ?? noop;
    // As in query(): the result callback runs in the caller's async context, entered in the
    // wrapper that exists anyway; failures before the send already run in it.
    const scope = new AsyncResource('mysql2-keepalive-pool:execute');
    this.#withSendableConnection(done, (conn) => {
      (conn.execute as unknown as (...a: unknown[]) => EventEmitter)(
        sql,
        params,
        (err: unknown, rows: unknown, fields: unknown) => {
          if (isReadOnlyError(err)) conn.destroy();
          scope.runInAsyncScope(done, undefined, err, rows, fields);
        },
      ).once('end', () => conn.release());
    });
  }

  /**
   * Borrows a connection for a one-shot command (`pool.query` / `pool.execute`) and sends the
   * command on it. The retry rule: when the connection handed over is already known to be closed
   * ({@link isUnusable}: mysql2 saw a fatal error, is closing it or is in its closed state, or the
   * socket is destroyed or ended), the command has not been given to it, so it cannot have
   * reached the server; the connection is destroyed and the command goes, once, to another
   * connection. If that one is closed too, the caller gets mysql2's own closed-state error. Once
   * `send` has handed the command to a connection, nothing is retried: any later error (a reset,
   * a timeout, a lost connection) may come after the server ran the command, and is the
   * caller's. Connections the caller holds (`getConnection`, transactions) never pass here.
   */
  #withSendableConnection(
    fail: (err: unknown) => void,
    send: (conn: PoolConnection) => void,
  ): void {
    const attempt = (retriesLeft: number): void => {
      this.getConnection((err, conn) => {
        if (err) {
          fail(err);
          return;
        }
        if (isUnusable(conn)) {
          conn.destroy();
          if (retriesLeft > 0) {
            this.#stats.retries++;
            debug('%s: connection closed before sending; retrying on another', this.name);
            attempt(retriesLeft - 1);
            return;
          }
          // Sending would only produce this error (and, for a query without a callback, raise it
          // on the connection instead of the query, leaving the caller waiting forever).
          fail(closedStateError());
          return;
        }
        try {
          send(conn);
        } catch (e) {
          conn.release();
          fail(e);
        }
      });
    };
    attempt(1);
  }

  // -------------------------------------------------------------------------------------------
  // Shutdown, state, helpers
  // -------------------------------------------------------------------------------------------

  /**
   * Closes the pool: queued callers get `Pool is closed.`, every connection (borrowed ones too,
   * as in mysql2) is closed, and every timer is cancelled. The callback runs once all sockets are
   * gone.
   */
  end(callback?: (err?: NodeJS.ErrnoException | null) => void): void {
    const cb =
      typeof callback === 'function'
        ? callback
        : (err?: Error | null): void => {
            if (err) throw err;
          };
    if (this.#endCallbacks) {
      this.#endCallbacks.push(cb);
      return;
    }
    if (this._closed) {
      process.nextTick(cb, null);
      return;
    }
    this._closed = true;
    this.#endCallbacks = [cb];
    if (this.#housekeeper) clearInterval(this.#housekeeper);
    this.#housekeeper = null;
    for (const backoff of this.#backoffs) {
      clearTimeout(backoff.timer);
      backoff.resolve();
    }
    this.#backoffs.clear();
    for (const waiter of [...this.#waiters]) this.#withdraw(waiter, this.#closedError());
    this.#disarmAcquireTimer();
    this.#parkedFirst = null;
    this.#parkedLast = null;
    if (this.#parkedCheck !== null) clearImmediate(this.#parkedCheck);
    this.#parkedCheck = null;
    const gp = this.#gp as unknown as { _draining: boolean };
    gp._draining = true;
    const closing: Array<Promise<void>> = [];
    for (const rec of this.#records.values()) {
      rec.dispose();
      rec.retired ??= 'pool-closed';
      const conn = rec.conn;
      closing.push(
        new Promise<void>((resolve) => {
          const stream = (conn as unknown as { stream?: EventEmitter & { destroyed?: boolean } })
            .stream;
          if (!stream || stream.destroyed) return resolve();
          stream.once('close', () => resolve());
        }),
      );
      // Closing is work in progress: an idle (unref'd) socket would let the process exit before
      // the callback, e.g. while COM_QUIT waits behind a resetOnRelease reset. The grace timer
      // of closeConnection bounds how long this holds the process.
      holdsProcess(conn, true);
      closeConnection(conn, rec.dead === null, QUIT_GRACE_MS);
    }
    this.#records.clear();
    void Promise.all(closing).then(() => {
      const callbacks = this.#endCallbacks ?? [];
      this.#endCallbacks = [];
      debug('%s: ended', this.name);
      for (const fn of callbacks) fn(null);
    });
  }

  /** Counts right now. */
  state(): PoolState {
    let active = 0;
    for (const rec of this.#records.values()) if (rec.borrowed) active++;
    const gp = this.#gp;
    return {
      total: this.#records.size,
      active,
      idle: gp.available,
      waiting: this.#waiters.size,
      pending: (gp as unknown as { _factoryCreateOperations: Set<unknown> })
        ._factoryCreateOperations.size,
    };
  }

  /** Counters since creation plus the current state; a fresh plain object every call. */
  stats(): PoolStats {
    const s = this.#stats;
    const state = this.state();
    return {
      ...state,
      size: state.total,
      borrowed: state.active,
      max: this.options.connectionLimit,
      created: s.created,
      destroyed: s.destroyed,
      createErrors: s.createErrors,
      acquires: s.acquires,
      acquireTimeouts: s.acquireTimeouts,
      idlePings: s.idlePings,
      validations: s.validations,
      retries: s.retries,
      leaks: s.leaks,
      healthChecks: s.healthChecks,
      healthCheckFailures: s.healthCheckFailures,
      dead: { ...s.dead },
      deadIdleMsRecent: [...s.deadIdleMsRecent],
      deadIdleMsMin: s.deadIdleMsMin,
      deadIdleMsByReason: Object.fromEntries(
        DEAD_REASONS.map((r) => {
          const e = s.deadIdleMsByReason[r];
          return [r, { recent: [...e.recent], min: e.min }];
        }),
      ) as PoolStats['deadIdleMsByReason'],
    };
  }

  /**
   * The pool's statistics in the Prometheus text exposition format (version 0.0.4), ready to be
   * served on `/metrics`; see {@link metricsText} to expose several pools at once.
   */
  metrics(): string {
    return metricsText(this);
  }

  /**
   * Readiness check: resolves once a connection of this pool answers COM_PING within
   * `validationTimeout`; rejects with a {@link PoolError} `HEALTH_CHECK_FAILED` (the real cause,
   * e.g. `ECONNREFUSED`, as `cause`) otherwise. It never takes a connection from a caller and
   * never opens one beyond `connectionLimit`:
   *
   * 1. An idle connection (the least recently used) is reserved and pinged, like an idle ping: a
   *    caller who borrows it meanwhile waits for the verdict. A dead one is evicted, as an idle
   *    ping would, and the next idle one is tried: a stale connection is the pool's business,
   *    not a sign that the database is down.
   * 2. With no idle connection, no caller waiting and room below `connectionLimit`, one
   *    connection is opened; it stays in the pool afterwards.
   * 3. When every connection is borrowed (or callers wait), nothing is taken: it resolves if a
   *    connection proved alive (a release or a ping) within the last `validationTimeout` ms or
   *    does so within the next `validationTimeout` ms.
   *
   * It settles within `connectTimeout + 2 × validationTimeout`.
   */
  healthCheck(): Promise<void> {
    this.#stats.healthChecks++;
    const connectTimeout = this.config.connectionConfig.connectTimeout;
    const budget =
      (typeof connectTimeout === 'number' && connectTimeout > 0 ? connectTimeout : 10_000) +
      2 * this.options.validationTimeout;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (message: string, cause: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#stats.healthCheckFailures++;
        debug('%s: health check failed: %s', this.name, message);
        reject(
          new PoolError('HEALTH_CHECK_FAILED', `${this.name}: health check failed: ${message}`, {
            cause,
            details: { poolState: this.state() },
          }),
        );
      };
      // Not unref'd, like a waiting caller's acquire timer: a caller awaiting the verdict is work
      // in progress (a startup script awaiting it must not exit halfway); cleared on settling.
      const timer = setTimeout(
        () => fail(`no verdict within ${budget} ms`, this.#lastPingFailure ?? undefined),
        budget,
      );
      this.#healthCheck().then(
        (verdict) => {
          if (verdict === null) {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve();
          } else {
            fail(verdict.message, verdict.cause);
          }
        },
        (error: unknown) => fail(asError(error).message, error),
      );
    });
  }

  /** The steps of {@link healthCheck}; `null` means healthy. */
  async #healthCheck(): Promise<{ message: string; cause: unknown } | null> {
    let opened = false;
    for (;;) {
      if (this._closed) return { message: 'the pool is closed', cause: this.#closedError() };
      const rec = this.#leastRecentlyUsedIdle();
      if (rec) {
        // A caller awaiting this check is work in progress: keep the process alive for the ping.
        holdsProcess(rec.conn, true);
        const alive = await this.#ping(rec, 'health');
        if (!rec.borrowed) holdsProcess(rec.conn, false);
        if (alive) return null;
        this.#evictNow();
        continue;
      }
      // The connection opened below was handed to a caller at once: its handshake is the answer.
      if (opened) return null;
      const gp = this.#gp as unknown as {
        spareResourceCapacity: number;
        _createResource(): void;
        _factoryCreateOperations: Set<Promise<unknown>>;
      };
      if (this.#waiters.size > 0 || gp.spareResourceCapacity < 1) return this.#proofOfLife();
      // generic-pool creates it into its idle list, counted against `max` from this moment on.
      const before = new Set(gp._factoryCreateOperations);
      gp._createResource();
      const creating = [...gp._factoryCreateOperations].find((op) => !before.has(op));
      try {
        await creating;
      } catch (error) {
        return { message: `cannot connect: ${asError(error).message}`, cause: error };
      }
      opened = true;
    }
  }

  /** The idle connection a borrower would take last (generic-pool hands out the head). */
  #leastRecentlyUsedIdle(): ConnectionRecord | undefined {
    const available = (
      this.#gp as unknown as { _availableObjects: Iterable<{ obj: PoolConnection }> }
    )._availableObjects;
    let found: ConnectionRecord | undefined;
    for (const pooled of available) {
      const rec = this.#records.get(pooled.obj);
      if (rec && !rec.borrowed && !rec.pinging && !rec.dead && !rec.retired) found = rec;
    }
    return found;
  }

  /** Step 3 of {@link healthCheck}: every connection is busy, so judge by recent evidence. */
  #proofOfLife(): Promise<{ message: string; cause: unknown } | null> {
    const window = this.options.validationTimeout;
    let newest = 0;
    for (const rec of this.#records.values()) newest = Math.max(newest, rec.lastAliveAt);
    if (Date.now() - newest <= window) return Promise.resolve(null);
    const state = this.state();
    return new Promise((resolve) => {
      const onRelease = (): void => {
        cleanup();
        resolve(null);
      };
      const timer = setTimeout(() => {
        cleanup();
        resolve({
          message:
            `no connection free to ping (total=${state.total}, active=${state.active}, ` +
            `waiting=${state.waiting}) and none released or answered a ping within ${window} ms`,
          cause: this.#lastPingFailure ?? this.#recentCreateError() ?? undefined,
        });
      }, window);
      timer.unref();
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('release', onRelease);
      };
      this.on('release', onRelease);
    });
  }

  /** mysql2's `escape`, with this pool's connection settings. */
  escape(value: unknown): string {
    const c = this.config.connectionConfig;
    return mysql.escape(value as never, c.stringifyObjects, c.timezone as never);
  }

  /** mysql2's `escapeId`. */
  escapeId(value: string | string[]): string {
    return mysql.escapeId(value as string, false);
  }

  /** mysql2's `format`, with this pool's connection settings. */
  format(sql: string, values?: unknown): string {
    const c = this.config.connectionConfig;
    return mysql.format(sql, values as never, c.stringifyObjects, c.timezone as never);
  }

  /** A mysql2/promise Pool over this pool (mysql2's own PromisePool class). */
  promise(promiseImpl?: PromiseConstructor): PromisePool {
    const PromisePoolClass = (
      mysqlPromise as unknown as {
        PromisePool: new (pool: unknown, p?: PromiseConstructor) => PromisePool;
      }
    ).PromisePool;
    return new PromisePoolClass(this, promiseImpl ?? Promise);
  }

  /** Prepared statements are cached per connection; mysql2's pool has no pool-wide unprepare. */
  unprepare(sql: string): void {
    for (const rec of this.#records.values()) {
      (rec.conn as unknown as { unprepare(sql: string): void }).unprepare(sql);
    }
  }

  [Symbol.dispose](): void {
    if (!this._closed) this.end();
  }

  #closedError(): PoolError {
    return new PoolError('POOL_CLOSED', 'Pool is closed.');
  }

  /** util.inspect shows the state and the masked config, never a password. */
  [inspect.custom](): string {
    return `KeepalivePool ${inspect({ name: this.name, state: this.state(), config: describeConfig(this.options) })}`;
  }
}

function unwrapConnection(
  connection: PoolConnection | { connection: PoolConnection },
): PoolConnection {
  // mysql2's PromisePool.releaseConnection passes a PromisePoolConnection.
  const inner = (connection as { connection?: PoolConnection }).connection;
  return inner && typeof inner === 'object' && 'threadId' in inner
    ? inner
    : (connection as PoolConnection);
}

/** Password fields stay readable for mysql2 but out of `util.inspect`, JSON and logs. */
function hideSecrets(config: MysqlConnectionConfig): void {
  for (const key of ['password', 'password1', 'password2', 'password3', 'passwordSha1']) {
    if (key in config) {
      Object.defineProperty(config, key, {
        value: config[key],
        enumerable: false,
        writable: true,
        configurable: true,
      });
    }
  }
}

/** An idle pool must not keep the process alive: idle sockets are unref'd, borrowed ones ref'd. */
function holdsProcess(conn: PoolConnection, hold: boolean): void {
  const stream = (conn as unknown as { stream?: { ref?(): void; unref?(): void } }).stream;
  if (hold) stream?.ref?.();
  else stream?.unref?.();
}

/**
 * Why mysql2 dropped a connection. mysql2 tells the pool during its `error` event, before it sets
 * `_fatalError`; what it has already done by then is switch to its closed-state `addCommand`.
 */
function socketFailureReason(conn: PoolConnection): 'socket-error' | 'socket-end' {
  const c = conn as unknown as {
    _fatalError?: unknown;
    addCommand?: unknown;
    _addCommandClosedState?: unknown;
  };
  return c._fatalError ||
    (c._addCommandClosedState !== undefined && c.addCommand === c._addCommandClosedState)
    ? 'socket-error'
    : 'socket-end';
}

/** True when the pool is told about a connection because its holder called `destroy()`, not
 * because the socket ended or failed. */
function isExplicitDestroy(conn: PoolConnection): boolean {
  const c = conn as unknown as {
    _fatalError?: unknown;
    _protocolError?: unknown;
    addCommand?: unknown;
    _addCommandClosedState?: unknown;
    stream?: { destroyed?: boolean; readableEnded?: boolean };
  };
  return !(
    c._fatalError ||
    c._protocolError ||
    (c._addCommandClosedState !== undefined && c.addCommand === c._addCommandClosedState) ||
    c.stream?.destroyed ||
    c.stream?.readableEnded
  );
}

/** mysql2's error for a command given to a closed connection, reproduced exactly (mysql2 gives it
 * no `code`; `fatal` is true). */
function closedStateError(): Error {
  return Object.assign(new Error("Can't add new command when connection is in closed state"), {
    fatal: true,
  });
}

/**
 * A query without a callback (event or `.stream()` style) never hears of a network error in
 * mysql2: the error goes to the connection's `error` event, and the query emits neither `error`
 * nor `end`, so its consumer waits forever. While such a query is in flight on a pooled
 * connection, a connection error is forwarded to it as `error` then `end`, as mysql2 does for a
 * server error.
 */
function forwardConnectionErrors(conn: PoolConnection, cmdQuery: MysqlQuery): void {
  let done = false;
  const onError = (err: unknown): void => {
    if (done) return;
    done = true;
    conn.removeListener('error', onError);
    cmdQuery.emit('error', err);
    cmdQuery.emit('end');
  };
  conn.on('error', onError);
  cmdQuery.once('end', () => {
    done = true;
    conn.removeListener('error', onError);
  });
}

function isReadOnlyError(err: unknown): boolean {
  const errno = (err as QueryError | null)?.errno;
  // ER_OPTION_PREVENTS_STATEMENT, ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, ER_READ_ONLY_MODE:
  // mysql2 drops such a connection (a failed-over primary), and so do we.
  return errno === 1290 || errno === 1792 || errno === 1836;
}

/** The stack of the code that called `getConnection`, without the pool's own frames above it. */
function acquiredHere(): string | undefined {
  const marker = new Error('Connection acquired here');
  Error.captureStackTrace(marker, KeepalivePool.prototype.getConnection);
  return marker.stack;
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

function noop(): void {}
