/**
 * mysql2-keepalive-pool: `createPool` with mysql2's Pool surface whose connections never reach a
 * caller stale. Swap `require('mysql2').createPool` for `require('mysql2-keepalive-pool').createPool`.
 *
 * @packageDocumentation
 */
import type { Pool as Mysql2Pool, PoolConnection } from 'mysql2';
import type { KeepalivePoolOptions, ResolvedConfig } from './config.js';
import { KeepalivePool } from './pool.js';
import type { DeadConnectionEvent, EvictedConnectionEvent, PoolState, PoolStats } from './pool.js';

export { KeepalivePool } from './pool.js';
export type { DeadConnectionEvent, EvictedConnectionEvent, PoolState, PoolStats } from './pool.js';
export type { KeepalivePoolOptions, ResolvedConfig } from './config.js';
export { resolveConfig, describeConfig, envName } from './config.js';
export { PoolError, ConfigError } from './errors.js';
export type { PoolErrorCode } from './errors.js';
export type { DeadReason, RetireReason } from './health.js';

/** Payload of the `leak` event. */
export interface LeakEvent {
  threadId: number | null;
  /** How long the connection has been held, in ms. */
  heldMs: number;
  /** Stack of the code that acquired it. */
  stack: string | undefined;
}

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

  on(event: string, listener: (...args: any[]) => void): this;
  on(event: 'connection', listener: (connection: PoolConnection) => any): this;
  on(event: 'acquire', listener: (connection: PoolConnection) => any): this;
  on(event: 'release', listener: (connection: PoolConnection) => any): this;
  on(event: 'enqueue', listener: () => any): this;
  /** A connection was found dead (by a ping, a socket event, or as a suspect). */
  on(event: 'dead', listener: (event: DeadConnectionEvent) => any): this;
  /** A connection left the pool. */
  on(event: 'evicted', listener: (event: EvictedConnectionEvent) => any): this;
  /** A caller waited acquireTimeout ms without getting a connection. */
  on(
    event: 'acquireTimeout',
    listener: (event: { waitedMs: number; poolState: PoolState }) => any,
  ): this;
  /** A connection has been held longer than leakDetectionThreshold. */
  on(event: 'leak', listener: (event: LeakEvent) => any): this;
  /** A connection reported by `leak` was released after all. */
  on(
    event: 'leakReleased',
    listener: (event: { threadId: number | null; heldMs: number }) => any,
  ): this;
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
