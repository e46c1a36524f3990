/**
 * Mid-query partition scenario for test/integration/partition.test.ts, run inside the rig's client
 * namespace by test/support/ns-run.ts. The test drives it through stdin; it reports through
 * `RIG-EVENT {json}` lines and prints one JSON object ({@link PartitionResult}) as its last line.
 *
 *   1. Our pool (connectionLimit 2) opens two connections: H is held by the scenario (like a
 *      transaction), S stays in the pool. A plain mysql2 connection C is the control.
 *   2. `pool.query('SELECT SLEEP(n)')` starts on S        → event `inflight` {cidS, cidH, cidC}
 *      (the test waits for the SLEEP in the server's process list, then partitions)
 *   3. stdin `go`: H.query and C.query are written into the black hole.
 *   4. The SLEEP (answer lost) and H's query (written after the network died) must fail on their
 *      own; C's query is raced against --cap-ms.    → event `partitioned` {…outcomes}
 *   5. stdin `healed`: the same pool runs one more query, then everything is closed.
 *
 * From before createPool to the end, the event-loop delay is recorded (`loopDelay`).
 *
 * Flags: --host H --port P --pool-options JSON --sleep-sec S (default 3) --cap-ms C (default 12000)
 *        --limit-ms L (default 60000: a safety net so the scenario always ends).
 */
import readline from 'node:readline';
import mysql from 'mysql2';
import type { PoolConnection, RowDataPacket } from 'mysql2';
import { createPool } from '../../../src/index.js';
import type { EvictedConnectionEvent } from '../../../src/index.js';
import { readSocketSettings, socketCapability } from '../../../src/health.js';
import type { SocketReadback } from '../../../src/health.js';
import { watchLoop, type LoopDelay } from '../loop-delay.js';

const EVENT_PREFIX = 'RIG-EVENT ';

/** How one in-flight query ended. `ms` counts from the moment the test said `go`. */
export interface Outcome {
  ok: boolean;
  hung: boolean;
  ms: number;
  code: string | null;
  errno: number | null;
  fatal: boolean | null;
  message: string | null;
}

export interface PartitionResult {
  capability: { available: boolean; reason?: string };
  cids: { held: number; pooled: number; control: number };
  socket: { held: SocketReadback; pooled: SocketReadback };
  /** pool.query('SELECT SLEEP(n)') on S: its answer was lost. */
  answerLost: Outcome;
  /** H.query('SELECT 1') written after the partition. */
  writeAfterDead: Outcome;
  /** Plain mysql2: C.query('SELECT 1') written after the partition, raced against --cap-ms. */
  control: Outcome;
  capMs: number;
  evicted: EvictedConnectionEvent[];
  stateAfterFailures: { total: number; active: number; idle: number; waiting: number };
  retries: number;
  afterHeal: { ok: boolean; cid: number | null; message: string | null };
  stateAfterHeal: { total: number; active: number; idle: number; waiting: number };
  /** Event-loop delay from createPool to the end. */
  loopDelay: LoopDelay;
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : def;
}

function emit(event: string, data: Record<string, unknown> = {}): void {
  process.stdout.write(`${EVENT_PREFIX}${JSON.stringify({ event, ...data })}\n`);
}

const lines = readline.createInterface({ input: process.stdin });
const waiting: Array<(line: string) => void> = [];
lines.on('line', (l) => waiting.shift()?.(l.trim()));
function nextLine(expected: string): Promise<void> {
  return new Promise((resolve, reject) =>
    waiting.push((l) =>
      l === expected ? resolve() : reject(new Error(`expected "${expected}", got "${l}"`)),
    ),
  );
}

const HUNG = Symbol('hung');

/** Settles `p` into an Outcome; a query still pending after `capMs` is `hung`. */
async function outcome(p: Promise<unknown>, since: () => number, capMs: number): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const res = await Promise.race([
      p,
      new Promise<typeof HUNG>((r) => {
        timer = setTimeout(() => r(HUNG), capMs);
      }),
    ]);
    const hung = res === HUNG;
    return { ok: !hung, hung, ms: since(), code: null, errno: null, fatal: null, message: null };
  } catch (e) {
    const err = e as Error & { code?: unknown; errno?: unknown; fatal?: unknown };
    return {
      ok: false,
      hung: false,
      ms: since(),
      code: typeof err.code === 'string' ? err.code : null,
      errno: typeof err.errno === 'number' ? err.errno : null,
      fatal: typeof err.fatal === 'boolean' ? err.fatal : null,
      message: err.message,
    };
  } finally {
    clearTimeout(timer);
  }
}

async function main(): Promise<void> {
  const host = arg('--host', '127.0.0.1');
  const port = Number(arg('--port', '3306'));
  const sleepSec = Number(arg('--sleep-sec', '3'));
  const capMs = Number(arg('--cap-ms', '12000'));
  const limitMs = Number(arg('--limit-ms', '60000'));
  const poolOptions = JSON.parse(arg('--pool-options', '{}')) as Record<string, unknown>;
  const base = { host, port, user: 'root', password: '', database: 'test' };

  const watch = await watchLoop();
  const pool = createPool({
    ...base,
    connectionLimit: 2,
    // No checkout ping and no idle ping: the queries below must reach the dead sockets, which
    // is what this scenario is about (validation on checkout is tested elsewhere).
    validationSkipWindow: 60_000,
    idlePingInterval: 0,
    ...poolOptions,
  });
  const promisePool = pool.promise();
  const evicted: EvictedConnectionEvent[] = [];
  pool.on('evicted', (e: EvictedConnectionEvent) => evicted.push(e));

  const held = await new Promise<PoolConnection>((resolve, reject) =>
    pool.getConnection((err, c) => (err ? reject(err) : resolve(c))),
  );
  const cidOf = async (q: Promise<[RowDataPacket[], unknown]>): Promise<number> =>
    Number((await q)[0][0]!.cid);
  const cidH = await cidOf(held.promise().query<RowDataPacket[]>('SELECT CONNECTION_ID() AS cid'));
  let pooledConn: PoolConnection | undefined;
  pool.once('acquire', (c: PoolConnection) => (pooledConn = c));
  const cidS = await cidOf(promisePool.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS cid'));
  const socket = {
    held: readSocketSettings(held),
    pooled: pooledConn ? readSocketSettings(pooledConn) : {},
  };

  const control = mysql.createConnection({
    ...base,
    enableKeepAlive: true,
    keepAliveInitialDelay: Number(poolOptions.keepAliveInitialDelay ?? 1000),
  });
  control.on('error', () => {});
  const cidC = await cidOf(
    control.promise().query<RowDataPacket[]>('SELECT CONNECTION_ID() AS cid'),
  );

  // The answer of this query will be lost: the test partitions while the server sleeps.
  const sleeping = promisePool.query(`SELECT SLEEP(${sleepSec}) AS s, CONNECTION_ID() AS cid`);
  sleeping.catch(() => {}); // observed through outcome() below
  emit('inflight', { cidH, cidS, cidC });
  await nextLine('go');

  const go = Date.now();
  const since = (): number => Date.now() - go;
  const written = held.promise().query('SELECT 1 AS one');
  const controlQuery = control.promise().query('SELECT 1 AS one');
  controlQuery.catch(() => {});
  const [answerLost, writeAfterDead, controlOutcome] = await Promise.all([
    outcome(sleeping, since, limitMs),
    outcome(written, since, limitMs),
    outcome(controlQuery, since, capMs),
  ]);
  held.release();
  const stateAfterFailures = pool.state();
  emit('partitioned', { answerLost, writeAfterDead, control: controlOutcome });
  control.destroy();
  await nextLine('healed');

  let afterHeal: PartitionResult['afterHeal'];
  try {
    const cid = await cidOf(promisePool.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS cid'));
    afterHeal = { ok: true, cid, message: null };
  } catch (e) {
    afterHeal = { ok: false, cid: null, message: (e as Error).message };
  }
  const stateAfterHeal = pool.state();
  const retries = pool.stats().retries;
  await new Promise<void>((resolve) => pool.end(() => resolve()));
  const loopDelay = await watch.stop();
  lines.close();

  const result: PartitionResult = {
    capability: socketCapability(),
    cids: { held: cidH, pooled: cidS, control: cidC },
    socket,
    answerLost,
    writeAfterDead,
    control: controlOutcome,
    capMs,
    evicted,
    stateAfterFailures: pick(stateAfterFailures),
    retries,
    afterHeal,
    stateAfterHeal: pick(stateAfterHeal),
    loopDelay,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function pick(s: { total: number; active: number; idle: number; waiting: number }): {
  total: number;
  active: number;
  idle: number;
  waiting: number;
} {
  return { total: s.total, active: s.active, idle: s.idle, waiting: s.waiting };
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`partition-inflight failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
