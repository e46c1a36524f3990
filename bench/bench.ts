/**
 * `npm run bench`: this pool against mysql2's createPool and the mariadb package's pool, in one
 * process run, in alternating rounds so that machine drift hits every peer alike.
 *
 *   throughput  SELECT 1 via pool.query and pool.execute at several concurrencies, through the
 *               callback and the promise API, this pool from its CommonJS and its ESM bundle;
 *               the headline is the per-round ratio to mysql2 (peers of one cell run back to
 *               back), its median and spread over the rounds, for throughput and client CPU
 *   checkout    getConnection → release latency, hot loop (inside the validation skip window)
 *               and sparse (each checkout after the window: the pool validates)
 *   memory      heap and RSS after N queries and per idle connection, one fresh process per peer
 *   recovery    first-query latency after the kernel rig forgot every flow (drop and RST modes)
 *   instructions  client instructions per query and per hot checkout under valgrind's callgrind,
 *               one child process per peer and workload, startup cancelled out: deterministic
 *               where the wall-clock sections are noisy (bench/instructions.ts)
 *
 * Prints a table and writes JSON to bench/results/ (or --out). `--smoke` runs tiny sizes (about a minute)
 * for CI, which checks the JSON's shape and never its timings. `--help` lists the flags.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2';
import { dbOptions } from '../test/support/db.js';
import type { DbOptions } from '../test/support/db.js';
import { runInNs } from '../test/support/ns-run.js';
import type { RigMode } from '../test/support/rig.js';
import { resolveConfig } from '../src/config.js';
import { buildPackage } from './build.js';
import { runInstructions } from './instructions.js';
import type { InstructionsReport } from './instructions.js';
import { checkoutSamples, fill, gcTotals, throughputCell } from './measure.js';
import type { Method } from './measure.js';
import type { MemoryResult } from './memory-child.js';
import {
  APIS,
  createPeer,
  createVariant,
  FORMATS,
  loadKeepaliveVariants,
  peerVersions,
  PEERS,
  useKeepaliveModule,
  variantsFor,
} from './peers.js';
import type { Api, ModuleFormat, PeerName, PeerPool, VariantName } from './peers.js';
import { runRecovery } from './recovery.js';
import type { RecoveryReport } from './recovery.js';
import { latencySummary, round, spread } from './stats.js';
import type { LatencySummary, Spread } from './stats.js';

const SECTIONS = ['throughput', 'checkout', 'memory', 'recovery', 'instructions'] as const;
type Section = (typeof SECTIONS)[number];

export interface Settings {
  smoke: boolean;
  /** 'build': this pool as tsup bundles it (what users run); 'tsx': src/ through tsx. */
  source: 'build' | 'tsx';
  sections: Section[];
  peers: PeerName[];
  /** Throughput through mysql2's callback API, its promise API, or both. */
  apis: Api[];
  /** This pool's module formats in the throughput section: require() of CJS, import of ESM. */
  formats: ModuleFormat[];
  methods: Method[];
  concurrency: number[];
  connectionLimit: number;
  rounds: number;
  durationMs: number;
  warmupMs: number;
  checkoutSamples: number;
  validationSamples: number;
  validationWindowMs: number;
  memoryQueries: number;
  idleConnections: number;
  recoveryPeers: PeerName[];
  recoveryModes: RigMode[];
  recoveryIdleTimeoutSec: number;
  recoveryIdleSec: number;
  recoveryConcurrency: number;
  recoveryCapMs: number;
  recoveryParallel: number;
  recoverySpells: number;
  /** Peers of the instructions section (this pool's formats as in throughput). */
  instructionsPeers: PeerName[];
  instructionsApis: Api[];
  instructionsConcurrency: number[];
  /** Uninstrumented warm-up rounds, commands per segment, counted rounds per process. */
  instructionsWarmup: number;
  instructionsQueries: number;
  instructionsSegments: number;
  /** Hot checkouts per segment. */
  instructionsCheckouts: number;
  /** Processes per peer and workload (the figure's spread is over these). */
  instructionsRepeats: number;
  instructionsParallel: number;
  out: string | null;
  url: string | null;
}

const DEFAULTS: Settings = {
  smoke: false,
  source: 'build',
  sections: [...SECTIONS],
  peers: [...PEERS],
  apis: [...APIS],
  formats: [...FORMATS],
  methods: ['query', 'execute'],
  concurrency: [8, 32, 128],
  connectionLimit: 8,
  rounds: 5,
  durationMs: 1000,
  warmupMs: 1000,
  checkoutSamples: 5000,
  validationSamples: 100,
  validationWindowMs: 20,
  memoryQueries: 100_000,
  idleConnections: 20,
  recoveryPeers: [...PEERS],
  recoveryModes: ['drop', 'rst'],
  recoveryIdleTimeoutSec: 2,
  recoveryIdleSec: 4,
  recoveryConcurrency: 4,
  recoveryCapMs: 5000,
  recoveryParallel: 3,
  recoverySpells: 4,
  instructionsPeers: ['keepalive', 'mysql2'],
  instructionsApis: [...APIS],
  instructionsConcurrency: [32],
  instructionsWarmup: 12,
  instructionsQueries: 1000,
  instructionsSegments: 4,
  instructionsCheckouts: 10_000,
  instructionsRepeats: 3,
  instructionsParallel: 2,
  out: null,
  url: null,
};

/** --smoke: every section, tiny sizes; the JSON has the full shape. */
const SMOKE: Partial<Settings> = {
  rounds: 1,
  durationMs: 100,
  warmupMs: 100,
  checkoutSamples: 50,
  validationSamples: 3,
  validationWindowMs: 5,
  memoryQueries: 1000,
  idleConnections: 3,
  recoveryIdleTimeoutSec: 1,
  recoveryIdleSec: 2.5,
  recoveryConcurrency: 2,
  recoveryCapMs: 2000,
  recoveryParallel: 6,
  recoverySpells: 2,
  instructionsApis: ['callback'],
  instructionsWarmup: 1,
  instructionsQueries: 50,
  instructionsSegments: 2,
  instructionsCheckouts: 200,
  instructionsRepeats: 1,
  instructionsParallel: 3,
};

type Kind =
  | 'int'
  | 'number'
  | 'list-int'
  | 'string'
  | 'source'
  | 'sections'
  | 'peers'
  | 'apis'
  | 'formats'
  | 'methods'
  | 'modes';
const FLAGS: Record<string, { key: keyof Settings; kind: Kind; help: string }> = {
  '--source': {
    key: 'source',
    kind: 'source',
    help: 'build: this pool bundled by tsup, as users run it; tsx: src/ through tsx',
  },
  '--sections': { key: 'sections', kind: 'sections', help: `subset of ${SECTIONS.join(',')}` },
  '--peers': { key: 'peers', kind: 'peers', help: `subset of ${PEERS.join(',')}` },
  '--apis': { key: 'apis', kind: 'apis', help: 'throughput through callback,promise' },
  '--formats': {
    key: 'formats',
    kind: 'formats',
    help: "this pool's module formats in the throughput section: cjs,esm",
  },
  '--methods': { key: 'methods', kind: 'methods', help: 'subset of query,execute' },
  '--concurrency': { key: 'concurrency', kind: 'list-int', help: 'e.g. 1,8,32,128' },
  '--connection-limit': {
    key: 'connectionLimit',
    kind: 'int',
    help: 'connectionLimit of every pool',
  },
  '--rounds': { key: 'rounds', kind: 'int', help: 'alternating rounds (throughput, checkout)' },
  '--duration': { key: 'durationMs', kind: 'int', help: 'ms per peer per throughput cell' },
  '--warmup': { key: 'warmupMs', kind: 'int', help: 'ms of warm-up per peer and method' },
  '--checkout-samples': {
    key: 'checkoutSamples',
    kind: 'int',
    help: 'hot checkouts per peer per round',
  },
  '--validation-samples': {
    key: 'validationSamples',
    kind: 'int',
    help: 'sparse checkouts per peer (total)',
  },
  '--validation-window': {
    key: 'validationWindowMs',
    kind: 'int',
    help: 'skip window for the sparse run, ms',
  },
  '--memory-queries': {
    key: 'memoryQueries',
    kind: 'int',
    help: 'queries before the memory reading',
  },
  '--idle-connections': {
    key: 'idleConnections',
    kind: 'int',
    help: 'idle connections for the per-connection figure',
  },
  '--recovery-peers': { key: 'recoveryPeers', kind: 'peers', help: 'peers run through the rig' },
  '--recovery-modes': { key: 'recoveryModes', kind: 'modes', help: 'drop,rst' },
  '--recovery-idle-timeout': {
    key: 'recoveryIdleTimeoutSec',
    kind: 'int',
    help: "rig's conntrack timeout, s",
  },
  '--recovery-idle': {
    key: 'recoveryIdleSec',
    kind: 'number',
    help: 'idle time before the queries, s',
  },
  '--recovery-concurrency': {
    key: 'recoveryConcurrency',
    kind: 'int',
    help: 'warm connections = concurrent first queries',
  },
  '--recovery-cap': {
    key: 'recoveryCapMs',
    kind: 'int',
    help: 'a query unanswered after this is "timed out", ms',
  },
  '--recovery-parallel': { key: 'recoveryParallel', kind: 'int', help: 'rigs at the same time' },
  '--recovery-spells': {
    key: 'recoverySpells',
    kind: 'int',
    help: 'idle spells of the learning run (0: none)',
  },
  '--instructions-peers': {
    key: 'instructionsPeers',
    kind: 'peers',
    help: 'peers counted under callgrind',
  },
  '--instructions-apis': {
    key: 'instructionsApis',
    kind: 'apis',
    help: 'APIs counted under callgrind: callback,promise',
  },
  '--instructions-concurrency': {
    key: 'instructionsConcurrency',
    kind: 'list-int',
    help: 'concurrencies of the instruction counts',
  },
  '--instructions-warmup': {
    key: 'instructionsWarmup',
    kind: 'int',
    help: 'rounds of every workload before counting starts',
  },
  '--instructions-queries': {
    key: 'instructionsQueries',
    kind: 'int',
    help: 'queries per counted segment',
  },
  '--instructions-segments': {
    key: 'instructionsSegments',
    kind: 'int',
    help: 'counted segments per process',
  },
  '--instructions-checkouts': {
    key: 'instructionsCheckouts',
    kind: 'int',
    help: 'hot checkouts per counted segment',
  },
  '--instructions-repeats': {
    key: 'instructionsRepeats',
    kind: 'int',
    help: 'processes per peer and workload',
  },
  '--instructions-parallel': {
    key: 'instructionsParallel',
    kind: 'int',
    help: 'processes under callgrind at a time',
  },
  '--out': {
    key: 'out',
    kind: 'string',
    help: 'JSON path (default bench/results/bench-<time>.json)',
  },
  '--url': {
    key: 'url',
    kind: 'string',
    help: 'mysql://user:pass@host:port/db (default TEST_MYSQL_URL or local)',
  },
};

function usage(): string {
  const lines = ['usage: npm run bench -- [--smoke] [flags]', ''];
  lines.push(`  ${'--smoke'.padEnd(30)}tiny sizes, every section, about a minute (CI)`);
  for (const [flag, f] of Object.entries(FLAGS)) {
    const def = DEFAULTS[f.key];
    lines.push(
      `  ${`${flag} <v>`.padEnd(30)}${f.help}${def === null ? '' : ` (default ${JSON.stringify(def)})`}`,
    );
  }
  return lines.join('\n');
}

function parseList<T extends string>(flag: string, v: string, allowed: readonly T[]): T[] {
  const items = v.split(',').filter(Boolean);
  for (const item of items) {
    if (!allowed.includes(item as T)) {
      throw new Error(`${flag}: "${item}" is not one of ${allowed.join(',')}`);
    }
  }
  if (items.length === 0) throw new Error(`${flag}: empty list`);
  return items as T[];
}

export function parseArgs(argv: string[]): Settings {
  const smoke = argv.includes('--smoke');
  const s: Settings = { ...DEFAULTS, ...(smoke ? SMOKE : {}), smoke };
  const set = s as unknown as Record<string, unknown>;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--smoke') continue;
    const spec = FLAGS[flag];
    if (!spec) throw new Error(`unknown flag ${flag}\n${usage()}`);
    const v = argv[++i];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    const num = (x: string): number => {
      const n = Number(x);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${flag}: "${x}" is not a number >= 0`);
      if (spec.kind !== 'number' && !Number.isInteger(n)) {
        throw new Error(`${flag}: "${x}" is not an integer`);
      }
      return n;
    };
    switch (spec.kind) {
      case 'int':
      case 'number':
        set[spec.key] = num(v);
        break;
      case 'list-int':
        set[spec.key] = v.split(',').filter(Boolean).map(num);
        break;
      case 'string':
        set[spec.key] = v;
        break;
      case 'source':
        set[spec.key] = parseList(flag, v, ['build', 'tsx'] as const)[0];
        break;
      case 'sections':
        set[spec.key] = parseList(flag, v, SECTIONS);
        break;
      case 'peers':
        set[spec.key] = parseList(flag, v, PEERS);
        break;
      case 'apis':
        set[spec.key] = parseList(flag, v, APIS);
        break;
      case 'formats':
        set[spec.key] = parseList(flag, v, FORMATS);
        break;
      case 'methods':
        set[spec.key] = parseList(flag, v, ['query', 'execute'] as const);
        break;
      case 'modes':
        set[spec.key] = parseList(flag, v, ['drop', 'rst'] as const);
        break;
    }
  }
  if (s.rounds < 1) throw new Error('--rounds must be >= 1');
  for (const k of [
    'instructionsQueries',
    'instructionsSegments',
    'instructionsCheckouts',
    'instructionsRepeats',
    'instructionsParallel',
  ] as const) {
    if (s[k] < 1) throw new Error(`${k} must be >= 1`);
  }
  if (s.recoveryIdleSec <= s.recoveryIdleTimeoutSec) {
    throw new Error(
      '--recovery-idle must exceed --recovery-idle-timeout (the flows must be forgotten)',
    );
  }
  return s;
}

function resolveDb(url: string | null): DbOptions {
  return dbOptions(url ?? undefined);
}

function log(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** Rotates `items` by `by`: round r starts with a different peer, so no peer always goes first. */
function rotate<T>(items: readonly T[], by: number): T[] {
  const n = items.length;
  return items.map((_, i) => items[(i + by) % n]!);
}

// ---------------------------------------------------------------------------------------------
// Sections

export interface ThroughputCell {
  api: Api;
  method: Method;
  concurrency: number;
  /** Queries per second per round, by variant (`keepalive` is the CommonJS bundle). */
  qps: Partial<Record<VariantName, Spread>>;
  /** Per-round qps(variant) / qps(mysql2) of the same round and API. */
  ratioToMysql2: Partial<Record<VariantName, Spread>>;
  /** This process's CPU time per query, µs, per round: the client-side cost. */
  cpuUsPerQuery: Partial<Record<VariantName, Spread>>;
  /** Per-round cpu(variant) / cpu(mysql2) of the same round and API. */
  cpuRatioToMysql2: Partial<Record<VariantName, Spread>>;
  /** Garbage-collection pause per query, µs, per round (part of the CPU time above). */
  gcUsPerQuery: Partial<Record<VariantName, Spread>>;
}

/**
 * Every (API, method, concurrency) cell runs each variant back to back, `durationMs` each, in
 * rounds whose variant order rotates: the variants of one round ran seconds apart, so their ratio
 * is a paired measurement on a machine whose load drifts.
 */
async function throughput(s: Settings, db: DbOptions): Promise<ThroughputCell[]> {
  const pools = new Map<string, PeerPool>();
  const key = (api: Api, v: VariantName): string => `${api}/${v}`;
  const cells: Array<{
    api: Api;
    method: Method;
    concurrency: number;
    variants: VariantName[];
    qps: Map<VariantName, number[]>;
    cpu: Map<VariantName, number[]>;
    gc: Map<VariantName, number[]>;
  }> = [];
  try {
    for (const api of s.apis) {
      const variants = variantsFor(api, s.peers, s.formats);
      log(`throughput: warming up ${variants.join(', ')} (${api} API)`);
      for (const v of variants) {
        const pool = createVariant(v, api, { db, connectionLimit: s.connectionLimit });
        pools.set(key(api, v), pool);
        await fill(pool, s.connectionLimit);
        for (const method of s.methods) await throughputCell(pool, method, 32, s.warmupMs);
      }
      for (const method of s.methods) {
        for (const concurrency of s.concurrency) {
          cells.push({
            api,
            method,
            concurrency,
            variants,
            qps: new Map(variants.map((p) => [p, []])),
            cpu: new Map(variants.map((p) => [p, []])),
            gc: new Map(variants.map((p) => [p, []])),
          });
        }
      }
    }
    for (let r = 0; r < s.rounds; r++) {
      log(`throughput: round ${r + 1}/${s.rounds}`);
      for (const [ci, cell] of cells.entries()) {
        for (const v of rotate(cell.variants, r + ci)) {
          const gc0 = gcTotals();
          const res = await throughputCell(
            pools.get(key(cell.api, v))!,
            cell.method,
            cell.concurrency,
            s.durationMs,
          );
          cell.qps.get(v)!.push(res.qps);
          cell.cpu.get(v)!.push(res.cpuUsPerQuery);
          // GC entries reach the observer asynchronously: let them in before reading.
          await new Promise((resolve) => setImmediate(resolve));
          const gc1 = gcTotals();
          cell.gc
            .get(v)!
            .push(((gc1.minor + gc1.major - gc0.minor - gc0.major) * 1000) / res.count);
        }
      }
    }
  } finally {
    await Promise.all([...pools.values()].map((p) => p.end()));
  }
  return cells.map((c) => {
    const base = c.qps.get('mysql2');
    const baseCpu = c.cpu.get('mysql2');
    const qps: ThroughputCell['qps'] = {};
    const ratio: ThroughputCell['ratioToMysql2'] = {};
    const cpu: ThroughputCell['cpuUsPerQuery'] = {};
    const cpuRatio: ThroughputCell['cpuRatioToMysql2'] = {};
    const gc: ThroughputCell['gcUsPerQuery'] = {};
    for (const [v, values] of c.qps) {
      const cpuValues = c.cpu.get(v)!;
      qps[v] = spread(values.map((x) => round(x)));
      cpu[v] = spread(cpuValues.map((x) => round(x, 2)));
      gc[v] = spread(c.gc.get(v)!.map((x) => round(x, 2)));
      if (base && baseCpu && v !== 'mysql2') {
        ratio[v] = spread(values.map((x, i) => round(x / base[i]!, 4)));
        cpuRatio[v] = spread(cpuValues.map((x, i) => round(x / baseCpu[i]!, 4)));
      }
    }
    return {
      api: c.api,
      method: c.method,
      concurrency: c.concurrency,
      qps,
      ratioToMysql2: ratio,
      cpuUsPerQuery: cpu,
      cpuRatioToMysql2: cpuRatio,
      gcUsPerQuery: gc,
    };
  });
}

export interface CheckoutReport {
  /** Back-to-back checkouts: inside every pool's skip window, nothing is validated. */
  hot: Partial<Record<PeerName, LatencySummary>>;
  /** Checkouts spaced past a lowered skip window: this pool and mariadb ping first; mysql2 has
   * no validation and shows the bare checkout after the same idle gap. */
  validating: Partial<Record<PeerName, LatencySummary>> & { windowMs?: number; gapMs?: number };
}

async function checkout(
  s: Settings,
  pools: Map<PeerName, PeerPool>,
  db: DbOptions,
): Promise<CheckoutReport> {
  const peers = [...pools.keys()];
  const hot = new Map<PeerName, number[]>(peers.map((p) => [p, []]));
  const sparse = new Map<PeerName, number[]>(peers.map((p) => [p, []]));
  const windowed = new Map<PeerName, PeerPool>();
  for (const peer of peers) {
    const pool = createPeer(peer, {
      db,
      connectionLimit: s.connectionLimit,
      validationWindowMs: s.validationWindowMs,
    });
    await fill(pool, 1);
    windowed.set(peer, pool);
  }
  const gapMs = s.validationWindowMs * 2 + 5;
  const perRound = Math.max(1, Math.ceil(s.validationSamples / s.rounds));
  try {
    for (let r = 0; r < s.rounds; r++) {
      log(`checkout: round ${r + 1}/${s.rounds}`);
      for (const peer of rotate(peers, r)) {
        hot.get(peer)!.push(...(await checkoutSamples(pools.get(peer)!, s.checkoutSamples, 0)));
      }
      for (const peer of rotate(peers, r)) {
        const pool = windowed.get(peer)!;
        // Idle past the window first: every sample, the first included, is a validating one.
        await new Promise((resolve) => setTimeout(resolve, gapMs));
        sparse.get(peer)!.push(...(await checkoutSamples(pool, perRound, gapMs)));
      }
    }
  } finally {
    await Promise.all([...windowed.values()].map((p) => p.end()));
  }
  const report: CheckoutReport = { hot: {}, validating: { windowMs: s.validationWindowMs, gapMs } };
  for (const peer of peers) {
    report.hot[peer] = latencySummary(hot.get(peer)!);
    report.validating[peer] = latencySummary(sparse.get(peer)!);
  }
  return report;
}

async function memory(
  s: Settings,
  db: DbOptions,
  bundle: string | null,
): Promise<Partial<Record<PeerName, MemoryResult>>> {
  const out: Partial<Record<PeerName, MemoryResult>> = {};
  for (const peer of s.peers) {
    log(`memory: ${peer} (${s.memoryQueries} queries, ${s.idleConnections} idle connections)`);
    const { result } = await runInNs<MemoryResult>(
      null,
      'bench/memory-child.ts',
      [
        '--peer',
        peer,
        '--queries',
        String(s.memoryQueries),
        '--idle-connections',
        String(s.idleConnections),
        ...(bundle === null ? [] : ['--module', bundle]),
      ],
      {
        nodeArgs: ['--expose-gc', '--import', 'tsx'],
        env: { BENCH_DB: JSON.stringify(db) },
        timeoutMs: 120_000 + s.memoryQueries,
      },
    );
    out[peer] = result;
  }
  return out;
}

async function recovery(
  s: Settings,
  bundle: string | null,
): Promise<RecoveryReport & { validationTimeoutMs: number }> {
  log(
    `recovery: ${s.recoveryModes.join('+')} × ${s.recoveryPeers.join(', ')} through the conntrack rig`,
  );
  const report = await runRecovery({
    peers: s.recoveryPeers,
    keepaliveModule: bundle ?? 'src/index.ts',
    modes: s.recoveryModes,
    idleTimeoutSec: s.recoveryIdleTimeoutSec,
    idleSec: s.recoveryIdleSec,
    concurrency: s.recoveryConcurrency,
    capMs: s.recoveryCapMs,
    parallel: s.recoveryParallel,
    learningSpells: s.recoverySpells,
  });
  if (!report.available) log(`recovery: conntrack rig unavailable: ${report.reason}`);
  // The figure recovery is judged against: this pool's validationTimeout as the rig runs it.
  const validationTimeoutMs = resolveConfig({}, process.env).validationTimeout;
  return { ...report, validationTimeoutMs };
}

// ---------------------------------------------------------------------------------------------
// Report

export interface BenchResult {
  schema: 1;
  smoke: boolean;
  startedAt: string;
  durationMs: number;
  environment: {
    node: string;
    platform: string;
    arch: string;
    cpus: number;
    cpuModel: string;
    server: string;
    versions: Record<string, string>;
    loadavgStart: number[];
    loadavgEnd: number[];
  };
  settings: Omit<Settings, 'url'> & { sql: string };
  poolSettings: Partial<Record<PeerName, Record<string, unknown>>>;
  throughput: ThroughputCell[] | null;
  checkout: CheckoutReport | null;
  memory: Partial<Record<PeerName, MemoryResult>> | null;
  recovery: (RecoveryReport & { validationTimeoutMs: number }) | null;
  instructions: InstructionsReport | null;
}

function serverVersion(db: DbOptions): Promise<string> {
  const conn = mysql.createConnection({ ...db });
  return new Promise<string>((resolve, reject) => {
    conn.query('SELECT VERSION() AS v', (err, rows) => {
      conn.destroy();
      if (err) reject(err);
      else resolve(String((rows as Array<{ v: unknown }>)[0]?.v));
    });
  });
}

const fmt = (n: number | undefined): string =>
  n === undefined || Number.isNaN(n) ? '-' : Math.round(n).toLocaleString('en-US');
const pct = (r: number | undefined): string =>
  r === undefined || Number.isNaN(r) ? '-' : `${((r - 1) * 100).toFixed(1)}%`;
const kib = (b: number): string => `${(b / 1024).toFixed(1)} KiB`;
const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;

function printReport(res: BenchResult): void {
  const e = res.environment;
  log();
  log(
    `Node ${e.node}, ${e.cpus} × ${e.cpuModel}, server ${e.server}; load ${e.loadavgStart.map((x) => x.toFixed(2)).join(' ')} → ${e.loadavgEnd.map((x) => x.toFixed(2)).join(' ')}`,
  );
  if (res.throughput) {
    const s = res.settings;
    const variants: VariantName[] = ['keepalive', 'keepalive-esm', 'mysql2', 'mariadb'];
    const shown = variants.filter((v) => res.throughput!.some((c) => c.qps[v]));
    const head = (c: ThroughputCell): string =>
      `${c.api.padEnd(8)} ${c.method.padEnd(8)} ${String(c.concurrency).padStart(4)}  `;
    log();
    log(
      `Throughput, ${res.settings.sql}, queries/s: median of ${s.rounds} alternating round(s) of ${s.durationMs} ms [min–max]; connectionLimit ${s.connectionLimit}; keepalive = CommonJS bundle, keepalive-esm = ESM bundle`,
    );
    log(
      'api      method   conc  ' +
        shown.map((p) => p.padStart(24)).join('') +
        '   vs mysql2 (median [min, max] of per-round ratios)',
    );
    for (const c of res.throughput) {
      const cols = shown.map((p) => {
        const q = c.qps[p];
        return (q ? `${fmt(q.median)} [${fmt(q.min)}–${fmt(q.max)}]` : '-').padStart(24);
      });
      const ratios = shown
        .filter((p) => p !== 'mysql2' && c.ratioToMysql2[p])
        .map((p) => {
          const r = c.ratioToMysql2[p]!;
          return `${p} ${pct(r.median)} [${pct(r.min)}, ${pct(r.max)}]`;
        });
      log(`${head(c)}${cols.join('')}   ${ratios.join('; ')}`);
    }
    log();
    log(
      'Client CPU per query (this process, user + system), µs: median [min–max] (GC); vs mysql2: median of per-round ratios',
    );
    for (const c of res.throughput) {
      const cols = shown.map((p) => {
        const v = c.cpuUsPerQuery[p];
        const g = c.gcUsPerQuery[p];
        if (!v) return '-'.padStart(26);
        return `${v.median.toFixed(1)} [${v.min.toFixed(1)}–${v.max.toFixed(1)}] (${g ? g.median.toFixed(1) : '-'})`.padStart(
          26,
        );
      });
      const ratios = shown
        .filter((p) => p !== 'mysql2' && c.cpuRatioToMysql2[p])
        .map((p) => `${p} ${pct(c.cpuRatioToMysql2[p]!.median)}`);
      log(`${head(c)}${cols.join('')}   ${ratios.join('; ')}`);
    }
  }
  if (res.checkout) {
    log();
    log('Checkout latency (getConnection → release), µs: p50 / p99');
    log(
      `  hot loop (no validation due):      ${res.settings.peers.map((p) => `${p} ${res.checkout!.hot[p]?.p50Us} / ${res.checkout!.hot[p]?.p99Us}`).join('; ')}`,
    );
    const v = res.checkout.validating;
    log(
      `  sparse (every ${v.gapMs} ms, window ${v.windowMs} ms): ${res.settings.peers.map((p) => `${p} ${v[p]?.p50Us} / ${v[p]?.p99Us}`).join('; ')}`,
    );
  }
  if (res.memory) {
    log();
    log(`Memory (fresh process per peer, after full GC)`);
    for (const [peer, m] of Object.entries(res.memory)) {
      log(
        `  ${peer.padEnd(10)} per idle connection: heap ${kib(m.perIdleConnection.heapUsed)}, rss ${kib(m.perIdleConnection.rss)}; after ${m.queries} queries: heap ${mib(m.afterQueries.heapUsed)}, rss ${mib(m.afterQueries.rss)}, retained ${kib(m.retainedByQueries.heapUsed)}`,
      );
    }
  }
  if (res.recovery) {
    log();
    const r = res.recovery;
    if (!r.available) {
      log(`Recovery: conntrack rig unavailable (${r.reason})`);
    } else {
      log(
        `Recovery after every flow was forgotten (rig timeout ${r.settings.idleTimeoutSec} s, idle ${r.settings.idleSec} s, ${r.settings.concurrency} concurrent first queries; this pool's validationTimeout ${r.validationTimeoutMs} ms, cap ${r.settings.capMs} ms)`,
      );
      for (const run of r.runs) {
        const codes = [...new Set(run.results.map((x) => x.errorCode).filter(Boolean))].join(',');
        const hedges =
          run.hedges === null
            ? ''
            : `; hedges ${run.hedges}${run.hedgeDelayMs === null ? '' : ` (delay ${run.hedgeDelayMs} ms)`}`;
        log(
          `  ${run.mode.padEnd(4)} ${run.variant.padEnd(18)} ${run.outcome.padEnd(10)} slowest ${run.maxMs} ms, fastest ${run.minMs} ms${codes ? ` (${codes})` : ''}; conntrack entries before the queries: ${run.conntrackBeforeQuery}${hedges}`,
        );
      }
      if (r.learning.length > 0) {
        log(
          `Learning the path's idle timeout (keepalive 7200 s, idle pings at default; ${r.settings.learningSpells} idle spells of ${r.settings.idleSec} s): deaths per spell`,
        );
        for (const l of r.learning) {
          log(
            `  ${l.mode.padEnd(4)} learnPathTimeout ${String(l.learnPathTimeout).padEnd(5)}  deaths ${l.deathsPerSpell.join(', ')}; slowest caller ${l.slowestMsPerSpell.join(', ')} ms; learned bound ${l.boundMs === null ? '-' : `${l.boundMs} ms`}, keepalive ${l.keepAliveIdleMs ?? '-'} ms, idle pings ${l.idlePingIntervalMs ?? '-'} ms`,
          );
        }
      }
    }
  }
  if (res.instructions) printInstructions(res.instructions);
  log();
}

function printInstructions(r: InstructionsReport): void {
  log();
  if (!r.available) {
    log(`Instructions: not counted (${r.reason})`);
    return;
  }
  const st = r.settings;
  log(
    `Client instructions per command (callgrind; node ${r.nodeFlags.join(' ')}): median [min–max] over ${st.repeats} process(es) of ${st.segments} segment(s) × ${st.perSegment} queries (${st.checkoutPerSegment} checkouts); vs mysql2: median [min, max] of the ratios`,
  );
  const variants: VariantName[] = ['keepalive', 'keepalive-esm', 'mysql2', 'mariadb'];
  const rows = [...r.cells, ...(r.checkout ? [r.checkout] : [])];
  const shown = variants.filter((v) => rows.some((c) => c.perCommand[v]));
  log(
    'api      method   conc  ' +
      shown.map((p) => p.padStart(26)).join('') +
      '   vs mysql2 (instructions, diff per command)',
  );
  for (const c of rows) {
    const cols = shown.map((p) => {
      const v = c.perCommand[p];
      return (v ? `${fmt(v.median)} [${fmt(v.min)}–${fmt(v.max)}]` : '-').padStart(26);
    });
    const ratios = shown
      .filter((p) => p !== 'mysql2' && c.ratioToMysql2[p])
      .map((p) => {
        const q = c.ratioToMysql2[p]!;
        const d = c.diffToMysql2[p]!;
        return `${p} ${pct(q.median)} [${pct(q.min)}, ${pct(q.max)}] (${d.median >= 0 ? '+' : ''}${fmt(d.median)})`;
      });
    log(
      `${c.api.padEnd(8)} ${c.method.padEnd(8)} ${String(c.concurrency).padStart(4)}  ${cols.join('')}   ${ratios.join('; ')}`,
    );
  }
}

async function main(): Promise<void> {
  if (process.argv.includes('--help')) {
    log(usage());
    return;
  }
  const s = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const db = resolveDb(s.url);
  const loadavgStart = os.loadavg();
  const result: BenchResult = {
    schema: 1,
    smoke: s.smoke,
    startedAt: new Date(started).toISOString(),
    durationMs: 0,
    environment: {
      node: process.version,
      platform: process.platform,
      arch: process.arch,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
      server: await serverVersion(db),
      versions: peerVersions(),
      loadavgStart,
      loadavgEnd: loadavgStart,
    },
    settings: { ...withoutUrl(s), sql: 'SELECT 1' },
    poolSettings: {},
    throughput: null,
    checkout: null,
    memory: null,
    recovery: null,
    instructions: null,
  };
  const build = s.source === 'build' ? await buildPackage() : null;
  const bundle = build === null ? null : build.index.cjs;
  useKeepaliveModule(bundle);
  await loadKeepaliveVariants(build);
  const pools = new Map<PeerName, PeerPool>();
  try {
    for (const peer of s.peers) {
      const pool = createPeer(peer, { db, connectionLimit: s.connectionLimit });
      pools.set(peer, pool);
      result.poolSettings[peer] = pool.settings();
    }
    if (s.sections.includes('throughput')) result.throughput = await throughput(s, db);
    if (s.sections.includes('checkout')) result.checkout = await checkout(s, pools, db);
  } finally {
    await Promise.all([...pools.values()].map((p) => p.end()));
  }
  if (s.sections.includes('memory')) result.memory = await memory(s, db, bundle);
  if (s.sections.includes('recovery')) result.recovery = await recovery(s, bundle);
  if (s.sections.includes('instructions')) {
    // Counted as the bundles users run, whatever --source says: no tsx in the counted process.
    result.instructions = await runInstructions(
      {
        peers: s.instructionsPeers,
        apis: s.instructionsApis,
        formats: s.formats,
        methods: s.methods,
        concurrency: s.instructionsConcurrency,
        connectionLimit: s.connectionLimit,
        warmupRounds: s.instructionsWarmup,
        perSegment: s.instructionsQueries,
        segments: s.instructionsSegments,
        checkoutPerSegment: s.instructionsCheckouts,
        repeats: s.instructionsRepeats,
        parallel: s.instructionsParallel,
      },
      build ?? (await buildPackage()),
      db,
      log,
    );
  }
  result.environment.loadavgEnd = os.loadavg();
  result.durationMs = Date.now() - started;
  printReport(result);
  const out =
    s.out ??
    path.join(
      __dirname,
      'results',
      `bench-${result.startedAt.replace(/[:.]/g, '-')}${s.smoke ? '-smoke' : ''}.json`,
    );
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  log(`results: ${out}`);
}

function withoutUrl(s: Settings): Omit<Settings, 'url'> {
  const { url: _url, ...rest } = s;
  return rest;
}

main().catch((e: unknown) => {
  process.stderr.write(
    `bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
  );
  process.exitCode = 1;
});
