/**
 * The checkout paths that bench/ made cheap, against a real server: a hot pool hands connections
 * over without a ping, a timer or a promise; callers beyond connectionLimit are parked and served
 * by releases directly, in arrival order and in their own async context; the one acquireTimeout
 * timer, destroy() and end() still reach parked callers.
 */
import assert from 'node:assert/strict';
import { AsyncLocalStorage, createHook } from 'node:async_hooks';
import { after, test } from 'node:test';
import type { PoolConnection } from 'mysql2';
import { createPool, PoolError } from '../../src/index.js';
import type { KeepalivePoolOptions, Pool } from '../../src/index.js';
import { dbOptions } from '../support/db.js';

const pools: Pool[] = [];
function pool(extra: KeepalivePoolOptions = {}): Pool {
  const p = createPool({ ...dbOptions(), idlePingInterval: 0, ...extra });
  pools.push(p);
  return p;
}
after(async () => {
  await Promise.all(pools.map((p) => new Promise<void>((r) => p.end(() => r()))));
});

function getConn(p: Pool): Promise<PoolConnection> {
  return new Promise((resolve, reject) => p.getConnection((e, c) => (e ? reject(e) : resolve(c))));
}

/**
 * Counts the promises and timers the pool (any file under src/) creates from `run()` until
 * it calls `done`; those of the test harness itself are not counted.
 */
function countCreated(run: (done: (err?: Error | null) => void) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    const limit = Error.stackTraceLimit;
    const hook = createHook({
      init(_id, type) {
        if (type !== 'PROMISE' && type !== 'Timeout') return;
        Error.stackTraceLimit = 50;
        const stack = new Error().stack ?? '';
        Error.stackTraceLimit = limit;
        if (/src[\\/][\w-]+\.ts/.test(stack)) n++;
      },
    });
    hook.enable();
    run((err) => {
      hook.disable();
      if (err) reject(err);
      else resolve(n);
    });
  });
}

/** getConnection → release, `times` times, each checkout starting in the previous callback. */
function hotLoop(p: Pool, times: number, ids: number[], done: (err?: Error | null) => void): void {
  const next = (): void =>
    p.getConnection((err, conn) => {
      if (err) return done(err);
      ids.push(conn.threadId);
      conn.release();
      if (ids.length < times) next();
      else done();
    });
  next();
}

test('a hot pool pays nothing for validation: no ping, no timer, no promise per checkout', async () => {
  const p = pool({ connectionLimit: 2 });
  (await getConn(p)).release();
  const before = p.stats();
  const ids: number[] = [];
  const created = await countCreated((done) => hotLoop(p, 200, ids, done));
  const after = p.stats();
  assert.equal(created, 0, `${created} promises/timers were created by 200 hot checkouts`);
  assert.equal(after.validations, before.validations, 'no checkout was validated');
  assert.equal(after.acquires - before.acquires, 200);
  assert.equal(new Set(ids).size, 1, 'LIFO: the most recently released connection every time');
});

test('past the skip window a checkout is validated once, then the pool is hot again', async () => {
  // A window wide enough that no gap between a release and the next checkout of the hot loop
  // reaches it, even on a loaded machine.
  const p = pool({ connectionLimit: 1, validationSkipWindow: 300 });
  (await getConn(p)).release();
  const v0 = p.stats().validations;
  // Idling past the window is the point of this test: a timed wait, not a synchronisation.
  await new Promise((r) => setTimeout(r, 400));
  await new Promise<void>((resolve, reject) =>
    hotLoop(p, 20, [], (err) => (err ? reject(err) : resolve())),
  );
  assert.equal(p.stats().validations - v0, 1, 'only the first checkout after the idle gap pings');
});

test('callers beyond connectionLimit are served by releases in arrival order, with no promise', async () => {
  const p = pool({ connectionLimit: 2 });
  const held = [await getConn(p), await getConn(p)];
  const order: number[] = [];
  let waitingBefore = -1;
  const created = await countCreated((done) => {
    let served = 0;
    for (let i = 0; i < 5; i++) {
      p.getConnection((err, conn) => {
        if (err) return done(err);
        order.push(i);
        // Each release serves exactly the oldest waiter.
        conn.release();
        if (++served === 5) done();
      });
    }
    waitingBefore = p.state().waiting;
    held[0]!.release();
    held[1]!.release();
  });
  assert.equal(waitingBefore, 5);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
  assert.equal(p.state().waiting, 0);
  assert.equal(p.state().total, 2, 'no connection beyond the limit was opened');
  // The shared acquireTimeout timer, armed once for all five; no promise at all.
  assert.ok(created <= 1, `${created} promises/timers for 5 queued checkouts`);
});

test("parked callers' callbacks run in their own AsyncLocalStorage context", async () => {
  const als = new AsyncLocalStorage<string>();
  const p = pool({ connectionLimit: 1 });
  const held = await getConn(p);
  const seen = await new Promise<string[]>((resolve, reject) => {
    const stores: string[] = [];
    const done = (err: Error | null, store: string | undefined): void => {
      if (err) return reject(err);
      stores.push(String(store));
      if (stores.length === 2) resolve(stores.sort());
    };
    als.run('getConnection caller', () => {
      p.getConnection((err, conn) => {
        conn?.release();
        done(err, als.getStore());
      });
    });
    als.run('query caller', () => {
      p.query('SELECT 1', (err) => done(err, als.getStore()));
    });
    assert.equal(p.state().waiting, 2, 'both callers are parked');
    // The release happens in another context: the parked callers must not run in it.
    als.run('releaser', () => held.release());
  });
  assert.deepEqual(seen, ['getConnection caller', 'query caller']);
});

test('acquireTimeout fails a parked caller; one timer serves every waiter', async () => {
  const p = pool({ connectionLimit: 1, acquireTimeout: 300 });
  const held = await getConn(p);
  const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const started = Date.now();
  const waits = Array.from(
    { length: 20 },
    () =>
      new Promise<{ err: Error | null; ms: number }>((resolve) =>
        p.getConnection((err, conn) => {
          if (conn) conn.release();
          resolve({ err, ms: Date.now() - started });
        }),
      ),
  );
  const timersDuring = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  assert.ok(
    timersDuring - timersBefore <= 1,
    `${timersDuring - timersBefore} timers for 20 waiters`,
  );
  const results = await Promise.all(waits);
  for (const r of results) {
    assert.ok(r.err instanceof PoolError, `expected a PoolError, got ${String(r.err)}`);
    assert.equal((r.err as PoolError).code, 'POOL_ACQUIRE_TIMEOUT');
    // Never early; how late a timer fires on a loaded machine is the bench's business.
    assert.ok(r.ms >= 290, `timed out after ${r.ms} ms (acquireTimeout 300)`);
  }
  assert.equal(p.stats().acquireTimeouts, 20);
  // The connection still serves callers once it comes back.
  held.release();
  const again = await getConn(p);
  assert.equal(again.threadId, held.threadId);
  again.release();
  assert.equal(p.state().waiting, 0);
});

test('destroying a lent connection gives its slot to a parked caller (a new connection)', async () => {
  const p = pool({ connectionLimit: 1 });
  const held = await getConn(p);
  const waiting = getConn(p);
  assert.equal(p.state().waiting, 1);
  held.destroy();
  const conn = await waiting;
  assert.notEqual(conn.threadId, held.threadId);
  conn.release();
  assert.equal(p.state().total, 1);
});

test('end() fails parked callers with POOL_CLOSED', async () => {
  const p = createPool({ ...dbOptions(), connectionLimit: 1, idlePingInterval: 0 });
  await getConn(p);
  const outcomes = Array.from({ length: 3 }, () =>
    getConn(p).then(
      () => 'served',
      (e: unknown) => (e instanceof PoolError ? e.code : String(e)),
    ),
  );
  assert.equal(p.state().waiting, 3);
  await new Promise<void>((r) => p.end(() => r()));
  assert.deepEqual(await Promise.all(outcomes), ['POOL_CLOSED', 'POOL_CLOSED', 'POOL_CLOSED']);
});

test('after a hot checkout and release the books agree: one connection, idle', async () => {
  const p = pool({ connectionLimit: 1 });
  (await getConn(p)).release();
  const conn = await getConn(p);
  conn.release();
  assert.deepEqual(
    { total: p.state().total, idle: p.state().idle, active: p.state().active },
    { total: 1, idle: 1, active: 0 },
  );
});

test('one-shot queries at 8× connectionLimit all succeed on at most connectionLimit connections', async () => {
  const p = pool({ connectionLimit: 4 });
  const rows = await Promise.all(
    Array.from(
      { length: 32 },
      (_, i) =>
        new Promise<number>((resolve, reject) =>
          p.query('SELECT ? AS n', [i], (err, r) =>
            err ? reject(err) : resolve(Number((r as Array<{ n: number }>)[0]!.n)),
          ),
        ),
    ),
  );
  assert.deepEqual(
    rows,
    Array.from({ length: 32 }, (_, i) => i),
  );
  assert.ok(p.state().total <= 4);
  assert.equal(p.state().waiting, 0);
});
