/**
 * generic-pool is what bounds connection creation (src/connections.ts): every open connection and
 * every attempt in progress holds one of its slots, at most connectionCeiling() of them; a failed
 * attempt gives its slot back with the real error; end() drains it. Read through our stats() and
 * generic-pool's documented Pool properties (Connections#slots), never its internals.
 *
 * The server is reached through a TCP proxy on a port that starts closed, so the same pool first
 * sees ECONNREFUSED and then a reachable server.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { inspect } from 'node:util';
import type { PoolConnection } from 'mysql2';
import { resolveConfig } from '../../src/config.js';
import { Connections, connectionCeiling } from '../../src/connections.js';
import type { ConnectionRecord } from '../../src/health.js';
import { createPool } from '../../src/index.js';
import type { Pool } from '../../src/index.js';
import { ConnectionConfigClass } from '../../src/mysql2-parts.js';
import { Counters } from '../../src/stats.js';
import { dbOptions } from '../support/db.js';

const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));
after(() => assert.deepEqual(unhandled, [], 'no unhandled promise rejection'));

/** A TCP port on 127.0.0.1 with nothing listening: connects fail at once with ECONNREFUSED. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Starts piping `port` to the test server; counts the connections it accepts. */
async function proxyOn(port: number): Promise<{ accepted(): number; close(): Promise<void> }> {
  const db = dbOptions();
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    const upstream = net.connect(db.port, db.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return {
    accepted: () => accepted,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

describe('Connections: generic-pool holds the slots', () => {
  test('a failed attempt frees its slot with the real error; an open beyond the ceiling waits for one', async () => {
    const port = await closedPort();
    const db = dbOptions();
    const cfg = resolveConfig(
      {
        ...db,
        host: '127.0.0.1',
        port,
        connectionLimit: 1,
        connectTimeout: 2000,
        hedgeCheckout: false,
      },
      {},
    );
    assert.equal(connectionCeiling(cfg), 1, 'without hedges the ceiling is connectionLimit');
    assert.equal(
      connectionCeiling(resolveConfig({ connectionLimit: 3 }, {})),
      6,
      'with hedges (the default) twice connectionLimit: one hedge per connection being pinged',
    );
    const pool = Object.assign(new EventEmitter(), {
      _closed: false,
      releaseConnection: (): void => undefined,
      _removeConnection: (conn: PoolConnection): void => {
        const rec = connections.records.get(conn);
        if (rec) connections.destroy(rec);
      },
    });
    const connectionConfig = new ConnectionConfigClass({ ...cfg.connection });
    connectionConfig.pool = pool;
    const counters = new Counters();
    const opened: ConnectionRecord[] = [];
    const failed: unknown[] = [];
    const connections: Connections = new Connections(pool, cfg, connectionConfig, counters, {
      opened: (rec) => opened.push(rec),
      openFailed: (error) => failed.push(error),
      closed: () => undefined,
      // A caller waits: the back-off timers hold the process, as they do for a real caller.
      callersWaiting: () => true,
      connectionLimit: () => cfg.connectionLimit,
    });
    const open = (): Promise<unknown> => new Promise((resolve) => connections.open(resolve));
    const idle = { size: 0, borrowed: 0, pending: 0, max: 1 };

    for (let attempt = 1; attempt <= 3; attempt++) {
      const result = open();
      // generic-pool counts the attempt (size) for the open() waiting on it (pending).
      assert.deepEqual(connections.slots(), { size: 1, borrowed: 0, pending: 1, max: 1 });
      assert.equal(connections.canOpen(), false, 'our rule counts the attempt too');
      const error = (await result) as NodeJS.ErrnoException;
      assert.equal(error?.code, 'ECONNREFUSED', `attempt ${attempt}: ${inspect(error)}`);
      assert.equal(failed.at(-1), error, 'the openFailed hook got the same error');
      assert.deepEqual(connections.slots(), idle, `attempt ${attempt} gave its slot back`);
      assert.equal(connections.opening, 0);
      assert.equal(connections.canOpen(), true);
      assert.equal(counters.createErrors, attempt);
    }
    assert.equal(failed.length, 3);

    const proxy = await proxyOn(port);
    try {
      assert.equal(await open(), null);
      assert.equal(opened.length, 1);
      assert.equal(connections.size, 1);
      assert.equal(counters.created, 1);
      assert.deepEqual(connections.slots(), { size: 1, borrowed: 1, pending: 0, max: 1 });
      assert.equal(connections.canOpen(), false);

      // An open() that did not ask canOpen(): generic-pool starts no attempt (size stays 1) and
      // queues it until a slot is free.
      const second = open();
      assert.deepEqual(connections.slots(), { size: 1, borrowed: 1, pending: 1, max: 1 });
      connections.destroy(opened[0]!);
      // The destroyed connection's slot went to the waiting open() at once.
      assert.deepEqual(connections.slots(), { size: 1, borrowed: 0, pending: 1, max: 1 });
      assert.equal(await second, null);
      assert.equal(opened.length, 2);
      assert.equal(proxy.accepted(), 2, 'one TCP connection per attempt that was let through');
      assert.deepEqual(connections.slots(), { size: 1, borrowed: 1, pending: 0, max: 1 });

      // end(): the pool is closed first, then closeAll() gives every slot back and drains.
      pool._closed = true;
      await connections.closeAll();
      assert.deepEqual(connections.slots(), { ...idle });
      const refused = (await open()) as { code?: string };
      assert.equal(refused?.code, 'POOL_CLOSED', inspect(refused));
      assert.equal(failed.at(-1), refused);
      assert.deepEqual(connections.slots(), idle);
      assert.equal(proxy.accepted(), 2, 'nothing is opened after closeAll()');
    } finally {
      await proxy.close();
    }
  });

  test('through the pool: connectionLimit 1, attempts fail in a row with ECONNREFUSED, then one opens', async () => {
    const port = await closedPort();
    const db = dbOptions();
    const pool: Pool = createPool({
      ...db,
      host: '127.0.0.1',
      port,
      connectionLimit: 1,
      connectTimeout: 2000,
      acquireTimeout: 5000,
    });
    const getConn = (): Promise<PoolConnection> =>
      new Promise((resolve, reject) => pool.getConnection((e, c) => (e ? reject(e) : resolve(c))));
    let proxy: Awaited<ReturnType<typeof proxyOn>> | undefined;
    try {
      for (let attempt = 1; attempt <= 3; attempt++) {
        // A slot still held by a failed attempt would leave this caller waiting for its
        // acquireTimeout (POOL_ACQUIRE_TIMEOUT) instead of getting the server's real answer.
        const error = await getConn().then(
          () => assert.fail('connected to a closed port'),
          (e: NodeJS.ErrnoException) => e,
        );
        assert.equal(error.code, 'ECONNREFUSED', `attempt ${attempt}: ${inspect(error)}`);
        const s = pool.stats();
        assert.equal(s.createErrors, attempt);
        assert.deepEqual([s.total, s.pending, s.waiting], [0, 0, 0]);
      }
      proxy = await proxyOn(port);
      const conn = await getConn();
      const s = pool.stats();
      assert.deepEqual([s.total, s.active, s.created, s.pending], [1, 1, 1, 0]);
      conn.release();
    } finally {
      await new Promise<void>((r) => pool.end(() => r()));
      await proxy?.close();
    }
  });
});
