/**
 * Bounded failure with a real server and real sockets:
 *  - the TCP options (TCP_USER_TIMEOUT, TCP_KEEPIDLE/KEEPINTVL/KEEPCNT) really are on every pooled
 *    socket (read back with getsockopt), and the pool works, and says so once, without
 *    net-keepalive;
 *  - a connection whose in-flight command fails with the socket's ETIMEDOUT leaves the pool, and
 *    the caller hears of it even for a query without a callback;
 *  - with the database down (nothing listening, a server that never answers, bad credentials)
 *    callers fail within about connectTimeout / acquireTimeout with the real cause and the pool
 *    state, queueLimit and acquireTimeout hold, and a 10 s outage with callers hammering costs
 *    next to no CPU (no busy retry loop).
 * The kernel's own ETIMEDOUT (a real partition) is in partition.test.ts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { inspect } from 'node:util';
import type { PoolConnection, RowDataPacket } from 'mysql2';
import { createPool } from '../../src/index.js';
import type { EvictedConnectionEvent, Pool, PoolState } from '../../src/index.js';
import { readSocketSettings, socketCapability } from '../../src/health.js';
import { dbOptions } from '../support/db.js';

const REPO_ROOT = path.resolve(__dirname, '..', '..');

const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));
after(() => assert.deepEqual(unhandled, [], 'no unhandled promise rejection'));

function getConn(p: Pool): Promise<PoolConnection> {
  return new Promise((resolve, reject) => p.getConnection((e, c) => (e ? reject(e) : resolve(c))));
}

function end(p: Pool): Promise<void> {
  return new Promise((resolve) => p.end(() => resolve()));
}

/** A TCP port on 127.0.0.1 with nothing listening: connects fail at once with ECONNREFUSED. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** A "server" that accepts TCP connections and never says a word: a hung database. */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => srv.close(r));
    },
  };
}

/** How a call ended and how long it took. */
async function settle(
  p: Promise<unknown>,
): Promise<{ ms: number; error: (Error & Record<string, unknown>) | null }> {
  const start = Date.now();
  try {
    await p;
    return { ms: Date.now() - start, error: null };
  } catch (e) {
    return { ms: Date.now() - start, error: e as Error & Record<string, unknown> };
  }
}

function assertPoolState(err: Record<string, unknown>, what: string): void {
  const state = err.poolState as PoolState | undefined;
  assert.ok(state, `${what}: error carries poolState`);
  for (const k of ['total', 'active', 'idle', 'waiting'] as const) {
    assert.equal(typeof state[k], 'number', `${what}: poolState.${k}`);
  }
}

describe('TCP options on pooled sockets', () => {
  test('TCP_USER_TIMEOUT, TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT land on every socket', async () => {
    assert.equal(socketCapability().available, true, 'net-keepalive loads on this machine');
    const pool = createPool({
      ...dbOptions(),
      connectionLimit: 3,
      keepAliveInitialDelay: 7000,
      keepAliveInterval: 2000,
      keepAliveCount: 5,
      tcpUserTimeout: 17_000,
    });
    try {
      const conns = await Promise.all([getConn(pool), getConn(pool), getConn(pool)]);
      for (const conn of conns) {
        assert.deepEqual(readSocketSettings(conn), {
          keepAliveEnabled: true,
          keepAliveIdle: 7000,
          keepAliveInterval: 2000,
          keepAliveCount: 5,
          tcpUserTimeout: 17_000,
        });
        conn.release();
      }
    } finally {
      await end(pool);
    }
  });

  test('the defaults: 60 s idle, 10 s interval, 3 probes, 90 s user timeout', async () => {
    const pool = createPool({ ...dbOptions(), connectionLimit: 1 });
    try {
      const conn = await getConn(pool);
      assert.deepEqual(readSocketSettings(conn), {
        keepAliveEnabled: true,
        keepAliveIdle: 60_000,
        keepAliveInterval: 10_000,
        keepAliveCount: 3,
        tcpUserTimeout: 90_000,
      });
      // With a user timeout the kernel ignores TCP_KEEPCNT and drops an idle connection at the
      // first probe tick where nothing has been heard for tcpUserTimeout; the defaults put that
      // tick after keepAliveCount unanswered probes, exactly where TCP_KEEPCNT would.
      const o = pool.options;
      assert.equal(
        o.tcpUserTimeout,
        o.keepAliveInitialDelay + o.keepAliveCount * o.keepAliveInterval,
      );
      conn.release();
    } finally {
      await end(pool);
    }
  });

  test('tcpUserTimeout 0 leaves TCP_USER_TIMEOUT off', async () => {
    const pool = createPool({ ...dbOptions(), connectionLimit: 1, tcpUserTimeout: 0 });
    try {
      const conn = await getConn(pool);
      assert.equal(readSocketSettings(conn).tcpUserTimeout, 0);
      conn.release();
    } finally {
      await end(pool);
    }
  });

  test('without net-keepalive the pool works on Node keepalive alone and says so once', async () => {
    const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>(
      (resolve, reject) => {
        execFile(
          process.execPath,
          [
            '--require',
            './test/fixtures/no-net-keepalive.cjs',
            '--import',
            'tsx',
            'test/fixtures/pool-without-net-keepalive.ts',
          ],
          {
            cwd: REPO_ROOT,
            timeout: 60_000,
            env: { ...process.env, DEBUG: 'mysql2-keepalive-pool:health', DEBUG_COLORS: '0' },
          },
          (err, out, errOut) =>
            err
              ? reject(new Error(`${err.message}\n${errOut}`))
              : resolve({ stdout: out, stderr: errOut }),
        );
      },
    );
    const res = JSON.parse(stdout.trim().split('\n').pop()!) as {
      capability: { available: boolean; reason?: string };
      results: Array<{ rows: number; timer: string | null; readback: object }>;
    };
    assert.equal(res.capability.available, false);
    assert.match(res.capability.reason ?? '', /net-keepalive could not be loaded/);
    // Two pools, two connections each, plus a one-shot query per pool: all answered.
    assert.equal(res.results.length, 6);
    for (const r of res.results) assert.equal(r.rows, 1);
    // Node's own keepalive is still on every socket (the kernel's timer, as `ss` shows it).
    const timers = res.results.filter((r) => r.timer !== null);
    assert.equal(timers.length, 4);
    for (const r of timers) assert.match(r.timer!, /^keepalive,/);
    const notes = stderr.split('\n').filter((l) => l.includes('TCP_USER_TIMEOUT not set'));
    assert.equal(notes.length, 1, `one debug message, got:\n${stderr}`);
    assert.match(notes[0]!, /falling back to Node keepalive only/);
  });
});

describe('a connection that fails in flight leaves the pool', () => {
  /** What the kernel reports when TCP_USER_TIMEOUT expires: a socket error ETIMEDOUT. */
  function userTimeoutError(): Error {
    return Object.assign(new Error('read ETIMEDOUT'), {
      code: 'ETIMEDOUT',
      errno: -110,
      syscall: 'read',
    });
  }

  test('held connection: the query fails with ETIMEDOUT and the connection is evicted', async () => {
    const pool = createPool({ ...dbOptions(), connectionLimit: 2, idlePingInterval: 0 });
    try {
      const conn = await getConn(pool);
      const thread = conn.threadId;
      const evicted = once(pool, 'evicted') as Promise<[EvictedConnectionEvent]>;
      const query = settle(conn.promise().query('SELECT SLEEP(5)'));
      (conn as unknown as { stream: net.Socket }).stream.destroy(userTimeoutError());
      const { error, ms } = await query;
      assert.equal(error?.code, 'ETIMEDOUT');
      assert.equal(error?.fatal, true);
      assert.ok(ms < 2000, `failed at once, took ${ms} ms`);
      const [ev] = await evicted;
      assert.deepEqual(ev, { threadId: thread, reason: 'socket-error' });
      conn.release(); // what a caller's finally block does: harmless
      assert.deepEqual(pick(pool.state()), { total: 0, active: 0, idle: 0, waiting: 0 });
      const [rows] = await pool.promise().query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
      assert.notEqual(Number(rows[0]!.id), thread, 'the next caller gets a new connection');
    } finally {
      await end(pool);
    }
  });

  test('one-shot query, with and without a callback: the caller hears of it, never waits', async () => {
    const pool = createPool({ ...dbOptions(), connectionLimit: 1, idlePingInterval: 0 });
    try {
      for (const style of ['promise', 'events'] as const) {
        // Cut the socket once the query has been written (the `acquire` handler runs before
        // the query is sent; setImmediate runs after).
        pool.once('acquire', (conn: PoolConnection) =>
          setImmediate(() =>
            (conn as unknown as { stream: net.Socket }).stream.destroy(userTimeoutError()),
          ),
        );
        const evicted = once(pool, 'evicted');
        let error: (Error & { code?: string }) | undefined;
        if (style === 'promise') {
          error = (await settle(pool.promise().query('SELECT SLEEP(5)'))).error ?? undefined;
        } else {
          // A query without a callback: mysql2 would report the error on the connection only,
          // and this query would emit neither `error` nor `end`.
          const q = pool.query('SELECT SLEEP(5)');
          const errors: Error[] = [];
          q.on('error', (e: Error) => errors.push(e));
          await new Promise((resolve) => q.once('end', resolve));
          error = errors[0];
          assert.equal(errors.length, 1);
        }
        assert.equal(error?.code, 'ETIMEDOUT', `${style}: ${inspect(error)}`);
        await evicted;
        assert.deepEqual(pick(pool.state()), { total: 0, active: 0, idle: 0, waiting: 0 });
      }
      assert.equal(pool.stats().retries, 0, 'an error after sending is never retried');
    } finally {
      await end(pool);
    }
  });

  test('end() lets a running query finish first, as mysql2 does, then closes', async () => {
    const pool = createPool({ ...dbOptions(), connectionLimit: 1 });
    const conn = await pool.promise().getConnection();
    // Sent before end() is called: it is on the wire.
    const query = settle(conn.query('SELECT SLEEP(1) AS s'));
    let endedAt = 0;
    const ended = end(pool).then(() => (endedAt = Date.now()));
    const { error } = await query;
    const answeredAt = Date.now();
    assert.equal(error, null);
    await ended;
    assert.ok(endedAt >= answeredAt, 'end() called back after the running query was answered');
    assert.equal(pool.state().total, 0);
  });
});

describe('the database is down', () => {
  test('nothing listening: ECONNREFUSED at once, with the pool state', async () => {
    const pool = createPool({
      host: '127.0.0.1',
      port: await closedPort(),
      user: 'root',
      connectionLimit: 2,
      connectTimeout: 2000,
      acquireTimeout: 5000,
    });
    try {
      const viaGet = await settle(getConn(pool));
      const viaQuery = await settle(pool.promise().query('SELECT 1'));
      for (const [what, r] of [
        ['getConnection', viaGet],
        ['query', viaQuery],
      ] as const) {
        assert.equal(r.error?.code, 'ECONNREFUSED', `${what}: ${inspect(r.error)}`);
        assertPoolState(r.error!, what);
        assert.ok(r.ms < 3 * 2000, `${what}: took ${r.ms} ms`);
      }
    } finally {
      await end(pool);
    }
  });

  test('a server that never answers: ETIMEDOUT after connectTimeout, or POOL_ACQUIRE_TIMEOUT first', async () => {
    const hung = await silentServer();
    const slowConnect = createPool({
      host: '127.0.0.1',
      port: hung.port,
      user: 'root',
      connectionLimit: 1,
      connectTimeout: 1000,
      acquireTimeout: 8000,
    });
    const shortAcquire = createPool({
      host: '127.0.0.1',
      port: hung.port,
      user: 'root',
      connectionLimit: 1,
      connectTimeout: 4000,
      acquireTimeout: 500,
    });
    try {
      const [a, b] = await Promise.all([
        settle(slowConnect.promise().query('SELECT 1')),
        settle(getConn(shortAcquire)),
      ]);
      assert.equal(a.error?.code, 'ETIMEDOUT', inspect(a.error));
      assertPoolState(a.error!, 'connect timeout');
      assert.ok(a.ms < 3 * 1000, `connectTimeout 1000 ms, failed after ${a.ms} ms`);
      assert.equal(b.error?.code, 'POOL_ACQUIRE_TIMEOUT', inspect(b.error));
      assertPoolState(b.error!, 'acquire timeout');
      assert.ok(b.ms < 3 * 500, `acquireTimeout 500 ms, failed after ${b.ms} ms`);
    } finally {
      await Promise.all([end(slowConnect), end(shortAcquire)]);
      await hung.close();
    }
  });

  test('bad credentials: ER_ACCESS_DENIED_ERROR, and the password is nowhere in the error', async () => {
    const secret = 'not-the-password-9f3c';
    const pool = createPool({
      ...dbOptions(),
      user: 'kapool_nobody',
      password: secret,
      connectionLimit: 2,
    });
    try {
      const r = await settle(pool.promise().query('SELECT 1'));
      assert.equal(r.error?.code, 'ER_ACCESS_DENIED_ERROR', inspect(r.error));
      assertPoolState(r.error!, 'access denied');
      assert.ok(!inspect(r.error, { depth: 5 }).includes(secret));
      assert.ok(!JSON.stringify(r.error).includes(secret));
    } finally {
      await end(pool);
    }
  });

  test('queueLimit and acquireTimeout still hold while every connection attempt fails', async () => {
    const pool = createPool({
      host: '127.0.0.1',
      port: await closedPort(),
      user: 'root',
      connectionLimit: 1,
      queueLimit: 2,
      connectTimeout: 1000,
      acquireTimeout: 1500,
    });
    try {
      let maxQueued = 0;
      pool.on('enqueue', () => {
        const s = pool.state();
        maxQueued = Math.max(maxQueued, s.waiting - s.pending);
      });
      const results = await Promise.all(Array.from({ length: 8 }, () => settle(getConn(pool))));
      const codes = results.map((r) => r.error?.code);
      // As in mysql2: one caller starts a connection attempt, queueLimit more may wait for it,
      // the rest are refused at once.
      assert.equal(codes.filter((c) => c === 'POOL_QUEUE_LIMIT').length, 8 - 1 - 2, `${codes}`);
      for (const r of results) {
        assert.ok(r.error, 'every caller fails');
        assert.ok(
          ['POOL_QUEUE_LIMIT', 'ECONNREFUSED', 'POOL_ACQUIRE_TIMEOUT'].includes(
            String(r.error.code),
          ),
          inspect(r.error),
        );
        assertPoolState(r.error, String(r.error.code));
        assert.ok(r.ms < 3 * 1500, `bounded by acquireTimeout: ${r.ms} ms`);
      }
      assert.ok(maxQueued <= 2, `queue never above queueLimit, saw ${maxQueued}`);
      assert.deepEqual(pick(pool.state()), { total: 0, active: 0, idle: 0, waiting: 0 });
    } finally {
      await end(pool);
    }
  });

  test('a 10 s outage with callers hammering: every call fails in bounded time, CPU stays idle', async (t) => {
    const OUTAGE_MS = 10_000;
    const ACQUIRE_TIMEOUT = 3000;
    const pool = createPool({
      host: '127.0.0.1',
      port: await closedPort(),
      user: 'root',
      connectionLimit: 4,
      connectTimeout: 1000,
      acquireTimeout: ACQUIRE_TIMEOUT,
    });
    try {
      const codes = new Map<string, number>();
      let calls = 0;
      let slowest = 0;
      let withoutState = 0;
      let withoutCause = 0;
      const stopAt = Date.now() + OUTAGE_MS;
      const cpuBefore = process.cpuUsage();
      const wallBefore = Date.now();
      // 20 callers, each retrying the moment its call fails: the worst a caller can do.
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          while (Date.now() < stopAt) {
            const r = await settle(pool.promise().query('SELECT 1'));
            calls++;
            slowest = Math.max(slowest, r.ms);
            const code = String(r.error?.code ?? 'ok');
            codes.set(code, (codes.get(code) ?? 0) + 1);
            if (!r.error?.poolState) withoutState++;
            // An acquire timeout names the real cause: the last connection attempt's error.
            const cause = (r.error?.cause ?? null) as { code?: string } | null;
            if (code === 'POOL_ACQUIRE_TIMEOUT' && cause?.code !== 'ECONNREFUSED') withoutCause++;
          }
        }),
      );
      const cpu = process.cpuUsage(cpuBefore);
      const wall = Date.now() - wallBefore;
      const cpuMs = (cpu.user + cpu.system) / 1000;
      const s = pool.stats();
      t.diagnostic(
        JSON.stringify({
          wall,
          cpuMs,
          calls,
          slowest,
          codes: Object.fromEntries(codes),
          createErrors: s.createErrors,
        }),
      );
      assert.ok(!codes.has('ok'));
      for (const code of codes.keys()) {
        assert.ok(['ECONNREFUSED', 'POOL_ACQUIRE_TIMEOUT'].includes(code), `unexpected ${code}`);
      }
      assert.ok(codes.has('ECONNREFUSED'), 'the real cause reaches callers');
      assert.equal(withoutState, 0, 'every error carries the pool state');
      assert.equal(withoutCause, 0, 'every acquire timeout carries ECONNREFUSED as its cause');
      assert.ok(slowest < 2 * ACQUIRE_TIMEOUT, `slowest call ${slowest} ms`);
      // A busy retry loop burns a whole core (~10 000 ms of CPU here) and makes thousands of
      // attempts; the back-off (50 ms doubling to 2 s) makes a few dozen.
      assert.ok(cpuMs < 0.25 * wall, `CPU ${cpuMs} ms in ${wall} ms`);
      assert.ok(s.createErrors < 200, `${s.createErrors} connection attempts`);
      assert.deepEqual(pick(pool.state()), { total: 0, active: 0, idle: 0, waiting: 0 });
    } finally {
      await end(pool);
    }
  });
});

function pick(s: PoolState): Pick<PoolState, 'total' | 'active' | 'idle' | 'waiting'> {
  return { total: s.total, active: s.active, idle: s.idle, waiting: s.waiting };
}
