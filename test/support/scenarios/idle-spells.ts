/**
 * "Warm up, then several idle spells, each ended by N concurrent queries", for our pool inside
 * the rig's client namespace (test/support/ns-run.ts): how many connections die of idleness in
 * each spell, and what the pool learned about the path's idle timeout (path-timeout.ts). Prints
 * one JSON object ({@link SpellsResult}) as its last stdout line.
 *
 * Flags: --module PATH (our pool, e.g. src/index.ts or dist/index.cjs) --host H --port P
 *   --concurrency N (default 4) --spells K (default 4) --idle-sec S (default 6)
 *   --pool-options JSON (merged over the base options)
 *
 * A spell's deaths are those the pool recorded (stats().dead, every reason) from the start of its
 * idle period until its final round is over and no checkout ping is outstanding any more (a stale
 * connection's ping verdict comes up to validationTimeout after the round).
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { PoolConnection } from 'mysql2';
import { readSocketSettings } from '../../../src/health.js';
import type { PathTimeoutEvent, Pool, PoolStats } from '../../../src/index.js';

export interface SpellOutcome {
  /** Connections found dead during this spell (idle period + its final round). */
  deaths: number;
  /** By reason. */
  dead: Record<string, number>;
  /** The final round: latency of each caller, ms, and whether all got an answer. */
  ms: number[];
  ok: boolean;
  /** The pool's pathTimeout stats at the end of the spell. */
  pathTimeout: PoolStats['pathTimeout'];
  /** TCP_KEEPIDLE and TCP_KEEPINTVL of a live pooled socket, read back from the kernel at the end
   * of the spell, ms (undefined where they cannot be read). */
  socket: { keepAliveIdle?: number; keepAliveInterval?: number };
}

export interface SpellsResult {
  spells: SpellOutcome[];
  events: PathTimeoutEvent[];
  warnings: string[];
  stats: PoolStats;
}

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : def;
  if (v === undefined) throw new Error(`missing ${name}`);
  return v;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function deadTotal(s: PoolStats): number {
  return Object.values(s.dead).reduce((a, b) => a + b, 0);
}

async function main(): Promise<void> {
  const spec = arg('--module', 'src/index.ts');
  const target = fs.existsSync(path.resolve(spec)) ? pathToFileURL(path.resolve(spec)).href : spec;
  const mod = (await import(target)) as {
    createPool?: unknown;
    default?: { createPool?: unknown };
  };
  const createPool = (mod.createPool ?? mod.default?.createPool) as (o: object) => Pool;
  const n = Number(arg('--concurrency', '4'));
  const spells = Number(arg('--spells', '4'));
  const idleSec = Number(arg('--idle-sec', '6'));
  const warnings: string[] = [];
  process.on('warning', (w) =>
    warnings.push(`${(w as Error & { code?: string }).code}: ${w.message}`),
  );
  const pool = createPool({
    host: arg('--host'),
    port: Number(arg('--port')),
    user: 'root',
    password: '',
    database: 'test',
    connectionLimit: n,
    ...(JSON.parse(arg('--pool-options', '{}')) as object),
  });
  const events: PathTimeoutEvent[] = [];
  pool.on('pathTimeout', (e) => events.push(e));
  const p = pool.promise();
  const round = async (): Promise<{ ms: number[]; ok: boolean }> => {
    const outcomes = await Promise.all(
      Array.from({ length: n }, async () => {
        const start = Date.now();
        try {
          await p.query('SELECT 1');
          return { ms: Date.now() - start, ok: true };
        } catch {
          return { ms: Date.now() - start, ok: false };
        }
      }),
    );
    return { ms: outcomes.map((o) => o.ms), ok: outcomes.every((o) => o.ok) };
  };
  // Warm-up: N connections at once.
  const conns = await Promise.all(Array.from({ length: n }, () => p.getConnection()));
  for (const c of conns) c.release();
  const out: SpellOutcome[] = [];
  for (let i = 0; i < spells; i++) {
    const before = pool.stats();
    await sleep(idleSec * 1000);
    const r = await round();
    // Until no checkout ping is outstanding (the pool has no event for a verdict that found the
    // connection alive): every connection idle, borrowed or gone, nothing being opened.
    for (let waited = 0; waited < 5000; waited += 50) {
      const s = pool.stats();
      if (s.total === s.idle + s.borrowed && s.pending === 0) break;
      await sleep(50);
    }
    const after = pool.stats();
    const held = await p.getConnection();
    const rb = readSocketSettings((held as unknown as { connection: PoolConnection }).connection);
    held.release();
    const dead: Record<string, number> = {};
    for (const [k, v] of Object.entries(after.dead)) {
      const d = v - before.dead[k as keyof PoolStats['dead']];
      if (d > 0) dead[k] = d;
    }
    out.push({
      deaths: deadTotal(after) - deadTotal(before),
      dead,
      ms: r.ms,
      ok: r.ok,
      pathTimeout: after.pathTimeout,
      socket: { keepAliveIdle: rb.keepAliveIdle, keepAliveInterval: rb.keepAliveInterval },
    });
  }
  const stats = pool.stats();
  await p.end();
  const result: SpellsResult = { spells: out, events, warnings, stats };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`idle-spells failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
