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
import { ConfigError, createPool, createPoolCluster, PoolError } from '../../src/index.js';
import type { KeepalivePoolOptions, Pool, PoolCluster, PoolStats } from '../../src/index.js';
import {
  createPool as createPromisePool,
  createPoolCluster as createPromisePoolCluster,
} from '../../src/promise.js';
import type { Pool as PromisePool, PoolCluster as PromisePoolCluster } from '../../src/promise.js';

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
  expectType<Equal<typeof stats.hedgeDelayMs, number | null>>();
  expectType<Equal<typeof stats.pathTimeout.boundMs, number | null>>();
  pool.on('pathTimeout', (e) => {
    expectType<Equal<typeof e.boundMs, number | null>>();
    expectType<Equal<typeof e.reason, 'learned' | 'lowered' | 'decayed' | 'restored'>>();
    expectType<Equal<typeof e.advice, string>>();
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
  hedgeCheckout: false,
  learnPathTimeout: true,
  typeCast: true,
};
// @ts-expect-error idlePingInterval is a number of milliseconds
const bad: KeepalivePoolOptions = { idlePingInterval: '2m' };
void bad;
// @ts-expect-error hedgeCheckout is a boolean
const badHedge: KeepalivePoolOptions = { hedgeCheckout: 'yes' };
void badHedge;
void opts;
void createPool;
void createPromisePool;

// Errors carry a typed code.
export function errorTypes(e: PoolError, ce: ConfigError): void {
  expectType<Equal<typeof e.code, PoolError['code']>>();
  expectType<Equal<typeof ce.code, 'INVALID_CONFIG'>>();
}

// createPoolCluster: mysql2's PoolCluster overloads, node configs typed as createPool's options.
export function clusterApi(cluster: PoolCluster): void {
  cluster.add({ host: 'db', idlePingInterval: 60000 });
  cluster.add('REPLICA1', { host: 'replica-1', validationTimeout: 500 });
  cluster.add('REPLICA2', 'mysql://app@replica-2/shop');
  // @ts-expect-error idlePingInterval is a number of milliseconds
  cluster.add('BAD', { idlePingInterval: '2m' });
  cluster.getConnection('REPLICA*', 'RR', (err, conn) => {
    expectType<Equal<typeof err, NodeJS.ErrnoException | null>>();
    expectType<Equal<typeof conn, PoolConnection>>();
    conn.release();
  });
  cluster.of('REPLICA*', 'RANDOM').query<RowDataPacket[]>('SELECT 1', (_err, rows) => {
    expectType<Equal<typeof rows, RowDataPacket[]>>();
  });
  cluster.on('offline', (nodeId) => {
    expectType<Equal<typeof nodeId, string>>();
  });
  const stats: Record<string, PoolStats> = cluster.stats();
  const pool: Pool | undefined = cluster.pools().get('REPLICA1');
  const text: string = cluster.metrics();
  cluster.remove('REPLICA*');
  cluster.end((err) => {
    expectType<Equal<typeof err, NodeJS.ErrnoException | null>>();
  });
  void [stats, pool, text];
}

export async function promiseClusterApi(cluster: PromisePoolCluster): Promise<void> {
  cluster.add('MASTER', { host: 'primary', idlePingInterval: 60000 });
  const [rows] = await cluster.query<RowDataPacket[]>('SELECT 1');
  expectType<Equal<typeof rows, RowDataPacket[]>>();
  const [res] = await cluster.of('SLAVE*').execute<ResultSetHeader>('UPDATE t SET a = ?', [1]);
  expectType<Equal<typeof res, ResultSetHeader>>();
  const conn = await cluster.getConnection('SLAVE*', 'ORDER');
  expectType<Equal<typeof conn, PromisePoolConnection>>();
  conn.release();
  const core: PoolCluster = cluster.poolCluster;
  await cluster.end();
  await cluster[Symbol.asyncDispose]();
  void core;
}
void createPoolCluster;
void createPromisePoolCluster;

test('type tests compile (see npm run typecheck)', () => {});
