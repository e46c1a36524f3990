/**
 * One peer through one API, a few workloads, run under `valgrind --tool=callgrind` by bench/instructions.ts, which
 * counts the instructions this process executes between marks. Not run through tsx: the parent
 * bundles this file with the package's own tsup, so that the counted process loads only what a
 * user's process would (the peers, mysql2, node), with no TypeScript loader in it.
 *
 *   valgrind --tool=callgrind --dump-before=getpriority … node --single-threaded … CHILD.cjs
 *     --variant keepalive|keepalive-esm|mysql2|mariadb --api callback|promise
 *     --workloads query:32,execute:32,checkout:1 --connection-limit L --warmup-rounds R
 *     --per-segment N --checkout-per-segment NC --segments K
 *     [--cjs BUNDLE --cjs-promise BUNDLE --esm BUNDLE --esm-promise BUNDLE]
 *
 * It opens `connectionLimit` connections, runs W commands of every workload (WC checkouts; the
 * JIT tiers up) uninstrumented, has the parent switch callgrind's instrumentation on, then K rounds of one segment of N commands per workload, calling {@link mark}
 * after the warm-up and after every segment (workloads interleaved, so that any drift hits them
 * alike). A mark is an `os.getPriority(0)`: callgrind is told to dump its counters on entering libc's `getpriority`,
 * so each dump between two marks holds exactly the cost of one segment, and startup, warm-up and
 * shutdown land in dumps of their own (JavaScript cannot issue callgrind's client requests).
 * Nothing else in node calls `getpriority` (`getegid`, say, node calls a dozen times at startup);
 * the child prints how many marks it made, and the parent checks the number of dumps against it.
 *
 * The database comes from BENCH_DB (JSON DbOptions), never from argv (`ps` shows argv).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { countLoop, fill, hotCheckouts } from './measure.js';
import type { Method } from './measure.js';
import { createVariant, setKeepaliveVariant } from './peers.js';
import type { Api, VariantName } from './peers.js';
import type { DbOptions } from '../test/support/db.js';

/** One measured workload of a child: `method` at `concurrency` (a checkout runs one at a time). */
export interface Workload {
  method: Method | 'checkout';
  concurrency: number;
}

export interface InstructionsChildResult {
  variant: VariantName;
  api: Api;
  /** In the order of the marks: after warm-up, segment k of workload w is dump 1 + k·W + w. */
  workloads: Workload[];
  warmupRounds: number;
  perSegment: number;
  checkoutPerSegment: number;
  segments: number;
  /** Marks made (os.getPriority calls): 1 + segments × workloads. */
  marks: number;
}

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : def;
  if (v === undefined) throw new Error(`instructions-child: missing --${name}`);
  return v;
}

let marks = 0;
/** Callgrind dumps its counters here (`--dump-before=getpriority`). */
function mark(): void {
  marks++;
  os.getPriority(0);
}

/**
 * Startup and warm-up run uninstrumented (`--instr-atstart=no`: several times faster, nothing
 * counted): the child asks the parent, which runs `callgrind_control --instr=on` on this process,
 * and goes on when told to. With file-descriptor calls, not process.stdout/stdin: a first use of
 * those streams would run node's stream code with new object shapes, and V8 would throw away and
 * recompile the optimized stream code the sockets use, inside the counted rounds. (Blocking is
 * what this process is meant to do here: nothing else runs in it.)
 */
function instrumentationOn(): void {
  fs.writeSync(1, 'INSTRUMENT\n');
  const buf = Buffer.alloc(16);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      // A non-blocking stdin (someone touched process.stdin) says EAGAIN until the line is there.
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(nap, 0, 0, 5);
      continue;
    }
    if (n <= 0 || buf.includes(10)) break;
  }
}

async function main(): Promise<void> {
  const variant = arg('variant') as VariantName;
  const api = arg('api') as Api;
  // "query:32,execute:32,checkout:1"
  const workloads: Workload[] = arg('workloads')
    .split(',')
    .map((w) => {
      const [method, c] = w.split(':');
      return { method: method as Workload['method'], concurrency: Number(c) };
    });
  const connectionLimit = Number(arg('connection-limit'));
  const warmupRounds = Number(arg('warmup-rounds'));
  const perSegment = Number(arg('per-segment'));
  const checkoutPerSegment = Number(arg('checkout-per-segment'));
  const segments = Number(arg('segments'));
  const db = JSON.parse(process.env.BENCH_DB ?? 'null') as DbOptions | null;
  if (!db) throw new Error('instructions-child: BENCH_DB is not set');
  if (variant === 'keepalive') {
    const load = createRequire(__filename);
    setKeepaliveVariant('cjs', { index: load(arg('cjs')), promise: load(arg('cjs-promise')) });
  } else if (variant === 'keepalive-esm') {
    const url = (file: string): string => pathToFileURL(file).href;
    setKeepaliveVariant('esm', {
      index: await import(url(arg('esm'))),
      promise: await import(url(arg('esm-promise'))),
    });
  }
  // Under callgrind the clock runs ~50 times slower than the code: a connection that sits out a
  // checkout segment is idle for a second here, 20 ms at native speed. The validation skip window
  // (ours; mariadb's minDelayValidation) is stretched alike, so that time-driven work (a checkout
  // ping) happens as often as it would natively: never, in these closed loops.
  const pool = createVariant(variant, api, { db, connectionLimit, validationWindowMs: 60_000 });
  const run = async (w: Workload): Promise<void> => {
    if (w.method === 'checkout') await hotCheckouts(pool, checkoutPerSegment);
    else await countLoop(pool, w.method, w.concurrency, perSegment);
  };
  try {
    await fill(pool, connectionLimit);
    // Warm-up in the same interleaved rounds as the measurement: code shared by the workloads
    // (mysql2's protocol, the pool) gets the feedback of all of them before it is optimized.
    for (let r = 0; r < warmupRounds; r++) {
      for (const w of workloads) await run(w);
    }
    instrumentationOn();
    mark();
    for (let k = 0; k < segments; k++) {
      for (const w of workloads) {
        await run(w);
        mark();
      }
    }
  } finally {
    await pool.end();
  }
  const result: InstructionsChildResult = {
    variant,
    api,
    workloads,
    warmupRounds,
    perSegment,
    checkoutPerSegment,
    segments,
    marks,
  };
  fs.writeSync(1, `${JSON.stringify(result)}\n`);
  process.exit(0);
}

main().catch((e: unknown) => {
  process.stderr.write(`instructions-child failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
