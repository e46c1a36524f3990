/**
 * The mysql2 pool behaviours users rely on, against a real server.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, test } from 'node:test';
import { inspect } from 'node:util';
import mysql from 'mysql2';
import type { PoolConnection, RowDataPacket } from 'mysql2';
import { createPool, PoolError } from '../../src/index.js';
import type { Pool } from '../../src/index.js';
import { createPool as createPromisePool } from '../../src/promise.js';
import { adminQuery, dbOptions } from '../support/db.js';

const pools: Pool[] = [];
function pool(extra: Record<string, unknown> = {}): Pool {
  const p = createPool({ ...dbOptions(), ...extra });
  pools.push(p);
  return p;
}
after(async () => {
  await Promise.all(pools.map((p) => new Promise<void>((r) => p.end(() => r()))));
});

function getConn(p: Pool): Promise<PoolConnection> {
  return new Promise((resolve, reject) => p.getConnection((e, c) => (e ? reject(e) : resolve(c))));
}
function q<T = RowDataPacket[]>(
  c: Pool | PoolConnection,
  sql: string,
  values?: unknown[],
): Promise<T> {
  return new Promise((resolve, reject) =>
    (c.query as (...a: unknown[]) => unknown)(sql, values ?? [], (e: unknown, rows: T) =>
      e ? reject(e) : resolve(rows),
    ),
  );
}
async function threadId(c: PoolConnection): Promise<number> {
  const rows = await q(c, 'SELECT CONNECTION_ID() AS id');
  return Number(rows[0]!.id);
}

describe('callback pool', () => {
  test('query returns rows through the callback and returns the Query', async () => {
    const p = pool();
    const rows = await q(p, 'SELECT 1 + ? AS n', [41]);
    assert.equal(rows[0]!.n, 42);
    const query = p.query('SELECT 7 AS n');
    const ended = once(query, 'end');
    const [row] = (await once(query, 'result')) as [RowDataPacket];
    assert.equal(row.n, 7);
    await ended;
  });

  test('query().stream() streams rows', async () => {
    const p = pool();
    const seen: number[] = [];
    const stream = p.query('SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3').stream();
    for await (const row of stream) seen.push((row as { n: number }).n);
    assert.deepEqual(seen, [1, 2, 3]);
  });

  test('execute uses prepared statements and returns fields', async () => {
    const p = pool();
    const [rows, fields] = await new Promise<[RowDataPacket[], unknown[]]>((resolve, reject) =>
      p.execute('SELECT ? AS a, ? AS b', [5, 'x'], (e, r, f) =>
        e ? reject(e) : resolve([r as RowDataPacket[], f as unknown[]]),
      ),
    );
    assert.deepEqual({ ...rows[0] }, { a: 5, b: 'x' });
    assert.equal(fields.length, 2);
  });

  test('connections are genuine mysql2 PoolConnections, with .promise()', async () => {
    const p = pool();
    const c = await getConn(p);
    assert.ok(
      c instanceof (mysql as unknown as { PoolConnection: new () => unknown }).PoolConnection,
    );
    const [rows] = await c.promise().query<RowDataPacket[]>('SELECT 3 AS n');
    assert.equal(rows[0]!.n, 3);
    c.release();
  });

  test('queueing at the limit: the third caller waits (enqueue) and gets a released connection', async () => {
    const p = pool({ connectionLimit: 2 });
    let enqueued = 0;
    p.on('enqueue', () => enqueued++);
    const a = await getConn(p);
    const b = await getConn(p);
    const idA = await threadId(a);
    let third: PoolConnection | undefined;
    const waiting = getConn(p).then((c) => (third = c));
    await new Promise((r) => setImmediate(r));
    assert.equal(enqueued, 1);
    assert.equal(third, undefined);
    assert.equal(p.state().waiting, 1);
    a.release();
    const c = await waiting;
    assert.equal(await threadId(c), idA, 'the waiter got the released connection');
    b.release();
    c.release();
    assert.equal(p.state().total, 2);
  });

  test("queueLimit rejects the caller beyond it with mysql2's message", async () => {
    const p = pool({ connectionLimit: 1, queueLimit: 1 });
    const a = await getConn(p);
    const queued = getConn(p);
    await assert.rejects(getConn(p), (e: PoolError) => {
      assert.equal(e.message, 'Queue limit reached.');
      assert.equal(e.code, 'POOL_QUEUE_LIMIT');
      return true;
    });
    a.release();
    (await queued).release();
  });

  test('waitForConnections=false fails at once when every connection is busy', async () => {
    const p = pool({ connectionLimit: 1, waitForConnections: false });
    const a = await getConn(p);
    await assert.rejects(getConn(p), /No connections available/);
    a.release();
  });

  test('acquireTimeout fails a waiter with the pool state and a code', async () => {
    const p = pool({ connectionLimit: 1, acquireTimeout: 200 });
    const a = await getConn(p);
    const started = Date.now();
    await assert.rejects(getConn(p), (e: PoolError) => {
      assert.equal(e.code, 'POOL_ACQUIRE_TIMEOUT');
      assert.match(e.message, /total=1, active=1, idle=0, waiting=1/);
      return true;
    });
    assert.ok(Date.now() - started >= 190);
    assert.equal(p.state().waiting, 0);
    a.release();
    // The slot is usable again: the withdrawn waiter did not swallow it.
    const b = await getConn(p);
    b.release();
    assert.equal(p.stats().acquireTimeouts, 1);
  });

  test('release twice is harmless; destroy removes the connection', async () => {
    const p = pool({ connectionLimit: 2 });
    const a = await getConn(p);
    const idA = await threadId(a);
    a.release();
    a.release();
    assert.equal(p.state().idle, 1);
    const again = await getConn(p);
    assert.equal(await threadId(again), idA);
    again.destroy();
    await new Promise((r) => setImmediate(r));
    assert.equal(p.state().total, 0);
    const fresh = await getConn(p);
    assert.notEqual(await threadId(fresh), idA);
    fresh.release();
  });

  test('a transaction stays on one connection', async () => {
    const p = pool({ connectionLimit: 3 });
    await q(p, 'CREATE TABLE IF NOT EXISTS kap_tx (id INT PRIMARY KEY, v INT) ENGINE=InnoDB');
    await q(p, 'DELETE FROM kap_tx');
    const c = await getConn(p);
    await new Promise<void>((r, j) => c.beginTransaction((e) => (e ? j(e) : r())));
    const id1 = await threadId(c);
    await q(c, 'INSERT INTO kap_tx VALUES (1, 1)');
    const other = await q(p, 'SELECT COUNT(*) AS n FROM kap_tx');
    assert.equal(Number(other[0]!.n), 0, 'uncommitted row invisible to other connections');
    assert.equal(await threadId(c), id1);
    await new Promise<void>((r, j) => c.rollback((e) => (e ? j(e) : r())));
    const after = await q(c, 'SELECT COUNT(*) AS n FROM kap_tx');
    assert.equal(Number(after[0]!.n), 0);
    c.release();
  });

  test('events: connection, acquire, release with mysql2 meaning', async () => {
    const p = pool({ connectionLimit: 1 });
    const seen: string[] = [];
    p.on('connection', (c) => seen.push(`connection:${c.threadId}`));
    p.on('acquire', (c) => seen.push(`acquire:${c.threadId}`));
    p.on('release', (c) => seen.push(`release:${c.threadId}`));
    const c = await getConn(p);
    const id = c.threadId;
    c.release();
    const d = await getConn(p);
    d.release();
    assert.deepEqual(seen, [
      `connection:${id}`,
      `acquire:${id}`,
      `release:${id}`,
      `acquire:${id}`,
      `release:${id}`,
    ]);
  });

  test('changeUser works on a pooled connection', async () => {
    const p = pool();
    const c = await getConn(p);
    await new Promise<void>((r, j) =>
      c.changeUser(
        { user: dbOptions().user, password: dbOptions().password, database: 'test' },
        (e) => (e ? j(e) : r()),
      ),
    );
    const rows = await q(c, 'SELECT DATABASE() AS db');
    assert.equal(rows[0]!.db, 'test');
    c.release();
  });

  test("a checked-out connection carries exactly the 'error' and 'end' listeners mysql2's pool gives it, before and after queries", async () => {
    const counts = async (p: {
      getConnection(cb: (e: unknown, c: PoolConnection) => void): void;
      query(sql: string, cb: (e: unknown) => void): unknown;
    }): Promise<number[][]> => {
      const take = (): Promise<PoolConnection> =>
        new Promise((resolve, reject) =>
          p.getConnection((e, c) => (e ? reject(e as Error) : resolve(c))),
        );
      const of = (c: PoolConnection): number[] => [
        c.listenerCount('error'),
        c.listenerCount('end'),
      ];
      const seen: number[][] = [];
      const c = await take();
      seen.push(of(c)); // fresh
      await q(c, 'SELECT 1');
      await new Promise<void>((resolve, reject) =>
        c.execute('SELECT ?', [1], (e) => (e ? reject(e) : resolve())),
      );
      const streamed = c.query('SELECT 1 AS n').stream();
      for await (const row of streamed) void row;
      seen.push(of(c)); // after queries on it
      c.release();
      // One-shot queries through the pool use it in between.
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((resolve, reject) =>
          p.query('SELECT 1', (e) => (e ? reject(e as Error) : resolve())),
        );
      }
      const again = await take();
      assert.equal(again, c, 'the same connection, reused');
      seen.push(of(again)); // checked out again
      again.release();
      return seen;
    };
    const theirs = mysql.createPool({ ...dbOptions(), connectionLimit: 1 });
    try {
      const expected = await counts(theirs as never);
      assert.deepEqual(expected[0], [1, 1], "mysql2's PoolConnection: one of each");
      assert.deepEqual(await counts(pool({ connectionLimit: 1 }) as never), expected);
    } finally {
      await new Promise<void>((r) => theirs.end(() => r()));
    }
  });

  test('escape, escapeId and format behave like mysql2', () => {
    const p = pool();
    assert.equal(p.escape("it's"), mysql.escape("it's"));
    assert.equal(p.escapeId('a.b'), mysql.escapeId('a.b'));
    assert.equal(p.format('SELECT ? AS x', [1]), 'SELECT 1 AS x');
  });

  test('end() fails waiters and later calls, closes borrowed connections, calls back', async () => {
    const p = createPool({ ...dbOptions(), connectionLimit: 1 });
    const borrowed = await getConn(p);
    const waiter = getConn(p);
    const ended = new Promise<void>((r) => p.end(() => r()));
    await assert.rejects(
      waiter,
      (e: PoolError) => e.code === 'POOL_CLOSED' && e.message === 'Pool is closed.',
    );
    await ended;
    await assert.rejects(q(borrowed, 'SELECT 1'));
    await assert.rejects(getConn(p), /Pool is closed/);
    await assert.rejects(q(p, 'SELECT 1'), /Pool is closed/);
  });

  test('our options never reach mysql2: no "Ignoring invalid configuration option" warning', async () => {
    const original = console.error;
    const printed: string[] = [];
    console.error = (...args: unknown[]) => void printed.push(args.join(' '));
    try {
      const p = pool({
        idlePingInterval: 5000,
        validationTimeout: 500,
        keepAliveInitialDelay: 30000,
        acquireTimeout: 1000,
        maxLifetime: 60000,
        name: 'quiet',
      });
      await q(p, 'SELECT 1');
    } finally {
      console.error = original;
    }
    assert.deepEqual(printed, []);
  });

  test('util.inspect(pool) shows state, never the password', () => {
    const p = createPool({ ...dbOptions(), password: 'S3cr3t-Zebra-42' });
    pools.push(p);
    const text = inspect(p, { depth: 10 });
    assert.match(text, /KeepalivePool/);
    assert.doesNotMatch(text, /S3cr3t-Zebra-42/);
    assert.doesNotMatch(inspect(p.config, { depth: 10 }), /S3cr3t-Zebra-42/);
  });
});

describe('promise pool', () => {
  test('query and execute resolve [rows, fields]; getConnection gives a promise connection', async () => {
    const p = createPromisePool({ ...dbOptions(), connectionLimit: 2 });
    try {
      const [rows, fields] = await p.query<RowDataPacket[]>('SELECT 1 AS one');
      assert.equal(rows[0]!.one, 1);
      assert.ok(Array.isArray(fields));
      const [erows] = await p.execute<RowDataPacket[]>('SELECT ? AS v', ['z']);
      assert.equal(erows[0]!.v, 'z');
      const conn = await p.getConnection();
      await conn.beginTransaction();
      const [[a]] = await conn.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
      const [[b]] = await conn.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
      assert.equal(a!.id, b!.id);
      await conn.commit();
      conn.release();
      assert.equal(typeof p.pool.stats, 'function');
      assert.equal(p.pool.state().total >= 1, true);
    } finally {
      await p.end();
    }
  });

  test('errors from the server reject with mysql2 error codes', async () => {
    const p = createPromisePool({ ...dbOptions() });
    try {
      await assert.rejects(p.query('SELECT * FROM no_such_table_kap'), (e: { code: string }) => {
        assert.equal(e.code, 'ER_NO_SUCH_TABLE');
        return true;
      });
    } finally {
      await p.end();
    }
  });
});

/** `promise`, or a clear failure after `ms` (for an event that comes within milliseconds). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

describe("mysql2's own tests rely on these", () => {
  /** SELECT statements this session has run (SHOW STATUS is not one). */
  const selects = async (c: PoolConnection): Promise<number> =>
    Number((await q(c, "SHOW SESSION STATUS LIKE 'Com_select'"))[0]!.Value);

  test("a new connection runs nothing before the caller's first command; wait_timeout is read once per pool, on an idle connection", async () => {
    const p = pool({ connectionLimit: 2, idlePingInterval: 60_000 });
    const [a, b] = await Promise.all([getConn(p), getConn(p)]);
    assert.equal((await selects(a!)) + (await selects(b!)), 0, 'no SELECT before the caller’s');
    a!.release();
    b!.release();
    // The read is due once a connection has idled 500 ms (health-monitor.ts): a timed wait on
    // purpose, the read is what is observed, with ample room for a loaded machine.
    await new Promise((r) => setTimeout(r, 2500));
    const [c, d] = await Promise.all([getConn(p), getConn(p)]);
    assert.deepEqual(new Set([c, d]), new Set([a, b]), 'the same two connections');
    assert.equal(
      (await selects(c!)) + (await selects(d!)),
      1,
      'one SELECT @@wait_timeout for the pool, however long both idled',
    );
    c!.release();
    d!.release();
  });

  test("an idle connection the server closes emits mysql2's 'error', as a connection of mysql2's pool does", async () => {
    const lost = async (p: {
      on(event: 'connection', cb: (c: PoolConnection) => void): unknown;
      getConnection(cb: (e: unknown, c: PoolConnection) => void): void;
    }): Promise<unknown> => {
      const errors: Array<Promise<unknown>> = [];
      p.on('connection', (c) => errors.push(once(c, 'error').then(([e]) => e)));
      const c = await new Promise<PoolConnection>((resolve, reject) =>
        p.getConnection((e, conn) => (e ? reject(e as Error) : resolve(conn))),
      );
      const id = c.threadId;
      c.release();
      await adminQuery(`KILL ${id}`);
      assert.equal(errors.length, 1);
      return within(errors[0]!, 10_000, "the killed idle connection's 'error'");
    };
    const theirs = mysql.createPool({ ...dbOptions(), connectionLimit: 1 });
    try {
      const expected = (await lost(theirs as never)) as { code?: string; fatal?: boolean };
      const ours = pool({ connectionLimit: 1, idlePingInterval: 0 });
      const got = (await lost(ours as never)) as { code?: string; fatal?: boolean };
      assert.equal(got.code, expected.code);
      assert.equal(got.fatal, true);
      // And the pool has forgotten it: the next caller gets a new connection.
      const [rows] = await ours.promise().query<RowDataPacket[]>('SELECT 1 AS one');
      assert.equal(rows[0]!.one, 1);
      assert.equal(ours.stats().dead['socket-end'] + ours.stats().dead['socket-error'], 1);
    } finally {
      await new Promise<void>((r) => theirs.end(() => r()));
    }
  });

  test('pool.config.connectionLimit lowered at runtime is honoured, as in mysql2; raised, it stops at the limit of createPool', async () => {
    const p = pool({ connectionLimit: 3, acquireTimeout: 0 });
    p.config.connectionLimit = 1;
    assert.equal(p.stats().max, 1);
    const first = await getConn(p);
    let enqueued = 0;
    p.on('enqueue', () => enqueued++);
    const second = getConn(p);
    assert.equal(enqueued, 1, 'the second caller waits: the limit is 1');
    assert.equal(p.state().pending, 0, 'and no connection is being opened for it');
    first.release();
    const again = await second;
    assert.equal(again, first, 'it got the released connection');
    // Raised again: new connections up to the new limit.
    p.config.connectionLimit = 2;
    const other = await getConn(p);
    assert.notEqual(other, first);
    assert.equal(p.stats().created, 2);
    // Above the limit createPool was given (3), the pool stays at 3.
    p.config.connectionLimit = 10;
    assert.equal(p.stats().max, 3);
    const third = await getConn(p);
    const fourth = getConn(p);
    assert.equal(enqueued, 2, 'the fourth caller waits: three is the most');
    assert.equal(p.state().pending, 0);
    third.release();
    (await fourth).release();
    again.release();
    other.release();
    assert.equal(p.stats().created, 3);
    // A value mysql2 would read as "unlimited" (0), or no number at all, is the createPool limit.
    for (const value of [0, Number.NaN, -1, 1.5]) {
      p.config.connectionLimit = value;
      assert.equal(p.stats().max, 3, String(value));
    }
  });
});
