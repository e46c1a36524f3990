/**
 * The parts of mysql2 this pool builds on that mysql2 exports without documenting them: its
 * `PoolConnection` and `ConnectionConfig` classes, `createQuery`, and the few connection fields
 * that tell how a connection failed. All of them in this one file, so that a mysql2 upgrade is
 * checked in one place (their shapes are stable across mysql2 3.x). `isUnusable` (health.ts)
 * reads the same fields for the closed-connection check.
 */
import type { EventEmitter } from 'node:events';
import mysql from 'mysql2';
import type { PoolConnection, QueryError } from 'mysql2';

/** mysql2's ConnectionConfig: what a connection is created from. */
export interface MysqlConnectionConfig {
  [key: string]: unknown;
  namedPlaceholders?: boolean;
  stringifyObjects?: boolean;
  timezone?: string;
  trace?: boolean;
}

/** mysql2's Query command. */
export interface MysqlQuery extends EventEmitter {
  onResult?: (err: unknown, rows?: unknown, fields?: unknown) => void;
  namedPlaceholders?: boolean;
}

/** mysql2's PoolConnection class: it reports `end`, `error` and `destroy()` to its pool through
 * `_removeConnection`, and `release()` through `releaseConnection`. */
export const PoolConnectionClass = (
  mysql as unknown as { PoolConnection: new (pool: unknown, opts: unknown) => PoolConnection }
).PoolConnection;

export const ConnectionConfigClass = (
  mysql as unknown as { ConnectionConfig: new (opts: unknown) => MysqlConnectionConfig }
).ConnectionConfig;

export const createQuery = (mysql as unknown as { createQuery: (...args: unknown[]) => MysqlQuery })
  .createQuery;

/** Sets mysql2's `_released` flag, which makes a second `release()` a no-op. */
export function setReleased(conn: PoolConnection, released: boolean): void {
  (conn as unknown as { _released: boolean })._released = released;
}

/** When `conn` was released, for a pool's releaseConnection: mysql2's `PoolConnection.release()`
 * sets `_released` and stamps `lastActiveTime` with `Date.now()` just before it calls the pool,
 * so that clock read is reused (one fewer per query); any other caller (the promise pool,
 * `pool.releaseConnection(conn)` directly) gets a fresh one. */
export function releaseTime(conn: PoolConnection): number {
  const c = conn as unknown as { _released?: boolean; lastActiveTime?: unknown };
  return c._released === true && typeof c.lastActiveTime === 'number'
    ? c.lastActiveTime
    : Date.now();
}

/** The connection mysql2's PromisePool.releaseConnection passes a PromisePoolConnection for. */
export function unwrapConnection(
  connection: PoolConnection | { connection: PoolConnection },
): PoolConnection {
  const inner = (connection as { connection?: PoolConnection }).connection;
  return inner && typeof inner === 'object' && 'threadId' in inner
    ? inner
    : (connection as PoolConnection);
}

/** Password fields stay readable for mysql2 but out of `util.inspect`, JSON and logs. */
export function hideSecrets(config: MysqlConnectionConfig): void {
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

/**
 * Why mysql2 dropped a connection. mysql2 tells the pool during its `error` event, before it sets
 * `_fatalError`; what it has already done by then is switch to its closed-state `addCommand`.
 */
export function socketFailureReason(conn: PoolConnection): 'socket-error' | 'socket-end' {
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

/** The `code` of the fatal error mysql2 recorded on a connection (`ECONNRESET`, `ETIMEDOUT`,
 * `PROTOCOL_CONNECTION_LOST`, `ER_…`), or null. Set only once mysql2 has told the connection's
 * commands and listeners, i.e. after its `error` event. */
export function fatalErrorCode(conn: PoolConnection): string | null {
  const err = (conn as unknown as { _fatalError?: { code?: unknown } | null })._fatalError;
  return err && typeof err.code === 'string' ? err.code : null;
}

/** True when the pool is told about a connection because its holder called `destroy()`, not
 * because the socket ended or failed. */
export function isExplicitDestroy(conn: PoolConnection): boolean {
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
export function closedStateError(): Error {
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
export function forwardConnectionErrors(conn: PoolConnection, cmdQuery: MysqlQuery): void {
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

/** ER_OPTION_PREVENTS_STATEMENT, ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, ER_READ_ONLY_MODE:
 * mysql2 drops such a connection (a failed-over primary), and so do we. */
export function isReadOnlyError(err: unknown): boolean {
  if (err === null || err === undefined) return false;
  const errno = (err as QueryError).errno;
  return errno === 1290 || errno === 1792 || errno === 1836;
}
