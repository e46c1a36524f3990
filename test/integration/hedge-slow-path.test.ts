/**
 * Hedged checkout against the real server through a TCP proxy (test/support/delay-proxy.ts):
 *
 * - a slow but healthy path (300 ms added each way): the hedge delay, derived from the round trips
 *   seen, stays above a ping, so the callers are answered on the connections they had and the pool
 *   ends with no more than connectionLimit connections;
 * - how hedges count against connectionLimit: with the pinged connections black-holed (the proxy
 *   stalls them), each caller gets a fresh connection while its ping is outstanding; the pool
 *   never holds more than connectionLimit + the hedged pings outstanding; when the pings are
 *   answered late the pool goes back to connectionLimit by closing the surplus (`hedge-surplus`),
 *   and when it had room the late ones simply go back to the idle pool.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, test } from 'node:test';
import type { RowDataPacket } from 'mysql2';
import { createPool } from '../../src/index.js';
import type { EvictedConnectionEvent, Pool, PoolStats } from '../../src/index.js';
import { dbOptions } from '../support/db.js';
import { startDelayProxy } from '../support/delay-proxy.js';
import type { DelayProxy } from '../support/delay-proxy.js';

const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));
after(() => assert.deepEqual(unhandled, [], 'no unhandled promise rejection'));

const ONE_WAY_MS = 300;

function poolVia(proxy: DelayProxy, options: Record<string, unknown>): Pool {
  const db = dbOptions();
  return createPool({
    ...db,
    host: '127.0.0.1',
    port: proxy.port,
    idlePingInterval: 0,
    connectTimeout: 10_000,
    ...options,
  });
}

async function threadIdOf(pool: Pool): Promise<number> {
  const [rows] = await pool.promise().query<RowDataPacket[]>('SELECT CONNECTION_ID() AS cid');
  return Number(rows[0]!.cid);
}

/** Tracks open connections over time through the pool's own events. */
function track(pool: Pool): { max(): number; evicted: EvictedConnectionEvent[] } {
  let open = 0;
  let max = 0;
  const evicted: EvictedConnectionEvent[] = [];
  pool.on('connection', () => {
    open++;
    max = Math.max(max, open);
  });
  pool.on('evicted', (e: EvictedConnectionEvent) => {
    open--;
    evicted.push(e);
  });
  return { max: () => max, evicted };
}

/** Resolves once the pool has nothing in flight: no ping, no connect. */
async function settled(pool: Pool): Promise<PoolStats> {
  for (;;) {
    const s = pool.stats();
    if (s.total === s.idle + s.borrowed && s.pending === 0) return s;
    // The pool has no event for "a ping found the connection alive and idle again".
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('hedged checkout on a slow path and with black-holed pings (TCP proxy)', () => {
  test(`a healthy path ${ONE_WAY_MS} ms each way: callers are answered on the connections they had, at most connectionLimit connections`, async (t) => {
    const proxy = await startDelayProxy(ONE_WAY_MS);
    const limit = 4;
    const pool = poolVia(proxy, { connectionLimit: limit });
    const seen = track(pool);
    try {
      const p = pool.promise();
      const warm = await Promise.all(Array.from({ length: limit }, () => p.getConnection()));
      const warmIds = new Set(warm.map((c) => c.threadId));
      for (const c of warm) c.release();
      // Past validationSkipWindow (500 ms): every checkout pings (one round trip: 600 ms).
      await sleep(1500);
      const started = Date.now();
      const ids = await Promise.all(Array.from({ length: limit }, () => threadIdOf(pool)));
      const ms = Date.now() - started;
      const s = await settled(pool);
      t.diagnostic(
        JSON.stringify({
          ms,
          ids,
          warm: [...warmIds],
          hedges: s.hedges,
          hedgeWins: s.hedgeWins,
          hedgeSurplus: s.hedgeSurplus,
          hedgeDelayMs: s.hedgeDelayMs,
          pathRttMs: s.pathRttMs,
          total: s.total,
          maxOpen: seen.max(),
          validations: s.validations,
        }),
      );
      assert.equal(s.validations, limit, 'every checkout was pinged');
      for (const id of ids) assert.ok(warmIds.has(id), `answered on a warm connection: ${id}`);
      assert.equal(s.hedgeWins, 0, 'no caller was served by a hedge');
      assert.ok(s.total <= limit, `ends with ${s.total} <= ${limit} connections`);
      assert.ok(s.hedgeDelayMs! > 2 * ONE_WAY_MS, `hedge delay ${s.hedgeDelayMs} ms above a ping`);
      assert.ok(s.pathRttMs! >= 2 * ONE_WAY_MS, `round trip seen: ${s.pathRttMs} ms`);
    } finally {
      await pool.promise().end();
      await proxy.close();
    }
  });

  test('pings black-holed at connectionLimit: a fresh connection each, never more than limit + hedged pings, back to limit after the late answers', async (t) => {
    const proxy = await startDelayProxy(0);
    const limit = 2;
    const pool = poolVia(proxy, { connectionLimit: limit, validationTimeout: 10_000 });
    const seen = track(pool);
    try {
      const p = pool.promise();
      const warm = await Promise.all(Array.from({ length: limit }, () => p.getConnection()));
      const warmIds = new Set(warm.map((c) => c.threadId));
      for (const c of warm) c.release();
      await sleep(700);
      proxy.stall();
      const started = Date.now();
      const conns = await Promise.all(Array.from({ length: limit }, () => p.getConnection()));
      const ms = Date.now() - started;
      for (const c of conns) {
        assert.ok(!warmIds.has(c.threadId), 'a fresh connection, not the black-holed one');
      }
      assert.ok(ms < 5000, `served long before the 10 s validationTimeout: ${ms} ms`);
      const during = pool.stats();
      assert.equal(during.hedges, limit, 'one hedge per outstanding ping');
      assert.equal(during.hedgeWins, limit);
      assert.ok(during.total <= 2 * limit, `${during.total} <= limit + hedged pings`);
      for (const c of conns) c.release();
      // The late answers: the pool is above connectionLimit, so each goes.
      const surplus = Promise.all([once(pool, 'evicted'), once(pool, 'evicted')]);
      proxy.unstall();
      await surplus;
      const s = await settled(pool);
      t.diagnostic(JSON.stringify({ ms, maxOpen: seen.max(), evicted: seen.evicted, stats: s }));
      assert.deepEqual(
        seen.evicted.map((e) => e.reason),
        ['hedge-surplus', 'hedge-surplus'],
      );
      assert.equal(s.hedgeSurplus, limit);
      assert.equal(s.total, limit, 'back to connectionLimit');
      assert.ok(
        s.hedgeDelayMs! < 1000,
        `a hedged ping's late answer is no round-trip sample: hedge delay ${s.hedgeDelayMs} ms`,
      );
      assert.ok(seen.max() <= 2 * limit, `never above limit + hedged pings: ${seen.max()}`);
      // The pool still serves.
      assert.equal((await Promise.all([threadIdOf(pool), threadIdOf(pool)])).length, 2);
    } finally {
      await pool.promise().end();
      await proxy.close();
    }
  });

  test('pings black-holed with room below connectionLimit: the late answers go back to the idle pool', async () => {
    const proxy = await startDelayProxy(0);
    const pool = poolVia(proxy, { connectionLimit: 4, validationTimeout: 10_000 });
    try {
      const p = pool.promise();
      const warm = await Promise.all([p.getConnection(), p.getConnection()]);
      for (const c of warm) c.release();
      await sleep(700);
      proxy.stall();
      const conns = await Promise.all([p.getConnection(), p.getConnection()]);
      for (const c of conns) c.release();
      proxy.unstall();
      const s = await settled(pool);
      assert.equal(s.hedges, 2);
      assert.equal(s.hedgeSurplus, 0, 'nothing closed: the pool had room');
      assert.equal(s.total, 4);
      assert.equal(s.idle, 4, 'the late-answering connections are idle again');
    } finally {
      await pool.promise().end();
      await proxy.close();
    }
  });

  test('end() while a hedged ping is still black-holed: the pool closes at once, not after tcpUserTimeout', async () => {
    const proxy = await startDelayProxy(0);
    const pool = poolVia(proxy, { connectionLimit: 1, validationTimeout: 30_000 });
    try {
      const p = pool.promise();
      (await p.getConnection()).release();
      await sleep(700);
      proxy.stall();
      const c = await p.getConnection();
      assert.equal(pool.stats().hedgeWins, 1);
      c.release();
      const started = Date.now();
      await p.end();
      const ms = Date.now() - started;
      // A COM_QUIT queued behind the black-holed ping would wait for tcpUserTimeout (90 s).
      assert.ok(ms < 5000, `end() took ${ms} ms`);
    } finally {
      await proxy.close();
    }
  });

  test('hedgeCheckout false: a black-holed ping is waited out, no connection is opened', async () => {
    const proxy = await startDelayProxy(0);
    const pool = poolVia(proxy, {
      connectionLimit: 1,
      validationTimeout: 300,
      hedgeCheckout: false,
    });
    try {
      const p = pool.promise();
      (await p.getConnection()).release();
      await sleep(700);
      proxy.stall();
      const started = Date.now();
      const c = await p.getConnection();
      const ms = Date.now() - started;
      c.release();
      const s = pool.stats();
      assert.ok(ms >= 300, `waited for the ping's verdict: ${ms} ms`);
      assert.equal(s.hedges, 0);
      assert.equal(s.hedgeDelayMs, null);
      assert.equal(s.dead['checkout-ping-timeout'], 1);
    } finally {
      await pool.promise().end();
      await proxy.close();
    }
  });
});
