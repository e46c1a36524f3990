/**
 * Our pool in a pod whose cluster DNS is down, for test/integration/dns-blackhole.test.ts: run
 * inside a rig client namespace created with `dns: 'blackhole'` (test/support/RIG.md), the
 * database reached by IP. Reports through `RIG-EVENT {json}` lines, takes its cues on stdin and
 * prints one JSON object ({@link DnsBlackholeResult}) as its last line.
 *
 *   1. Proof that DNS is black-holed here: the resolver is the rig's, and a query to it times out.
 *   2. `process.report.getReport` is wrapped to count calls (anyone's: ours, a dependency's), and
 *      a TCP listener opens on the namespace's own address, as an application's server would
 *      (a report would look its address up).
 *   3. The library is imported (its native binding loads then: src/health.ts).
 *   4. The event-loop watch starts; then, with the pool under it:
 *      open     createPool, then 4 connections at once (the moment the issue saw an 80 s
 *               freeze: the native binding used to load in the first connect callback);
 *      validate 2 × 4 concurrent queries, every checkout pinged (validationSkipWindow 0);
 *      ping     until each connection got an idle ping, then healthCheck();
 *      failover event `partition` → stdin `go`: the network is gone; every connection is found
 *               dead, one query meets the outage; event `partitioned` → stdin `healed`: 4
 *               concurrent queries on new connections.
 *   5. The watch stops; then the control: with the listener open, how long a diagnostic report
 *      takes here (what ffi-rs's loader used to trigger).
 *
 * An error of the pool ends the phases early; it is reported in `error`, with the figures so far.
 *
 * Flags: --host H --port P (the rig's VIP) --dns ADDR (the black-holed resolver) --local-addr A
 * (an address of the namespace, not in /etc/hosts).
 */
import dns from 'node:dns';
import net from 'node:net';
import readline from 'node:readline';
import type { PoolConnection, RowDataPacket } from 'mysql2';
import type { PoolStats } from '../../../src/index.js';
import { watchLoop, type LoopDelay } from '../loop-delay.js';

const EVENT_PREFIX = 'RIG-EVENT ';
const N = 4;
const VALIDATION_TIMEOUT = 500;
const PHASE_DEADLINE_MS = 15_000;

export interface DnsBlackholeResult {
  /** dns.getServers() in the namespace. */
  servers: string[];
  /** A query sent to the resolver: its error code (ETIMEOUT when black-holed). */
  resolverProbe: { code: string | null; ms: number };
  loopDelay: LoopDelay;
  /** The library's import, ms (its module loading, compiled by tsx here). */
  importMs: number;
  /** createPool() alone, synchronous, ms. */
  createPoolMs: number;
  /** How long each phase took, ms (a phase that failed or did not run is absent). */
  phases: Partial<Record<'open' | 'validate' | 'ping' | 'failover', number>>;
  /** Why the phases stopped early (an error of the pool under test), else null. */
  error: string | null;
  warmCids: number[];
  /** The query sent during the outage: how it ended. */
  duringOutage: { code: string | null; ms: number } | null;
  afterHealCids: number[];
  /** Calls of process.report.getReport from the library's import to the pool's end. */
  getReportCalls: number;
  stats: PoolStats;
  /** Control: one diagnostic report with the listener open, ms. */
  controlReportMs: number;
}

function arg(name: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined) throw new Error(`missing ${name}`);
  return v;
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

/** Resolves once `pred` holds, checked every `everyMs` (the pool has no event for an idle
 * ping); rejects after the phase deadline. */
function until(pred: () => boolean, what: string, everyMs = 50): Promise<void> {
  const deadline = Date.now() + PHASE_DEADLINE_MS;
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (pred()) return resolve();
      if (Date.now() > deadline)
        return reject(new Error(`${what}: not within ${PHASE_DEADLINE_MS} ms`));
      setTimeout(check, everyMs);
    };
    check();
  });
}

async function main(): Promise<void> {
  const host = arg('--host');
  const port = Number(arg('--port'));
  const dnsServer = arg('--dns');
  const localAddr = arg('--local-addr');

  // 1. DNS here is the black hole, not the host's resolver.
  const servers = dns.getServers();
  const resolver = new dns.promises.Resolver({ timeout: 300, tries: 1 });
  resolver.setServers([dnsServer]);
  const probeStart = Date.now();
  const resolverProbe = await resolver.resolve4('kubernetes.default.svc.cluster.local').then(
    () => ({ code: 'ANSWERED', ms: Date.now() - probeStart }),
    (e: NodeJS.ErrnoException) => ({ code: e.code ?? null, ms: Date.now() - probeStart }),
  );

  // 2. Count every diagnostic report built from now on.
  const report = process.report as unknown as { getReport(err?: Error): object };
  const realGetReport = report.getReport.bind(report);
  let getReportCalls = 0;
  report.getReport = (err?: Error) => {
    getReportCalls++;
    return realGetReport(err);
  };

  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, localAddr, resolve));

  // 3. The library.
  const importStart = performance.now();
  const { createPool } = await import('../../../src/index.js');
  const importMs = Math.round(performance.now() - importStart);

  // 4. Everything the pool does, under the watch.
  const watch = await watchLoop();
  const phaseStart = Date.now();
  const created = performance.now();
  const pool = createPool({
    host,
    port,
    user: 'root',
    password: '',
    database: 'test',
    connectionLimit: N,
    idlePingInterval: 1000,
    validationSkipWindow: 0,
    validationTimeout: VALIDATION_TIMEOUT,
    connectTimeout: 2000,
    acquireTimeout: 4000,
    keepAliveInitialDelay: 1000,
    keepAliveInterval: 1000,
    keepAliveCount: 2,
    tcpUserTimeout: 3000,
  });
  const createPoolMs = Math.round((performance.now() - created) * 10) / 10;
  const promisePool = pool.promise();
  const cid = async (): Promise<number> => {
    const [rows] = await promisePool.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS cid');
    return Number(rows[0]!.cid);
  };

  const phases: DnsBlackholeResult['phases'] = {};
  let error: string | null = null;
  let warmCids: number[] = [];
  let duringOutage: DnsBlackholeResult['duringOutage'] = null;
  let afterHealCids: number[] = [];
  try {
    // open
    const conns = await Promise.all(
      Array.from(
        { length: N },
        () =>
          new Promise<PoolConnection>((resolve, reject) =>
            pool.getConnection((err, c) => (err ? reject(err) : resolve(c))),
          ),
      ),
    );
    warmCids = conns.map((c) => c.threadId);
    for (const c of conns) c.release();
    phases.open = Date.now() - phaseStart;

    // validate
    let t = Date.now();
    for (let round = 0; round < 2; round++) await Promise.all(Array.from({ length: N }, cid));
    phases.validate = Date.now() - t;

    // ping
    t = Date.now();
    await until(() => pool.stats().idlePings >= N, 'an idle ping for every connection');
    await pool.healthCheck();
    phases.ping = Date.now() - t;

    // failover
    t = Date.now();
    let evicted = 0;
    pool.on('evicted', () => evicted++);
    emit('partition');
    await nextLine('go');
    const outageStart = Date.now();
    duringOutage = await promisePool.query('SELECT 1').then(
      () => ({ code: 'ANSWERED', ms: Date.now() - outageStart }),
      (e: NodeJS.ErrnoException) => ({ code: e.code ?? null, ms: Date.now() - outageStart }),
    );
    await until(() => evicted >= N && pool.state().total === 0, 'every connection found dead');
    emit('partitioned');
    await nextLine('healed');
    afterHealCids = await Promise.all(Array.from({ length: N }, cid));
    phases.failover = Date.now() - t;
  } catch (e) {
    error = (e as Error).stack ?? String(e);
  }
  const stats = pool.stats();
  // After an error the pool may still hold connections into the partition: no polite end.
  if (error === null) await promisePool.end();
  const loopDelay = await watch.stop();
  report.getReport = realGetReport;

  // 5. Control: the report ffi-rs's loader used to build, with the listener open (it works
  // whatever state the rig is in).
  const reportStart = performance.now();
  realGetReport();
  const controlReportMs = Math.round(performance.now() - reportStart);
  server.close();
  lines.close();

  const result: DnsBlackholeResult = {
    servers,
    resolverProbe,
    loopDelay,
    importMs,
    createPoolMs,
    phases,
    error,
    warmCids,
    duringOutage,
    afterHealCids,
    getReportCalls,
    stats,
    controlReportMs,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`dns-blackhole failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
