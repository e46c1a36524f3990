/**
 * The instrument of every "never stalls the event loop" assertion (test/support/loop-delay.ts)
 * sees a stall wherever it happens in the window, the edges included, whether the main thread
 * computes or sleeps in a blocking call, and little when the loop is idle.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertNoStall, attributeStall, watchLoop } from '../support/loop-delay.js';

/** A synchronous stall on purpose: on the CPU, or asleep in a blocking call (like a DNS lookup
 * on the main thread). */
function block(ms: number, how: 'cpu' | 'sleep'): void {
  if (how === 'sleep') {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    return;
  }
  // Spins until the process has had `ms` of CPU, not `ms` of wall time: on a loaded machine
  // part of a wall-clock spin is spent waiting for a CPU, which the instrument rightly leaves out.
  const start = process.cpuUsage();
  for (;;) {
    const used = process.cpuUsage(start);
    if ((used.user + used.system) / 1000 >= ms) break;
  }
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

for (const how of ['cpu', 'sleep'] as const) {
  test(`a ${how} stall at the start, in the middle or right before stop() is recorded`, async () => {
    for (const where of ['start', 'middle', 'end'] as const) {
      const watch = await watchLoop();
      if (where === 'start') block(250, how);
      await pause(50);
      if (where === 'middle') block(250, how);
      await pause(50);
      if (where === 'end') block(250, how);
      const d = await watch.stop();
      // Well over the fault tests' 100 ms limit even on a loaded machine (the process's CPU time
      // includes other threads', so the main thread may have had a little less than 250 ms).
      assert.ok(d.maxStallMs >= 150, `${where}: ${JSON.stringify(d)}`);
      assert.ok(d.maxRawStallMs >= 150, `${where}: ${JSON.stringify(d)}`);
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

test('waiting for a CPU is not charged to the process; running and sleeping alone are', () => {
  // 205 ms late: 100 ms in the run queue, 5 ms running, the rest asleep.
  const at = (others: number) => attributeStall(0, 210, 5, 100, others).selfMs;
  // Asleep while the other threads waited 120 ms for a CPU: waiting on one of them.
  assert.equal(at(120), 0);
  // Asleep while nothing else of ours waited: a blocking call, charged in full.
  assert.equal(at(0), 105);
  // Part of the sleep is explained, part is not.
  assert.equal(at(40), 65);
  // A CPU-bound block: running is always charged (less the sampler period), whatever the
  // others waited.
  assert.equal(attributeStall(0, 210, 200, 5, 500).selfMs, 195);
});
