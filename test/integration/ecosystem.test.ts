/**
 * The examples in examples/ are what users copy: Kysely (callback pool, ESM), Drizzle (promise
 * pool, ESM), TypeORM (`driver: require('mysql2-keepalive-pool')`, CommonJS) and TypeORM with
 * `replication` (the same driver's createPoolCluster: a master and two slaves). Each runs here
 * as a plain `node` process that imports the BUILT package by name (self-reference through
 * package.json "exports", so dist/ must be built: `npm test` builds first), exactly as a user's
 * code would:
 *
 *  1. against the real server, with a short idle between two rounds so that the second round's
 *     checkouts are validated;
 *  2. through the kernel conntrack rig in drop mode (test/support/RIG.md), idling past the rig's
 *     timeout so that every pooled flow is forgotten. Keepalive stays ABOVE the idle time (60 s,
 *     the default) and idle pings are off, so TCP keepalive does not save the connections:
 *     validation on checkout is what does. Each example must finish both rounds without an
 *     error, and the pool's stats must show that dead connections were found.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { dbOptions } from '../support/db.js';
import { runInNs } from '../support/ns-run.js';
import { REPO_ROOT } from '../support/rig.js';
import { RIG_IDLE_SEC, rigHarness, rigSkip } from '../support/rig-harness.js';

interface PoolStatsLike {
  created: number;
  validations: number;
  dead: Record<string, number>;
  /** Callers served by a hedge while their checkout ping went unanswered. */
  hedgeWins?: number;
}
interface ExampleResult {
  example: string;
  rounds: Array<Record<string, unknown>>;
  stats: PoolStatsLike;
  /** Per cluster node (the replication example). */
  nodes?: Record<string, PoolStatsLike>;
}

interface Example {
  file: string;
  /** What each round must have produced. */
  check(round: Record<string, unknown>, n: number): void;
  /** What the run through the rig must have shown beyond the common checks. */
  checkRig?(out: ExampleResult): void;
}

const deadOf = (s: PoolStatsLike | undefined): number =>
  Object.values(s?.dead ?? {}).reduce((a, b) => a + b, 0);

const common = (round: Record<string, unknown>): void => {
  assert.deepEqual(round.values, [1, 2, 3], 'the queries answered');
  assert.equal(round.rolledBack, true, 'the failing transaction rolled back');
};

const EXAMPLES: Example[] = [
  {
    file: 'examples/kysely.mjs',
    check(round, n) {
      common(round);
      assert.equal(round.streamed, 2 * n, 'rows of every committed transaction streamed back');
    },
  },
  {
    file: 'examples/drizzle.mjs',
    check(round) {
      common(round);
      assert.deepEqual(round.balances, [70, 30], 'the transfer committed, the rollback did not');
    },
  },
  {
    file: 'examples/typeorm.cjs',
    check(round, n) {
      common(round);
      assert.equal(round.count, 2 * n, 'rows of every committed transaction, none of the others');
    },
  },
  {
    // TypeORM `replication`: createPoolCluster on the driver, MASTER for writes, SLAVE* for reads.
    file: 'examples/typeorm-replication.cjs',
    check(round, n) {
      common(round);
      assert.equal(round.count, 2 * n, 'a slave read every committed row, none of the others');
      assert.equal(round.writeNode, 'MASTER', 'writes ran on the master');
      const reads = round.readNodes as string[];
      assert.equal(reads.length, 4);
      for (const node of reads) assert.match(node, /^SLAVE[01]$/, 'reads ran on the slaves');
    },
    checkRig(out) {
      const nodes = out.nodes ?? {};
      assert.deepEqual(Object.keys(nodes).sort(), ['MASTER', 'SLAVE0', 'SLAVE1']);
      // Both sides lost their flows and both had them replaced behind TypeORM's back (found dead,
      // or hedged before the ping's verdict).
      const stale = (s: PoolStatsLike | undefined): number => deadOf(s) + (s?.hedgeWins ?? 0);
      assert.ok(
        stale(nodes.MASTER) >= 1,
        `the master found dead connections: ${JSON.stringify(nodes.MASTER?.dead)}`,
      );
      assert.ok(
        stale(nodes.SLAVE0) + stale(nodes.SLAVE1) >= 1,
        `the slaves found dead connections: ${JSON.stringify([nodes.SLAVE0?.dead, nodes.SLAVE1?.dead])}`,
      );
    },
  },
];

/** Environment for an example: only what it needs, so the developer's own MYSQL_* cannot leak in. */
function exampleEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('MYSQL_') && !k.startsWith('EXAMPLE_')) env[k] = v;
  }
  return { ...env, ...extra };
}

function connectionEnv(host: string, port: number): Record<string, string> {
  const db = dbOptions();
  return {
    MYSQL_HOST: host,
    MYSQL_PORT: String(port),
    MYSQL_USER: db.user,
    MYSQL_DATABASE: db.database,
    ...(db.password === '' ? {} : { MYSQL_PASSWORD: db.password }),
  };
}

function parseResult(stdout: string, file: string): ExampleResult {
  const last = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as ExampleResult;
  } catch {
    return assert.fail(`${file} printed no JSON summary:\n${stdout}`);
  }
}

function runPlain(
  file: string,
  env: NodeJS.ProcessEnv,
): Promise<{ result: ExampleResult; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [file],
      { cwd: REPO_ROOT, env, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`${file} failed: ${err.message}\n${stdout}\n${stderr}`, { cause: err }));
          return;
        }
        try {
          resolve({ result: parseResult(String(stdout), file), stderr: String(stderr) });
        } catch (e) {
          reject(e as Error);
        }
      },
    );
  });
}

test('dist/ is built (the examples import the published shape of the package)', () => {
  for (const f of ['dist/index.mjs', 'dist/index.cjs', 'dist/promise.mjs', 'dist/promise.cjs']) {
    assert.ok(
      fs.existsSync(path.join(REPO_ROOT, f)),
      `${f} is missing: run \`npm run build\` (npm test builds before testing)`,
    );
  }
});

describe('examples against the real server', { concurrency: true }, () => {
  for (const ex of EXAMPLES) {
    test(ex.file, async (t) => {
      const db = dbOptions();
      const { result, stderr } = await runPlain(
        ex.file,
        // Idle longer than validationSkipWindow (500 ms): round 2's checkouts are validated.
        exampleEnv({ ...connectionEnv(db.host, db.port), EXAMPLE_IDLE_MS: '700' }),
      );
      t.diagnostic(JSON.stringify(result.rounds));
      assert.equal(result.rounds.length, 2);
      result.rounds.forEach((round, i) => ex.check(round, i + 1));
      assert.ok(result.stats.validations >= 1, 'checkouts after the idle were validated');
      // No "Ignoring invalid configuration option", no deprecation or config warnings.
      assert.equal(stderr.trim(), '', `unexpected stderr:\n${stderr}`);
    });
  }
});

const IDLE_MS = (RIG_IDLE_SEC + 3) * 1000;
const skip = rigSkip('ecosystem (drop mode)');
const { withRig } = rigHarness();

describe(
  `examples survive forgotten flows (rig drop mode, ${RIG_IDLE_SEC} s conntrack timeout, ${IDLE_MS} ms idle)`,
  { skip, concurrency: true },
  () => {
    for (const ex of EXAMPLES) {
      test(ex.file, async (t) => {
        await withRig('drop', async (rig) => {
          const { result: out } = await runInNs<ExampleResult>(rig.clientNs, ex.file, [], {
            nodeArgs: [],
            timeoutMs: 90_000,
            env: exampleEnv({
              ...connectionEnv(rig.host, rig.port),
              EXAMPLE_IDLE_MS: String(IDLE_MS),
              // Keepalive above the idle time and no idle pings: nothing keeps the flows alive,
              // so the rig forgets them and only validation on checkout stands between the
              // dead connections and the ORM.
              MYSQL_KEEP_ALIVE_INITIAL_DELAY: '60000',
              MYSQL_IDLE_PING_INTERVAL: '0',
            }),
          });
          t.diagnostic(JSON.stringify({ rounds: out.rounds, dead: out.stats.dead }));
          assert.equal(out.rounds.length, 2, 'both rounds completed');
          out.rounds.forEach((round, i) => ex.check(round, i + 1));
          const dead = Object.values(out.stats.dead).reduce((a, b) => a + b, 0);
          // The callers may have been served by hedges (fresh connections opened while the
          // pings went unanswered) before the pings' verdicts came in.
          assert.ok(
            (out.stats.dead['checkout-ping-timeout'] ?? 0) + (out.stats.hedgeWins ?? 0) >= 1,
            `a checkout ping found a forgotten flow, or was hedged (dead: ${JSON.stringify(out.stats.dead)}, hedgeWins: ${out.stats.hedgeWins})`,
          );
          assert.ok(
            out.stats.created >= 2,
            `dead connections (${dead}) were replaced by new ones (${out.stats.created} opened)`,
          );
          ex.checkRig?.(out);
        });
      });
    }
  },
);
