/**
 * The one instrument behind every "never blocks the event loop" assertion, in the test process
 * (server-kill, restart-under-load) or in a scenario child inside the rig (idle-then-query,
 * partition-inflight, dns-blackhole), which puts the figures in its JSON result for the test to
 * judge with {@link assertNoStall}.
 *
 * Two measures over the same window:
 *  - Node's `monitorEventLoopDelay`: how late its timer ran, the figure an application sees. On a
 *    busy machine it also counts the time the main thread waited for a CPU: with 2 cores and 20
 *    processes starting at once (the rig tests run their cases concurrently), that alone reaches
 *    100 ms.
 *  - The stall the process caused itself: a 5 ms sampler's lateness minus the time the main
 *    thread spent runnable but waiting for a CPU (its run-queue time, from the kernel's
 *    `/proc/self/task/<pid>/schedstat`). What is left is time the thread ran (a CPU-bound block)
 *    or slept inside a call (a blocking syscall: the synchronous DNS lookups of a diagnostic
 *    report, a disk read). This is what the assertions judge; where schedstat cannot be read it
 *    falls back to the raw lateness.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Period of the monitor's timer, ms. */
export const LOOP_RESOLUTION_MS = 10;
/** Period of the sampler that attributes stalls, ms. */
const SAMPLE_MS = 5;
/** The kernel-rig fault tests fail on any stall above this. */
export const FAULT_STALL_LIMIT_MS = 100;

/** What a window saw. */
export interface LoopDelay {
  /** The longest stall the process caused itself, ms (see the file comment). */
  maxStallMs: number;
  /** The longest stall as `monitorEventLoopDelay` saw it: its longest interval minus its period,
   * waiting for a CPU included. */
  maxRawStallMs: number;
  /** 99th percentile of the raw figure, ms. */
  p99RawStallMs: number;
  /** Whether run-queue time could be read (else `maxStallMs` is the sampler's raw lateness). */
  schedstat: boolean;
  /** Timer runs `monitorEventLoopDelay` recorded. */
  samples: number;
  /** Length of the window, ms. */
  windowMs: number;
}

/** A running window; `stop()` ends it (idempotent: later calls return the same figures). */
export interface LoopWatch {
  stop(): Promise<LoopDelay>;
}

const round = (ms: number): number => Math.round(ms * 10) / 10;
const tick = (): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, 2 * LOOP_RESOLUTION_MS));

const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;

/** The main thread's total run-queue wait, ms, or null where the kernel does not say. */
function runQueueMs(): number | null {
  try {
    const wait = Number(readFileSync(SCHEDSTAT, 'utf8').split(' ')[1]);
    return Number.isFinite(wait) ? wait / 1e6 : null;
  } catch {
    return null;
  }
}

/**
 * Starts recording; resolves once recording has begun. The histogram counts an interval only
 * from its timer's second run on, so both edges wait for it: a block right after `watchLoop()`
 * resolves, or right before `stop()` is called, is recorded. Neither timer keeps the process
 * alive.
 */
export async function watchLoop(): Promise<LoopWatch> {
  const h = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  h.enable();
  const schedstat = runQueueMs() !== null;
  let last = performance.now();
  let lastWait = runQueueMs() ?? 0;
  let maxSelf = 0;
  const sample = (): void => {
    const now = performance.now();
    const wait = runQueueMs() ?? lastWait;
    maxSelf = Math.max(maxSelf, now - last - SAMPLE_MS - (wait - lastWait));
    last = now;
    lastWait = wait;
  };
  const sampler = setInterval(sample, SAMPLE_MS);
  sampler.unref();
  await tick();
  maxSelf = 0;
  const started = performance.now();
  let result: Promise<LoopDelay> | undefined;
  const finish = async (): Promise<LoopDelay> => {
    const windowMs = Math.round(performance.now() - started);
    await tick();
    sample();
    clearInterval(sampler);
    h.disable();
    const samples = h.count;
    const raw = (ns: number): number =>
      samples === 0 ? 0 : Math.max(0, round(ns / 1e6 - LOOP_RESOLUTION_MS));
    return {
      maxStallMs: Math.max(0, round(maxSelf)),
      maxRawStallMs: raw(h.max),
      p99RawStallMs: raw(h.percentile(99)),
      schedstat,
      samples,
      windowMs,
    };
  };
  return {
    stop: () => (result ??= finish()),
  };
}

/**
 * Fails unless the window recorded samples and no stall the process caused above `limitMs` (a
 * window without a single sample means the monitor never ran).
 */
export function assertNoStall(d: LoopDelay | undefined, limitMs: number, what: string): void {
  assert.ok(d, `${what}: no event-loop figures were recorded`);
  assert.ok(d.samples > 0, `${what}: the event-loop monitor recorded nothing in ${d.windowMs} ms`);
  assert.ok(
    d.maxStallMs <= limitMs,
    `${what}: the event loop stalled for ${d.maxStallMs} ms (limit ${limitMs} ms): ${JSON.stringify(d)}`,
  );
}
