/**
 * The `mysql2/promise`-shaped entry: swap `require('mysql2/promise')` for
 * `require('mysql2-keepalive-pool/promise')`.
 *
 * @packageDocumentation
 */
import type { PoolClusterOptions } from 'mysql2';
import type {
  Pool as Mysql2PromisePool,
  PoolCluster as Mysql2PromisePoolCluster,
  PoolNamespace as Mysql2PromisePoolNamespace,
} from 'mysql2/promise';
import { KeepalivePoolCluster, PromiseKeepalivePoolCluster } from './cluster.js';
import type { KeepalivePoolOptions } from './config.js';
import { createPool as createCallbackPool } from './index.js';
import type { Pool as CallbackPool, PoolCluster as CallbackPoolCluster } from './index.js';

export type { KeepalivePoolOptions, ResolvedConfig } from './config.js';
export { PoolError, ConfigError } from './errors.js';
export type { PoolErrorCode } from './errors.js';
export type { DeadConnectionEvent, EvictedConnectionEvent, PoolState, PoolStats } from './stats.js';

/**
 * mysql2/promise's `Pool` (query and execute resolve `[rows, fields]`, `getConnection()` gives a
 * promise connection) over a keepalive pool, reachable as `.pool`.
 */
export interface Pool extends Mysql2PromisePool {
  /** The underlying callback pool, with `stats()`, `state()` and the health events. */
  readonly pool: CallbackPool;
}

/**
 * Creates a promise pool. Same options and environment variables as the callback `createPool`.
 *
 * @param options - mysql2 pool options plus {@link KeepalivePoolOptions}, or a `mysql://` URL.
 */
export function createPool(options?: KeepalivePoolOptions | string): Pool {
  const core = createCallbackPool(options);
  return core.promise(core.options.promiseImpl ?? Promise) as unknown as Pool;
}

/**
 * mysql2/promise's `PoolCluster` (`query`/`execute` resolve `[rows, fields]`, `getConnection`
 * gives a promise connection, `Symbol.asyncDispose`) over a keepalive cluster, reachable as
 * `.poolCluster`.
 */
export interface PoolCluster extends Omit<Mysql2PromisePoolCluster, 'add' | 'of'> {
  /** Adds a node named `CLUSTER::<n>`; options as for {@link createPool}. */
  add(config: KeepalivePoolOptions): void;
  /** Adds a node with this id (ignored if the id exists); options or a `mysql://` URL. */
  add(id: string, config: KeepalivePoolOptions | string): void;
  /** The nodes matching `pattern` (default `*`), picked by `selector`. */
  of(pattern?: string, selector?: string): Mysql2PromisePoolNamespace;
  /** Removes (and ends) the nodes whose id matches the pattern. */
  remove(pattern: string): void;
  /** A query on a node of `of('*')` (mysql2's promise cluster declares no such method, and its
   * runtime one fails: there it is missing on the callback cluster). */
  query: Mysql2PromisePoolNamespace['query'];
  /** A prepared statement on a node of `of('*')`. */
  execute: Mysql2PromisePoolNamespace['execute'];
  /** The underlying callback cluster, with `stats()`, `metrics()` and `pools()`. */
  readonly poolCluster: CallbackPoolCluster;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Creates a promise cluster: same options, nodes and semantics as the callback
 * `createPoolCluster`.
 *
 * @param options - mysql2's PoolCluster options, plus mysql2's `Promise` (a promise constructor).
 */
export function createPoolCluster(
  options?: PoolClusterOptions & { Promise?: PromiseConstructor },
): PoolCluster {
  const { Promise: promiseImpl, ...clusterOptions } = options ?? {};
  const core = new KeepalivePoolCluster(clusterOptions);
  return new PromiseKeepalivePoolCluster(core, promiseImpl ?? Promise) as unknown as PoolCluster;
}
