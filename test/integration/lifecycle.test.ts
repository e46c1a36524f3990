/**
 * Process-level guarantees: an idle pool does not keep the process alive, end() leaves no timer
 * or socket behind, and the test run itself fails on an unhandled rejection.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { createPool } from '../../src/index.js';
import { dbOptions } from '../support/db.js';

const node = process.execPath;

test('an idle pool does not keep the process alive', () => {
  const res = spawnSync(node, ['--import', 'tsx', 'test/fixtures/idle-pool-exits.ts'], {
    encoding: 'utf8',
    timeout: 15000,
  });
  assert.equal(res.error, undefined, 'the child exited on its own before the 15 s limit');
  assert.equal(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout.trim().split('\n').pop()!);
  assert.equal(out.ok, true);
  assert.equal(out.rows[0].two, 2);
});

function poolHandles(): string[] {
  return process
    .getActiveResourcesInfo()
    .filter((r) => r === 'TCPSocketWrap' || r === 'Timeout' || r === 'TCPWRAP');
}

test('end() leaves no timer or socket behind', async () => {
  const before = poolHandles();
  const pool = createPool({
    ...dbOptions(),
    connectionLimit: 4,
    idlePingInterval: 1000,
    maxLifetime: 60000,
    leakDetectionThreshold: 5000,
    acquireTimeout: 5000,
  });
  const conns = await Promise.all(
    [1, 2, 3].map(
      () =>
        new Promise<import('mysql2').PoolConnection>((resolve, reject) =>
          pool.getConnection((e, c) => (e ? reject(e) : resolve(c))),
        ),
    ),
  );
  conns[0]!.release();
  conns[1]!.release();
  // conns[2] stays borrowed: end() closes it too, as mysql2 does.
  assert.ok(poolHandles().length > before.length, 'the pool did hold sockets and timers');
  await new Promise<void>((resolve) => pool.end(() => resolve()));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(poolHandles(), before);
});

test('the test runner fails a file that leaves a promise rejection unhandled', () => {
  // Without NODE_TEST_CONTEXT the child is a top-level run with its own exit code, as in CI.
  const { NODE_TEST_CONTEXT: _ignored, ...env } = process.env;
  const res = spawnSync(
    node,
    ['--import', 'tsx', '--test', 'test/fixtures/unhandled-rejection.test.ts'],
    {
      encoding: 'utf8',
      timeout: 30000,
      env,
    },
  );
  assert.notEqual(res.status, 0);
  assert.match(res.stdout + res.stderr, /nobody handles me/);
});
