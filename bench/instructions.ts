/**
 * The bench's deterministic section: client instructions per query and per hot checkout,
 * counted by `valgrind --tool=callgrind`, against mysql2's pool.
 *
 * Wall-clock throughput on a shared 2-core machine spreads by tens of percent from round to
 * round; an instruction count does not depend on what else the machine does. Each (variant, API)
 * runs in a child process of its own (bench/instructions-child.ts, bundled here with the
 * package's tsup) under callgrind: warm-up rounds of every workload uninstrumented, then, after
 * `callgrind_control --instr=on`, K counted rounds. Callgrind dumps its counters at every mark the
 * child makes (before the first counted segment and after each), so a dump is the difference of
 * the counters at two marks: startup, warm-up and shutdown cancel out, and instructions per
 * command = a segment's instructions / its commands.
 *
 * The child runs V8 without background threads (`--single-threaded`: compilation and GC happen on
 * the main thread, at points the code decides), with fixed seeds and new-space size, and without
 * V8's timer-driven work, so that a repeat runs the same code in the same order. What can still
 * vary is how many answers one socket read brings (the server runs natively, the client about 50
 * times slower), i.e. event-loop turns per query; the repeats show how much that is (< 0.5 %).
 * The headline excludes V8's compilers and the garbage collector, counted apart from the call
 * edges into their entry points (see {@link InstructionsCell}).
 *
 * Counted: everything the client process executes between the marks, in every thread (the pool,
 * mysql2's protocol code, node's net and libuv, system-call wrappers, the bench's own loop, which
 * is the same code for every peer). Not counted: the kernel, the server.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'tsup';
import type { DbOptions } from '../test/support/db.js';
import type { PackageBuild } from './build.js';
import type { InstructionsChildResult, Workload } from './instructions-child.js';
import type { Method } from './measure.js';
import { variantsFor } from './peers.js';
import type { Api, ModuleFormat, PeerName, VariantName } from './peers.js';
import { round, spread } from './stats.js';
import type { Spread } from './stats.js';

export interface InstructionsSettings {
  peers: PeerName[];
  apis: Api[];
  formats: ModuleFormat[];
  methods: Method[];
  concurrency: number[];
  connectionLimit: number;
  /** Rounds (one segment of every workload each) run uninstrumented first: the JIT tiers up. */
  warmupRounds: number;
  /** Commands per segment, and counted rounds per process. */
  perSegment: number;
  segments: number;
  /** Hot checkouts per segment (a checkout costs about 1/15 of a query). */
  checkoutPerSegment: number;
  /** Processes per (variant, API, method): the figure's spread is over these. */
  repeats: number;
  /** Child processes under callgrind at the same time (counts do not depend on it). */
  parallel: number;
}

/**
 * Instructions per command of one workload, by variant. The headline, `perCommand`, is the
 * steady state: everything the process executed in the measured segments except V8's compilers
 * (tiering is a warm-up transient, done on a background thread in a normal process) and the
 * garbage collector (lumpy: one scavenge costs as much as hundreds of queries, so how many fall
 * into a segment varies), which are reported apart.
 */
export interface InstructionsCell {
  api: Api;
  method: Workload['method'];
  concurrency: number;
  /** Steady-state client instructions per command, one value per process (repeat). */
  perCommand: Partial<Record<VariantName, Spread>>;
  /** The same per segment, every segment of every repeat: the spread within and across
   * processes. */
  segments: Partial<Record<VariantName, Spread>>;
  /** Garbage collection per command, per process (averaged over its segments). */
  gcPerCommand: Partial<Record<VariantName, Spread>>;
  /** Compilation still going on in the measured segments, per command, per process. */
  compilePerCommand: Partial<Record<VariantName, Spread>>;
  /** perCommand(variant) / perCommand(mysql2), repeat by repeat. */
  ratioToMysql2: Partial<Record<VariantName, Spread>>;
  /** perCommand(variant) − perCommand(mysql2), repeat by repeat. */
  diffToMysql2: Partial<Record<VariantName, Spread>>;
  /** (perCommand + gcPerCommand)(variant) / the same of mysql2, repeat by repeat. */
  withGcRatioToMysql2: Partial<Record<VariantName, Spread>>;
}

export interface InstructionsReport {
  available: boolean;
  reason?: string;
  valgrind?: string;
  /** node flags of the counted child processes. */
  nodeFlags: string[];
  settings: InstructionsSettings;
  cells: InstructionsCell[];
  /** Hot checkout (getConnection → release, no query), callback API. */
  checkout: InstructionsCell | null;
}

/** V8 without background threads, fixed seeds, fixed new space: the same work in the same order. */
export const NODE_FLAGS = [
  '--single-threaded',
  '--hash-seed=1',
  '--random-seed=1',
  '--min-semi-space-size=16',
  '--max-semi-space-size=16',
  // V8 work started by timers and tasks rather than by the code that runs: under callgrind the
  // clock runs ~50 times slower, so it would land at other points of the work every run (and
  // flushed code then compiles again).
  '--no-memory-reducer',
  '--no-minor-gc-task',
  '--no-incremental-marking-task',
  '--no-flush-bytecode',
  '--no-flush-baseline-code',
];

/** NODE_FLAGS, plus BENCH_CALLGRIND_NODE_FLAGS (e.g. `--perf-basic-prof`, whose map names the
 * JIT code in kept dumps). */
function nodeFlags(): string[] {
  const extra = (process.env.BENCH_CALLGRIND_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
  return [...NODE_FLAGS, ...extra];
}

/** The libc function behind the child's marks (`os.getPriority(0)`); callgrind dumps on
 * entering it. */
const MARKER = 'getpriority';

function valgrindVersion(): { ok: true; version: string } | { ok: false; reason: string } {
  const r = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
  if (r.error) return { ok: false, reason: `valgrind not found (${r.error.message})` };
  if (r.status !== 0) return { ok: false, reason: `valgrind --version exited ${r.status}` };
  const ctl = spawnSync('callgrind_control', ['--version'], { encoding: 'utf8' });
  if (ctl.error) return { ok: false, reason: `callgrind_control not found (${ctl.error.message})` };
  return { ok: true, version: r.stdout.trim() };
}

/** Bundles the child next to the package build (plain JavaScript: no tsx in the counted process). */
export async function buildChild(dir: string): Promise<string> {
  await build({
    config: false,
    entry: { 'instructions-child': path.join(__dirname, 'instructions-child.ts') },
    format: ['cjs'],
    outDir: dir,
    outExtension: () => ({ js: '.cjs' }),
    target: 'node20',
    platform: 'node',
    dts: false,
    sourcemap: false,
    clean: false,
    splitting: false,
    skipNodeModulesBundle: true,
    silent: true,
  });
  return path.join(dir, 'instructions-child.cjs');
}

interface Job {
  variant: VariantName;
  api: Api;
  repeat: number;
}

/** Instructions of one measured segment, and the parts of it that are not the steady state. */
interface SegmentCost {
  total: number;
  /** V8's compilers and tiering, entered from the runtime (a background thread's work in a
   * normal process, and a warm-up transient). */
  compile: number;
  /** Garbage collection (scavenges and mark-compact, entered from the allocator). */
  gc: number;
}

interface WorkloadResult {
  variant: VariantName;
  api: Api;
  repeat: number;
  method: Workload['method'];
  concurrency: number;
  /** Commands per segment. */
  perSegment: number;
  segments: SegmentCost[];
}

/** Entry points of V8's compilers and tiering from the runtime. */
const COMPILE =
  /^v8::internal::Runtime_(?:Compile\w*|InstallBaselineCode|BytecodeBudgetInterrupt\w*)\(/;
/** Entry points of V8's garbage collector. */
const GC =
  /^v8::internal::(?:Heap::CollectGarbage|Heap::StartIncrementalMarking|Heap::FinalizeIncrementalMarking|IncrementalMarking::|MemoryReducer::|ScavengeJob::)/;

function category(fn: string | undefined): 'compile' | 'gc' | null {
  if (fn === undefined) return null;
  if (COMPILE.test(fn)) return 'compile';
  if (GC.test(fn)) return 'gc';
  return null;
}

/**
 * Reads one callgrind dump: its total, and the inclusive cost of the calls into a compiler or
 * the collector from outside them (a call line's cost is the callee's inclusive cost; calls
 * within a category are not added twice). Format: valgrind's docs, "Callgrind Format
 * Specification" (name compression `fn=(id) name`, `calls=` followed by the call's cost line).
 */
export function segmentCost(text: string): SegmentCost {
  const names = new Map<string, string>();
  const out: SegmentCost = { total: Number.NaN, compile: 0, gc: 0 };
  let fn: string | undefined;
  let cfn: string | undefined;
  let callCost = false;
  for (const line of text.split('\n')) {
    const c = line.charCodeAt(0);
    const isCost = (c >= 48 && c <= 57) || c === 43 || c === 45 || c === 42; // 0-9 + - *
    if (isCost) {
      if (!callCost) continue;
      callCost = false;
      const callee = category(cfn);
      if (callee !== null && category(fn) !== callee) {
        const ir = Number(line.split(' ')[1]);
        if (Number.isFinite(ir)) out[callee] += ir;
      }
      continue;
    }
    if (line.startsWith('fn=') || line.startsWith('cfn=')) {
      const m = /^c?fn=\((\d+)\)(?: (.*))?$/.exec(line);
      if (m === null) continue;
      if (m[2] !== undefined) names.set(m[1]!, m[2]);
      if (line.startsWith('fn=')) fn = names.get(m[1]!);
      else cfn = names.get(m[1]!);
    } else if (line.startsWith('calls=')) {
      callCost = true;
    } else if (line.startsWith('totals:') || line.startsWith('summary:')) {
      out.total = Number(line.split(/\s+/)[1]);
    }
  }
  if (!Number.isFinite(out.total)) throw new Error('instructions: a callgrind dump has no totals');
  return out;
}

/** Dump files of one run, in dump order: `cg.out.1`, `cg.out.2`, … then the final `cg.out`. */
function dumpFiles(dir: string): string[] {
  const parts = fs
    .readdirSync(dir)
    .map((f) => /^cg\.out\.(\d+)$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .map((m) => path.join(dir, m[0]));
  const last = path.join(dir, 'cg.out');
  return fs.existsSync(last) ? [...parts, last] : parts;
}

function workloadsFor(api: Api, s: InstructionsSettings): Workload[] {
  const out: Workload[] = [];
  for (const method of s.methods) {
    for (const concurrency of s.concurrency) out.push({ method, concurrency });
  }
  if (api === 'callback') out.push({ method: 'checkout', concurrency: 1 });
  return out;
}

function runJob(
  job: Job,
  s: InstructionsSettings,
  child: string,
  pkg: PackageBuild,
  db: DbOptions,
  workDir: string,
  keep: boolean,
): Promise<WorkloadResult[]> {
  const workloads = workloadsFor(job.api, s);
  const dir = fs.mkdtempSync(path.join(workDir, `${job.variant}-${job.api}-`));
  const args = [
    '--tool=callgrind',
    '--instr-atstart=no',
    `--callgrind-out-file=${path.join(dir, 'cg.out')}`,
    `--dump-before=${MARKER}`,
    '--dump-instr=no',
    '-q',
    process.execPath,
    ...nodeFlags(),
    child,
    ...['--variant', job.variant, '--api', job.api],
    ...['--workloads', workloads.map((w) => `${w.method}:${w.concurrency}`).join(',')],
    ...['--connection-limit', String(s.connectionLimit)],
    ...['--warmup-rounds', String(s.warmupRounds), '--per-segment', String(s.perSegment)],
    ...['--checkout-per-segment', String(s.checkoutPerSegment)],
    ...['--segments', String(s.segments)],
    ...['--cjs', pkg.index.cjs, '--cjs-promise', pkg.promise.cjs],
    ...['--esm', pkg.index.esm, '--esm-promise', pkg.promise.esm],
  ];
  return new Promise((resolve, reject) => {
    const proc = spawn('valgrind', args, {
      env: { ...process.env, BENCH_DB: JSON.stringify(db) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let instrumented = false;
    proc.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (instrumented || !stdout.includes('INSTRUMENT\n')) return;
      // Warm-up done: count from here (valgrind runs the tool in the pid it was started as).
      instrumented = true;
      const ctl = spawn('callgrind_control', ['--instr=on', String(proc.pid)], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let ctlErr = '';
      ctl.stderr.on('data', (e: Buffer) => (ctlErr += e.toString()));
      ctl.on('close', (code) => {
        if (code === 0) proc.stdin.end('go\n');
        else {
          stderr += `callgrind_control exited ${code}: ${ctlErr}`;
          proc.kill('SIGKILL');
        }
      });
    });
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 900_000);
    timer.unref();
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      try {
        if (code !== 0) {
          throw new Error(
            `instructions: ${job.variant} ${job.api} exited ${code ?? signal}\n${stderr.slice(-4000)}`,
          );
        }
        const lines = stdout.trim().split('\n');
        const res = JSON.parse(lines[lines.length - 1]!) as InstructionsChildResult;
        const files = dumpFiles(dir);
        // One dump per mark, plus the final one at exit.
        if (files.length !== res.marks + 1 || res.marks !== 1 + s.segments * workloads.length) {
          throw new Error(
            `instructions: ${res.marks} marks, ${files.length} callgrind dumps in ${dir}`,
          );
        }
        // files[0]: startup and warm-up; then segment k of workload w; the last: shutdown.
        const out: WorkloadResult[] = workloads.map((w) => ({
          ...job,
          method: w.method,
          concurrency: w.concurrency,
          perSegment: w.method === 'checkout' ? s.checkoutPerSegment : s.perSegment,
          segments: [],
        }));
        for (let i = 0; i < s.segments * workloads.length; i++) {
          out[i % workloads.length]!.segments.push(
            segmentCost(fs.readFileSync(files[1 + i]!, 'utf8')),
          );
        }
        if (!keep) fs.rmSync(dir, { recursive: true, force: true });
        resolve(out);
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}

/** Runs `jobs` with at most `parallel` at a time, in order of submission. */
async function runAll<T, R>(
  items: T[],
  parallel: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  return out;
}

function cellOf(
  api: Api,
  method: Workload['method'],
  concurrency: number,
  results: WorkloadResult[],
): InstructionsCell {
  const byVariant = new Map<VariantName, WorkloadResult[]>();
  for (const r of results) {
    if (r.api !== api || r.method !== method || r.concurrency !== concurrency) continue;
    const list = byVariant.get(r.variant) ?? [];
    list.push(r);
    byVariant.set(r.variant, list);
  }
  const steady = (c: SegmentCost): number => c.total - c.compile - c.gc;
  const per = (r: WorkloadResult, f: (c: SegmentCost) => number): number =>
    r.segments.reduce((a, c) => a + f(c), 0) / (r.segments.length * r.perSegment);
  const cell: InstructionsCell = {
    api,
    method,
    concurrency,
    perCommand: {},
    segments: {},
    gcPerCommand: {},
    compilePerCommand: {},
    ratioToMysql2: {},
    diffToMysql2: {},
    withGcRatioToMysql2: {},
  };
  const sorted = (v: VariantName): WorkloadResult[] =>
    (byVariant.get(v) ?? []).sort((a, b) => a.repeat - b.repeat);
  const base = sorted('mysql2');
  for (const v of byVariant.keys()) {
    const list = sorted(v);
    const values = list.map((r) => per(r, steady));
    const gc = list.map((r) => per(r, (c) => c.gc));
    cell.perCommand[v] = spread(values.map((x) => round(x)));
    cell.segments[v] = spread(
      list.flatMap((r) => r.segments.map((c) => round(steady(c) / r.perSegment))),
    );
    cell.gcPerCommand[v] = spread(gc.map((x) => round(x)));
    cell.compilePerCommand[v] = spread(list.map((r) => round(per(r, (c) => c.compile))));
    if (v !== 'mysql2' && base.length === list.length) {
      const b = base.map((r) => per(r, steady));
      const bGc = base.map((r) => per(r, (c) => c.gc));
      cell.ratioToMysql2[v] = spread(values.map((x, i) => round(x / b[i]!, 4)));
      cell.diffToMysql2[v] = spread(values.map((x, i) => round(x - b[i]!)));
      cell.withGcRatioToMysql2[v] = spread(
        values.map((x, i) => round((x + gc[i]!) / (b[i]! + bGc[i]!), 4)),
      );
    }
  }
  return cell;
}

/** Runs the section; `log` reports progress. */
export async function runInstructions(
  s: InstructionsSettings,
  pkg: PackageBuild,
  db: DbOptions,
  log: (line: string) => void,
): Promise<InstructionsReport> {
  const report: InstructionsReport = {
    available: false,
    nodeFlags: nodeFlags(),
    settings: s,
    cells: [],
    checkout: null,
  };
  const vg = valgrindVersion();
  if (!vg.ok) {
    report.reason = vg.reason;
    return report;
  }
  report.available = true;
  report.valgrind = vg.version;
  const child = await buildChild(pkg.dir);
  // BENCH_CALLGRIND_KEEP=DIR keeps every dump there, for callgrind_annotate or kcachegrind.
  const keep = process.env.BENCH_CALLGRIND_KEEP;
  if (keep) fs.mkdirSync(keep, { recursive: true });
  const workDir = fs.mkdtempSync(path.join(keep || pkg.dir, 'callgrind-'));
  const jobs: Job[] = [];
  for (let repeat = 0; repeat < s.repeats; repeat++) {
    for (const api of s.apis) {
      for (const variant of variantsFor(api, s.peers, s.formats))
        jobs.push({ variant, api, repeat });
    }
  }
  log(
    `instructions: ${jobs.length} processes under callgrind, ${s.parallel} at a time (${s.repeats} repeat(s); ${s.warmupRounds} rounds uninstrumented, then ${s.segments} counted; a round is ${s.perSegment} commands of each workload and ${s.checkoutPerSegment} checkouts)`,
  );
  let done = 0;
  const perJob = await runAll(jobs, s.parallel, async (job) => {
    const r = await runJob(job, s, child, pkg, db, workDir, Boolean(keep));
    done++;
    log(`instructions: ${done}/${jobs.length} (${job.variant}, ${job.api} API)`);
    return r;
  });
  const results = perJob.flat();
  if (!keep) fs.rmSync(workDir, { recursive: true, force: true });
  for (const api of s.apis) {
    for (const method of s.methods) {
      for (const concurrency of s.concurrency) {
        report.cells.push(cellOf(api, method, concurrency, results));
      }
    }
  }
  report.checkout = cellOf('callback', 'checkout', 1, results);
  return report;
}
