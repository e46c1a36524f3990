/**
 * Tracing keeps working through the pool: mysql2's diagnostics_channel tracing channels fire for
 * user work (`mysql2:pool:connect` is published by the pool itself, because it replaces mysql2's
 * getConnection), health traffic (checkout pings, idle pings, the wait_timeout read, resets) never
 * shows up as user queries, and queued callers run in their own async context.
 */
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import type { PoolConnection, RowDataPacket } from 'mysql2';
import { createPool } from '../../src/index.js';
import type { Pool } from '../../src/index.js';
import { createPool as createPromisePool } from '../../src/promise.js';
import { dbOptions } from '../support/db.js';

const CHANNELS = ['mysql2:pool:connect', 'mysql2:connect', 'mysql2:query', 'mysql2:execute'];

interface Traced {
  channel: string;
  phase: 'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error';
  context: Record<string, unknown>;
}

let events: Traced[] = [];
const handlers = CHANNELS.map((channel) => {
  const record =
    (phase: Traced['phase']) =>
    (context: unknown): void => {
      events.push({ channel, phase, context: context as Record<string, unknown> });
    };
  return {
    channel,
    subscribers: {
      start: record('start'),
      end: record('end'),
      asyncStart: record('asyncStart'),
      asyncEnd: record('asyncEnd'),
      error: record('error'),
    },
  };
});
for (const h of handlers) diagnostics.tracingChannel(h.channel).subscribe(h.subscribers);
after(() => {
  for (const h of handlers) diagnostics.tracingChannel(h.channel).unsubscribe(h.subscribers);
});

const starts = (channel: string): Traced[] =>
  events.filter((e) => e.channel === channel && e.phase === 'start');

const pools: Pool[] = [];
function pool(extra: Record<string, unknown> = {}): Pool {
  const p = createPool({ ...dbOptions(), ...extra });
  pools.push(p);
  return p;
}
beforeEach(() => {
  events = [];
});
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => new Promise<void>((r) => p.end(() => r()))));
});

function getConn(p: Pool): Promise<PoolConnection> {
  return new Promise((resolve, reject) => p.getConnection((e, c) => (e ? reject(e) : resolve(c))));
}
function q<T = RowDataPacket[]>(c: Pool | PoolConnection, sql: string): Promise<T> {
  return new Promise((resolve, reject) =>
    c.query(sql, (e: unknown, rows: unknown) => (e ? reject(e) : resolve(rows as T))),
  );
}

describe('mysql2 tracing channels through the pool', () => {
  test('mysql2:pool:connect fires for every checkout, with mysql2’s context, and ends with the connection', async () => {
    const p = pool({ connectionLimit: 2 });
    const db = dbOptions();
    const conn = await getConn(p);
    conn.release();
    await q(p, 'SELECT 1 AS one');
    await new Promise<void>((resolve, reject) =>
      p.execute('SELECT ? AS two', [2], (e) => (e ? reject(e) : resolve())),
    );
    const promisePool = p.promise();
    const pc = await promisePool.getConnection();
    pc.release();
    await promisePool.query('SELECT 3 AS three');

    const checkouts = starts('mysql2:pool:connect');
    assert.equal(
      checkouts.length,
      5,
      'getConnection, query, execute, promise getConnection, query',
    );
    for (const e of checkouts) {
      const { database, serverAddress, serverPort } = e.context;
      assert.deepEqual(
        { database, serverAddress, serverPort },
        {
          database: db.database,
          serverAddress: db.host,
          serverPort: db.port,
        },
      );
    }
    const ends = events.filter(
      (e) => e.channel === 'mysql2:pool:connect' && e.phase === 'asyncEnd',
    );
    assert.equal(ends.length, 5);
    for (const e of ends) {
      assert.ok(
        e.context.result !== null && typeof e.context.result === 'object',
        'asyncEnd carries the connection as result',
      );
    }
    assert.equal(events.filter((e) => e.phase === 'error').length, 0);
  });

  test('a failed checkout publishes the real cause on the error channel', async () => {
    const p = pool({ host: '127.0.0.1', port: 1, connectTimeout: 2000, acquireTimeout: 5000 });
    const err = await getConn(p).then(
      () => assert.fail('expected the checkout to fail'),
      (e: NodeJS.ErrnoException) => e,
    );
    assert.equal(err.code, 'ECONNREFUSED');
    const errors = events.filter((e) => e.channel === 'mysql2:pool:connect' && e.phase === 'error');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.context.error, err);
    assert.equal(errors[0]!.context.serverPort, 1);
  });

  test('user queries and statements are traced with their SQL; each new connection once on mysql2:connect', async () => {
    const p = pool({ connectionLimit: 2 });
    const [a, b] = await Promise.all([getConn(p), getConn(p)]);
    await q(a, 'SELECT 10 AS ten');
    await new Promise<void>((resolve, reject) =>
      b.execute('SELECT ? AS eleven', [11], (e) => (e ? reject(e) : resolve())),
    );
    a.release();
    b.release();
    const promise = createPromisePool({ ...dbOptions(), connectionLimit: 1 });
    pools.push(promise.pool);
    await promise.query('SELECT 12 AS twelve');

    assert.deepEqual(
      starts('mysql2:query').map((e) => e.context.query),
      ['SELECT 10 AS ten', 'SELECT 12 AS twelve'],
    );
    assert.deepEqual(
      starts('mysql2:execute').map((e) => e.context.query),
      ['SELECT ? AS eleven'],
    );
    assert.equal(
      starts('mysql2:connect').length,
      p.stats().created + promise.pool.stats().created,
      'one mysql2:connect per physical connection',
    );
  });

  test('health traffic is not traced as user queries: pings, the wait_timeout read, resets', async () => {
    // Every checkout is validated (skip window 0), idle pings run every second, and the
    // server's wait_timeout is read once by the pool (whenever pings are on), on a connection
    // idle for 500 ms: here during the 1.6 s idle below.
    const p = pool({
      connectionLimit: 2,
      validationSkipWindow: 0,
      idlePingInterval: 1000,
      resetOnRelease: true,
    });
    const [a, b] = await Promise.all([getConn(p), getConn(p)]);
    // The server counts the SELECTs each session ran: none on a new connection before the
    // caller's first command. SHOW STATUS is not a SELECT.
    const selects = async (c: PoolConnection): Promise<number> =>
      Number((await q(c, "SHOW SESSION STATUS LIKE 'Com_select'"))[0]!.Value);
    assert.equal((await selects(a)) + (await selects(b)), 0, 'nothing read before the caller');
    // Counts the resets that completed without error (a spy on the instances, nothing else).
    let resets = 0;
    for (const conn of [a, b]) {
      const reset = conn.reset.bind(conn);
      conn.reset = ((cb: (err: unknown) => void) =>
        reset((err: unknown) => {
          if (!err) resets++;
          cb(err);
        })) as typeof conn.reset;
    }
    a.release();
    b.release();
    // Idle long enough for the idle pings to come round (a timed wait on purpose: the pings are
    // what is being observed).
    await new Promise((r) => setTimeout(r, 1600));
    const c = await getConn(p); // validated with a ping
    await q(c, 'SELECT 20 AS twenty');
    const released = once(p, 'release');
    c.release();
    // A released connection no longer holds the process, reset or not: the test does meanwhile.
    const holdProcess = setInterval(() => {}, 1000);
    await released.finally(() => clearInterval(holdProcess)); // emitted once the reset is done
    assert.equal(resets, 3, 'every release was reset: a, b, then c');

    const s = p.stats();
    assert.ok(s.idlePings >= 1, `idle pings ran (${s.idlePings})`);
    assert.ok(s.validations >= 1, `checkout pings ran (${s.validations})`);
    assert.deepEqual(
      starts('mysql2:query').map((e) => e.context.query),
      [
        "SHOW SESSION STATUS LIKE 'Com_select'",
        "SHOW SESSION STATUS LIKE 'Com_select'",
        'SELECT 20 AS twenty',
      ],
      'only the user’s statements appear on mysql2:query',
    );
    assert.equal(starts('mysql2:execute').length, 0);
    for (const e of events) {
      assert.doesNotMatch(JSON.stringify(e.context.query ?? ''), /wait_timeout/);
    }
  });
});

describe('async context across a wait in the queue', () => {
  const N = 5;
  const als = new AsyncLocalStorage<string>();

  /** Runs N callers concurrently, each in its own store, through a pool of one connection. */
  async function callers(
    p: Pool,
    call: (done: (seen: string | undefined) => void) => void,
  ): Promise<{ expected: string[]; seen: (string | undefined)[] }> {
    const expected = Array.from({ length: N }, (_, i) => `caller-${i}`);
    const seen = await Promise.all(
      expected.map(
        (value) =>
          new Promise<string | undefined>((resolve) => als.run(value, () => call(resolve))),
      ),
    );
    return { expected, seen };
  }

  test('getConnection callbacks run in each caller’s own context', async () => {
    const p = pool({ connectionLimit: 1 });
    let enqueued = 0;
    p.on('enqueue', () => enqueued++);
    const { expected, seen } = await callers(p, (done) =>
      p.getConnection((err, conn) => {
        assert.ifError(err);
        const store = als.getStore();
        // Hold the connection a moment so the others really queue behind it.
        setTimeout(() => {
          conn.release();
          done(store);
        }, 20);
      }),
    );
    assert.ok(enqueued >= N - 1, `callers waited in the queue (${enqueued} enqueued)`);
    assert.deepEqual(seen, expected);
  });

  test('pool.query and pool.execute callbacks run in each caller’s own context', async () => {
    const p = pool({ connectionLimit: 1 });
    let enqueued = 0;
    p.on('enqueue', () => enqueued++);
    const viaQuery = await callers(p, (done) =>
      p.query('SELECT SLEEP(0.02) AS s', (err) => {
        assert.ifError(err);
        done(als.getStore());
      }),
    );
    assert.deepEqual(viaQuery.seen, viaQuery.expected);
    const viaExecute = await callers(p, (done) =>
      p.execute('SELECT SLEEP(0.02) AS s', [], (err) => {
        assert.ifError(err);
        done(als.getStore());
      }),
    );
    assert.deepEqual(viaExecute.seen, viaExecute.expected);
    assert.ok(enqueued >= 2 * (N - 1), `callers waited in the queue (${enqueued} enqueued)`);
  });

  test('the promise pool keeps each caller’s context across await', async () => {
    const promise = createPromisePool({ ...dbOptions(), connectionLimit: 1 });
    pools.push(promise.pool);
    const { expected, seen } = await callers(promise.pool, (done) => {
      void (async () => {
        const conn = await promise.getConnection();
        const inside = als.getStore();
        await conn.query('SELECT SLEEP(0.02) AS s');
        conn.release();
        await promise.query('SELECT 1');
        done(inside === als.getStore() ? inside : `mismatch ${inside} ${als.getStore()}`);
      })();
    });
    assert.deepEqual(seen, expected);
  });

  test('mysql2:query and mysql2:execute start in the caller’s context after a wait', async (t) => {
    // APMs open the command's span in the start event, under the caller's current span: the pool
    // enters a queued one-shot caller's context around the send while mysql2's command channel
    // has subscribers (and spares that entry while it has none).
    // Only the command's channel is traced here: with subscribers on mysql2:pool:connect the
    // one-shot goes through the traced getConnection, which enters the context anyway.
    for (const h of handlers) diagnostics.tracingChannel(h.channel).unsubscribe(h.subscribers);
    t.after(() => {
      for (const h of handlers) diagnostics.tracingChannel(h.channel).subscribe(h.subscribers);
    });
    assert.equal(diagnostics.tracingChannel('mysql2:pool:connect').start.hasSubscribers, false);
    for (const name of ['mysql2:query', 'mysql2:execute'] as const) {
      const channel = diagnostics.tracingChannel(name);
      const startedIn: (string | undefined)[] = [];
      const subscriber = {
        start: (): void => {
          startedIn.push(als.getStore());
        },
        end: noop,
        asyncStart: noop,
        asyncEnd: noop,
        error: noop,
      };
      channel.subscribe(subscriber);
      try {
        const p = pool({ connectionLimit: 1 });
        let enqueued = 0;
        p.on('enqueue', () => enqueued++);
        const { expected, seen } = await callers(p, (done) => {
          const cb = (err: unknown): void => {
            assert.ifError(err);
            done(als.getStore());
          };
          if (name === 'mysql2:query') p.query('SELECT SLEEP(0.01) AS s', cb);
          else p.execute('SELECT SLEEP(0.01) AS s', [], cb);
        });
        assert.ok(enqueued >= N - 1, `${name}: callers waited (${enqueued} enqueued)`);
        assert.deepEqual(seen, expected, `${name}: callbacks`);
        assert.deepEqual([...startedIn].sort(), expected, `${name}: start events`);
      } finally {
        channel.unsubscribe(subscriber);
      }
    }
  });

  test('trace subscribers that bind a store see the caller’s store on pool:connect', async () => {
    // How APMs use these channels: bindStore on the start channel, read it in asyncStart.
    const traceStore = new AsyncLocalStorage<string>();
    const channel = diagnostics.tracingChannel('mysql2:pool:connect');
    channel.start.bindStore(traceStore, () => `span-of-${als.getStore()}`);
    try {
      const p = pool({ connectionLimit: 1 });
      const { expected, seen } = await callers(p, (done) =>
        p.getConnection((err, conn) => {
          assert.ifError(err);
          const span = traceStore.getStore();
          setTimeout(() => {
            conn.release();
            done(span);
          }, 10);
        }),
      );
      assert.deepEqual(
        seen,
        expected.map((v) => `span-of-${v}`),
      );
    } finally {
      channel.start.unbindStore(traceStore);
    }
  });
});

function noop(): void {}
