/**
 * The retry rule, both sides of the line, against the real server.
 *
 * Retried once, invisibly: a one-shot `pool.query` / `pool.execute` whose connection is known to
 * be closed when the command is about to be given to it (socket ended or destroyed, mysql2 in
 * its closed state). The command never reached the server, so running it elsewhere is safe.
 *
 * Never retried: anything that fails after the command was handed to the connection (the server
 * may have run it), and anything on a connection the caller holds (transactions). An INSERT
 * counter proves that a command cut off mid-flight ran exactly once.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { PoolConnection, RowDataPacket } from 'mysql2';
import { createPool } from '../../src/index.js';
import type { Pool } from '../../src/index.js';
import { adminQuery, dbOptions } from '../support/db.js';

const TABLE = `kapool_retry_hits_${process.pid}`;
const PROC = `kapool_retry_bump_${process.pid}`;

const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));

before(async () => {
  await adminQuery(
    `CREATE TABLE IF NOT EXISTS ${TABLE} (id INT AUTO_INCREMENT PRIMARY KEY, tag VARCHAR(64) NOT NULL)`,
  );
  // autocommit: the INSERT is committed before the SLEEP starts, so a command cut off during the
  // SLEEP has visibly run, and a second run would leave a second row.
  await adminQuery(`DROP PROCEDURE IF EXISTS ${PROC}`);
  await adminQuery(
    `CREATE PROCEDURE ${PROC}(IN t VARCHAR(64), IN s DOUBLE) BEGIN INSERT INTO ${TABLE} (tag) VALUES (t); DO SLEEP(s); END`,
  );
});

after(async () => {
  await adminQuery(`DROP PROCEDURE IF EXISTS ${PROC}`);
  await adminQuery(`DROP TABLE IF EXISTS ${TABLE}`);
  assert.deepEqual(unhandled, [], 'no unhandled promise rejection');
});

function getConn(p: Pool): Promise<PoolConnection> {
  return new Promise((resolve, reject) => p.getConnection((e, c) => (e ? reject(e) : resolve(c))));
}

function end(p: Pool): Promise<void> {
  return new Promise((resolve) => p.end(() => resolve()));
}

async function hits(tag: string): Promise<number> {
  const rows = await adminQuery<Array<{ n: number }>>(
    `SELECT COUNT(*) AS n FROM ${TABLE} WHERE tag = ?`,
    [tag],
  );
  return Number(rows[0]!.n);
}

function streamOf(conn: PoolConnection): net.Socket {
  return (conn as unknown as { stream: net.Socket }).stream;
}

/** A fresh pool with two warm connections; pings off so that nothing but the test touches them. */
async function warmPool(): Promise<{ pool: Pool; threads: number[] }> {
  const pool = createPool({
    ...dbOptions(),
    connectionLimit: 2,
    idlePingInterval: 0,
    validationSkipWindow: 60_000,
  });
  const conns = await Promise.all([getConn(pool), getConn(pool)]);
  const threads = conns.map((c) => c.threadId);
  for (const c of conns) c.release();
  return { pool, threads };
}

/**
 * The next connection handed out is closed right after the pool chose it and before the
 * command is given to it: the window the retry exists for (the pool's checks passed, then the
 * socket went). `how` picks what closed it.
 */
function closeNextAcquired(pool: Pool, how: 'end' | 'destroy'): Promise<number> {
  return new Promise((resolve) => {
    pool.once('acquire', (conn: PoolConnection) => {
      if (how === 'end') streamOf(conn).end();
      else streamOf(conn).destroy();
      resolve(conn.threadId);
    });
  });
}

describe('retried once, invisibly: the connection was closed before the command was sent', () => {
  for (const how of ['end', 'destroy'] as const) {
    test(`query and execute, callback and promise, socket ${how === 'end' ? 'ended' : 'destroyed'}`, async () => {
      const { pool, threads } = await warmPool();
      try {
        const calls: Array<[string, () => Promise<unknown>]> = [
          [
            'query (callback)',
            () =>
              new Promise((resolve, reject) =>
                pool.query('SELECT CONNECTION_ID() AS id', (err, rows) =>
                  err ? reject(err) : resolve(rows),
                ),
              ),
          ],
          [
            'query (promise)',
            async () => (await pool.promise().query('SELECT CONNECTION_ID() AS id'))[0],
          ],
          [
            'execute (callback)',
            () =>
              new Promise((resolve, reject) =>
                pool.execute('SELECT CONNECTION_ID() AS id', [], (err, rows) =>
                  err ? reject(err) : resolve(rows),
                ),
              ),
          ],
          [
            'execute (promise)',
            async () => (await pool.promise().execute('SELECT CONNECTION_ID() AS id'))[0],
          ],
        ];
        // Every connection this pool ever had: the one closed must be one of them (a retry opens
        // new ones along the way).
        const known = new Set(threads);
        pool.on('connection', (c: PoolConnection) => known.add(c.threadId));
        let retries = pool.stats().retries;
        for (const [what, call] of calls) {
          const closed = closeNextAcquired(pool, how);
          const rows = (await call()) as RowDataPacket[];
          const closedThread = await closed;
          assert.ok(known.has(closedThread), `${what}: closed one of the pool's own connections`);
          assert.notEqual(Number(rows[0]!.id), closedThread, `${what}: ran on another connection`);
          assert.equal(pool.stats().retries, ++retries, `${what}: counted as a retry`);
        }
        const s = pool.state();
        assert.equal(s.active, 0);
        assert.equal(s.waiting, 0);
      } finally {
        await end(pool);
      }
    });
  }

  test('a query without a callback (events and stream) is retried too', async () => {
    const { pool } = await warmPool();
    try {
      const closed = closeNextAcquired(pool, 'destroy');
      const rows: RowDataPacket[] = [];
      const errors: Error[] = [];
      await new Promise<void>((resolve) => {
        pool
          .query('SELECT CONNECTION_ID() AS id')
          .stream()
          .on('data', (r: RowDataPacket) => rows.push(r))
          .on('error', (e: Error) => errors.push(e))
          .on('close', () => resolve());
      });
      assert.deepEqual(errors, []);
      assert.equal(rows.length, 1);
      assert.notEqual(Number(rows[0]!.id), await closed);
      assert.equal(pool.stats().retries, 1);
    } finally {
      await end(pool);
    }
  });

  test('mysql2 in its closed state (the state it is in while it reports a fatal error)', async () => {
    const { pool } = await warmPool();
    try {
      pool.once('acquire', (conn: PoolConnection) => {
        // What mysql2 does first on a fatal error, before anything else is visible: from now on
        // it fails every command with "Can't add new command when connection is in closed state".
        const c = conn as unknown as { addCommand: unknown; _addCommandClosedState: unknown };
        c.addCommand = c._addCommandClosedState;
      });
      const [rows] = await pool.promise().query<RowDataPacket[]>('SELECT 1 AS one');
      assert.equal(rows[0]!.one, 1);
      assert.equal(pool.stats().retries, 1);
    } finally {
      await end(pool);
    }
  });

  test('only once: when the second connection is closed too, the caller gets mysql2\u2019s error', async () => {
    const { pool } = await warmPool();
    try {
      const closeEvery = (conn: PoolConnection): void => {
        streamOf(conn).destroy();
      };
      pool.on('acquire', closeEvery);
      const tag = `once-${Date.now()}`;
      await assert.rejects(pool.promise().query(`CALL ${PROC}(?, 0)`, [tag]), (err: Error) => {
        assert.equal(err.message, "Can't add new command when connection is in closed state");
        assert.equal((err as { fatal?: boolean }).fatal, true);
        return true;
      });
      // The stream style must hear of it too, not wait forever.
      const q = pool.query(`CALL ${PROC}(?, 0)`, [tag]);
      const err = await new Promise<Error>((resolve) => q.once('error', resolve));
      assert.match(err.message, /closed state/);
      pool.off('acquire', closeEvery);
      assert.equal(pool.stats().retries, 2, 'one retry per call');
      assert.equal(await hits(tag), 0, 'nothing ran');
      assert.equal(pool.state().active, 0);
    } finally {
      await end(pool);
    }
  });

  test('a socket closed while idle, in the same tick as the query: the caller never sees it', async () => {
    const { pool, threads } = await warmPool();
    try {
      // Both idle connections' sockets go away; the pool hears of it only after this tick.
      const conns = await Promise.all([getConn(pool), getConn(pool)]);
      for (const c of conns) c.release();
      for (const c of conns) streamOf(c).destroy();
      const [rows] = await pool.promise().query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
      assert.ok(!threads.includes(Number(rows[0]!.id)), 'a new connection answered');
      assert.equal(pool.state().active, 0);
    } finally {
      await end(pool);
    }
  });
});

describe('never retried: the command may have reached the server', () => {
  for (const api of ['query', 'execute'] as const) {
    test(`${api}: KILL during the command surfaces the error, and it ran exactly once`, async () => {
      const { pool } = await warmPool();
      try {
        const tag = `${api}-${Date.now()}`;
        let thread = 0;
        pool.once('acquire', (conn: PoolConnection) => (thread = conn.threadId));
        const sql = `CALL ${PROC}(?, 5)`;
        const running = (
          api === 'query' ? pool.promise().query(sql, [tag]) : pool.promise().execute(sql, [tag])
        ).then(
          () => null,
          (e: Error & { code?: string }) => e,
        );
        // The INSERT is committed: the command has run. Now cut the connection under it.
        // Polling the table: the server has no event for "row committed".
        const deadline = Date.now() + 10_000;
        while ((await hits(tag)) === 0) {
          assert.ok(Date.now() < deadline, 'the CALL never inserted its row');
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.ok(thread > 0);
        await adminQuery(`KILL ${thread}`);
        const err = await running;
        assert.ok(err, 'the caller gets an error');
        assert.ok(
          ['ER_CONNECTION_KILLED', 'PROTOCOL_CONNECTION_LOST', 'ECONNRESET'].includes(
            String(err.code),
          ),
          `unexpected ${err.code}: ${err.message}`,
        );
        assert.equal(pool.stats().retries, 0, 'not retried');
        assert.equal(pool.state().active, 0, 'nothing left running');
        assert.equal(await hits(tag), 1, 'ran exactly once');
      } finally {
        await end(pool);
      }
    });
  }

  test('the server closed the connection but Node has not read its FIN yet: reported, not retried', async (t) => {
    const { pool, threads } = await warmPool();
    try {
      const tag = `fin-${Date.now()}`;
      // KILL from a child process while this event loop is blocked: the server closes the idle
      // connection and its FIN waits unread in our kernel. The pool cannot know; the query goes
      // onto a socket the server has already left. From here this looks exactly like a server
      // that died while running it, so the pool must not retry it.
      const mysqlArgs = [
        '-h',
        dbOptions().host,
        '-P',
        String(dbOptions().port),
        '-u',
        dbOptions().user,
      ];
      if (dbOptions().password) mysqlArgs.push(`-p${dbOptions().password}`);
      execFileSync('mariadb', [...mysqlArgs, '-e', `KILL ${threads[threads.length - 1]}`]);
      const err = await pool
        .promise()
        .query(`CALL ${PROC}(?, 0)`, [tag])
        .then(
          () => null,
          (e: Error & { code?: string }) => e,
        );
      t.diagnostic(`outcome: ${err ? `${err.code}: ${err.message}` : 'answered'}`);
      if (err) {
        assert.ok(
          ['PROTOCOL_CONNECTION_LOST', 'ECONNRESET', 'EPIPE'].includes(String(err.code)),
          `unexpected ${err.code}: ${err.message}`,
        );
        assert.equal(pool.stats().retries, 0, 'not retried');
        assert.equal(await hits(tag), 0, 'the server never ran it');
      } else {
        // The pool read the FIN first after all (a slow KILL): the dead connection was evicted
        // while idle and the command went to the other one, once. Not a retry either way: a retry
        // after the command was handed to a connection is exactly what must never happen.
        assert.equal(pool.stats().retries, 0, 'not retried');
        assert.equal(await hits(tag), 1);
      }
      assert.equal(pool.state().active, 0);
    } finally {
      await end(pool);
    }
  });

  test('a connection the caller holds is never retried (transactions stay where they are)', async () => {
    const { pool } = await warmPool();
    try {
      const conn = await getConn(pool);
      await conn.promise().beginTransaction();
      streamOf(conn).destroy();
      await assert.rejects(conn.promise().query('SELECT 1'));
      conn.release();
      assert.equal(pool.stats().retries, 0);
      assert.equal(pool.state().active, 0);
    } finally {
      await end(pool);
    }
  });
});
