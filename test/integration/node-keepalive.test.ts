/**
 * What the pool relies on from Node and libuv, read back from the kernel with getsockopt, so a
 * Node version that behaves differently fails here (scripts/test-node-versions.sh runs this file
 * on Node 20, 22 and 24; DESIGN.md section 2):
 *
 *  - `socket.setKeepAlive(true, ms)` turns SO_KEEPALIVE on and sets TCP_KEEPIDLE = floor(ms/1000) s;
 *    since libuv 1.35 it also sets TCP_KEEPINTVL = 1 s and TCP_KEEPCNT = 10;
 *  - a delay below 1000 ms leaves the kernel's default idle time (tcp_keepalive_time) in place,
 *    which is why keepAliveInitialDelay must be >= 1000;
 *  - our overrides (TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT) land on pooled sockets and stay
 *    there across checkouts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { PoolConnection } from 'mysql2';
import { readSocketSettings, socketCapability } from '../../src/health.js';
import { KeepalivePool } from '../../src/pool.js';
import { dbOptions } from '../support/db.js';

let server: net.Server;
let port = 0;
const sockets: net.Socket[] = [];

before(async () => {
  server = net.createServer((s) => s.on('error', () => {}));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});
after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function connected(): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  sockets.push(s);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  return s;
}

/** What the kernel holds for a plain socket (readSocketSettings takes a connection's stream). */
function kernel(socket: net.Socket) {
  return readSocketSettings({ stream: socket } as unknown as PoolConnection);
}

/** The network namespace's default idle time before the first probe, ms. */
function kernelDefaultIdleMs(): number {
  return Number(fs.readFileSync('/proc/sys/net/ipv4/tcp_keepalive_time', 'utf8').trim()) * 1000;
}

describe(`Node ${process.version} (libuv ${process.versions.uv}) keepalive`, () => {
  test('getsockopt works here (Linux, net-keepalive loaded)', () => {
    assert.deepEqual(socketCapability(), { available: true });
  });

  for (const delayMs of [1000, 1500, 60_000, 7_200_000]) {
    test(`setKeepAlive(true, ${delayMs}): TCP_KEEPIDLE = ${Math.floor(delayMs / 1000)} s, TCP_KEEPINTVL = 1 s, TCP_KEEPCNT = 10`, async () => {
      const s = await connected();
      s.setKeepAlive(true, delayMs);
      assert.deepEqual(
        {
          enabled: kernel(s).keepAliveEnabled,
          idle: kernel(s).keepAliveIdle,
          interval: kernel(s).keepAliveInterval,
          count: kernel(s).keepAliveCount,
        },
        { enabled: true, idle: Math.floor(delayMs / 1000) * 1000, interval: 1000, count: 10 },
      );
    });
  }

  test('setKeepAlive(true, 500): below 1 s the kernel default idle time stays', async () => {
    const s = await connected();
    s.setKeepAlive(true, 500);
    const k = kernel(s);
    assert.equal(k.keepAliveEnabled, true);
    assert.equal(k.keepAliveIdle, kernelDefaultIdleMs());
  });

  test('setKeepAlive(false) turns SO_KEEPALIVE off', async () => {
    const s = await connected();
    s.setKeepAlive(true, 5000);
    s.setKeepAlive(false);
    assert.equal(kernel(s).keepAliveEnabled, false);
  });
});

describe('pooled sockets carry our settings on this Node version', () => {
  const pools: KeepalivePool[] = [];
  after(async () => {
    await Promise.all(pools.map((p) => new Promise<void>((r) => p.end(() => r()))));
  });
  const getConn = (pool: KeepalivePool): Promise<PoolConnection> =>
    new Promise((resolve, reject) => pool.getConnection((e, c) => (e ? reject(e) : resolve(c))));

  test('set on connect, kept across release and a validated checkout', async () => {
    const pool = new KeepalivePool(
      {
        ...dbOptions(),
        connectionLimit: 1,
        keepAliveInitialDelay: 30_500,
        keepAliveInterval: 2000,
        keepAliveCount: 5,
        tcpUserTimeout: 45_000,
        validationSkipWindow: 0,
        idlePingInterval: 0,
      },
      {},
    );
    pools.push(pool);
    const expected = {
      keepAliveEnabled: true,
      keepAliveIdle: 30_000,
      keepAliveInterval: 2000,
      keepAliveCount: 5,
      tcpUserTimeout: 45_000,
    };
    const first = await getConn(pool);
    assert.deepEqual(readSocketSettings(first), expected);
    const id = first.threadId;
    const validationsBefore = pool.stats().validations;
    first.release();
    // Idle past the 0 ms skip window (a timed wait on purpose): the next checkout is pinged.
    await new Promise((r) => setTimeout(r, 20));
    const again = await getConn(pool);
    try {
      assert.equal(again.threadId, id, 'the same connection');
      assert.equal(pool.stats().validations, validationsBefore + 1, 'it was pinged');
      assert.deepEqual(readSocketSettings(again), expected);
    } finally {
      again.release();
    }
  });
});
