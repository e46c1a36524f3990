/**
 * createPoolCluster (issue 9): mysql2's PoolCluster API and semantics over keepalive pools,
 * against the real server, from the callback and the promise entry.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import type { PoolConnection, RowDataPacket } from 'mysql2';
import {
  ConfigError,
  KeepalivePool,
  KeepalivePoolCluster,
  createPoolCluster,
} from '../../src/index.js';
import type { PoolCluster } from '../../src/index.js';
import { createPoolCluster as createPromisePoolCluster } from '../../src/promise.js';
import { dbOptions } from '../support/db.js';

function getConn(c: PoolCluster, pattern?: string, selector?: string): Promise<PoolConnection> {
  return new Promise((resolve, reject) => {
    const cb = (e: NodeJS.ErrnoException | null, conn: PoolConnection): void =>
      e ? reject(e) : resolve(conn);
    if (pattern === undefined) c.getConnection(cb);
    else if (selector === undefined) c.getConnection(pattern, cb);
    else c.getConnection(pattern, selector, cb);
  });
}
const clusterId = (conn: PoolConnection): string =>
  (conn as unknown as { _clusterId: string })._clusterId;
const end = (c: PoolCluster): Promise<void> =>
  new Promise((resolve, reject) => c.end((e) => (e ? reject(e) : resolve())));

/** A port on loopback where nothing listens: connecting fails with ECONNREFUSED. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

describe('createPoolCluster (callback)', () => {
  test('every node is a keepalive pool named after its id; selectors RR and ORDER', async () => {
    const cluster = createPoolCluster();
    try {
      cluster.add('REPLICA1', dbOptions());
      cluster.add('REPLICA2', dbOptions());
      cluster.add(dbOptions()); // CLUSTER::1
      cluster.add('REPLICA1', { ...dbOptions(), connectionLimit: 1 }); // an existing id is ignored
      const pools = cluster.pools();
      assert.deepEqual([...pools.keys()], ['REPLICA1', 'REPLICA2', 'CLUSTER::1']);
      for (const [id, pool] of pools) {
        assert.ok(pool instanceof KeepalivePool);
        assert.equal(pool.name, id);
      }
      assert.equal(pools.get('REPLICA1')?.options.connectionLimit, 10);
      const rr: string[] = [];
      for (let i = 0; i < 4; i++) {
        const conn = await getConn(cluster, 'REPLICA*');
        rr.push(clusterId(conn));
        conn.release();
      }
      assert.deepEqual(rr, ['REPLICA1', 'REPLICA2', 'REPLICA1', 'REPLICA2']);
      const order: string[] = [];
      for (let i = 0; i < 3; i++) {
        const conn = await getConn(cluster, 'REPLICA*', 'ORDER');
        order.push(clusterId(conn));
        conn.release();
      }
      assert.deepEqual(order, ['REPLICA1', 'REPLICA1', 'REPLICA1']);
      const random = await getConn(cluster, '*', 'RANDOM');
      assert.match(clusterId(random), /^(REPLICA1|REPLICA2|CLUSTER::1)$/);
      random.release();
    } finally {
      await end(cluster);
    }
  });

  test('of(pattern).query and .execute run on a node and release the connection', async () => {
    const cluster = createPoolCluster();
    try {
      cluster.add('A', dbOptions());
      const ns = cluster.of('A');
      const rows = await new Promise<RowDataPacket[]>((resolve, reject) =>
        ns.query('SELECT 1 AS one', (e: unknown, r: RowDataPacket[]) =>
          e ? reject(e) : resolve(r),
        ),
      );
      assert.deepEqual(rows, [{ one: 1 }]);
      const exec = await new Promise<RowDataPacket[]>((resolve, reject) =>
        ns.execute('SELECT ? AS two', [2], (e: unknown, r: RowDataPacket[]) =>
          e ? reject(e) : resolve(r),
        ),
      );
      assert.deepEqual(exec, [{ two: 2 }]);
      const state = cluster.pools().get('A')?.state();
      assert.equal(state?.active, 0, 'both connections went back');
    } finally {
      await end(cluster);
    }
  });

  test('MYSQL_* fill in what a node config does not set, exactly as for createPool', async () => {
    const db = dbOptions();
    const env = {
      MYSQL_HOST: db.host,
      MYSQL_PORT: String(db.port),
      MYSQL_USER: db.user,
      MYSQL_PASSWORD: db.password,
      MYSQL_DATABASE: db.database,
      MYSQL_IDLE_PING_INTERVAL: '30000',
      MYSQL_CONNECTION_LIMIT: '3',
    };
    const cluster = new KeepalivePoolCluster({}, env) as unknown as PoolCluster;
    try {
      cluster.add('FROM_ENV', {});
      cluster.add('OWN', { idlePingInterval: 60_000, name: 'own-name' });
      const a = cluster.pools().get('FROM_ENV');
      const b = cluster.pools().get('OWN');
      assert.equal(a?.options.idlePingInterval, 30_000);
      assert.equal(a?.options.connectionLimit, 3);
      assert.equal(a?.options.sources.idlePingInterval, 'env');
      assert.equal(b?.options.idlePingInterval, 60_000);
      assert.equal(b?.options.connectionLimit, 3);
      assert.equal(b?.name, 'own-name');
      const conn = await getConn(cluster, 'FROM_ENV');
      conn.release();
    } finally {
      await end(cluster);
    }
  });

  test('a bad node config throws a ConfigError at add, naming the option', () => {
    const cluster = createPoolCluster();
    assert.throws(
      () => cluster.add('BAD', { ...dbOptions(), idlePingInterval: 5 }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.code === 'INVALID_CONFIG' &&
        /idlePingInterval must be/.test(err.message),
    );
    assert.equal(cluster.pools().size, 0);
    cluster.end();
  });

  test('a failing node goes offline and comes back (restoreNodeTimeout); canRetry moves on with a warn', async () => {
    const port = await closedPort();
    const cluster = createPoolCluster({ removeNodeErrorCount: 1, restoreNodeTimeout: 60_000 });
    try {
      cluster.add('DOWN', { ...dbOptions(), port });
      cluster.add('UP', dbOptions());
      const warned: Error[] = [];
      const offline: string[] = [];
      cluster.on('warn', (err: Error) => warned.push(err));
      cluster.on('offline', (id: string) => offline.push(id));
      const first = await getConn(cluster, '*', 'ORDER');
      assert.equal(clusterId(first), 'UP', 'retried on the next node');
      first.release();
      assert.equal(warned.length, 1);
      assert.equal((warned[0] as NodeJS.ErrnoException).code, 'ECONNREFUSED');
      assert.deepEqual(offline, ['DOWN']);
      // Offline, it is skipped without an attempt.
      const second = await getConn(cluster, '*', 'ORDER');
      assert.equal(clusterId(second), 'UP');
      second.release();
      assert.equal(warned.length, 1);
      assert.equal(cluster.stats().DOWN?.createErrors, 1);
    } finally {
      await end(cluster);
    }
  });

  test('without restoreNodeTimeout a failing node is removed (remove event) and its pool ended', async () => {
    const port = await closedPort();
    const cluster = createPoolCluster({ removeNodeErrorCount: 1, canRetry: false });
    try {
      cluster.add('DOWN', { ...dbOptions(), port });
      const down = cluster.pools().get('DOWN');
      const removed = once(cluster, 'remove');
      await assert.rejects(getConn(cluster, 'DOWN'), { code: 'ECONNREFUSED' });
      assert.deepEqual(await removed, ['DOWN']);
      assert.equal(cluster.pools().size, 0);
      assert.equal(down?.state().total, 0);
      await assert.rejects(getConn(cluster, 'DOWN'), { code: 'POOL_NOEXIST' });
    } finally {
      await end(cluster);
    }
  });

  test('remove(pattern) ends the matching pools; end() ends the rest; Symbol.dispose ends it', async () => {
    const cluster = createPoolCluster();
    cluster.add('R1', dbOptions());
    cluster.add('R2', dbOptions());
    cluster.add('W', dbOptions());
    const r1 = cluster.pools().get('R1') as unknown as KeepalivePool;
    const conn = await getConn(cluster, 'R1');
    conn.release();
    cluster.remove('R*');
    assert.deepEqual([...cluster.pools().keys()], ['W']);
    assert.equal(r1._closed, true);
    const w = cluster.pools().get('W') as unknown as KeepalivePool;
    cluster[Symbol.dispose]();
    assert.equal(w._closed, true);
    await end(cluster); // a second end is harmless and calls back
  });

  test('stats and metrics are per node, labelled by node', async () => {
    const cluster = createPoolCluster();
    try {
      cluster.add('A', dbOptions());
      cluster.add('B', dbOptions());
      const conn = await getConn(cluster, 'A');
      conn.release();
      assert.equal(cluster.stats().A?.acquires, 1);
      assert.equal(cluster.stats().B?.acquires, 0);
      const text = cluster.metrics();
      assert.match(text, /^mysql2_keepalive_pool_acquires_total\{pool="A",node="A"\} 1$/m);
      assert.match(text, /^mysql2_keepalive_pool_acquires_total\{pool="B",node="B"\} 0$/m);
    } finally {
      await end(cluster);
    }
  });
});

describe('createPoolCluster (promise)', () => {
  test('query, execute, of, getConnection resolve as mysql2/promise does; events carry the promise cluster', async () => {
    const cluster = createPromisePoolCluster({
      removeNodeErrorCount: 1,
      restoreNodeTimeout: 60_000,
    });
    try {
      cluster.add('A', dbOptions());
      const [rows] = await cluster.query('SELECT 1 AS one');
      assert.deepEqual(rows, [{ one: 1 }]);
      const [exec] = await cluster.of('A').execute('SELECT ? AS two', [2]);
      assert.deepEqual(exec, [{ two: 2 }]);
      const [nsRows] = await cluster.of('A*', 'ORDER').query('SELECT 3 AS three');
      assert.deepEqual(nsRows, [{ three: 3 }]);
      const conn = await cluster.getConnection('A');
      assert.equal(conn.constructor.name, 'PromisePoolConnection');
      const [r] = await conn.query('SELECT 4 AS four');
      assert.deepEqual(r, [{ four: 4 }]);
      conn.release();
      assert.ok(cluster.poolCluster instanceof KeepalivePoolCluster);
      assert.equal(cluster.poolCluster.stats().A?.acquires, 4);

      // canRetry: X-DOWN fails, the warn event fires with the promise cluster as `this`, and the
      // retry lands on X-UP.
      cluster.add('X-DOWN', { ...dbOptions(), port: await closedPort() });
      cluster.add('X-UP', dbOptions());
      const warned = new Promise<[unknown, Error]>((resolve) =>
        cluster.once('warn', function (this: unknown, err: Error) {
          resolve([this, err]);
        }),
      );
      const viaRetry = await cluster.getConnection('X-*', 'ORDER');
      viaRetry.release();
      const [self, err] = await warned;
      assert.equal(self, cluster);
      assert.equal((err as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    } finally {
      await cluster.end();
    }
  });

  test('Symbol.asyncDispose ends the cluster once', async () => {
    const cluster = createPromisePoolCluster();
    cluster.add('A', dbOptions());
    await cluster.query('SELECT 1');
    await cluster[Symbol.asyncDispose]();
    const pool = cluster.poolCluster.pools().get('A') as unknown as KeepalivePool;
    assert.equal(pool._closed, true);
    await cluster[Symbol.asyncDispose]();
  });
});
