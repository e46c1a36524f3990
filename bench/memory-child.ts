/**
 * Memory of one peer, measured in a fresh process (run by memory.ts with --expose-gc) so that the
 * peers do not share a heap. Prints one JSON line (MemoryResult) on stdout.
 *
 *   node --expose-gc --import tsx bench/memory-child.ts --peer P --queries N --idle-connections K
 *     [--module BUNDLE]   (this pool's built bundle, bench/build.ts; default: src/ through tsx)
 *
 * The database comes from the BENCH_DB environment variable (JSON DbOptions), never from argv,
 * so the password does not show up in `ps`.
 */
import { setImmediate as tick } from 'node:timers/promises';
import { countLoop, fill } from './measure.js';
import { createPeer, PEERS, useKeepaliveModule } from './peers.js';
import type { PeerName } from './peers.js';
import type { DbOptions } from '../test/support/db.js';

export interface MemorySnapshot {
  heapUsed: number;
  rss: number;
  external: number;
}

export interface MemoryResult {
  peer: PeerName;
  queries: number;
  idleConnections: number;
  /** Modules loaded, nothing created. */
  baseline: MemorySnapshot;
  /** The pool plus one open idle connection, minus the baseline. */
  poolWithOneConnection: MemorySnapshot;
  /** (pool with K idle connections − pool with 1) / (K − 1). */
  perIdleConnection: MemorySnapshot;
  /** Absolute figures after the queries, after a full GC. */
  afterQueries: MemorySnapshot;
  /** What the queries left behind after a full GC (growth over the K-connection state). */
  retainedByQueries: MemorySnapshot;
}

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : def;
  if (v === undefined) throw new Error(`memory-child: missing --${name}`);
  return v;
}

async function settle(): Promise<MemorySnapshot> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('memory-child needs node --expose-gc');
  // Let pending callbacks and socket reads finish, then collect twice (weak refs, finalizers).
  await tick();
  await tick();
  gc();
  await tick();
  gc();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external };
}

function minus(a: MemorySnapshot, b: MemorySnapshot, per = 1): MemorySnapshot {
  return {
    heapUsed: Math.round((a.heapUsed - b.heapUsed) / per),
    rss: Math.round((a.rss - b.rss) / per),
    external: Math.round((a.external - b.external) / per),
  };
}

async function main(): Promise<void> {
  const peer = arg('peer') as PeerName;
  if (!PEERS.includes(peer)) throw new Error(`memory-child: unknown peer ${peer}`);
  const queries = Number(arg('queries'));
  const idle = Math.max(2, Number(arg('idle-connections')));
  const db = JSON.parse(process.env.BENCH_DB ?? 'null') as DbOptions | null;
  if (!db) throw new Error('memory-child: BENCH_DB is not set');

  const bundle = arg('module', '');
  useKeepaliveModule(bundle === '' ? null : bundle);
  const baseline = await settle();
  const pool = createPeer(peer, { db, connectionLimit: idle, onDemand: true });
  await fill(pool, 1);
  const one = await settle();
  await fill(pool, idle);
  const many = await settle();
  await countLoop(pool, 'query', Math.min(8, idle), queries);
  const after = await settle();
  await pool.end();
  const result: MemoryResult = {
    peer,
    queries,
    idleConnections: idle,
    baseline,
    poolWithOneConnection: minus(one, baseline),
    perIdleConnection: minus(many, one, idle - 1),
    afterQueries: after,
    retainedByQueries: minus(after, many),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

main().catch((e: unknown) => {
  process.stderr.write(`memory-child failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
