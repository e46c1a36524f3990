/**
 * The server killing idle pooled threads (KILL, or wait_timeout) is invisible to callers, and
 * handling it never stalls the event loop (every test is watched, test/support/loop-delay.ts).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { afterEach, beforeEach, test } from 'node:test';
import type { PoolConnection, RowDataPacket } from 'mysql2';
import { createPool } from '../../src/index.js';
import type { Pool } from '../../src/index.js';
import { adminQuery, dbOptions } from '../support/db.js';
import {
  assertNoStall,
  FAULT_STALL_LIMIT_MS,
  watchLoop,
  type LoopWatch,
} from '../support/loop-delay.js';

let loop: LoopWatch;
beforeEach(async () => {
  loop = await watchLoop();
});
afterEach(async (t) => {
  assertNoStall(await loop.stop(), FAULT_STALL_LIMIT_MS, t.name);
});

function getConn(p: Pool): Promise<PoolConnection> {
  return new Promise((resolve, reject) => p.getConnection((e, c) => (e ? reject(e) : resolve(c))));
}

async function warm(p: Pool, n: number): Promise<number[]> {
  const conns = await Promise.all(Array.from({ length: n }, () => getConn(p)));
  const ids = conns.map((c) => c.threadId);
  for (const c of conns) c.release();
  return ids;
}

test('KILLed idle connections leave the pool at once and callers never see them', async () => {
  const pool = createPool({ ...dbOptions(), connectionLimit: 3, idlePingInterval: 0 });
  try {
    const ids = await warm(pool, 3);
    const evicted = new Promise<void>((resolve) => {
      let n = 0;
      pool.on('evicted', () => ++n === 3 && resolve());
    });
    for (const id of ids) await adminQuery(`KILL ${id}`);
    await evicted;
    assert.equal(pool.state().total, 0);
    const s = pool.stats();
    assert.equal(s.dead['socket-end'] + s.dead['socket-error'], 3);
    const results = await pool.promise().query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    assert.ok(!ids.includes(Number(results[0][0]!.id)));
    const all = await Promise.all(
      [1, 2, 3].map(() =>
        pool.promise().query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id, SLEEP(0.05) AS s'),
      ),
    );
    const served = all.map(([rows]) => rows[0]!);
    for (const row of served) assert.equal(Number(row.s), 0, 'the SLEEP ran to its end');
    const servedIds = served.map((row) => Number(row.id));
    assert.equal(new Set(servedIds).size, 3, 'three callers at once, on three connections');
    for (const id of servedIds) assert.ok(!ids.includes(id), `thread ${id} was killed`);
  } finally {
    await new Promise<void>((r) => pool.end(() => r()));
  }
});

test('a killed connection caught by checkout validation is replaced silently', async () => {
  // validationSkipWindow 0: every checkout pings, so the ping (not the socket event) finds it.
  const pool = createPool({
    ...dbOptions(),
    connectionLimit: 1,
    idlePingInterval: 0,
    validationSkipWindow: 0,
  });
  try {
    const [id] = await warm(pool, 1);
    const conn = await getConn(pool);
    // Hold it so the socket event cannot evict it while idle; then kill it and give it back.
    const ended = once(conn, 'end').catch(() => undefined);
    await adminQuery(`KILL ${id}`);
    await Promise.race([ended, once(conn, 'error')]);
    conn.release();
    const [rows] = await pool.promise().query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    assert.notEqual(Number(rows[0]!.id), id);
  } finally {
    await new Promise<void>((r) => pool.end(() => r()));
  }
});

test('the server wait_timeout never closes an idle pooled connection: pings stay below it', async () => {
  // A session-level wait_timeout cannot be set from the pool's options, so use the global one
  // for the duration of this test, on a pool whose connections are created after the change.
  const [row] = await adminQuery<Array<{ w: number }>>('SELECT @@GLOBAL.wait_timeout AS w');
  await adminQuery('SET GLOBAL wait_timeout = 2');
  const pool = createPool({ ...dbOptions(), connectionLimit: 2, idlePingInterval: 60000 });
  try {
    const [id] = await warm(pool, 1);
    const evicted = new Promise<string>((resolve) =>
      pool.once('evicted', () => resolve('evicted')),
    );
    const idled = new Promise<string>((resolve) => setTimeout(() => resolve('idled'), 3500));
    assert.equal(await Promise.race([evicted, idled]), 'idled');
    const [rows] = await pool.promise().query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    assert.equal(
      Number(rows[0]!.id),
      id,
      'the same connection survived 3.5 s idle with wait_timeout=2',
    );
    assert.ok(pool.stats().idlePings >= 1);
    assert.equal(pool.stats().destroyed, 0);
  } finally {
    await adminQuery(`SET GLOBAL wait_timeout = ${Number(row!.w)}`);
    await new Promise<void>((r) => pool.end(() => r()));
  }
});
