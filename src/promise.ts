/**
 * The `mysql2/promise`-shaped entry: swap `require('mysql2/promise')` for
 * `require('mysql2-keepalive-pool/promise')`.
 *
 * @packageDocumentation
 */
import type { Pool as Mysql2PromisePool } from 'mysql2/promise';
import type { KeepalivePoolOptions } from './config.js';
import { createPool as createCallbackPool } from './index.js';
import type { Pool as CallbackPool } from './index.js';

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
