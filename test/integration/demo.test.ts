/**
 * `npm run demo` (scripts/demo.ts) end to end, with CI=true: through the kernel rig when it can
 * run (else the user-space stand-in the demo falls back to), and through the stand-in forced with
 * `--userspace`. Its table must show plain mysql2 failing and this pool passing in drop and rst
 * mode. Also the demo's database discovery (scripts/lib/database.ts): a throwaway server when
 * nothing else is there, one clear message when even that is impossible, and a failing configured
 * database reported without its password.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import mysql from 'mysql2';
import { dbOptions } from '../support/db.js';
import { rigAvailable } from '../support/rig.js';
import { findDatabase, NoDatabaseError } from '../../scripts/lib/database.js';

const REPO = path.resolve(__dirname, '..', '..');
const DEMO_TIMEOUT_MS = 120_000;

interface DemoRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment minus every MYSQL_* variable, plus MYSQL_URL for the test database. */
function demoEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MYSQL_')) env[k] = v;
  const o = dbOptions();
  const auth = o.password
    ? `${encodeURIComponent(o.user)}:${encodeURIComponent(o.password)}`
    : encodeURIComponent(o.user);
  env.MYSQL_URL = `mysql://${auth}@${o.host}:${o.port}/${encodeURIComponent(o.database)}`;
  env.CI = 'true';
  return env;
}

function runDemo(args: string[]): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts', ...args], {
      cwd: REPO,
      env: demoEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGINT'), DEMO_TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface TableRow {
  mode: string;
  pool: string;
  result: string;
  rest: string;
}

/** Rows of the demo's table: `  drop  mysql2 createPool   FAIL    4 × hung …`. */
function tableRows(stdout: string): TableRow[] {
  const rows: TableRow[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^ {2}(drop|rst) +(\S.*?) {2,}(PASS|FAIL) {2,}(.*)$/.exec(line);
    if (m) rows.push({ mode: m[1]!, pool: m[2]!, result: m[3]!, rest: m[4]! });
  }
  return rows;
}

function assertShowsTheProblemAndTheFix(run: DemoRun, expectKeepaliveRows: boolean): void {
  const context = `\n--- stdout ---\n${run.stdout}\n--- stderr ---\n${run.stderr}`;
  assert.equal(run.code, 0, `the demo ran${context}`);
  const rows = tableRows(run.stdout);
  for (const mode of ['drop', 'rst']) {
    const mine = rows.filter((r) => r.mode === mode);
    const plain = mine.filter((r) => r.pool === 'mysql2 createPool');
    const ours = mine.filter((r) => r.pool.startsWith('this pool'));
    assert.equal(plain.length, 1, `one plain mysql2 row in ${mode} mode${context}`);
    assert.equal(plain[0]!.result, 'FAIL', `plain mysql2 fails in ${mode} mode${context}`);
    assert.match(
      plain[0]!.rest,
      mode === 'drop' ? /4 × hung/ : /4 × error ECONNRESET/,
      `plain mysql2 hangs (drop) / gets ECONNRESET (rst)${context}`,
    );
    assert.equal(ours.length, expectKeepaliveRows ? 2 : 1, `rows of this pool${context}`);
    for (const r of ours) {
      assert.equal(r.result, 'PASS', `${r.pool} passes in ${mode} mode${context}`);
      assert.match(r.rest, /4 × answer/);
    }
    const keepalive = ours.find((r) => r.pool.includes('keepalive'));
    if (keepalive) assert.match(keepalive.rest, /warm-up ones, kept alive/);
    const defaults = ours.find((r) => r.pool.includes('defaults'));
    assert.match(defaults?.rest ?? '', /new; 4 stale caught by ping/);
  }
  assert.doesNotMatch(run.stdout, /Unexpected result/);
  assert.match(run.stdout, /This pool pings a connection idle/);
}

describe('npm run demo', { concurrency: true }, () => {
  test('shows plain mysql2 failing and this pool passing, drop and rst (kernel rig when available)', async (t) => {
    const kernel = rigAvailable().ok;
    const run = await runDemo([]);
    t.diagnostic(run.stdout);
    assertShowsTheProblemAndTheFix(run, kernel);
    if (kernel) {
      assert.match(run.stdout, /Middlebox: the Linux kernel's conntrack/);
    } else {
      assert.match(run.stdout, /^Note: +cannot show keepalive; shows validation only/m);
    }
  });

  test('--userspace: the stand-in shows the same, labelled "validation only"', async (t) => {
    const run = await runDemo(['--userspace']);
    t.diagnostic(run.stdout);
    assertShowsTheProblemAndTheFix(run, false);
    assert.match(run.stdout, /user-space TCP proxy stand-in \(--userspace given\)/);
    assert.match(run.stdout, /^Note: +cannot show keepalive; shows validation only/m);
  });
});

function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

describe('the demo finds a database', { concurrency: true }, () => {
  test('nothing configured, nothing local: a throwaway server that answers, removed by close()', async () => {
    const lines: string[] = [];
    const db = await findDatabase({}, (l) => lines.push(l), {
      local: { host: '127.0.0.1', port: await closedPort() },
    });
    try {
      assert.match(db.label, /throwaway mariadbd/);
      assert.match(lines.join('\n'), /no usable server on 127\.0\.0\.1:\d+/);
      assert.ok('socketPath' in db.target);
      const conn = mysql.createConnection({
        ...db.target,
        user: db.user,
        password: db.password,
        database: db.database,
      });
      const rows = await new Promise<unknown>((resolve, reject) =>
        conn.query('SELECT 1 AS one', (err, r) => (err ? reject(err) : resolve(r))),
      );
      conn.destroy();
      assert.deepEqual(rows, [{ one: 1 }]);
    } finally {
      await db.close();
    }
  });

  test('no database at all: one message saying how to start one', async () => {
    await assert.rejects(
      findDatabase({}, () => {}, {
        local: { host: '127.0.0.1', port: await closedPort() },
        throwaway: false,
      }),
      (e: unknown) => {
        assert.ok(e instanceof NoDatabaseError);
        assert.match(e.message, /docker (compose up -d|run )/);
        assert.match(e.message, /MYSQL_URL=mysql:\/\/root@127\.0\.0\.1:3306\/test npm run demo/);
        return true;
      },
    );
  });

  test('a configured database that does not answer is reported, without its password', async () => {
    const port = await closedPort();
    await assert.rejects(
      findDatabase({ MYSQL_URL: `mysql://app:s3cr3t-pw@127.0.0.1:${port}/db` }, () => {}),
      (e: unknown) => {
        assert.ok(e instanceof NoDatabaseError);
        assert.match(
          e.message,
          new RegExp(`configured by the environment \\(127\\.0\\.0\\.1:${port}\\)`),
        );
        assert.match(e.message, /ECONNREFUSED/);
        assert.doesNotMatch(e.message, /s3cr3t-pw/);
        return true;
      },
    );
  });
});
