import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { PoolConnection } from 'mysql2';
import { ConnectionRecord, isUnusable, jitterDown, pingWithTimeout } from '../../src/health.js';

function stubConn(
  ping: (cb: (err: Error | null) => void) => void,
  extra: object = {},
): PoolConnection {
  return Object.assign(new EventEmitter(), { ping, ...extra }) as unknown as PoolConnection;
}

test('pingWithTimeout resolves ok when the server answers', async () => {
  const out = await pingWithTimeout(
    stubConn((cb) => setImmediate(cb, null)),
    1000,
  );
  assert.deepEqual(out, { ok: true });
});

test('pingWithTimeout resolves timedOut, never rejects, when the answer never comes', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const pending = pingWithTimeout(
    stubConn(() => {}),
    1000,
  );
  t.mock.timers.tick(999);
  let settled = false;
  void pending.then(() => (settled = true));
  await Promise.resolve();
  assert.equal(settled, false);
  t.mock.timers.tick(1);
  assert.deepEqual(await pending, { ok: false, timedOut: true });
});

test('pingWithTimeout reports an error answer and a throwing ping', async () => {
  const boom = new Error('ECONNRESET');
  assert.deepEqual(
    await pingWithTimeout(
      stubConn((cb) => cb(boom)),
      1000,
    ),
    {
      ok: false,
      timedOut: false,
      error: boom,
    },
  );
  const thrown = await pingWithTimeout(
    stubConn(() => {
      throw boom;
    }),
    1000,
  );
  assert.equal(thrown.ok, false);
});

test('a late ping answer after the timeout is ignored', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let answer: ((err: Error | null) => void) | undefined;
  const pending = pingWithTimeout(
    stubConn((cb) => (answer = cb)),
    100,
  );
  t.mock.timers.tick(100);
  answer!(null);
  assert.deepEqual(await pending, { ok: false, timedOut: true });
});

test('isUnusable sees every state mysql2 uses for a closed connection', () => {
  assert.equal(isUnusable(stubConn(() => {}, { stream: { destroyed: false } })), false);
  assert.equal(isUnusable(stubConn(() => {}, { _closing: true })), true);
  assert.equal(isUnusable(stubConn(() => {}, { _fatalError: new Error('x') })), true);
  assert.equal(isUnusable(stubConn(() => {}, { _protocolError: new Error('x') })), true);
  assert.equal(isUnusable(stubConn(() => {}, { stream: { destroyed: true } })), true);
});

test('jitterDown stays within [base*(1-f), base] and spreads values', () => {
  assert.equal(
    jitterDown(1000, 0.1, () => 0),
    1000,
  );
  assert.equal(
    jitterDown(1000, 0.1, () => 1),
    900,
  );
  const values = new Set(Array.from({ length: 50 }, () => jitterDown(120000, 0.1)));
  for (const v of values) assert.ok(v >= 108000 && v <= 120000);
  assert.ok(values.size > 10, 'not in lockstep');
});

test('ConnectionRecord: first death reason wins, dispose clears its timers', () => {
  const rec = new ConnectionRecord(
    1,
    stubConn(() => {}),
    0,
    0,
  );
  assert.equal(rec.markDead('checkout-ping-timeout'), true);
  assert.equal(rec.markDead('suspect'), false);
  assert.equal(rec.dead, 'checkout-ping-timeout');
  let fired = false;
  rec.pingTimer = setTimeout(() => (fired = true), 1);
  rec.dispose();
  assert.equal(rec.pingTimer, null);
  return new Promise<void>((resolve) =>
    setTimeout(() => {
      assert.equal(fired, false);
      resolve();
    }, 10),
  );
});
