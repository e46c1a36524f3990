/**
 * Generic "warm up, idle, query" scenario, meant to be run inside the rig's client namespace by
 * test/support/ns-run.ts (but it runs anywhere). Prints `RIG-EVENT {json}` progress lines and,
 * as its LAST stdout line, one JSON object (ScenarioResult below). Exits 0 whenever it got as far
 * as printing a result (hung queries included); exits 1 if warm-up failed.
 *
 * Flags (all optional):
 *   --module mysql2|<path>   module to take createPool / createConnection from (default mysql2;
 *                            a path is resolved against the cwd, e.g. src/index.ts)
 *   --kind pool|connection   createPool (default) or a single createConnection
 *   --host H --port P        default env RIG_HOST / RIG_PORT, else 127.0.0.1:3306
 *   --user U --database D    default root / test (password: env RIG_PASSWORD, default empty)
 *   --concurrency N          warm-up holds N connections at once, final round runs N queries
 *                            concurrently; default connectionLimit = N (default 4; 1 for kind connection)
 *   --idle-sec S             idle time between warm-up and the final round (default 0)
 *   --tick-ms T              if > 0, during the idle period run a round every T ms (hold N
 *                            connections, query each, release): "never idle past the timeout"
 *   --cap-ms C               each final/tick query is raced against C ms (default 6000); a query
 *                            still pending then is reported hung: true
 *   --keepalive-delay MS     shorthand for options {enableKeepAlive: true, keepAliveInitialDelay: MS}
 *   --pool-options JSON      merged over the base options (also used for kind connection)
 *   --query SQL              default 'SELECT 1 AS one, CONNECTION_ID() AS cid'
 *   --final query|get        final round via pool.query (default) or getConnection+query+release
 *   --await-go               after the idle period emit event "idle-done" and wait for a line on
 *                            stdin before the final round (lets a test inspect/alter the rig)
 *   --sequential             final round: the N callers run one after another (each starts when
 *                            the previous one has its answer) instead of concurrently
 *
 * When the pool has a `stats()` method (our pool does, mysql2's does not), the result carries its
 * value after the final round as `stats`, read once no checkout ping is outstanding any more (a
 * hedge may have served a caller before its ping's verdict). `loopDelay` is the event-loop delay recorded from just
 * before createPool/createConnection to the end of the final round (test/support/loop-delay.ts).
 */
import fs from 'node:fs';
import readline from 'node:readline';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { watchLoop, type LoopDelay } from '../loop-delay.js';

const EVENT_PREFIX = 'RIG-EVENT ';

export interface QueryOutcome {
  ok: boolean;
  ms: number;
  /** err.code as reported by the driver (e.g. ECONNRESET, PROTOCOL_CONNECTION_LOST), or null */
  errorCode: string | null;
  hung: boolean;
  errno: number | null;
  fatal: boolean | null;
  errorMessage: string | null;
  /** CONNECTION_ID() from the result, if the query selected one as `cid` */
  cid: number | null;
  /** cid was one of the warm-up connection ids */
  reused: boolean | null;
}

export interface ScenarioResult {
  module: string;
  kind: 'pool' | 'connection';
  options: Record<string, unknown>;
  concurrency: number;
  idleSec: number;
  tickMs: number;
  capMs: number;
  warmup: { cids: number[]; ms: number };
  ticks: { rounds: number; failures: QueryOutcome[] };
  results: QueryOutcome[];
  connectionErrors: { atMs: number; code: string | null; message: string }[];
  /** Final round: 'concurrent' (default) or 'sequential'. */
  finalMode: 'concurrent' | 'sequential';
  timings: { warmupMs: number; idleMs: number; finalMs: number; totalMs: number };
  /** `pool.stats()` after the final round, when the pool has it (kind pool only). */
  stats?: unknown;
  /** Event-loop delay from createPool to the end of the final round (always set by this
   * scenario; optional for reports built elsewhere, such as the demo's). */
  loopDelay?: LoopDelay;
}

interface Args {
  module: string;
  kind: 'pool' | 'connection';
  host: string;
  port: number;
  user: string;
  database: string;
  concurrency: number;
  idleSec: number;
  tickMs: number;
  capMs: number;
  keepaliveDelay: number | null;
  poolOptions: Record<string, unknown>;
  query: string;
  final: 'query' | 'get';
  awaitGo: boolean;
  sequential: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    module: 'mysql2',
    kind: 'pool',
    host: process.env.RIG_HOST ?? '127.0.0.1',
    port: Number(process.env.RIG_PORT ?? 3306),
    user: 'root',
    database: 'test',
    concurrency: -1,
    idleSec: 0,
    tickMs: 0,
    capMs: 6000,
    keepaliveDelay: null,
    poolOptions: {},
    query: 'SELECT 1 AS one, CONNECTION_ID() AS cid',
    final: 'query',
    awaitGo: false,
    sequential: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`missing value for ${flag}`);
      return v;
    };
    const num = (): number => {
      const v = Number(next());
      if (!Number.isFinite(v)) throw new Error(`${flag} needs a number`);
      return v;
    };
    switch (flag) {
      case '--module':
        a.module = next();
        break;
      case '--kind': {
        const k = next();
        if (k !== 'pool' && k !== 'connection') throw new Error(`bad --kind ${k}`);
        a.kind = k;
        break;
      }
      case '--host':
        a.host = next();
        break;
      case '--port':
        a.port = num();
        break;
      case '--user':
        a.user = next();
        break;
      case '--database':
        a.database = next();
        break;
      case '--concurrency':
        a.concurrency = num();
        break;
      case '--idle-sec':
        a.idleSec = num();
        break;
      case '--tick-ms':
        a.tickMs = num();
        break;
      case '--cap-ms':
        a.capMs = num();
        break;
      case '--keepalive-delay':
        a.keepaliveDelay = num();
        break;
      case '--pool-options':
        a.poolOptions = JSON.parse(next()) as Record<string, unknown>;
        break;
      case '--query':
        a.query = next();
        break;
      case '--final': {
        const f = next();
        if (f !== 'query' && f !== 'get') throw new Error(`bad --final ${f}`);
        a.final = f;
        break;
      }
      case '--await-go':
        a.awaitGo = true;
        break;
      case '--sequential':
        a.sequential = true;
        break;
      default:
        throw new Error(`unknown argument ${flag}`);
    }
  }
  if (a.concurrency < 0) a.concurrency = a.kind === 'connection' ? 1 : 4;
  if (a.kind === 'connection' && a.concurrency !== 1)
    throw new Error('--kind connection needs --concurrency 1');
  return a;
}

// Minimal structural types: the module under test is either mysql2 or a drop-in replacement.
type Cb<T> = (err: (Error & Record<string, unknown>) | null, res?: T) => void;
interface Queryable {
  query(sql: string, cb: Cb<unknown>): unknown;
}
interface PoolConn extends Queryable {
  release(): void;
}
interface PoolLike extends Queryable {
  getConnection(cb: Cb<PoolConn>): void;
  /** Our pool's counters; absent on mysql2's pool. */
  stats?: () => unknown;
}
interface ConnLike extends Queryable {
  connect(cb: Cb<unknown>): void;
  on(ev: 'error', fn: (e: Error & { code?: string }) => void): unknown;
}
interface DriverModule {
  createPool?: (opts: Record<string, unknown>) => PoolLike;
  createConnection?: (opts: Record<string, unknown>) => ConnLike;
}

const t0 = Date.now();
const now = (): number => Date.now() - t0;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function emit(event: string, data: Record<string, unknown> = {}): void {
  process.stdout.write(`${EVENT_PREFIX}${JSON.stringify({ event, atMs: now(), ...data })}\n`);
}

function cbp<T>(fn: (cb: Cb<T>) => unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    fn((err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

function cidOf(rows: unknown): number | null {
  if (Array.isArray(rows) && rows.length > 0) {
    const r = rows[0] as Record<string, unknown>;
    const v = r.cid;
    if (typeof v === 'number') return v;
    if (typeof v === 'string' || typeof v === 'bigint') return Number(v);
  }
  return null;
}

async function timed(
  run: () => Promise<unknown>,
  capMs: number,
  warmCids: Set<number>,
): Promise<QueryOutcome> {
  const start = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const HUNG = Symbol('hung');
  try {
    const res = await Promise.race([
      run(),
      new Promise<typeof HUNG>((r) => {
        timer = setTimeout(() => r(HUNG), capMs);
      }),
    ]);
    const ms = Date.now() - start;
    if (res === HUNG) {
      return {
        ok: false,
        ms,
        errorCode: null,
        hung: true,
        errno: null,
        fatal: null,
        errorMessage: null,
        cid: null,
        reused: null,
      };
    }
    const cid = cidOf(res);
    return {
      ok: true,
      ms,
      errorCode: null,
      hung: false,
      errno: null,
      fatal: null,
      errorMessage: null,
      cid,
      reused: cid === null ? null : warmCids.has(cid),
    };
  } catch (e) {
    const err = e as Error & { code?: unknown; errno?: unknown; fatal?: unknown };
    return {
      ok: false,
      ms: Date.now() - start,
      errorCode:
        typeof err.code === 'string' ? err.code : err.code == null ? null : String(err.code),
      hung: false,
      errno: typeof err.errno === 'number' ? err.errno : null,
      fatal: typeof err.fatal === 'boolean' ? err.fatal : null,
      errorMessage: err.message ?? String(e),
      cid: null,
      reused: null,
    };
  } finally {
    clearTimeout(timer);
  }
}

async function loadModule(spec: string): Promise<DriverModule> {
  // A file that exists (relative to the cwd, e.g. src/index.ts) is a path; anything else is a
  // package name (mysql2, mysql2/promise).
  const target = fs.existsSync(path.resolve(spec)) ? pathToFileURL(path.resolve(spec)).href : spec;
  const m = (await import(target)) as DriverModule & { default?: DriverModule };
  if (m.createPool || m.createConnection) return m;
  if (m.default && (m.default.createPool || m.default.createConnection)) return m.default;
  throw new Error(`module ${spec} exports neither createPool nor createConnection`);
}

function waitForGo(): Promise<void> {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin });
    rl.once('line', () => {
      rl.close();
      resolve();
    });
    rl.once('close', () => resolve());
  });
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const mod = await loadModule(a.module);

  const options: Record<string, unknown> = {
    host: a.host,
    port: a.port,
    user: a.user,
    password: process.env.RIG_PASSWORD ?? '',
    database: a.database,
    ...(a.kind === 'pool' ? { connectionLimit: a.concurrency } : {}),
    ...(a.keepaliveDelay !== null
      ? { enableKeepAlive: true, keepAliveInitialDelay: a.keepaliveDelay }
      : {}),
    ...a.poolOptions,
  };
  const connectionErrors: ScenarioResult['connectionErrors'] = [];
  const warmCids = new Set<number>();
  // After the module load (compiling it is not the pool's doing), before the pool exists.
  const watch = await watchLoop();

  // --- warm-up: hold N connections at once, SELECT CONNECTION_ID() on each, release
  let round: () => Promise<number[]>;
  let finalQuery: () => Promise<unknown>;
  let readStats: (() => unknown) | null = null;
  if (a.kind === 'pool') {
    if (!mod.createPool) throw new Error(`${a.module} has no createPool`);
    const pool = mod.createPool(options);
    if (typeof pool.stats === 'function') readStats = () => pool.stats!();
    round = async () => {
      const conns = await Promise.all(
        Array.from({ length: a.concurrency }, () => cbp<PoolConn>((cb) => pool.getConnection(cb))),
      );
      try {
        const rows = await Promise.all(
          conns.map((c) => cbp<unknown>((cb) => c.query('SELECT CONNECTION_ID() AS cid', cb))),
        );
        return rows.map((r) => cidOf(r) ?? -1);
      } finally {
        for (const c of conns) c.release();
      }
    };
    finalQuery =
      a.final === 'query'
        ? () => cbp<unknown>((cb) => pool.query(a.query, cb))
        : async () => {
            const c = await cbp<PoolConn>((cb) => pool.getConnection(cb));
            try {
              return await cbp<unknown>((cb) => c.query(a.query, cb));
            } finally {
              c.release();
            }
          };
  } else {
    if (!mod.createConnection) throw new Error(`${a.module} has no createConnection`);
    const conn = mod.createConnection(options);
    conn.on('error', (e) =>
      connectionErrors.push({ atMs: now(), code: e.code ?? null, message: e.message }),
    );
    await cbp<unknown>((cb) => conn.connect(cb));
    round = async () => [
      cidOf(await cbp<unknown>((cb) => conn.query('SELECT CONNECTION_ID() AS cid', cb))) ?? -1,
    ];
    finalQuery = () => cbp<unknown>((cb) => conn.query(a.query, cb));
  }

  const warmStart = Date.now();
  const cids = await Promise.race([
    round(),
    sleep(Math.max(a.capMs, 10_000)).then(() => {
      throw new Error('warm-up did not complete in time');
    }),
  ]);
  for (const c of cids) warmCids.add(c);
  const warmupMs = Date.now() - warmStart;
  emit('warm', { cids });

  // --- idle (optionally with activity rounds every tickMs)
  const idleStart = Date.now();
  const idleEnd = idleStart + a.idleSec * 1000;
  const ticks: ScenarioResult['ticks'] = { rounds: 0, failures: [] };
  if (a.tickMs > 0) {
    for (;;) {
      const left = idleEnd - Date.now();
      if (left <= 0) break;
      await sleep(Math.min(a.tickMs, left));
      if (Date.now() >= idleEnd) break;
      ticks.rounds++;
      const outcome = await timed(round, a.capMs, warmCids);
      if (!outcome.ok) ticks.failures.push(outcome);
    }
  } else {
    await sleep(Math.max(0, idleEnd - Date.now()));
  }
  const idleMs = Date.now() - idleStart;

  if (a.awaitGo) {
    emit('idle-done');
    await waitForGo();
  }

  // --- final round: N queries, concurrent or one after another, each raced against the cap
  emit('final-start');
  const finalStart = Date.now();
  let results: QueryOutcome[];
  if (a.sequential) {
    results = [];
    for (let i = 0; i < a.concurrency; i++) {
      results.push(await timed(finalQuery, a.capMs, warmCids));
    }
  } else {
    results = await Promise.all(
      Array.from({ length: a.concurrency }, () => timed(finalQuery, a.capMs, warmCids)),
    );
  }
  const finalMs = Date.now() - finalStart;
  // Our pool may have served callers before their checkout pings' verdicts (a hedge): `stats` is
  // read once those are in (every connection idle, borrowed or gone, nothing being opened), at
  // most 5 s later. The pool has no event for a ping that found its connection alive.
  if (readStats) {
    const read = readStats as () => {
      total: number;
      idle: number;
      borrowed: number;
      pending: number;
    };
    for (let waited = 0; waited < 5000; waited += 20) {
      const s = read();
      if (s.total === s.idle + s.borrowed && s.pending === 0) break;
      await sleep(20);
    }
  }
  const loopDelay = await watch.stop();

  const out: ScenarioResult = {
    module: a.module,
    kind: a.kind,
    options: { ...options, password: options.password ? '***' : '' },
    concurrency: a.concurrency,
    idleSec: a.idleSec,
    tickMs: a.tickMs,
    capMs: a.capMs,
    warmup: { cids, ms: warmupMs },
    ticks,
    results,
    connectionErrors,
    finalMode: a.sequential ? 'sequential' : 'concurrent',
    timings: { warmupMs, idleMs, finalMs, totalMs: now() },
    ...(readStats ? { stats: readStats() } : {}),
    loopDelay,
  };
  // Hung queries keep sockets (and the event loop) alive: print, then exit explicitly.
  process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(0));
}

main().catch((e: unknown) => {
  process.stderr.write(
    `scenario failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
  );
  process.exit(1);
});
