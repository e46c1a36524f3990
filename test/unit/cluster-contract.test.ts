/**
 * The shape of mysql2's PoolCluster that src/cluster.ts builds on: `add` is the one method the
 * subclass overrides, and it writes exactly these fields. If a mysql2 upgrade changes them, this
 * test fails before the cluster misbehaves.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import mysql from 'mysql2';

interface Internals {
  _nodes: Record<string, Record<string, unknown>>;
  _serviceableNodeIds: string[];
  _lastId: number;
  _closed: boolean;
  _clearFindCaches(): void;
  _findCaches: Record<string, unknown>;
  _findNodeIds(pattern: string, includeOffline?: boolean): string[];
  add(id: unknown, config?: unknown): void;
  end(cb?: () => void): void;
}

test("mysql2's PoolCluster keeps its nodes where KeepalivePoolCluster.add writes them", async () => {
  const cluster = mysql.createPoolCluster() as unknown as Internals;
  assert.equal(cluster._lastId, 0);
  assert.deepEqual(cluster._nodes, {});
  assert.deepEqual(cluster._serviceableNodeIds, []);
  assert.equal(cluster._closed, false);
  // No connection is opened by add: mysql2's pool connects lazily.
  cluster.add({ host: '127.0.0.1' });
  cluster.add('REPLICA', { host: '127.0.0.1' });
  assert.equal(cluster._lastId, 1);
  assert.deepEqual(cluster._serviceableNodeIds, ['CLUSTER::1', 'REPLICA']);
  const node = cluster._nodes.REPLICA;
  assert.deepEqual(Object.keys(node ?? {}).sort(), ['_offlineUntil', 'errorCount', 'id', 'pool']);
  assert.equal(node?.id, 'REPLICA');
  assert.equal(node?.errorCount, 0);
  assert.equal(node?._offlineUntil, 0);
  // Lookups are cached per pattern; _clearFindCaches is how a new node becomes visible.
  assert.deepEqual(cluster._findNodeIds('REP*'), ['REPLICA']);
  assert.ok('REP*' in cluster._findCaches);
  cluster._clearFindCaches();
  assert.deepEqual(cluster._findCaches, {});
  await new Promise<void>((resolve) => cluster.end(() => resolve()));
});
