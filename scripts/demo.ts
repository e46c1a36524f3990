/**
 * `npm run demo`: plain mysql2 and this pool, side by side, through a middlebox that forgets idle
 * TCP flows after a few seconds (what kube-proxy IPVS, cloud NAT and load balancers do after
 * 4–15 minutes). Each pool warms up 4 connections, sits idle past the timeout, then 4 callers
 * query at once. Drop mode (a forgotten flow's packets vanish) and rst mode (they are answered
 * with a reset) run side by side.
 *
 * The middlebox is the kernel's own conntrack in private network namespaces (test/support/rig.ts)
 * where that can run (Linux, root, ip/iptables/conntrack), else a user-space proxy stand-in
 * (scripts/lib/idle-proxy.ts) that can show validation but not keepalive.
 *
 *   npm run demo                 # kernel rig when available, stand-in otherwise
 *   npm run demo -- --userspace  # force the stand-in
 *
 * Database: see scripts/lib/database.ts. Exit code 0 when the demo ran (whatever it showed),
 * 1 when it could not run (no database, rig set-up failure, a pool that could not warm up).
 */
import { performance } from 'node:perf_hooks';
import { runInNs } from '../test/support/ns-run.js';
import { createRig, rigAvailable, type Rig } from '../test/support/rig.js';
import type { ScenarioResult } from '../test/support/scenarios/idle-then-query.js';
import { findDatabase, NoDatabaseError, type DemoDatabase } from './lib/database.js';
import { startIdleProxy, type IdleProxy } from './lib/idle-proxy.js';
import { conclusion, table, type Client, type Mode, type Row } from './lib/report.js';
import { startUnixHop, type UnixHop } from './lib/unix-hop.js';

const IDLE_TIMEOUT_SEC = 3; // the middlebox forgets a flow idle this long
const IDLE_FOR_SEC = 6; // how long the pools sit idle
const CALLERS = 4; // connections warmed up, and concurrent callers afterwards
const CAP_MS = 5000; // a query unanswered this long counts as hung
const SCENARIO = 'test/support/scenarios/idle-then-query.ts';
const RUN_TIMEOUT_MS = 60_000;
const MODES: Mode[] = ['drop', 'rst'];
/** Text width of the prose (the table is narrower). */
const WIDTH = 100;
const FIELD_WIDTH = 11;

const CLIENTS: Client[] = [
  { id: 'mysql2', label: 'mysql2 createPool', module: 'mysql2', options: {} },
  { id: 'pool', label: 'this pool, defaults', module: 'src/index.ts', options: {} },
  {
    id: 'pool-keepalive',
    label: 'this pool, keepalive 1s',
    module: 'src/index.ts',
    // Probes every second: TCP_KEEPIDLE 1 s, and TCP_KEEPINTVL 1 s because after the first probe
    // the kernel waits the interval (default 10 s, longer than this middlebox's memory).
    options: { keepAliveInitialDelay: 1000, keepAliveInterval: 1000 },
  },
];

/** Where a pool under test connects, and how the middlebox is torn down. */
interface Middlebox {
  mode: Mode;
  /** Network namespace to run the clients in; null for the stand-in. */
  ns: string | null;
  host: string;
  port: number;
  close(): Promise<void>;
}

const started = performance.now();
const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(1)} s`;
const say = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

/** Greedy word wrap, so the paragraph reads in a terminal and in a CI log alike. */
function wrap(text: string, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.join('\n');
}

/** "Label:    text", the text wrapped with a hanging indent. */
function field(label: string, text: string): string {
  const indent = ' '.repeat(FIELD_WIDTH);
  return wrap(text, WIDTH - FIELD_WIDTH)
    .split('\n')
    .map((l, i) => (i === 0 ? label.padEnd(FIELD_WIDTH) : indent) + l)
    .join('\n');
}

async function kernelMiddleboxes(db: DemoDatabase, hops: UnixHop[]): Promise<Middlebox[]> {
  let socketPath: string;
  if ('socketPath' in db.target) {
    socketPath = db.target.socketPath;
  } else {
    const hop = await startUnixHop(db.target);
    hops.push(hop);
    socketPath = hop.socketPath;
  }
  const rigs: Rig[] = await Promise.all(
    MODES.map((mode) => createRig({ mode, idleTimeoutSec: IDLE_TIMEOUT_SEC, socketPath })),
  );
  return rigs.map((rig) => ({
    mode: rig.mode,
    ns: rig.clientNs,
    host: rig.host,
    port: rig.port,
    close: () => rig.close(),
  }));
}

async function userspaceMiddleboxes(db: DemoDatabase): Promise<Middlebox[]> {
  const proxies: IdleProxy[] = await Promise.all(
    MODES.map((mode) =>
      startIdleProxy({ mode, idleTimeoutMs: IDLE_TIMEOUT_SEC * 1000, target: db.target }),
    ),
  );
  return proxies.map((p, i) => ({
    mode: MODES[i]!,
    ns: null,
    host: p.host,
    port: p.port,
    close: () => p.close(),
  }));
}

/** The children get the database only through their arguments: no MYSQL_* variable may point
 * our pool (which reads them) around the middlebox. */
function childEnv(db: DemoDatabase): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { RIG_PASSWORD: db.password };
  for (const key of Object.keys(process.env)) {
    if (key.startsWith('MYSQL_')) env[key] = undefined; // undefined = not passed to the child
  }
  return env;
}

async function run(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    say('usage: npm run demo [-- --userspace]   (see the header of scripts/demo.ts)');
    return;
  }
  const forceUserspace = args.includes('--userspace');
  const unknown = args.filter((a) => a !== '--userspace');
  if (unknown.length > 0) throw new NoDatabaseError(`unknown argument ${unknown.join(' ')}`);

  say(
    wrap(
      `mysql2-keepalive-pool demo: mysql2 vs this pool behind a middlebox that forgets flows idle ${IDLE_TIMEOUT_SEC} s.`,
      WIDTH,
    ),
  );
  say();

  const cleanups: Array<() => Promise<void>> = [];
  const cleanup = async (): Promise<void> => {
    for (const fn of cleanups.reverse()) await fn().catch(() => {});
  };
  try {
    const db = await findDatabase(process.env, say);
    cleanups.push(() => db.close());
    say(field('Database:', db.label));

    const avail = rigAvailable();
    const kernel = avail.ok && !forceUserspace;
    const hops: UnixHop[] = [];
    cleanups.push(async () => {
      for (const h of hops) await h.close();
    });
    const boxes = kernel ? await kernelMiddleboxes(db, hops) : await userspaceMiddleboxes(db);
    cleanups.push(async () => {
      await Promise.all(boxes.map((b) => b.close()));
    });
    if (kernel) {
      say(
        field(
          'Middlebox:',
          `the Linux kernel's conntrack in private network namespaces, forgetting flows as kube-proxy's IPVS table does${'socketPath' in db.target ? '' : ', reaching the database through a local unix-socket hop'}.`,
        ),
      );
    } else {
      const why = forceUserspace
        ? '--userspace given'
        : `the kernel rig is unavailable: ${avail.ok ? '' : avail.reason}`;
      say(field('Middlebox:', `a user-space TCP proxy stand-in (${why}).`));
      say(
        field(
          'Note:',
          'cannot show keepalive; shows validation only (keepalive needs the kernel).',
        ),
      );
    }
    say(
      field(
        'Modes:',
        'drop: packets of a forgotten flow vanish (IPVS, Azure LB); rst: they are answered with a TCP reset (AWS NLB/NAT).',
      ),
    );
    say();

    const clients = kernel ? CLIENTS : CLIENTS.filter((c) => c.id !== 'pool-keepalive');
    const plan = boxes.flatMap((box) => clients.map((client) => ({ box, client })));
    const env = childEnv(db);
    let warm = 0;
    const goes: Array<(line: string) => void> = [];
    say(
      `[1/3] warm-up: each of the ${plan.length} pools opens ${CALLERS} connections and runs a query on each`,
    );
    const results = await Promise.all(
      plan.map(({ box, client }) =>
        runInNs<ScenarioResult>(
          box.ns,
          SCENARIO,
          [
            '--module',
            client.module,
            '--host',
            box.host,
            '--port',
            String(box.port),
            '--user',
            db.user,
            '--database',
            db.database,
            '--concurrency',
            String(CALLERS),
            '--idle-sec',
            String(IDLE_FOR_SEC),
            '--cap-ms',
            String(CAP_MS),
            '--await-go',
            ...(Object.keys(client.options).length > 0
              ? ['--pool-options', JSON.stringify(client.options)]
              : []),
          ],
          {
            timeoutMs: RUN_TIMEOUT_MS,
            env,
            onEvent: (evt, reply) => {
              if (evt.event === 'warm' && ++warm === plan.length) {
                say(
                  `[2/3] idle ${IDLE_FOR_SEC} s, past the ${IDLE_TIMEOUT_SEC} s after which the middlebox forgets a flow   [${elapsed()}]`,
                );
              }
              if (evt.event === 'idle-done') {
                goes.push(reply);
                if (goes.length === plan.length) {
                  say(
                    `[3/3] query: ${CALLERS} callers per pool at once; an answer not back in ${CAP_MS / 1000} s counts as a hang   [${elapsed()}]`,
                  );
                  for (const go of goes) go('go');
                }
              }
            },
          },
        ).then(({ result }) => ({ box, client, result })),
      ),
    );

    const rows: Row[] = results.map(({ box, client, result }) => ({
      mode: box.mode,
      client,
      res: result,
    }));
    say();
    say(table(rows));
    say();
    say(wrap(conclusion(rows, kernel, IDLE_TIMEOUT_SEC), WIDTH));
    say();
    say(`(${elapsed()})`);
  } finally {
    await cleanup();
  }
}

// Ctrl-C: exit through process.exit, so that every exit hook (namespaces, throwaway server, temp
// directories, child processes) runs.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    process.stderr.write(`\ndemo interrupted (${sig}); cleaning up\n`);
    process.exit(130);
  });
}

run().then(
  () => process.exit(0),
  (e: unknown) => {
    // Only a failure to run lands here; what the pools did is never an error of the demo.
    const msg =
      e instanceof NoDatabaseError
        ? e.message
        : e instanceof Error
          ? (e.stack ?? e.message)
          : String(e);
    process.stderr.write(`\ndemo could not run: ${msg}\n`);
    process.exit(1);
  },
);
