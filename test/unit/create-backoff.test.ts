import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createBackoffMs } from '../../src/connections.js';

test('no back-off before the first failure or after a success', () => {
  assert.equal(createBackoffMs(0, 0), 0);
  assert.equal(createBackoffMs(0, 10_000), 0);
});

test('50 ms doubling per consecutive failure, capped at 2 s', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8, 100].map((n) => createBackoffMs(n, 0)),
    [50, 100, 200, 400, 800, 1600, 2000, 2000, 2000],
  );
});

test('counted from the last failure: the wait shrinks as time passes, and a quiet spell clears it', () => {
  assert.equal(createBackoffMs(7, 500), 1500);
  assert.equal(createBackoffMs(7, 1999), 1);
  assert.equal(createBackoffMs(7, 2000), 0);
  assert.equal(createBackoffMs(3, 60_000), 0);
});

test('a clock that went backwards never lengthens the wait', () => {
  assert.equal(createBackoffMs(2, -5000), 100);
});
