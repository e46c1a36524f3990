/**
 * Rules of the pool that a refactor of checkout and return could break without anyone noticing:
 * max lifetime and its jitter, mysql2's maxIdle/idleTimeout rule, what resetOnRelease resets, the
 * events a queued caller causes, the process warnings of createPool, and counters that only grow.
 *
 * The lifetime and idle rules run on a mocked clock (`Date` and the housekeeper's `setInterval`):
 * their periods are tens of seconds to minutes. Sockets and the server stay real.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, test } from 'node:test';
import type { PoolConnection, RowDataPacket } from 'mysql2';
import { createPool } from '../../src/index.js';
import type { EvictedConnectionEvent, Pool, PoolStats } from '../../src/index.js';
import { adminQuery, dbOptions } from '../support/db.js';

const pools: Pool[] = [];
function pool(extra: Record<string, unknown> = {}): Pool {
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
function q<T = RowDataPacket[]>(c: Pool | PoolConnection, sql: string): Promise<T> {
  return new Promise((resolve, reject) =>
    (c.query as (...a: unknown[]) => unknown)(sql, (e: unknown, rows: T) =>
      e ? reject(e) : resolve(rows),
    ),
  );
}
/** Lets promise reactions and callbacks queued so far run (setImmediate is not mocked); the
 * pool's reaction to a housekeeping run is synchronous up to its events. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}
/** Borrows `n` connections at once and releases them in order; returns their thread ids. */
async function warm(p: Pool, n: number): Promise<number[]> {
  const conns = await Promise.all(Array.from({ length: n }, () => getConn(p)));
  for (const c of conns) c.release();
  return conns.map((c) => c.threadId);
}

describe('maxLifetime', () => {
  test('each connection retires within [97.5 %, 100 %] of maxLifetime (+ one housekeeping period), at different times', async (t) => {
    t.mock.timers.enable({ apis: ['Date', 'setInterval'], now: Date.now() });
    const L = 400_000;
    const p = pool({ connectionLimit: 6, maxLifetime: L });
    const t0 = Date.now();
    const ids = await warm(p, 6);
    const retired = new Map<number, number>();
    p.on('evicted', (e: EvictedConnectionEvent) => {
      assert.equal(e.reason, 'max-lifetime');
      retired.set(e.threadId!, Date.now() - t0);
    });
    // Up to just before the jitter window: nobody retires.
    t.mock.timers.tick(L * 0.975 - 1000);
    await settle();
    assert.equal(retired.size, 0, 'no connection retired before 97.5 % of maxLifetime');
    // Through the window, one housekeeping period at a time.
    for (let at = L * 0.975 - 1000; at < L + 1000; at += 1000) {
      t.mock.timers.tick(1000);
      await settle();
    }
    assert.deepEqual([...retired.keys()].sort(), [...ids].sort(), 'every connection retired');
    for (const ms of retired.values()) {
      assert.ok(ms >= L * 0.975 && ms <= L + 1000, `retired at ${ms} ms`);
    }
    // Six retirement deadlines drawn over a 10 s window: all in one 1 s period is ~1e-5 likely.
    assert.ok(new Set(retired.values()).size > 1, 'jitter spreads the retirements');
    assert.equal(p.state().total, 0);
  });

  test('a borrowed connection is not retired while held; after its release it is not handed out again', async (t) => {
    t.mock.timers.enable({ apis: ['Date', 'setInterval'], now: Date.now() });
    const L = 60_000;
    const p = pool({ connectionLimit: 1, maxLifetime: L });
    const held = await getConn(p);
    const evicted: EvictedConnectionEvent[] = [];
    p.on('evicted', (e: EvictedConnectionEvent) => evicted.push(e));
    t.mock.timers.tick(L + 5000);
    await settle();
    assert.deepEqual(evicted, [], 'the holder owns it');
    assert.deepEqual(await q(held, 'SELECT 1 AS one'), [{ one: 1 }]);
    held.release();
    const next = await getConn(p);
    assert.notEqual(next.threadId, held.threadId, 'a fresh connection');
    next.release();
    assert.deepEqual(evicted, [{ threadId: held.threadId, reason: 'max-lifetime' }]);
  });
});

describe("mysql2's idle rule: maxIdle and idleTimeout", () => {
  test('idle connections above maxIdle close within two housekeeping runs, oldest release first; the rest after idleTimeout', async (t) => {
    t.mock.timers.enable({ apis: ['Date', 'setInterval'], now: Date.now() });
    const p = pool({ connectionLimit: 4, maxIdle: 1, idleTimeout: 10_000 });
    const conns = await Promise.all([1, 2, 3, 4].map(() => getConn(p)));
    const closed: number[] = [];
    p.on('evicted', (e: EvictedConnectionEvent) => {
      assert.equal(e.reason, 'idle-timeout');
      closed.push(e.threadId!);
    });
    for (const c of conns) {
      c.release();
      t.mock.timers.tick(10); // distinct release times, in order
    }
    await settle();
    assert.deepEqual(closed, [], 'nothing closes between housekeeping runs');
    t.mock.timers.tick(1000);
    await settle();
    t.mock.timers.tick(1000);
    await settle();
    const ids = conns.map((c) => c.threadId);
    assert.deepEqual(
      [...closed].sort(),
      ids.slice(0, 3).sort(),
      'the three released first are the excess',
    );
    assert.equal(p.state().idle, 1);
    t.mock.timers.tick(7000);
    await settle();
    assert.equal(closed.length, 3, 'the last one is kept until idleTimeout');
    t.mock.timers.tick(2000);
    await settle();
    assert.equal(closed[3], ids[3], 'idle past idleTimeout: closed too');
    assert.equal(p.state().total, 0);
  });

  test('minIdle connections stay open past idleTimeout', async (t) => {
    t.mock.timers.enable({ apis: ['Date', 'setInterval'], now: Date.now() });
    const p = pool({ connectionLimit: 3, maxIdle: 1, minIdle: 1, idleTimeout: 2000 });
    const ids = await warm(p, 3);
    t.mock.timers.tick(5000);
    await settle();
    const s = p.state();
    assert.equal(s.total, 1, 'minIdle kept');
    const kept = await getConn(p);
    assert.equal(kept.threadId, ids[2], 'the most recently released one');
    kept.release();
  });
});

describe('resetOnRelease', () => {
  async function dirty(c: PoolConnection): Promise<void> {
    await q(c, 'SET @kapool_rule = 42');
    await q(c, "SET SESSION sql_mode = 'ANSI_QUOTES'");
    await q(c, 'CREATE TEMPORARY TABLE kapool_rule_tmp (i INT)');
  }

  test('on: user variables, session variables and temporary tables are gone; same session', async () => {
    const p = pool({ connectionLimit: 1, resetOnRelease: true });
    const a = await getConn(p);
    await dirty(a);
    a.release();
    const b = await getConn(p);
    assert.equal(b.threadId, a.threadId, 'the same server session, reset rather than reopened');
    const [row] = await q(b, 'SELECT @kapool_rule AS v, @@SESSION.sql_mode AS m');
    const [global] = await q(b, 'SELECT @@GLOBAL.sql_mode AS m');
    assert.equal(row!.v, null);
    assert.equal(row!.m, global!.m);
    await assert.rejects(q(b, 'SELECT * FROM kapool_rule_tmp'), { code: 'ER_NO_SUCH_TABLE' });
    b.release();
  });

  test('off (the default, as mysql2): the session is handed on as it was left', async () => {
    const p = pool({ connectionLimit: 1 });
    const a = await getConn(p);
    await dirty(a);
    a.release();
    const b = await getConn(p);
    const [row] = await q(b, 'SELECT @kapool_rule AS v, @@SESSION.sql_mode AS m');
    assert.equal(Number(row!.v), 42);
    assert.equal(row!.m, 'ANSI_QUOTES');
    assert.deepEqual(await q(b, 'SELECT COUNT(*) AS n FROM kapool_rule_tmp'), [{ n: 0 }]);
    b.release();
  });
});

describe('events of a queued caller', () => {
  test('getConnection: enqueue, then release and acquire of the handed-over connection, then the callback', async () => {
    const p = pool({ connectionLimit: 1 });
    const held = await getConn(p);
    const events: string[] = [];
    p.on('enqueue', () => events.push('enqueue'));
    p.on('acquire', (c: PoolConnection) => events.push(`acquire ${c.threadId}`));
    p.on('release', (c: PoolConnection) => events.push(`release ${c.threadId}`));
    const queued = new Promise<PoolConnection>((resolve, reject) =>
      p.getConnection((e, c) => {
        events.push('callback');
        return e ? reject(e) : resolve(c);
      }),
    );
    assert.deepEqual(events, ['enqueue'], 'enqueue is emitted at once');
    held.release();
    const c = await queued;
    assert.equal(c.threadId, held.threadId);
    c.release();
    const id = held.threadId;
    assert.deepEqual(events, [
      'enqueue',
      `release ${id}`,
      `acquire ${id}`,
      'callback',
      `release ${id}`,
    ]);
  });

  test('pool.query: the same events around the one-shot use', async () => {
    const p = pool({ connectionLimit: 1 });
    const held = await getConn(p);
    const id = held.threadId;
    const events: string[] = [];
    p.on('enqueue', () => events.push('enqueue'));
    p.on('acquire', (c: PoolConnection) => events.push(`acquire ${c.threadId}`));
    p.on('release', (c: PoolConnection) => events.push(`release ${c.threadId}`));
    const answered = q(p, 'SELECT 2 AS two');
    held.release();
    assert.deepEqual(await answered, [{ two: 2 }]);
    if (events.length < 4) await once(p, 'release');
    assert.deepEqual(events, ['enqueue', `release ${id}`, `acquire ${id}`, `release ${id}`]);
  });
});

describe('pool events', () => {
  test('acquire and release reach a listener added at any time, also after removeAllListeners()', async () => {
    // The pool emits them only once someone listens; removing every listener must not make it
    // miss the ones added later.
    const p = pool({ connectionLimit: 1 });
    (await getConn(p)).release();
    p.removeAllListeners();
    const events: string[] = [];
    p.on('acquire', () => events.push('acquire'));
    p.on('release', () => events.push('release'));
    (await getConn(p)).release();
    assert.deepEqual(events, ['acquire', 'release']);
  });
});

describe('process warnings of createPool', () => {
  async function warningsOf(options: Record<string, unknown>): Promise<Error[]> {
    const seen: Error[] = [];
    const onWarning = (w: Error): void => {
      seen.push(w);
    };
    process.on('warning', onWarning);
    try {
      pool(options);
      await settle(); // process.emitWarning emits on the next tick
    } finally {
      process.off('warning', onWarning);
    }
    return seen.filter((w) =>
      (w as Error & { code?: string }).code?.startsWith('MYSQL2_KEEPALIVE'),
    );
  }

  test('each unwise combination the user set: one warning, with a code and the library prefix', async () => {
    const w = await warningsOf({ connectionLimit: 2, maxIdle: 1, minIdle: 2 });
    assert.equal(w.length, 1, w.map((x) => x.message).join('\n'));
    assert.equal(w[0]!.name, 'Warning');
    assert.equal((w[0] as Error & { code?: string }).code, 'MYSQL2_KEEPALIVE_POOL_CONFIG');
    assert.match(w[0]!.message, /^mysql2-keepalive-pool: minIdle 2 is above maxIdle 1: /);

    const both = await warningsOf({ acquireTimeout: 1000, connectTimeout: 5000 });
    assert.equal(both.length, 1, both.map((x) => x.message).join('\n'));
    assert.match(
      both[0]!.message,
      /^mysql2-keepalive-pool: acquireTimeout 1000 ms is shorter than connectTimeout \(5000 ms\)/,
    );
  });

  test('none for a sound configuration', async () => {
    assert.deepEqual(await warningsOf({}), []);
  });
});

describe('counters only grow', () => {
  const COUNTERS = [
    'created',
    'destroyed',
    'createErrors',
    'acquires',
    'acquireTimeouts',
    'idlePings',
    'validations',
    'retries',
    'leaks',
    'healthChecks',
    'healthCheckFailures',
  ] as const;

  function assertGrew(before: PoolStats, after: PoolStats, step: string, grew: string[]): void {
    for (const k of COUNTERS) {
      assert.ok(after[k] >= before[k], `${step}: ${k} went from ${before[k]} to ${after[k]}`);
    }
    for (const [reason, n] of Object.entries(after.dead)) {
      const was = before.dead[reason as keyof PoolStats['dead']];
      assert.ok(n >= was, `${step}: dead.${reason} went from ${was} to ${n}`);
    }
    for (const k of grew) {
      const total = (s: PoolStats): number => Object.values(s.dead).reduce((x, y) => x + y, 0);
      const [a, b] =
        k === 'dead'
          ? [total(before), total(after)]
          : [before[k as (typeof COUNTERS)[number]], after[k as (typeof COUNTERS)[number]]];
      assert.ok(b > a, `${step}: ${k} grew (${a} -> ${b})`);
    }
  }

  test('through use, a validation, a server-side kill, a destroy, a timeout, a health check and a closed pool', async () => {
    const p = pool({
      connectionLimit: 2,
      acquireTimeout: 300,
      connectTimeout: 300,
      validationSkipWindow: 0,
    });
    const steps: Array<[string, () => Promise<void>, string[]]> = [
      ['two queries', async () => void (await warm(p, 2)), ['created', 'acquires']],
      [
        'a validated checkout',
        async () => {
          // Idle past the (zero) skip window: a timed idle spell is what is being observed.
          await new Promise((r) => setTimeout(r, 20));
          (await getConn(p)).release();
        },
        ['acquires', 'validations'],
      ],
      [
        'a server-side KILL of an idle connection',
        async () => {
          const c = await getConn(p);
          const id = c.threadId;
          c.release();
          const evicted = once(p, 'evicted');
          await adminQuery(`KILL ${id}`);
          await evicted;
        },
        ['destroyed', 'dead'],
      ],
      [
        'a destroy by the caller',
        async () => {
          const evicted = once(p, 'evicted');
          (await getConn(p)).destroy();
          await evicted;
        },
        ['destroyed'],
      ],
      [
        'an acquire timeout',
        async () => {
          const held = await Promise.all([getConn(p), getConn(p)]);
          await assert.rejects(getConn(p), { code: 'POOL_ACQUIRE_TIMEOUT' });
          for (const c of held) c.release();
        },
        ['acquireTimeouts'],
      ],
      ['a health check', () => p.healthCheck(), ['healthChecks']],
      [
        'end, then a failed health check',
        async () => {
          await new Promise<void>((r) => p.end(() => r()));
          await assert.rejects(p.healthCheck(), { code: 'HEALTH_CHECK_FAILED' });
        },
        ['healthCheckFailures'],
      ],
    ];
    let before = p.stats();
    for (const [step, run, grew] of steps) {
      await run();
      const now = p.stats();
      assertGrew(before, now, step, grew);
      before = now;
    }
  });
});
