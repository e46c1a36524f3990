/**
 * The mysql2-shaped pool. generic-pool does the slot accounting (max, min, the waiting queue,
 * test-on-borrow); this class adds what it lacks for a database behind a middlebox: a waiter that
 * can be cancelled (acquire timeout, fast failure when the server is down, `end()`), eviction of a
 * specific idle connection the moment it dies, and the health layer of health.ts.
 */
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
/** How many idle ages of dead connections `stats()` remembers. */
const DEAD_AGE_HISTORY = 10;
/** The housekeeper's period: idle-timeout, max-lifetime and min-idle upkeep. */
const HOUSEKEEPING_MS = 1000;

/** Pool state attached to errors and returned by {@link KeepalivePool.state}. */
export interface PoolState {
  total: number;
  active: number;
  idle: number;
  waiting: number;
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

/** Counters and recent evidence; see the README's "Observing the pool". */
export interface PoolStats extends PoolState {
  /** Connections opened since the pool was created. */
  created: number;
  /** Connections closed since the pool was created (any reason). */
  destroyed: number;
  /** Failed connection attempts. */
  createErrors: number;
  acquires: number;
  acquireTimeouts: number;
  idlePings: number;
  validations: number;
  /** Transparent retries of one-shot queries whose connection was closed before sending. */
  retries: number;
  /** Connections found dead, by how they were found. */
  dead: Record<DeadReason, number>;
  /** Idle age (ms) of the connections most recently found dead, newest last. */
  deadIdleMsRecent: number[];
  /** The smallest idle age (ms) at which a connection was ever found dead; the best evidence of
   * the middlebox timeout on the path. `null` until one is found. */
  deadIdleMsMin: number | null;
}

interface Waiter {
  readonly callback: (err: Error | null, conn?: PoolConnection) => void;
  /** generic-pool's request for this waiter, captured so that it can be withdrawn. */
  request: { reject(reason: unknown): void } | undefined;
  timer: NodeJS.Timeout | null;
  settled: boolean;
  /** Set when the waiter is being failed (timeout, create error, end()). */
  failWith: Error | null;
  readonly enqueuedAt: number;
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
  readonly #stats = {
    created: 0,
    destroyed: 0,
    createErrors: 0,
    acquires: 0,
    acquireTimeouts: 0,
    idlePings: 0,
    validations: 0,
    retries: 0,
    dead: {
      'checkout-ping-timeout': 0,
      'checkout-ping-error': 0,
      'idle-ping-timeout': 0,
      'idle-ping-error': 0,
      'socket-end': 0,
      'socket-error': 0,
      suspect: 0,
    } as Record<DeadReason, number>,
    deadIdleMsRecent: [] as number[],
    deadIdleMsMin: null as number | null,
  };
  #nextId = 1;
  #consecutiveCreateFailures = 0;
  #lastCreateError: unknown = null;
  #housekeeper: NodeJS.Timeout | null = null;
  /** A connection attempt waiting out its back-off; end() cuts it short. */
  #backoff: { timer: NodeJS.Timeout; resolve: () => void } | null = null;
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
    debug('%s: created with %O', cfg.name, describeConfig(cfg));
  }

  /** The pool's name, as used in debug output. */
  get name(): string {
    return this.options.name;
  }

  // -------------------------------------------------------------------------------------------
  // Checkout and return
  // -------------------------------------------------------------------------------------------

  /** Borrows a connection (mysql2 semantics): validated if it idled past the skip window. */
  getConnection(
    callback: (err: NodeJS.ErrnoException | null, connection: PoolConnection) => void,
  ): void {
    const cb = callback as (err: Error | null, conn?: PoolConnection) => void;
    if (this._closed) {
      process.nextTick(cb, this.#closedError());
      return;
    }
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
      if (this.config.queueLimit > 0 && this.#waiters.size >= this.config.queueLimit) {
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
      timer: null,
      settled: false,
      failWith: null,
      enqueuedAt: Date.now(),
    };
    this.#waiters.add(waiter);
    const acquired = gp.acquire();
    waiter.request = this.#queue.lastEnqueued;
    if (this.options.acquireTimeout > 0) {
      // Not unref'd: a caller waiting for a connection is work in progress, like a pending request.
      waiter.timer = setTimeout(() => this.#onAcquireTimeout(waiter), this.options.acquireTimeout);
    }
    // Both reactions are registered here, in the caller's async context, so the callback runs in
    // it too: AsyncLocalStorage stays correct across a wait in the queue.
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
    rec.borrowed = true;
    rec.borrowedAt = Date.now();
    holdsProcess(conn, true);
    (conn as unknown as { _released: boolean })._released = false;
    this.#stats.acquires++;
    if (this.options.leakDetectionThreshold > 0) this.#watchForLeak(rec);
    this.emit('acquire', conn);
    this.#settle(waiter, null, conn);
  }

  #settle(waiter: Waiter, err: Error | null, conn?: PoolConnection): void {
    if (waiter.settled) return;
    waiter.settled = true;
    if (waiter.timer) clearTimeout(waiter.timer);
    this.#waiters.delete(waiter);
    // nextTick, as mysql2 does: a throwing callback is an uncaught exception, never an unhandled
    // rejection of our promise chain.
    process.nextTick(waiter.callback, err, conn);
  }

  /** Takes a waiter out of generic-pool's queue; it is then failed with `err` through the
   * rejection handler registered in its own async context. If generic-pool already dispensed a
   * connection to it, the connection wins. */
  #withdraw(waiter: Waiter, err: Error): void {
    if (waiter.settled || waiter.failWith) return;
    waiter.failWith = err;
    if (waiter.request) waiter.request.reject(new WithdrawnRequest(err));
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
    this.emit('acquireTimeout', { waitedMs: waited, poolState: state });
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
      if (rec.leakReported) {
        rec.leakReported = false;
        this.emit('leakReleased', { threadId: conn.threadId, heldMs: Date.now() - rec.borrowedAt });
      }
    }
    const now = Date.now();
    rec.lastReleasedAt = now;
    rec.lastAliveAt = now;
    (conn as unknown as { _released: boolean })._released = true;
    holdsProcess(conn, false);
    if (this._closed) return;
    if (isUnusable(conn) || rec.dead) {
      void this.#gp.destroy(conn).catch(noop);
      return;
    }
    if (this.config.resetOnRelease) {
      conn.reset((err: unknown) => {
        if (err) {
          rec.retired = 'reset-failed';
          void this.#gp.destroy(conn).catch(noop);
          return;
        }
        this.emit('release', conn);
        void this.#gp.release(conn).catch(noop);
      });
      return;
    }
    this.emit('release', conn);
    void this.#gp.release(conn).catch(noop);
  }

  /** Called by mysql2's PoolConnection on `end`, `error` and `destroy()`. */
  _removeConnection(conn: PoolConnection): void {
    const rec = this.#records.get(conn);
    if (!rec) return;
    if (rec.borrowed) {
      rec.borrowed = false;
      void this.#gp.destroy(conn).catch(noop);
      return;
    }
    // A ping is in flight: its verdict (which this socket failure will produce at once) records
    // the death, with the right reason and the suspect sweep.
    if (rec.pinging) return;
    // An idle connection whose socket ended or failed leaves the pool now, not at the next borrow.
    const reason: DeadReason = (conn as unknown as { _fatalError?: unknown })._fatalError
      ? 'socket-error'
      : 'socket-end';
    this.#foundDead(rec, reason, Date.now());
    this.#evictNow();
  }

  // -------------------------------------------------------------------------------------------
  // generic-pool factory
  // -------------------------------------------------------------------------------------------

  async #create(): Promise<PoolConnection> {
    if (this.#consecutiveCreateFailures > 0) {
      const delay = Math.min(
        CREATE_BACKOFF_MAX_MS,
        CREATE_BACKOFF_MIN_MS * 2 ** (this.#consecutiveCreateFailures - 1),
      );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#backoff = null;
          resolve();
        }, delay);
        // A waiting caller is work in progress; an idle pool retrying for minIdle is not.
        if (this.#waiters.size === 0) timer.unref();
        this.#backoff = { timer, resolve };
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
    const o = this.options;
    applySocketSettings(conn, {
      enableKeepAlive: o.enableKeepAlive,
      keepAliveInitialDelay: o.keepAliveInitialDelay,
      keepAliveInterval: o.keepAliveInterval,
      keepAliveCount: o.keepAliveCount,
      tcpUserTimeout: o.tcpUserTimeout,
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
      rec.serverWaitTimeoutMs = await readWaitTimeout(conn, o.validationTimeout);
    }
    this.#records.set(conn, rec);
    RecordEvictor.records.set(conn, rec);
    this.#stats.created++;
    this.#scheduleIdlePing(rec);
    // Idle until generic-pool hands it to a waiter (which refs it again in the same tick).
    holdsProcess(conn, false);
    debug('%s: connection %d opened (thread %d)', this.name, rec.id, conn.threadId);
    this.emit('connection', conn);
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
      closeConnection(conn, rec.dead === null, QUIT_GRACE_MS);
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
    if (!rec || rec.dead || rec.retired || isUnusable(conn)) return Promise.resolve(false);
    if (rec.pinging) {
      // An idle ping is running: wait for its verdict rather than racing it.
      holdsProcess(conn, true);
      return rec.pinging;
    }
    const now = Date.now();
    if (rec.retireAt > 0 && now >= rec.retireAt) {
      rec.retired = 'max-lifetime';
      return Promise.resolve(false);
    }
    const idle = rec.idleFor(now);
    if (idle <= this.options.validationSkipWindow) return Promise.resolve(true);
    this.#stats.validations++;
    // A caller is waiting on this ping: it must keep the process alive.
    holdsProcess(conn, true);
    return this.#ping(rec, 'checkout');
  }

  /** One ping at a time per connection; the verdict is shared with whoever waits for it. */
  #ping(rec: ConnectionRecord, why: 'checkout' | 'idle'): Promise<boolean> {
    const started = Date.now();
    const idleAtStart = rec.idleFor(started);
    const verdict = pingWithTimeout(rec.conn, this.options.validationTimeout).then((outcome) => {
      rec.pinging = null;
      if (outcome.ok && !rec.dead) {
        rec.lastAliveAt = Date.now();
        return true;
      }
      if (!outcome.ok) {
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
      if (other === rec || other.borrowed || other.pinging || other.dead || other.retired) continue;
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
    if (this._closed || rec.dead || rec.retired || !this.#records.has(rec.conn)) return;
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

  #watchForLeak(rec: ConnectionRecord): void {
    const stack = new Error('Connection acquired here').stack;
    rec.borrowStack = stack;
    rec.leakReported = false;
    if (rec.leakTimer) clearTimeout(rec.leakTimer);
    rec.leakTimer = setTimeout(() => {
      rec.leakTimer = null;
      if (!rec.borrowed) return;
      rec.leakReported = true;
      const heldMs = Date.now() - rec.borrowedAt;
      debug(
        '%s: possible leak: connection %d held for %d ms; acquired at %s',
        this.name,
        rec.id,
        heldMs,
        stack,
      );
      this.emit('leak', { threadId: rec.conn.threadId ?? null, heldMs, stack });
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
      (r) => !r.borrowed && !r.pinging && !r.dead && !r.retired,
    );
    for (const rec of idle) {
      if (rec.retireAt > 0 && now >= rec.retireAt) rec.retired = 'max-lifetime';
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
          origOnResult(err, rows, fields);
        };
      } else {
        cmdQuery.once('error', (err: unknown) => {
          queryError = err;
        });
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
    this.#withSendableConnection(done, (conn) => {
      (conn.execute as unknown as (...a: unknown[]) => EventEmitter)(
        sql,
        params,
        (err: unknown, rows: unknown, fields: unknown) => {
          if (isReadOnlyError(err)) conn.destroy();
          done(err, rows, fields);
        },
      ).once('end', () => conn.release());
    });
  }

  /**
   * Borrows a connection for a one-shot command. If the connection turns out to be closed before
   * anything was written to it, the command cannot have reached the server, so it is retried once
   * on another connection. Anything that fails after the write is never retried here.
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
    if (this.#backoff) {
      clearTimeout(this.#backoff.timer);
      this.#backoff.resolve();
      this.#backoff = null;
    }
    for (const waiter of [...this.#waiters]) this.#withdraw(waiter, this.#closedError());
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
    return {
      ...this.state(),
      created: s.created,
      destroyed: s.destroyed,
      createErrors: s.createErrors,
      acquires: s.acquires,
      acquireTimeouts: s.acquireTimeouts,
      idlePings: s.idlePings,
      validations: s.validations,
      retries: s.retries,
      dead: { ...s.dead },
      deadIdleMsRecent: [...s.deadIdleMsRecent],
      deadIdleMsMin: s.deadIdleMsMin,
    };
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

function isReadOnlyError(err: unknown): boolean {
  const errno = (err as QueryError | null)?.errno;
  // ER_OPTION_PREVENTS_STATEMENT, ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, ER_READ_ONLY_MODE:
  // mysql2 drops such a connection (a failed-over primary), and so do we.
  return errno === 1290 || errno === 1792 || errno === 1836;
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

function noop(): void {}
