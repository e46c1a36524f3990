/**
 * Recovery after a forgotten flow, with the real kernel (test/support/rig.ts): warm up a pool of
 * N connections inside the rig's client namespace, idle past the conntrack timeout (checked: zero
 * entries left), then run N queries at once and time each (in the scenario child, from each
 * query's start). Drop mode (the middlebox black-holes the flow) and RST mode (it resets it), for
 * this pool with its defaults (hedged checkout), this pool with `hedgeCheckout: false`, and the
 * peers. A peer that hangs is shown as timed out at the cap, never waited on.
 *
 * The learning run (test/support/scenarios/idle-spells.ts): this pool with keepalive far too slow
 * to help (7200 s) and idle pings at their default, through several idle spells longer than the
 * rig's timeout, with `learnPathTimeout` on (the default) and off: how many connections die of
 * idleness in each spell.
 */
import { createRig, rigAvailable } from '../test/support/rig.js';
import type { Rig, RigMode } from '../test/support/rig.js';
import { runInNs } from '../test/support/ns-run.js';
import type { ScenarioResult } from '../test/support/scenarios/idle-then-query.js';
import type { SpellsResult } from '../test/support/scenarios/idle-spells.js';
import type { PeerName } from './peers.js';

const SCENARIO = 'test/support/scenarios/idle-then-query.ts';
const SPELLS_SCENARIO = 'test/support/scenarios/idle-spells.ts';

/** What a recovery run measures: a peer, or this pool with hedging off. */
export type RecoveryVariant = PeerName | 'keepalive-no-hedge';
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
  /** Idle spells of the learning run (0: no learning run). */
  learningSpells: number;
}

export interface RecoveryRun {
  mode: RigMode;
  peer: PeerName;
  /** `keepalive-no-hedge`: this pool with `hedgeCheckout: false`; else the peer itself. */
  variant: RecoveryVariant;
  /** This pool's hedges and hedge delay in the run (null for the peers). */
  hedges: number | null;
  hedgeDelayMs: number | null;
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

/** One learning run: this pool through `spells` idle spells, learning on or off. */
export interface LearningRun {
  mode: RigMode;
  learnPathTimeout: boolean;
  /** Connections found dead in each spell (its idle time and its final round). */
  deathsPerSpell: number[];
  /** Slowest caller of each spell's final round, ms. */
  slowestMsPerSpell: number[];
  /** What the pool learned (null: nothing). */
  boundMs: number | null;
  keepAliveIdleMs: number | null;
  idlePingIntervalMs: number | null;
}

export type RecoveryReport =
  | {
      available: false;
      reason: string;
      settings: RecoverySettings;
      runs: [];
      learning: [];
    }
  | {
      available: true;
      settings: RecoverySettings;
      runs: RecoveryRun[];
      learning: LearningRun[];
    };

async function oneRun(
  mode: RigMode,
  variant: RecoveryVariant,
  s: RecoverySettings,
): Promise<RecoveryRun> {
  const peer: PeerName = variant === 'keepalive-no-hedge' ? 'keepalive' : variant;
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
        ...(variant === 'keepalive-no-hedge'
          ? ['--pool-options', JSON.stringify({ hedgeCheckout: false })]
          : []),
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
    const stats = result.stats as { hedges?: number; hedgeDelayMs?: number | null } | undefined;
    return {
      mode,
      peer,
      variant,
      hedges: stats?.hedges ?? null,
      hedgeDelayMs: stats?.hedgeDelayMs ?? null,
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

async function learningRun(
  mode: RigMode,
  learnPathTimeout: boolean,
  s: RecoverySettings,
): Promise<LearningRun> {
  const rig: Rig = await createRig({ mode, idleTimeoutSec: s.idleTimeoutSec });
  try {
    const { result } = await runInNs<SpellsResult>(
      rig.clientNs,
      SPELLS_SCENARIO,
      [
        '--module',
        s.keepaliveModule,
        '--host',
        rig.host,
        '--port',
        String(rig.port),
        '--concurrency',
        String(s.concurrency),
        '--spells',
        String(s.learningSpells),
        '--idle-sec',
        String(s.idleSec),
        '--pool-options',
        JSON.stringify({ keepAliveInitialDelay: 7_200_000, learnPathTimeout }),
      ],
      { timeoutMs: s.learningSpells * (s.idleSec * 1000 + 2 * s.capMs) + 30_000 },
    );
    const t = result.stats.pathTimeout;
    return {
      mode,
      learnPathTimeout,
      deathsPerSpell: result.spells.map((x) => x.deaths),
      slowestMsPerSpell: result.spells.map((x) => Math.max(...x.ms)),
      boundMs: t.boundMs,
      keepAliveIdleMs: t.keepAliveIdleMs,
      idlePingIntervalMs: t.idlePingIntervalMs,
    };
  } finally {
    await rig.close();
  }
}

/** The variants of a recovery run for the peers asked for: this pool twice (hedged, and with
 * hedging off), then the others. */
function variantsOf(peers: readonly PeerName[]): RecoveryVariant[] {
  const out: RecoveryVariant[] = [];
  for (const p of peers) {
    out.push(p);
    if (p === 'keepalive') out.push('keepalive-no-hedge');
  }
  return out;
}

export async function runRecovery(s: RecoverySettings): Promise<RecoveryReport> {
  const avail = rigAvailable();
  if (!avail.ok) {
    return { available: false, reason: avail.reason, settings: s, runs: [], learning: [] };
  }
  type Job =
    | { kind: 'run'; mode: RigMode; variant: RecoveryVariant }
    | { kind: 'learn'; mode: RigMode; learn: boolean };
  const jobs: Job[] = [];
  for (const mode of s.modes) {
    for (const variant of variantsOf(s.peers)) jobs.push({ kind: 'run', mode, variant });
  }
  if (s.learningSpells > 0 && s.peers.includes('keepalive')) {
    for (const mode of s.modes) {
      for (const learn of [true, false]) jobs.push({ kind: 'learn', mode, learn });
    }
  }
  const runs: RecoveryRun[] = [];
  const learning: LearningRun[] = [];
  const slots: Array<RecoveryRun | LearningRun> = new Array(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      const job = jobs[i]!;
      slots[i] =
        job.kind === 'run'
          ? await oneRun(job.mode, job.variant, s)
          : await learningRun(job.mode, job.learn, s);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, s.parallel) }, worker));
  jobs.forEach((job, i) => {
    if (job.kind === 'run') runs.push(slots[i] as RecoveryRun);
    else learning.push(slots[i] as LearningRun);
  });
  return { available: true, settings: s, runs, learning };
}
