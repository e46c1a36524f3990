/**
 * mysql2-keepalive-pool: `createPool` with mysql2's Pool surface whose connections never reach a
 * caller stale. Swap `require('mysql2').createPool` for `require('mysql2-keepalive-pool').createPool`.
 *
 * @packageDocumentation
 */
import mysql from 'mysql2';
import type {
  Pool as Mysql2Pool,
  PoolCluster as Mysql2PoolCluster,
  PoolClusterOptions,
  PoolConnection,
} from 'mysql2';
import { KeepalivePoolCluster } from './cluster.js';
import type { KeepalivePoolOptions, ResolvedConfig } from './config.js';
import { KeepalivePool } from './pool.js';
import type {
  AcquireTimeoutEvent,
  DeadConnectionEvent,
  EvictedConnectionEvent,
  LeakEvent,
  LeakReleasedEvent,
  PoolState,
  PoolStats,
} from './stats.js';
import type { PathTimeoutEvent } from './path-timeout.js';

export { KeepalivePool } from './pool.js';
export { KeepalivePoolCluster } from './cluster.js';
export type { KeepalivePoolClusterOptions } from './cluster.js';
export type {
  AcquireTimeoutEvent,
  DeadConnectionEvent,
  EvictedConnectionEvent,
  LeakEvent,
  LeakReleasedEvent,
  PoolState,
  PoolStats,
} from './stats.js';
export type { PathTimeoutEvent, PathTimeoutStats } from './path-timeout.js';
export {
  metricsText,
  collectMetrics,
  registerPromClient,
  PROMETHEUS_CONTENT_TYPE,
} from './metrics.js';
export type {
  MetricFamily,
  MetricSample,
  MetricsSource,
  PromClientRegistryLike,
} from './metrics.js';
export type { KeepalivePoolOptions, ResolvedConfig, SslMode } from './config.js';
export { resolveConfig, describeConfig, envName } from './config.js';

// The package root also stands in for the mysql2 module where a library is handed one:
// TypeORM's `driver: require('mysql2-keepalive-pool')` calls `createPool` on it (and
// `createPoolCluster` for its `replication` option), and code written against `require('mysql2')`
// uses these helpers. They are mysql2's own.
/** mysql2's `escape`: a value as an SQL literal. */
export const escape: typeof mysql.escape = mysql.escape;
/** mysql2's `escapeId`: an identifier, backquoted. */
export const escapeId: typeof mysql.escapeId = mysql.escapeId;
/** mysql2's `format`: fills `?` and `??` placeholders. */
export const format: typeof mysql.format = mysql.format;
/** mysql2's `raw`: SQL that `escape` and `format` leave as it is. */
export const raw: typeof mysql.raw = mysql.raw;
/** mysql2's column type codes (`Types.DECIMAL` …), as used in `typeCast`. */
export const Types: typeof mysql.Types = mysql.Types;
export { PoolError, ConfigError } from './errors.js';
export type { PoolErrorCode } from './errors.js';
export type { DeadReason, RetireReason } from './health.js';

/**
 * The pool returned by {@link createPool}: mysql2's `Pool` (same methods, overloads and events)
 * plus observation methods and events of its own.
 */
export interface Pool extends Mysql2Pool {
  /** The pool's name, prefixed to its debug output. */
  readonly name: string;
  /** The fully resolved, frozen configuration. */
  readonly options: ResolvedConfig;
  /** Counts right now: total, active (borrowed), idle, waiting callers, pending connects. */
  state(): PoolState;
  /** Counters since creation, dead connections by reason and their idle ages. */
  stats(): PoolStats;
  /** {@link PoolStats} in the Prometheus text exposition format; serve it with
   * {@link PROMETHEUS_CONTENT_TYPE}. */
  metrics(): string;
  /**
   * For readiness probes: resolves once a connection answers COM_PING within
   * `validationTimeout`, rejects with a {@link PoolError} `HEALTH_CHECK_FAILED` (real cause as
   * `cause`) otherwise. Pings an idle connection, else opens one if no caller waits and
   * `connectionLimit` allows, else judges by a release or ping within `validationTimeout`: it
   * never takes a connection from a caller.
   */
  healthCheck(): Promise<void>;

  on(event: string, listener: (...args: any[]) => void): this;
  on(event: 'connection', listener: (connection: PoolConnection) => any): this;
  on(event: 'acquire', listener: (connection: PoolConnection) => any): this;
  on(event: 'release', listener: (connection: PoolConnection) => any): this;
  on(event: 'enqueue', listener: () => any): this;
  /** A connection was found dead (by a ping, a socket event, or as a suspect), with how and
   * how long it had been idle: `{ threadId, reason, idleMs }`. */
  on(event: 'dead', listener: (event: DeadConnectionEvent) => any): this;
  /** A connection left the pool: `{ threadId, reason }`, reason a {@link DeadReason}, a
   * {@link RetireReason} or `'destroyed'` (the caller called `destroy()`). */
  on(event: 'evicted', listener: (event: EvictedConnectionEvent) => any): this;
  /** A caller waited acquireTimeout ms without getting a connection: `{ waitedMs, poolState }`. */
  on(event: 'acquireTimeout', listener: (event: AcquireTimeoutEvent) => any): this;
  /** A connection has been held longer than leakDetectionThreshold: `{ threadId, heldMs,
   * stack }`, the stack of the code that acquired it. Also a debug line. */
  on(event: 'leak', listener: (event: LeakEvent) => any): this;
  /** A connection reported by `leak` was released after all: `{ threadId, heldMs }`. */
  on(event: 'leakReleased', listener: (event: LeakReleasedEvent) => any): this;
  /** The pool learned (or lowered, or let decay) an upper bound of the path's idle timeout from
   * connections found dead after idling, and changed its keepalive and idle-ping settings to keep
   * flows alive below it: `{ reason, boundMs, idleMs, keepAliveIdleMs, keepAliveIntervalMs,
   * idlePingIntervalMs, advice }` (`learnPathTimeout`). The first one also raises a process
   * warning with the advice. */
  on(event: 'pathTimeout', listener: (event: PathTimeoutEvent) => any): this;
}

/**
 * Creates a pool. Options are mysql2's pool options plus ours; anything not given comes from
 * `MYSQL_*` environment variables or `MYSQL_URL`, so `createPool()` alone works in a container.
 * Bad configuration throws a {@link ConfigError} here, not on the first query.
 *
 * @param options - mysql2 pool options plus {@link KeepalivePoolOptions}, or a `mysql://` URL.
 */
export function createPool(options?: KeepalivePoolOptions | string): Pool {
  return new KeepalivePool(options) as unknown as Pool;
}

/**
 * The cluster returned by {@link createPoolCluster}: mysql2's `PoolCluster` (same methods,
 * selectors and events) whose every node is a {@link Pool} of this package, plus per-node
 * observation.
 */
export interface PoolCluster extends Omit<Mysql2PoolCluster, 'add'> {
  /** Adds a node named `CLUSTER::<n>`; options as for {@link createPool}. */
  add(config: KeepalivePoolOptions): void;
  /** Adds a node with this id (ignored if the id exists); options or a `mysql://` URL. */
  add(id: string, config: KeepalivePoolOptions | string): void;
  /** The pool of each node still in the cluster, by node id. */
  pools(): ReadonlyMap<string, Pool>;
  /** {@link PoolStats} of each node still in the cluster, by node id. */
  stats(): Record<string, PoolStats>;
  /** Every node's metrics in the Prometheus text format, each sample labelled `node="<id>"`. */
  metrics(): string;
}

/**
 * Creates a cluster with mysql2's PoolCluster API and semantics: `add(id?, config)`,
 * `remove(pattern)`, `of(pattern, selector)`, `getConnection(pattern?, selector?, cb)`, `end`,
 * selectors `RR`, `RANDOM` and `ORDER`, `canRetry`, `removeNodeErrorCount`,
 * `restoreNodeTimeout`, `defaultSelector`, the `warn`/`remove`/`offline`/`online` events and
 * `Symbol.dispose`. Each node is a keepalive pool: a node config is {@link createPool}'s
 * options, `MYSQL_*` variables fill in what it does not set, and its pool is named after the
 * node id unless the config names it.
 *
 * @param options - mysql2's PoolCluster options.
 */
export function createPoolCluster(options?: PoolClusterOptions): PoolCluster {
  return new KeepalivePoolCluster(options) as unknown as PoolCluster;
}
