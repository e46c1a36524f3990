/**
 * Seeing what the pool does, against a real server: stats() naming, the `dead`/`evicted`/
 * `acquireTimeout`/`leak`/`leakReleased` events and their payloads, debug output (namespaces, the
 * pool name on every line, the configuration logged once and masked), `pool.metrics()`, and
 * `pool.healthCheck()` (idle connection, empty pool, stale connection, saturated pool, database
 * down, closed pool), which must never take a connection from a caller.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, afterEach, describe, test } from 'node:test';
import { format } from 'node:util';
import createDebug from 'debug';
import type { PoolConnection } from 'mysql2';
import { createPool, PoolError } from '../../src/index.js';
import type {
  AcquireTimeoutEvent,
  DeadConnectionEvent,
  EvictedConnectionEvent,
  LeakEvent,
  LeakReleasedEvent,
  Pool,
} from '../../src/index.js';
import { adminQuery, dbOptions } from '../support/db.js';

const pools: Pool[] = [];
function pool(extra: Record<string, unknown> = {}): Pool {
  const p = createPool({ ...dbOptions(), ...extra });
  pools.push(p);
  return p;
}
function end(p: Pool): Promise<void> {
  return new Promise((resolve) => p.end(() => resolve()));
}
after(async () => {
  await Promise.all(pools.map(end));
});

function getConn(p: Pool): Promise<PoolConnection> {
  return new Promise((resolve, reject) => p.getConnection((e, c) => (e ? reject(e) : resolve(c))));
}

const ANSI_COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

/** Captures every debug line of the library while `fn` runs (debug's own `log` hook). */
async function captureDebug(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const saved = { log: createDebug.log, namespaces: createDebug.disable() };
  createDebug.log = (...args: unknown[]) => {
    // Colours off in the test runner anyway; strip them in case stderr is a TTY.
    lines.push(format(...args).replace(ANSI_COLOUR, ''));
  };
  createDebug.enable('mysql2-keepalive-pool:*');
  try {
    await fn();
  } finally {
    createDebug.disable();
    if (saved.namespaces) createDebug.enable(saved.namespaces);
    createDebug.log = saved.log;
  }
  return lines;
}

/** `[namespace, message]` of a captured line (debug prefixes a date when not on a TTY). */
function parseLine(line: string): [string, string] {
  const m = /(mysql2-keepalive-pool:[a-z]+) ([\s\S]*)$/.exec(line);
  assert.ok(m, `a library debug line: ${line}`);
  return [m[1]!, m[2]!];
}

describe('stats() and events', () => {
  test('stats(): size = total, borrowed = active, max, and the counters move', async () => {
    const p = pool({ name: 'stats-naming', connectionLimit: 3 });
    const a = await getConn(p);
    const b = await getConn(p);
    const held = p.stats();
    assert.equal(held.total, 2);
    assert.equal(held.size, held.total);
    assert.equal(held.active, 2);
    assert.equal(held.borrowed, held.active);
    assert.equal(held.idle, 0);
    assert.equal(held.max, 3);
    assert.equal(held.created, 2);
    assert.equal(held.acquires, 2);
    a.release();
    b.release();
    const after = p.stats();
    assert.deepEqual([after.idle, after.borrowed, after.size], [2, 0, 2]);
    assert.equal(after.deadIdleMsMin, null);
    assert.deepEqual(after.deadIdleMsByReason['socket-end'], { recent: [], min: null });
    after.dead['socket-end'] = 99;
    assert.equal(p.stats().dead['socket-end'], 0, 'a fresh copy every call');
  });

  test('an idle connection killed on the server: `dead` and `evicted` with reason and idle age', async () => {
    const p = pool({ name: 'killed' });
    const c = await getConn(p);
    const id = c.threadId;
    c.release();
    const dead = once(p, 'dead') as Promise<[DeadConnectionEvent]>;
    const evicted = once(p, 'evicted') as Promise<[EvictedConnectionEvent]>;
    await adminQuery(`KILL ${id}`);
    const [d] = await dead;
    const [e] = await evicted;
    assert.equal(d.threadId, id);
    assert.ok(d.reason === 'socket-end' || d.reason === 'socket-error', d.reason);
    assert.ok(d.idleMs >= 0 && d.idleMs < 10_000, `idleMs ${d.idleMs}`);
    assert.deepEqual(e, { threadId: id, reason: d.reason });
    const s = p.stats();
    assert.equal(s.dead[d.reason], 1);
    assert.equal(s.destroyed, 1);
    assert.deepEqual(s.deadIdleMsRecent, [d.idleMs]);
    assert.equal(s.deadIdleMsMin, d.idleMs);
    assert.deepEqual(s.deadIdleMsByReason[d.reason], { recent: [d.idleMs], min: d.idleMs });
  });

  test('`acquireTimeout`: how long the caller waited and the pool state', async () => {
    const p = pool({ name: 'acq', connectionLimit: 1, acquireTimeout: 200 });
    const held = await getConn(p);
    const event = once(p, 'acquireTimeout') as Promise<[AcquireTimeoutEvent]>;
    const err = await getConn(p).then(
      () => null,
      (e: unknown) => e,
    );
    const [payload] = await event;
    assert.equal((err as PoolError).code, 'POOL_ACQUIRE_TIMEOUT');
    // Only the lower bound is asserted: a loaded machine may fire the timer late, never early.
    assert.ok(payload.waitedMs >= 190, `waited ${payload.waitedMs}`);
    assert.deepEqual(payload.poolState, {
      total: 1,
      active: 1,
      idle: 0,
      waiting: 1,
      pending: 0,
    });
    assert.equal(p.stats().acquireTimeouts, 1);
    held.release();
  });
});

describe('leak detection', () => {
  test('a connection held past the threshold: `leak` + debug warning with the acquiring stack; releasing it says so', async () => {
    let event: LeakEvent | undefined;
    let released: LeakReleasedEvent | undefined;
    const lines = await captureDebug(async () => {
      const p = pool({ name: 'leaky', leakDetectionThreshold: 1000 });
      // A named function, so that the stack of the acquiring code is recognisable.
      async function acquireForReport(): Promise<PoolConnection> {
        return getConn(p);
      }
      const leaked = once(p, 'leak') as Promise<[LeakEvent]>;
      const c = await acquireForReport();
      [event] = await leaked;
      const back = once(p, 'leakReleased') as Promise<[LeakReleasedEvent]>;
      c.release();
      [released] = await back;
      assert.equal(p.stats().leaks, 1);
    });
    assert.ok(event, 'leak event');
    assert.ok(event.heldMs >= 1000 && event.heldMs < 3000, `heldMs ${event.heldMs}`);
    assert.equal(typeof event.threadId, 'number');
    assert.match(event.stack ?? '', /^Error: Connection acquired here\n/);
    assert.match(event.stack ?? '', /acquireForReport .*operability\.test\.ts/);
    assert.doesNotMatch(
      event.stack!.split('\n')[1]!,
      /src[/\\]pool\.ts/,
      "the stack starts at the caller, not in the pool's frames",
    );
    assert.ok(released && released.heldMs >= event.heldMs, 'leakReleased');
    assert.equal(released.threadId, event.threadId);
    const warning = lines.find((l) => l.includes('possible leak'));
    assert.ok(warning, `debug warning among ${lines.length} lines`);
    assert.match(
      warning,
      /mysql2-keepalive-pool:pool leaky: possible leak: connection \d+ held for \d+ ms/,
    );
    assert.match(warning, /acquireForReport .*operability\.test\.ts/);
    assert.ok(
      lines.some((l) =>
        /leaky: connection \d+ reported as a possible leak was released after \d+ ms/.test(l),
      ),
    );
  });

  test('a connection released before the threshold is not reported', async () => {
    const p = pool({ name: 'not-leaky', leakDetectionThreshold: 1000 });
    let leaks = 0;
    p.on('leak', () => leaks++);
    const c = await getConn(p);
    c.release();
    // Idle past the threshold: the timer must have been cancelled by the release.
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(leaks, 0);
    assert.equal(p.stats().leaks, 0);
  });
});

describe('debug output', () => {
  test('namespaces per module, the pool name on every line, the config logged once and masked', async () => {
    const secret = 'Debug-Masked-Pw-77';
    const lines = await captureDebug(async () => {
      const p = pool({ name: 'dbg-pool', password: '', idlePingInterval: 1000 });
      const c = await getConn(p);
      c.release();
      const masked = pool({ name: 'dbg-masked', password: secret });
      await end(masked);
      await end(p);
    });
    assert.ok(lines.length >= 5, lines.join('\n'));
    const namespaces = new Set<string>();
    for (const line of lines) {
      const [ns, msg] = parseLine(line);
      namespaces.add(ns);
      assert.match(msg, /^(dbg-pool|dbg-masked|\(process\)): /, `pool name first: ${line}`);
    }
    assert.ok(namespaces.has('mysql2-keepalive-pool:config'), [...namespaces].join());
    assert.ok(namespaces.has('mysql2-keepalive-pool:pool'), [...namespaces].join());
    const configLines = lines.filter((l) => l.includes('resolved config'));
    assert.equal(configLines.filter((l) => l.includes('dbg-pool:')).length, 1, 'once per pool');
    const maskedLine = configLines.find((l) => l.includes('dbg-masked:'));
    assert.match(maskedLine ?? '', /password: '\*\*\*'/);
    assert.match(maskedLine ?? '', /keepAliveInitialDelay: 60000/);
    assert.ok(!lines.join('\n').includes(secret), 'the password never reaches debug output');
    assert.ok(lines.some((l) => /dbg-pool: connection \d+ opened/.test(l)));
  });
});

describe('metrics()', () => {
  test('the exposition of a live pool follows its stats', async () => {
    const p = pool({ name: 'metered', connectionLimit: 2 });
    const c = await getConn(p);
    const text = p.metrics();
    assert.match(text, /^mysql2_keepalive_pool_connections\{pool="metered",state="borrowed"\} 1$/m);
    assert.match(text, /^mysql2_keepalive_pool_connections_max\{pool="metered"\} 2$/m);
    assert.match(text, /^mysql2_keepalive_pool_acquires_total\{pool="metered"\} 1$/m);
    c.release();
    assert.match(
      p.metrics(),
      /^mysql2_keepalive_pool_connections\{pool="metered",state="idle"\} 1$/m,
    );
  });
});

/** A TCP proxy to the server whose existing flows can be frozen: bytes stop moving, nothing is
 * closed (a black hole for the connections open at that moment; new ones go through). */
async function freezableProxy(): Promise<{ port: number; freeze(): void; close(): void }> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  const frozen = new Set<[net.Socket, net.Socket]>();
  const { host, port } = dbOptions();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze() {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
        frozen.add([client, upstream]);
      }
      pairs.clear();
    },
    close() {
      server.close();
      for (const [client, upstream] of [...pairs, ...frozen]) {
        client.destroy();
        upstream.destroy();
      }
    },
  };
}

describe('healthCheck()', () => {
  let acquires = 0;
  afterEach(() => {
    acquires = 0;
  });
  const countAcquires = (p: Pool): void => {
    p.on('acquire', () => acquires++);
  };

  test('an empty pool: opens one connection (kept idle), without a borrow', async () => {
    const p = pool({ name: 'hc-empty' });
    countAcquires(p);
    await p.healthCheck();
    const s = p.stats();
    assert.deepEqual([s.created, s.idle, s.borrowed, s.acquires], [1, 1, 0, 0]);
    assert.equal(acquires, 0, 'no acquire event: callers see nothing');
    assert.deepEqual([s.healthChecks, s.healthCheckFailures], [1, 0]);
  });

  test('an idle connection is pinged, nothing is opened', async () => {
    const p = pool({ name: 'hc-idle' });
    const conn = await getConn(p);
    // Counts the COM_PINGs this very connection sends (a spy on the instance, nothing else).
    let pings = 0;
    const ping = conn.ping.bind(conn);
    conn.ping = ((...args: Parameters<typeof conn.ping>) => {
      pings++;
      return ping(...args);
    }) as typeof conn.ping;
    conn.release();
    await p.healthCheck();
    assert.equal(pings, 1, 'the first check pinged the idle connection');
    await p.healthCheck();
    assert.equal(pings, 2, 'and so did the second');
    const s = p.stats();
    assert.equal(s.created, 1);
    assert.equal(s.validations, 0);
    assert.equal(s.healthChecks, 2);
  });

  test('a stale idle connection is evicted, a fresh one answers: still healthy', async () => {
    const proxy = await freezableProxy();
    try {
      const p = pool({
        name: 'hc-stale',
        host: '127.0.0.1',
        port: proxy.port,
        validationTimeout: 200,
      });
      (await getConn(p)).release();
      proxy.freeze();
      const evicted = once(p, 'evicted') as Promise<[EvictedConnectionEvent]>;
      await p.healthCheck();
      const [e] = await evicted;
      assert.equal(e.reason, 'idle-ping-timeout');
      const s = p.stats();
      assert.equal(s.dead['idle-ping-timeout'], 1);
      assert.equal(s.created, 2, 'a replacement was opened');
      assert.equal(s.healthCheckFailures, 0);
    } finally {
      proxy.close();
    }
  });

  test('every connection borrowed, nothing released: fails after validationTimeout, opens nothing', async () => {
    const p = pool({ name: 'hc-busy', connectionLimit: 1, validationTimeout: 200 });
    countAcquires(p);
    const held = await getConn(p);
    // Idle past the evidence window: the held connection's last proof of life gets old.
    await new Promise((r) => setTimeout(r, 250));
    const started = Date.now();
    const err = await p.healthCheck().then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof PoolError, String(err));
    assert.equal(err.code, 'HEALTH_CHECK_FAILED');
    // The verdict of step 3 (after validationTimeout), not the overall budget running out.
    assert.match(err.message, /hc-busy: health check failed: no connection free to ping/);
    assert.doesNotMatch(err.message, /no verdict within/);
    assert.ok(Date.now() - started >= 190, 'it waited validationTimeout for a release first');
    assert.deepEqual((err as PoolError & { poolState: unknown }).poolState, {
      total: 1,
      active: 1,
      idle: 0,
      waiting: 0,
      pending: 0,
    });
    const s = p.stats();
    assert.deepEqual([s.created, s.total, s.healthCheckFailures], [1, 1, 1]);
    assert.equal(acquires, 1);
    held.release();
  });

  test('a waiting caller keeps its turn: the released connection goes to it, the check passes on that release', async () => {
    const p = pool({ name: 'hc-queue', connectionLimit: 1, validationTimeout: 1000 });
    const held = await getConn(p);
    await new Promise((r) => setTimeout(r, 1100)); // older than the evidence window
    const waiter = getConn(p);
    const check = p.healthCheck();
    assert.equal(p.state().waiting, 1);
    const heldId = held.threadId;
    held.release();
    await check;
    const next = await waiter;
    assert.equal(next.threadId, heldId, 'the caller got the connection');
    const s = p.stats();
    assert.equal(s.created, 1, 'never above connectionLimit');
    assert.equal(s.acquires, 2, 'the health check borrowed nothing');
    next.release();
  });

  test('database down: HEALTH_CHECK_FAILED with the real cause, quickly', async () => {
    const p = pool({ name: 'hc-down', host: '127.0.0.1', port: 1, connectTimeout: 2000 });
    const started = Date.now();
    const err = await p.healthCheck().then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof PoolError);
    assert.equal(err.code, 'HEALTH_CHECK_FAILED');
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    assert.match(err.message, /cannot connect: connect ECONNREFUSED/);
    assert.ok(Date.now() - started < 3 * (2000 + 2 * 1000));
    assert.equal(p.stats().healthCheckFailures, 1);
  });

  test('a closed pool: HEALTH_CHECK_FAILED caused by POOL_CLOSED', async () => {
    const p = pool({ name: 'hc-closed' });
    await end(p);
    const err = await p.healthCheck().then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof PoolError);
    assert.equal(err.code, 'HEALTH_CHECK_FAILED');
    assert.equal((err.cause as PoolError).code, 'POOL_CLOSED');
  });

  test('the promise pool reaches it through .pool', async () => {
    const p = pool({ name: 'hc-promise' });
    await p.promise().query('SELECT 1');
    await (p.promise() as unknown as { pool: Pool }).pool.healthCheck();
    assert.equal(p.stats().healthChecks, 1);
  });
});
