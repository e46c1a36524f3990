/**
 * What every conntrack-rig test file needs (conntrack-control.test.ts, conntrack-pool.test.ts):
 * the "fail under CI, skip loudly elsewhere" decision, one rig per test closed however the test
 * ends, and the idle-then-query scenario run inside the rig's client namespace with conntrack
 * counted right after warm-up and right after the idle period.
 */
import { after } from 'node:test';
import { createRig, rigAvailable, type Rig, type RigMode } from './rig.js';
import { runInNs } from './ns-run.js';
import type { ScenarioResult } from './scenarios/idle-then-query.js';

/** conntrack established timeout in the client namespace, s */
export const RIG_IDLE_SEC = 3;
/** How long the scenario sits idle: well past the timeout. */
export const RIG_IDLE_FOR_SEC = RIG_IDLE_SEC + 3;
/** A query not answered within this is reported hung. */
export const RIG_CAP_MS = 6000;
export const SCENARIO = 'test/support/scenarios/idle-then-query.ts';
/** Hard limit of one scenario process (warm-up cap + idle + final round cap + start-up slack). */
export const RUN_TIMEOUT_MS = RIG_IDLE_FOR_SEC * 1000 + 2 * RIG_CAP_MS + 20_000;

/** CI=true (anything but '', 0, false). */
export function inCI(): boolean {
  const ci = (process.env.CI ?? '').toLowerCase();
  return ci !== '' && ci !== '0' && ci !== 'false';
}

/**
 * The `skip` value for a rig suite: `false` when the rig is available, and also under CI, where
 * createRig() then throws with the reason and every test FAILS; the reason elsewhere. An
 * unavailable rig is announced on stderr either way, never silently skipped.
 */
export function rigSkip(label: string): string | false {
  const avail = rigAvailable();
  if (avail.ok) return false;
  const ci = inCI();
  process.stderr.write(
    `\n*** conntrack rig unavailable: ${avail.reason}\n*** ${ci ? `CI=true: ${label} tests will FAIL` : `not CI: skipping ${label} tests`}\n\n`,
  );
  return ci ? false : `conntrack rig unavailable: ${avail.reason}`;
}

/** Conntrack entries for the VIP seen right after warm-up and right after the idle period. */
export interface Observed {
  atWarm: number | null;
  atIdleDone: number | null;
}

export interface ScenarioRunOptions {
  /** `mysql2` (default) or a module path such as `src/index.ts`. */
  module?: string;
  idleSec?: number;
  capMs?: number;
}

/**
 * One rig per test: created on demand, closed when the test's function settles, and closed by an
 * `after` hook too if a test is cancelled half-way.
 */
export function rigHarness(idleTimeoutSec = RIG_IDLE_SEC): {
  withRig<T>(mode: RigMode, fn: (rig: Rig) => Promise<T>): Promise<T>;
} {
  const rigs = new Set<Rig>();
  after(async () => {
    await Promise.all([...rigs].map((r) => r.close()));
  });
  return {
    async withRig<T>(mode: RigMode, fn: (rig: Rig) => Promise<T>): Promise<T> {
      const rig = await createRig({ mode, idleTimeoutSec });
      rigs.add(rig);
      try {
        return await fn(rig);
      } finally {
        await rig.close();
        rigs.delete(rig);
      }
    },
  };
}

/**
 * Runs the idle-then-query scenario in the rig's client namespace and counts conntrack entries
 * at the `warm` and `idle-done` events (the scenario waits for our reply before its final round).
 */
export async function runScenario(
  rig: Rig,
  extra: string[],
  opts: ScenarioRunOptions = {},
): Promise<{ res: ScenarioResult; ct: Observed }> {
  const ct: Observed = { atWarm: null, atIdleDone: null };
  const { result } = await runInNs<ScenarioResult>(
    rig.clientNs,
    SCENARIO,
    [
      '--module',
      opts.module ?? 'mysql2',
      '--host',
      rig.host,
      '--port',
      String(rig.port),
      '--idle-sec',
      String(opts.idleSec ?? RIG_IDLE_FOR_SEC),
      '--cap-ms',
      String(opts.capMs ?? RIG_CAP_MS),
      '--await-go',
      ...extra,
    ],
    {
      timeoutMs: RUN_TIMEOUT_MS,
      onEvent: async (evt, reply) => {
        if (evt.event === 'warm') ct.atWarm = await rig.conntrackEntries();
        if (evt.event === 'idle-done') {
          ct.atIdleDone = await rig.conntrackEntries();
          reply('go');
        }
      },
    },
  );
  return { res: result, ct };
}

/** One line for t.diagnostic(): what the test saw, so a failure explains itself. */
export function summary(res: ScenarioResult, ct: Observed): string {
  return JSON.stringify({
    conntrack: ct,
    warmup: res.warmup,
    ticks: res.ticks,
    finalMode: res.finalMode,
    results: res.results.map((r) => ({
      ok: r.ok,
      ms: r.ms,
      errorCode: r.errorCode,
      hung: r.hung,
      fatal: r.fatal,
      cid: r.cid,
      reused: r.reused,
    })),
    timings: res.timings,
    loopDelay: res.loopDelay,
    ...(res.stats === undefined ? {} : { stats: res.stats }),
  });
}
