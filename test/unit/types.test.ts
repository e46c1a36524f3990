/* eslint-disable @typescript-eslint/no-unused-vars -- type tests bind values only to inspect their types */
/**
 * Type tests: this file must type-check (npm run typecheck runs on test/). The runtime part only
 * makes sure the file is loaded by the runner.
 */
import { test } from 'node:test';
import type {
  FieldPacket,
  PoolConnection,
  QueryError,
  ResultSetHeader,
  RowDataPacket,
} from 'mysql2';
import type {
  Pool as Mysql2PromisePool,
  PoolConnection as PromisePoolConnection,
} from 'mysql2/promise';
import { ConfigError, createPool, PoolError } from '../../src/index.js';
import type { KeepalivePoolOptions, Pool, PoolStats } from '../../src/index.js';
import { createPool as createPromisePool } from '../../src/promise.js';
import type { Pool as PromisePool } from '../../src/promise.js';

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(_proof?: T): void {}

// Never called: the body only has to type-check.
export function callbackApi(pool: Pool): void {
  // Callback API: mysql2's own overloads come through.
  pool.query<RowDataPacket[]>('SELECT 1', (err, rows, fields) => {
    expectType<Equal<typeof err, QueryError | null>>();
    expectType<Equal<typeof rows, RowDataPacket[]>>();
    expectType<Equal<typeof fields, FieldPacket[]>>();
  });
  pool.execute<ResultSetHeader>('INSERT INTO t VALUES (?)', [1], (_err, result) => {
    expectType<Equal<typeof result, ResultSetHeader>>();
  });
  pool.getConnection((_err, conn) => {
    expectType<Equal<typeof conn, PoolConnection>>();
    conn.release();
  });
  const stream = pool.query('SELECT 1').stream();
  void stream;
  const stats: PoolStats = pool.stats();
  expectType<Equal<typeof stats.deadIdleMsMin, number | null>>();
  pool.on('dead', (e) => {
    expectType<Equal<typeof e.idleMs, number>>();
  });
  // mysql2's promise() keeps its type.
  const viaPromise: Mysql2PromisePool = pool.promise();
  void viaPromise;
}

// Promise API.
export async function promiseApi(ppool: PromisePool): Promise<void> {
  const [rows, fields] = await ppool.query<RowDataPacket[]>('SELECT 1');
  expectType<Equal<typeof rows, RowDataPacket[]>>();
  expectType<Equal<typeof fields, FieldPacket[]>>();
  const conn = await ppool.getConnection();
  expectType<Equal<typeof conn, PromisePoolConnection>>();
  conn.release();
  const core: Pool = ppool.pool;
  void core;
}

// Options: mysql2's plus ours; ours are typed.
const opts: KeepalivePoolOptions = {
  host: 'db',
  connectionLimit: 5,
  idlePingInterval: 60000,
  validationTimeout: 500,
  keepAliveInitialDelay: 30000,
  typeCast: true,
};
// @ts-expect-error idlePingInterval is a number of milliseconds
const bad: KeepalivePoolOptions = { idlePingInterval: '2m' };
void bad;
void opts;
void createPool;
void createPromisePool;

// Errors carry a typed code.
export function errorTypes(e: PoolError, ce: ConfigError): void {
  expectType<Equal<typeof e.code, PoolError['code']>>();
  expectType<Equal<typeof ce.code, 'INVALID_CONFIG'>>();
}

test('type tests compile (see npm run typecheck)', () => {});
