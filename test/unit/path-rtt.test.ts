/**
 * src/path-rtt.ts: the round trip the pool has seen and the hedge delay derived from it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CONNECT_ROUND_TRIPS, HEDGE_FLOOR_MS, PathRtt } from '../../src/path-rtt.js';

test('before any sample: no round trip, the hedge delay is the floor', () => {
  const rtt = new PathRtt();
  assert.equal(rtt.rttMs(), null);
  assert.equal(rtt.hedgeDelay(), HEDGE_FLOOR_MS);
  assert.deepEqual(rtt.snapshot(), {
    rttMs: null,
    hedgeDelayMs: HEDGE_FLOOR_MS,
    pingSamples: 0,
    connectSamples: 0,
  });
});

test('a fast path (sub-millisecond pings, connects of a few ms): the floor', () => {
  const rtt = new PathRtt();
  for (let i = 0; i < 4; i++) rtt.observeConnect(4 + i);
  assert.equal(rtt.hedgeDelay(), HEDGE_FLOOR_MS);
  for (let i = 0; i < 10; i++) rtt.observePing(0.3);
  assert.equal(rtt.hedgeDelay(), HEDGE_FLOOR_MS);
  assert.equal(rtt.rttMs(), 0.3);
});

test('connects alone: the round trip is about connect / 1.5, the hedge delay the fastest connect', () => {
  const rtt = new PathRtt();
  rtt.observeConnect(950);
  rtt.observeConnect(900);
  rtt.observeConnect(1200);
  assert.ok(Math.abs(rtt.rttMs()! - 950 / CONNECT_ROUND_TRIPS) < 50, `${rtt.rttMs()}`);
  // Before a ping was answered, the hedge waits as long as the fastest connect took.
  assert.equal(rtt.hedgeDelay(), 900);
});

test('a slow but healthy path (600 ms round trip): the hedge delay stays well above a ping', () => {
  const rtt = new PathRtt();
  // A path that adds 300 ms each way: a connect takes ~1.5 round trips behind a local proxy.
  for (let i = 0; i < 50; i++) rtt.observeConnect(900 + (i % 3));
  assert.ok(rtt.hedgeDelay() >= 1.5 * 600, `connect-based: ${rtt.hedgeDelay()} ms`);
  for (let i = 0; i < 50; i++) rtt.observePing(600 + (i % 5));
  assert.ok(rtt.hedgeDelay() >= 1.5 * 600, `ping-based: ${rtt.hedgeDelay()} ms`);
  assert.ok(Math.abs(rtt.rttMs()! - 602) < 5, `smoothed ${rtt.rttMs()}`);
});

test('once a ping was answered, only pings count (they measure the round trip itself)', () => {
  const rtt = new PathRtt();
  rtt.observeConnect(3000);
  const connectBased = rtt.hedgeDelay();
  rtt.observePing(2);
  assert.ok(rtt.hedgeDelay() < connectBased);
  assert.equal(rtt.rttMs(), 2);
  assert.equal(rtt.snapshot().pingSamples, 1);
  assert.equal(rtt.snapshot().connectSamples, 1);
});

test('jitter raises the delay (rttvar), a steady path brings it back down', () => {
  const rtt = new PathRtt();
  for (let i = 0; i < 20; i++) rtt.observePing(50);
  const steady = rtt.hedgeDelay();
  for (let i = 0; i < 5; i++) rtt.observePing(i % 2 === 0 ? 10 : 150);
  const jittery = rtt.hedgeDelay();
  assert.ok(jittery > steady, `${jittery} > ${steady}`);
  for (let i = 0; i < 60; i++) rtt.observePing(50);
  assert.ok(rtt.hedgeDelay() < jittery);
});

test('nonsense samples are ignored', () => {
  const rtt = new PathRtt();
  rtt.observePing(Number.NaN);
  rtt.observePing(-1);
  rtt.observeConnect(Infinity);
  assert.equal(rtt.rttMs(), null);
});
