/**
 * The mysql2-shaped pool: `getConnection`, `query`, `execute`, `end`, `escape`, `promise` and the
 * rest of mysql2's Pool surface, plus `state`, `stats`, `metrics` and `healthCheck`. It holds the
 * parts together and adds the one-shot retry; the work is done by
 *
 * - checkout.ts: what happens on checkout and return (idle stack, waiters, acquire timer);
 * - connections.ts: opening and closing connections within `connectionLimit` (generic-pool
 *   creates and destroys them within its ceiling);
 * - health-monitor.ts: the checkout verdict, pings, the suspect sweep, idle pings, leaks,
 *   lifetime and idle retirement;
 * - health-check.ts: `healthCheck()`;
 * - hedge.ts and path-rtt.ts: the hedged checkout and the round trips it is timed by;
 * - path-timeout.ts: learning the path's idle timeout from dead connections;
 * - stats.ts: the counters behind `stats()` and metrics.ts.
 */
import { AsyncResource } from 'node:async_hooks';
import diagnostics from 'node:diagnostics_channel';
import type { TracingChannel } from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import createDebug from 'debug';
import mysql from 'mysql2';
import type { PoolConnection } from 'mysql2';
import * as mysqlPromise from 'mysql2/promise';
import type { Pool as PromisePool } from 'mysql2/promise';
import { Checkout } from './checkout.js';
import type { CheckoutCallback } from './checkout.js';
import { describeConfig, resolveConfig } from './config.js';
import type { KeepalivePoolOptions, ResolvedConfig } from './config.js';
import { Connections, closedError } from './connections.js';
import { isUnusable } from './health.js';
import type { ConnectionRecord } from './health.js';
import { runHealthCheck } from './health-check.js';
import { HealthMonitor } from './health-monitor.js';
import { Hedges } from './hedge.js';
import { metricsText } from './metrics.js';
import { letGo } from './process-hold.js';
import {
  ConnectionConfigClass,
  closedStateError,
  createQuery,
  forwardConnectionErrors,
  hideSecrets,
  isExplicitDestroy,
  isReadOnlyError,
  releaseTime,
  setReleased,
  fatalErrorCode,
  socketFailureReason,
  unwrapConnection,
} from './mysql2-parts.js';
import type { MysqlConnectionConfig, MysqlQuery } from './mysql2-parts.js';
import { PathRtt } from './path-rtt.js';
import { PathTimeoutLearner } from './path-timeout.js';
import type { PathTimeoutEvent } from './path-timeout.js';
import { Counters } from './stats.js';
import type { PoolState, PoolStats } from './stats.js';

const debug = createDebug('mysql2-keepalive-pool:pool');

/**
 * mysql2's `mysql2:pool:connect` tracing channel. mysql2 publishes on it from its own pool's
 * getConnection, which this pool replaces, so we publish on it ourselves, with the same context
 * shape; channels are global by name, so subscribers (OpenTelemetry, APMs) see no difference.
 */
const poolConnectChannel =
  typeof diagnostics.tracingChannel === 'function'
    ? diagnostics.tracingChannel<object, PoolConnectTraceContext>('mysql2:pool:connect')
    : undefined;

/** mysql2's channels of `connection.query` and `connection.execute`, published by mysql2. */
const queryChannel =
  typeof diagnostics.tracingChannel === 'function'
    ? diagnostics.tracingChannel<object, object>('mysql2:query')
    : undefined;
const executeChannel =
  typeof diagnostics.tracingChannel === 'function'
    ? diagnostics.tracingChannel<object, object>('mysql2:execute')
    : undefined;

/** The context object of a `mysql2:pool:connect` trace, as mysql2 builds it. */
interface PoolConnectTraceContext {
  database: string;
  serverAddress: string;
  serverPort: number | undefined;
}

/** Whether anyone listens, as mysql2 checks it: `TracingChannel.hasSubscribers` is missing on
 * Node 20 before 20.13, where the start channel tells. */
function tracing<C extends TracingChannel<object, object>>(channel: C | undefined): channel is C {
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

/**
 * A pool with mysql2's Pool surface whose connections never reach a caller stale.
 * Create it with `createPool`.
 */
export class KeepalivePool extends EventEmitter {
  /** mysql2's PoolConfig shape: `connectionConfig` plus the pool knobs. As in mysql2,
   * `connectionLimit` may be lowered at runtime (it is honoured from the next checkout on). */
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

  readonly #counters = new Counters();
  readonly #connections: Connections;
  readonly #checkout: Checkout;
  readonly #monitor: HealthMonitor;
  readonly #rtt = new PathRtt();
  readonly #hedges: Hedges;
  readonly #learner: PathTimeoutLearner;
  #warnedPathTimeout = false;
  readonly #leakDetection: boolean;
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
    this.#leakDetection = cfg.leakDetectionThreshold > 0;
    const counters = this.#counters;
    const closed = (): boolean => this._closed;
    const state = (): PoolState => this.state();
    const rtt = this.#rtt;
    this.#learner = new PathTimeoutLearner(cfg, (event) => this.#pathTimeoutChanged(event));
    const learner = this.#learner;
    this.#connections = new Connections(this, cfg, connectionConfig, counters, {
      opened: (rec) => {
        this.#monitor.watch(rec);
        this.#checkout.offer(rec);
      },
      openFailed: (error, startedAt) => this.#checkout.openFailed(error, startedAt),
      closed: () => this.#checkout.dispatch(),
      callersWaiting: () => this.#checkout.waiting > 0,
      connectionLimit: () => this.#connectionLimit(),
      connected: (ms) => rtt.observeConnect(ms),
      keepAlive: () => learner.keepAlive(),
    });
    const connections = this.#connections;
    this.#hedges = new Hedges(cfg, rtt, counters, {
      canOpen: (extra) => connections.canOpen(extra),
      open: () => connections.open(),
      count: () => connections.size,
    });
    this.#monitor = new HealthMonitor(this, cfg, counters, {
      records: connections.records,
      idle: () => this.#checkout.idle(),
      evictOutOfService: () => this.#checkout.evictOutOfService(),
      dispatch: () => this.#checkout.dispatch(),
      ensureMinimum: () => connections.ensureMinimum(),
      count: () => connections.size + connections.opening,
      opening: () => connections.opening,
      closed,
      pingAnswered: (rec, ms) => {
        if (!rec.pingHedged) rtt.observePing(ms);
      },
      died: (rec, reason, idleMs) => {
        const observe = (): void => {
          learner.observe({
            reason,
            idleMs,
            errorCode: fatalErrorCode(rec.conn),
            serverWaitTimeoutMs: this.#monitor.serverWaitTimeoutMs,
          });
        };
        // mysql2 tells the pool of a socket error before it records the error: read it a tick
        // later. (A ping's verdict comes later than that already.)
        if (reason === 'socket-error') process.nextTick(observe);
        else observe();
      },
      idlePingInterval: () => learner.idlePingInterval(),
    });
    const monitor = this.#monitor;
    this.#checkout = new Checkout(this, cfg, counters, {
      verdict: (rec, now) => monitor.checkoutVerdict(rec, now),
      validate: (rec) => monitor.validate(rec),
      lent: (rec, stack) => monitor.lent(rec, stack),
      hedges: this.#hedges,
      canOpen: () => connections.canOpen(),
      opening: () => connections.opening,
      open: () => connections.open(),
      destroy: (rec) => connections.destroy(rec),
      closed,
      state,
      recentCreateError: () => connections.recentError(),
    });
    if (cfg.minIdle > 0) connections.ensureMinimum();
    // The resolved configuration itself is logged once by config.ts (namespace :config).
    debug('%s: created', cfg.name);
  }

  /**
   * `config.connectionLimit` as it is now. mysql2 reads it on every checkout, so code (and
   * mysql2's own tests) lower it at runtime; this pool honours that too, up to the limit it was
   * created with (its ceiling is fixed then). Connections already open above a lowered limit stay,
   * as in mysql2; a value that is not an integer >= 1 counts as the limit of `createPool`.
   */
  #connectionLimit(): number {
    const now = this.config.connectionLimit;
    const max = this.options.connectionLimit;
    return Number.isInteger(now) && now >= 1 && now < max ? now : max;
  }

  /** The pool's name, as used in debug output. */
  get name(): string {
    return this.options.name;
  }

  /** path-timeout.ts changed the keepalive or idle-ping settings: every socket and ping timer
   * follows, the `pathTimeout` event tells, and the first time a process warning too. */
  #pathTimeoutChanged(event: PathTimeoutEvent): void {
    if (this._closed) return;
    this.#connections.reapplySocketSettings();
    this.#monitor.rearmIdlePings();
    debug('%s: path timeout (%s): %s', this.name, event.reason, event.advice);
    if (!this.#warnedPathTimeout && event.boundMs !== null) {
      this.#warnedPathTimeout = true;
      process.emitWarning(`mysql2-keepalive-pool: ${this.name}: ${event.advice}`, {
        code: 'MYSQL2_KEEPALIVE_POOL_PATH_TIMEOUT',
      });
    }
    this.emit('pathTimeout', event);
  }

  // -------------------------------------------------------------------------------------------
  // Checkout and return (checkout.ts)
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
    const cb = callback as CheckoutCallback;
    if (this._closed) {
      process.nextTick(cb, closedError());
      return;
    }
    // Captured here, synchronously: after a wait only the pool's own frames would be left.
    this.#checkout.acquire(
      cb,
      this.#leakDetection ? acquiredHere(KeepalivePool.prototype.getConnection) : undefined,
    );
  }

  /** Called by mysql2's PoolConnection.release(). Releasing twice is harmless. */
  releaseConnection(connection: PoolConnection | { connection: PoolConnection }): void {
    const records = this.#connections.records;
    // mysql2's PoolConnection passes itself; its PromisePool a wrapper around one.
    const rec =
      records.get(connection as PoolConnection) ?? records.get(unwrapConnection(connection));
    if (rec === undefined || !rec.borrowed) return;
    const conn = rec.conn;
    const now = releaseTime(conn);
    rec.borrowed = false;
    this.#monitor.returned(rec, now);
    rec.lastReleasedAt = now;
    rec.lastAliveAt = now;
    setReleased(conn, true);
    // A connection that goes straight to a waiting caller stays held (checkout.ts lets go of the
    // ones that go idle): a busy pool then schedules no let-go at all.
    if (this._closed || rec.dead !== null) {
      letGo(rec);
      if (!this._closed) this.#connections.destroy(rec);
      return;
    }
    if (this.config.resetOnRelease) {
      letGo(rec);
      if (isUnusable(conn)) {
        this.#connections.destroy(rec);
        return;
      }
      conn.reset((err: unknown) => {
        if (err) {
          rec.retired = 'reset-failed';
          this.#connections.destroy(rec);
          return;
        }
        this.#checkout.giveBack(rec);
      });
      return;
    }
    // Closed meanwhile (mysql2 saw a fatal error, the socket ended): checkout.ts closes it, on its
    // way to the next caller or to the idle stack.
    this.#checkout.giveBack(rec, now);
  }

  /** Called by mysql2's PoolConnection on `end`, `error` and `destroy()`: the pool is the callee
   * of the listeners mysql2 already has on every connection, so it adds none of its own. */
  _removeConnection(conn: PoolConnection): void {
    const rec = this.#connections.records.get(conn);
    if (rec === undefined) return;
    if (rec.borrowed) {
      // It failed in a caller's hands (mysql2 has already given the caller's command the error):
      // it leaves the pool now. The reason shows in `evicted`; it is not counted in the `dead`
      // stats, which are evidence about idle connections.
      rec.borrowed = false;
      if (isExplicitDestroy(conn)) {
        this.#connections.destroy(rec);
        return;
      }
      rec.markDead(socketFailureReason(conn));
      // mysql2 calls here from inside its error handling, before it has told every pending
      // command (and before it sets `_fatalError`); closing the connection now would cut that
      // short and hand those commands a `POOL_CLOSED` instead of the real error.
      process.nextTick(destroyLater, this.#connections, rec);
      return;
    }
    // mysql2's PoolConnection handles the first `error` with a once-listener, now spent; a second
    // one on a connection nobody holds would be an uncaught 'error' event.
    conn.on('error', noop);
    // A ping is in flight: its verdict (which this socket failure will produce at once) records
    // the death, with the right reason and the suspect sweep.
    if (rec.pinging) return;
    // An idle connection whose socket ended or failed leaves the pool now, not at the next borrow.
    this.#monitor.foundDead(rec, socketFailureReason(conn), Date.now());
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
    this.#oneShot(new QueryShot(this.#counters, this.name, this.#borrow, cmdQuery));
    return cmdQuery;
  }

  /** Prepares (cached per connection) and executes one statement, then releases. */
  execute(sql: unknown, values?: unknown, cb?: unknown): void {
    let callback = cb as ResultCallback | undefined;
    let params = values;
    if (typeof values === 'function') {
      callback = values as ResultCallback;
      params = [];
    }
    this.#oneShot(
      new ExecuteShot(this.#counters, this.name, this.#borrow, sql, params, callback ?? noop),
    );
  }

  /** Borrows a connection for a one-shot command: through the traced `getConnection` when
   * `mysql2:pool:connect` has subscribers, else straight to the checkout with the command's own
   * saved async context (a waiting one-shot command saves it once, not twice). */
  readonly #borrow = (job: OneShot): void => this.#oneShot(job);

  #oneShot(job: OneShot): void {
    if (this._closed || tracing(poolConnectChannel)) {
      this.getConnection(job.onConnection);
      return;
    }
    this.#checkout.acquire(
      job.onConnection as CheckoutCallback,
      this.#leakDetection ? (job.stack ??= acquiredHere(job.entry)) : undefined,
      true,
    );
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
    this.#monitor.stop();
    this.#learner.stop();
    this.#checkout.close(closedError);
    void this.#connections.closeAll().then(() => {
      const callbacks = this.#endCallbacks ?? [];
      this.#endCallbacks = [];
      debug('%s: ended', this.name);
      for (const fn of callbacks) fn(null);
    });
  }

  /** Counts right now. */
  state(): PoolState {
    const records = this.#connections.records;
    let active = 0;
    for (const rec of records.values()) if (rec.borrowed) active++;
    return {
      total: records.size,
      active,
      idle: this.#checkout.idle().length,
      waiting: this.#checkout.waiting,
      pending: this.#connections.opening,
    };
  }

  /** Counters since creation plus the current state; a fresh plain object every call. */
  stats(): PoolStats {
    return this.#counters.snapshot(this.state(), this.#connectionLimit(), {
      hedgeDelayMs: this.#hedges.delay(),
      pathRttMs: this.#rtt.rttMs(),
      pathTimeout: this.#learner.snapshot(),
    });
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
   * `validationTimeout`; rejects with a `PoolError` `HEALTH_CHECK_FAILED` (the real cause,
   * e.g. `ECONNREFUSED`, as `cause`) otherwise. It never takes a connection from a caller and
   * never opens one beyond `connectionLimit`: it pings an idle connection, else opens one if no
   * caller waits and `connectionLimit` allows, else judges by a release or a ping within
   * `validationTimeout` (health-check.ts). It settles within
   * `connectTimeout + 2 × validationTimeout`.
   */
  healthCheck(): Promise<void> {
    const connections = this.#connections;
    const checkout = this.#checkout;
    const monitor = this.#monitor;
    return runHealthCheck({
      pool: this,
      options: this.options,
      counters: this.#counters,
      connectTimeout: this.config.connectionConfig.connectTimeout,
      records: connections.records,
      idle: () => checkout.idle(),
      ping: (rec: ConnectionRecord, why: 'health') => monitor.ping(rec, why),
      evictOutOfService: () => checkout.evictOutOfService(),
      waiting: () => checkout.waiting,
      canOpen: () => connections.canOpen(),
      open: (done) => connections.open(done),
      closed: () => this._closed,
      closedError,
      state: () => this.state(),
      lastPingFailure: () => monitor.lastPingFailure,
      recentCreateError: () => connections.recentError(),
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
    for (const rec of this.#connections.records.values()) {
      (rec.conn as unknown as { unprepare(sql: string): void }).unprepare(sql);
    }
  }

  [Symbol.dispose](): void {
    if (!this._closed) this.end();
  }

  /** util.inspect shows the state and the masked config, never a password. */
  [inspect.custom](): string {
    return `KeepalivePool ${inspect({ name: this.name, state: this.state(), config: describeConfig(this.options) })}`;
  }
}

type ResultCallback = (err: unknown, rows?: unknown, fields?: unknown) => void;

/**
 * One `pool.query` or `pool.execute`: borrow, send, release, with the one-shot retry. The retry
 * rule: when the connection handed over is already known to be closed ({@link isUnusable}: mysql2
 * saw a fatal error, is closing it or is in its closed state, or the socket is destroyed or
 * ended), the command has not been given to it, so it cannot have reached the server; the
 * connection is destroyed and the command goes, once, to another connection. If that one is
 * closed too, the caller gets mysql2's own closed-state error. Once the command has been handed to
 * a connection, nothing is retried: any later error (a reset, a timeout, a lost connection) may
 * come after the server ran the command, and is the caller's. Connections the caller holds
 * (`getConnection`, transactions) never pass here.
 *
 * Async context: mysql2 calls a command's callback where it parses the answer, i.e. in the async
 * context of the socket (of whoever caused the connection to be opened), so without care an
 * AsyncLocalStorage store would leak from one caller to the next. The caller's context is saved
 * in `scope` and entered around the result callback. Failures before the send already run in the
 * caller's context: the checkout calls back in it. Not `AsyncResource.bind`: on Node 20 it also
 * defines a deprecated `asyncResource` accessor pair (two `util.deprecate` wrappers) on every
 * bound function, which cost more than the rest of a pooled `SELECT 1` on the client.
 */
abstract class OneShot {
  /** The caller's async context. */
  readonly scope = new AsyncResource('mysql2-keepalive-pool:query');
  /** The caller's stack, captured at the first borrow (only when leak detection is on). */
  stack: string | undefined = undefined;
  #retriesLeft = 1;

  constructor(
    readonly counters: Counters,
    readonly poolName: string,
    /** Borrows a connection for this command (again, for the retry). */
    readonly borrow: (job: OneShot) => void,
  ) {}

  /** The cut-off frame of the leak detection stack: the public method called. */
  abstract readonly entry: (...args: never[]) => unknown;
  /** Reports an error that came before the send. */
  protected abstract fail(err: unknown): void;
  protected abstract send(conn: PoolConnection): void;

  /** The checkout's answer, in whatever async context it comes (the caller's, a releaser's, a
   * socket's): the caller's is entered for what reaches the caller or a tracer from here. */
  readonly onConnection = (err: NodeJS.ErrnoException | null, conn: PoolConnection): void => {
    if (err) {
      this.scope.runInAsyncScope(this.fail, this, err);
      return;
    }
    // mysql2 publishes the command on its tracing channel from inside `send`: its subscribers
    // (APMs) read the caller's context there. Without subscribers nothing in `send` reads it (the
    // result callback enters it itself), which spares a second entry per command.
    if (this.traced()) this.scope.runInAsyncScope(this.use, this, conn);
    else this.use(conn);
  };

  /** Whether mysql2's tracing channel of this command has subscribers. */
  protected abstract traced(): boolean;

  private use(conn: PoolConnection): void {
    if (isUnusable(conn)) {
      conn.destroy();
      if (this.#retriesLeft-- > 0) {
        this.counters.retries++;
        debug('%s: connection closed before sending; retrying on another', this.poolName);
        // In the caller's context: the retry may wait in the queue, or be traced.
        this.scope.runInAsyncScope(this.borrow, undefined, this);
        return;
      }
      // Sending would only produce this error (and, for a query without a callback, raise it
      // on the connection instead of the query, leaving the caller waiting forever).
      this.scope.runInAsyncScope(this.fail, this, closedStateError());
      return;
    }
    try {
      this.send(conn);
    } catch (e) {
      conn.release();
      this.scope.runInAsyncScope(this.fail, this, e);
    }
  }
}

/** `pool.query`: mysql2's Query command, built by the caller, sent as it is. */
class QueryShot extends OneShot {
  readonly entry = KeepalivePool.prototype.query;
  #error: unknown = null;

  constructor(
    counters: Counters,
    poolName: string,
    borrow: (job: OneShot) => void,
    readonly cmdQuery: MysqlQuery,
  ) {
    super(counters, poolName, borrow);
  }

  protected traced(): boolean {
    return tracing(queryChannel);
  }

  protected fail(err: unknown): void {
    const q = this.cmdQuery;
    if (typeof q.onResult === 'function') q.onResult(err);
    else q.emit('error', err);
  }

  protected send(conn: PoolConnection): void {
    const cmdQuery = this.cmdQuery;
    const origOnResult = cmdQuery.onResult;
    if (origOnResult) {
      cmdQuery.onResult = (err, rows, fields) => {
        this.#error = err || null;
        this.scope.runInAsyncScope(origOnResult, undefined, err, rows, fields);
      };
    } else {
      cmdQuery.once('error', (err: unknown) => {
        this.#error = err;
      });
      forwardConnectionErrors(conn, cmdQuery);
    }
    // 'end' comes once per command; `on` spares the wrapper `once` would allocate.
    (conn.query as unknown as (q: MysqlQuery) => MysqlQuery)(cmdQuery).on('end', () => {
      if (isReadOnlyError(this.#error)) conn.destroy();
      else conn.release();
    });
  }
}

/** `pool.execute`: prepared (cached per connection) and executed. */
class ExecuteShot extends OneShot {
  readonly entry = KeepalivePool.prototype.execute;

  constructor(
    counters: Counters,
    poolName: string,
    borrow: (job: OneShot) => void,
    readonly sql: unknown,
    readonly params: unknown,
    readonly done: ResultCallback,
  ) {
    super(counters, poolName, borrow);
  }

  protected traced(): boolean {
    return tracing(executeChannel);
  }

  protected fail(err: unknown): void {
    this.done(err);
  }

  protected send(conn: PoolConnection): void {
    (conn.execute as unknown as (...a: unknown[]) => EventEmitter)(
      this.sql,
      this.params,
      (err: unknown, rows: unknown, fields: unknown) => {
        if (isReadOnlyError(err)) conn.destroy();
        this.scope.runInAsyncScope(this.done, undefined, err, rows, fields);
      },
    ).on('end', () => conn.release());
  }
}

/** Closes a connection that failed in a caller's hands, once mysql2 has told its commands. */
function destroyLater(connections: Connections, rec: ConnectionRecord): void {
  connections.destroy(rec);
}

/** The stack of the code that called `entry` (getConnection, query or execute), without the
 * pool's own frames above it. */
function acquiredHere(entry: (...args: never[]) => unknown): string | undefined {
  const marker = new Error('Connection acquired here');
  Error.captureStackTrace(marker, entry);
  return marker.stack;
}

function noop(): void {}
