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
 *  - The stall the process caused itself: a 5 ms sampler's lateness minus the time the process
 *    spent waiting for a CPU, from the kernel's per-thread `/proc/self/task/<tid>/schedstat`:
 *    the main thread's run-queue time, and, for the part of the stall the main thread spent
 *    asleep, its other threads' run-queue time too (the main thread sleeps while it waits for a
 *    V8 helper thread, a garbage-collection worker or tsx's compiler, and on 2 busy cores that
 *    helper is the one waiting for a CPU). What is left is time the main thread ran (a CPU-bound
 *    block) or slept inside a call while nothing of the process waited for a CPU (a blocking
 *    syscall: the synchronous DNS lookups of a diagnostic report, a disk read). This is what
 *    the assertions judge; where schedstat cannot be read it falls back to the raw lateness.
 *    `worst` says how the longest stall splits up, so a failure can be read from its message.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
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
  /** How the sampler interval with the longest self-caused stall splits up, ms. */
  worst: StallParts | null;
  /** Whether run-queue time could be read (else `maxStallMs` is the sampler's raw lateness). */
  schedstat: boolean;
  /** Timer runs `monitorEventLoopDelay` recorded. */
  samples: number;
  /** Length of the window, ms. */
  windowMs: number;
}

/** One sampler interval: its lateness, and the main thread's run, run-queue and sleep time in
 * it, with the run-queue time of the process's other threads. */
export interface StallParts {
  /** When the interval ended, ms since the window began. */
  atMs: number;
  lateMs: number;
  runMs: number;
  runQueueMs: number;
  sleepMs: number;
  othersRunQueueMs: number;
  /** What is charged to the process: `lateMs` minus what waiting for a CPU explains. */
  selfMs: number;
}

/** A running window; `stop()` ends it (idempotent: later calls return the same figures). */
export interface LoopWatch {
  stop(): Promise<LoopDelay>;
}

const round = (ms: number): number => Math.round(ms * 10) / 10;
const tick = (): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, 2 * LOOP_RESOLUTION_MS));

const TASKS = '/proc/self/task';
const MAIN_SCHEDSTAT = `${TASKS}/${process.pid}/schedstat`;
/** How often the list of the process's threads is read again (threads come and go rarely). */
const TASK_LIST_MS = 200;

/** Run and run-queue time of one thread, ms, or null where the kernel does not say. */
function schedstat(file: string): { run: number; wait: number } | null {
  try {
    const [run, wait] = readFileSync(file, 'utf8').split(' ');
    const r = Number(run) / 1e6;
    const w = Number(wait) / 1e6;
    return Number.isFinite(r) && Number.isFinite(w) ? { run: r, wait: w } : null;
  } catch {
    return null;
  }
}

/** Reads the process's threads other than the main one, and their total run-queue time. */
class OtherThreads {
  #files: string[] = [];
  #listedAt = -Infinity;
  /** Last reading per thread, so a thread that appears or ends adds only its own delta. */
  #last = new Map<string, number>();

  /** Run-queue time the other threads gained since the previous call, ms. */
  waitDelta(now: number): number {
    if (now - this.#listedAt >= TASK_LIST_MS) {
      this.#listedAt = now;
      try {
        this.#files = readdirSync(TASKS)
          .filter((tid) => tid !== String(process.pid))
          .map((tid) => `${TASKS}/${tid}/schedstat`);
      } catch {
        this.#files = [];
      }
    }
    let delta = 0;
    const seen = new Map<string, number>();
    for (const file of this.#files) {
      const s = schedstat(file);
      if (s === null) continue;
      const before = this.#last.get(file);
      if (before !== undefined) delta += s.wait - before;
      seen.set(file, s.wait);
    }
    this.#last = seen;
    return delta;
  }
}

/**
 * Splits one sampler interval of `intervalMs` (its period is {@link SAMPLE_MS}) in which the main
 * thread ran `runMs` and waited for a CPU `runQueueMs`, while the other threads waited
 * `othersRunQueueMs`: the rest of the interval the main thread slept, and a sleep is put down to
 * waiting on another thread for as long as the other threads waited for a CPU.
 */
export function attributeStall(
  atMs: number,
  intervalMs: number,
  runMs: number,
  runQueueMs: number,
  othersRunQueueMs: number,
): StallParts {
  const lateMs = intervalMs - SAMPLE_MS;
  const sleepMs = Math.max(0, intervalMs - runMs - runQueueMs);
  const selfMs = lateMs - runQueueMs - Math.min(othersRunQueueMs, sleepMs);
  return {
    atMs: round(atMs),
    lateMs: round(lateMs),
    runMs: round(runMs),
    runQueueMs: round(runQueueMs),
    sleepMs: round(sleepMs),
    othersRunQueueMs: round(othersRunQueueMs),
    selfMs: round(selfMs),
  };
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
  const hasSchedstat = schedstat(MAIN_SCHEDSTAT) !== null;
  const others = new OtherThreads();
  let started = performance.now();
  let last = started;
  let lastMain = schedstat(MAIN_SCHEDSTAT) ?? { run: 0, wait: 0 };
  others.waitDelta(last);
  let worst: StallParts | null = null;
  const sample = (): void => {
    const now = performance.now();
    const main = schedstat(MAIN_SCHEDSTAT) ?? lastMain;
    const othersWait = hasSchedstat ? others.waitDelta(now) : 0;
    const parts = attributeStall(
      now - started,
      now - last,
      main.run - lastMain.run,
      main.wait - lastMain.wait,
      othersWait,
    );
    if (worst === null || parts.selfMs > worst.selfMs) worst = parts;
    last = now;
    lastMain = main;
  };
  const sampler = setInterval(sample, SAMPLE_MS);
  sampler.unref();
  await tick();
  worst = null;
  started = performance.now();
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
      maxStallMs: Math.max(0, worst?.selfMs ?? 0),
      maxRawStallMs: raw(h.max),
      p99RawStallMs: raw(h.percentile(99)),
      worst,
      schedstat: hasSchedstat,
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
