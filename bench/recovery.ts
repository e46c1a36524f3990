/**
 * Recovery after a forgotten flow, with the real kernel (test/support/rig.ts): warm up a pool of
 * N connections inside the rig's client namespace, idle past the conntrack timeout (checked: zero
 * entries left), then run N queries at once and time each. Drop mode (the middlebox black-holes
 * the flow) and RST mode (it resets it), for this pool and the peers. A peer that hangs is shown
 * as timed out at the cap, never waited on.
 */
import { createRig, rigAvailable } from '../test/support/rig.js';
import type { Rig, RigMode } from '../test/support/rig.js';
import { runInNs } from '../test/support/ns-run.js';
import type { ScenarioResult } from '../test/support/scenarios/idle-then-query.js';
import type { PeerName } from './peers.js';

const SCENARIO = 'test/support/scenarios/idle-then-query.ts';
/** How the scenario loads the peers' createPool (mariadb: its callback API). */
const MODULE: Record<Exclude<PeerName, 'keepalive'>, string> = {
  mysql2: 'mysql2',
  mariadb: 'mariadb/callback',
};

export interface RecoverySettings {
  peers: PeerName[];
  /** This pool's module for the scenario: the built bundle, or src/index.ts. */
  keepaliveModule: string;
  modes: RigMode[];
  /** conntrack's established timeout in the rig, s. */
  idleTimeoutSec: number;
  /** How long the pool idles (must exceed idleTimeoutSec), s. */
  idleSec: number;
  /** Queries (and warm connections) per run. */
  concurrency: number;
  /** A query still unanswered after this is reported as timed out, ms. */
  capMs: number;
  /** Rigs run at the same time (each run has its own pair of namespaces). */
  parallel: number;
}

export interface RecoveryRun {
  mode: RigMode;
  peer: PeerName;
  /** conntrack entries of the pool's flows right after warm-up and right before the queries. */
  conntrackAtWarm: number | null;
  conntrackBeforeQuery: number | null;
  /** 'recovered': every caller got a result; 'error': some got an error; 'timed-out': some were
   * still waiting at the cap. */
  outcome: 'recovered' | 'error' | 'timed-out';
  /** Latency of the slowest caller (capMs when one timed out), ms. */
  maxMs: number;
  /** Latency of the fastest caller, ms. */
  minMs: number;
  results: Array<{
    ok: boolean;
    ms: number;
    hung: boolean;
    errorCode: string | null;
    /** The query ran on a warm-up (now stale) connection. */
    reused: boolean | null;
  }>;
}

export type RecoveryReport =
  | { available: false; reason: string; settings: RecoverySettings; runs: [] }
  | { available: true; settings: RecoverySettings; runs: RecoveryRun[] };

async function oneRun(mode: RigMode, peer: PeerName, s: RecoverySettings): Promise<RecoveryRun> {
  const rig: Rig = await createRig({ mode, idleTimeoutSec: s.idleTimeoutSec });
  try {
    let atWarm: number | null = null;
    let beforeQuery: number | null = null;
    const { result } = await runInNs<ScenarioResult>(
      rig.clientNs,
      SCENARIO,
      [
        '--module',
        peer === 'keepalive' ? s.keepaliveModule : MODULE[peer],
        '--host',
        rig.host,
        '--port',
        String(rig.port),
        '--concurrency',
        String(s.concurrency),
        '--idle-sec',
        String(s.idleSec),
        '--cap-ms',
        String(s.capMs),
        '--await-go',
      ],
      {
        timeoutMs: s.idleSec * 1000 + 2 * s.capMs + 30_000,
        onEvent: async (evt, reply) => {
          if (evt.event === 'warm') atWarm = await rig.conntrackEntries();
          if (evt.event === 'idle-done') {
            beforeQuery = await rig.conntrackEntries();
            reply('go');
          }
        },
      },
    );
    const results = result.results.map((r) => ({
      ok: r.ok,
      ms: r.ms,
      hung: r.hung,
      errorCode: r.errorCode,
      reused: r.reused,
    }));
    const ms = results.map((r) => r.ms);
    return {
      mode,
      peer,
      conntrackAtWarm: atWarm,
      conntrackBeforeQuery: beforeQuery,
      outcome: results.some((r) => r.hung)
        ? 'timed-out'
        : results.every((r) => r.ok)
          ? 'recovered'
          : 'error',
      maxMs: Math.max(...ms),
      minMs: Math.min(...ms),
      results,
    };
  } finally {
    await rig.close();
  }
}

export async function runRecovery(s: RecoverySettings): Promise<RecoveryReport> {
  const avail = rigAvailable();
  if (!avail.ok) return { available: false, reason: avail.reason, settings: s, runs: [] };
  const jobs: Array<{ mode: RigMode; peer: PeerName }> = [];
  for (const mode of s.modes) for (const peer of s.peers) jobs.push({ mode, peer });
  const runs: RecoveryRun[] = new Array<RecoveryRun>(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      const job = jobs[i]!;
      runs[i] = await oneRun(job.mode, job.peer, s);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, s.parallel) }, worker));
  return { available: true, settings: s, runs };
}
