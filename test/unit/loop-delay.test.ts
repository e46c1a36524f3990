/**
 * The instrument of every "never stalls the event loop" assertion (test/support/loop-delay.ts)
 * sees a stall wherever it happens in the window, the edges included, whether the main thread
 * computes or sleeps in a blocking call, and little when the loop is idle.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertNoStall, watchLoop } from '../support/loop-delay.js';

/** A synchronous stall on purpose: on the CPU, or asleep in a blocking call (like a DNS
 * lookup on the main thread). */
function block(ms: number, how: 'cpu' | 'sleep'): void {
  if (how === 'sleep') {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    return;
  }
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* spin */
  }
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

for (const how of ['cpu', 'sleep'] as const) {
  test(`a ${how} stall at the start, in the middle or right before stop() is recorded`, async () => {
    for (const where of ['start', 'middle', 'end'] as const) {
      const watch = await watchLoop();
      if (where === 'start') block(150, how);
      await pause(50);
      if (where === 'middle') block(150, how);
      await pause(50);
      if (where === 'end') block(150, how);
      const d = await watch.stop();
      assert.ok(d.maxStallMs >= 130, `${where}: ${JSON.stringify(d)}`);
      assert.ok(d.maxRawStallMs >= 130, `${where}: ${JSON.stringify(d)}`);
      assert.throws(() => assertNoStall(d, 100, where), /stalled for/);
    }
  });
}

test('an idle window shows no stall, and stop() is idempotent', async () => {
  const watch = await watchLoop();
  await pause(200);
  const d = await watch.stop();
  assert.ok(d.samples >= 5, JSON.stringify(d));
  assert.equal(d.schedstat, true, 'the kernel reports run-queue time (Linux schedstat)');
  assertNoStall(d, 100, 'idle');
  assert.equal(await watch.stop(), d);
});
