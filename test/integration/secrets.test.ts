/**
 * A distinctive password, given as an option, as MYSQL_PASSWORD, inside MYSQL_URL and through
 * MYSQL_PASSWORD_FILE, never shows up anywhere: debug output, event payloads, errors (access
 * denied, health check, acquire timeout, configuration), util.inspect of the pool (deep, hidden
 * properties too), its options and config, stats, metrics, and the CLI's doctor (text and --json)
 * and probe output. A real user with that password is created, so the password is really used:
 * the children connect with it, then also fail with it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { adminQuery } from '../support/db.js';
import { REPO_ROOT } from '../support/rig.js';

const SECRET = 'S3cr3t-Zebra-42';
const USER = 'kapool_secret';
const CHILD = path.join(REPO_ROOT, 'test/fixtures/secrets-child.ts');
const CLI = path.join(REPO_ROOT, 'src/cli.ts');
const dir = mkdtempSync(path.join(tmpdir(), 'kapool-secret-'));
const passwordFile = path.join(dir, 'password');

before(async () => {
  writeFileSync(passwordFile, `${SECRET}\n`, { mode: 0o600 });
  for (const host of ['%', 'localhost']) {
    await adminQuery(`CREATE OR REPLACE USER '${USER}'@'${host}' IDENTIFIED BY '${SECRET}'`);
    await adminQuery(`GRANT SELECT ON test.* TO '${USER}'@'${host}'`);
  }
});
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  for (const host of ['%', 'localhost'])
    await adminQuery(`DROP USER IF EXISTS '${USER}'@'${host}'`);
});

type Mode = 'option' | 'env' | 'url' | 'file';

/** The environment that carries the password for `mode` (none for `option`). */
function secretEnv(mode: Mode): Record<string, string> {
  const plain = { MYSQL_HOST: '127.0.0.1', MYSQL_USER: USER, MYSQL_DATABASE: 'test' };
  switch (mode) {
    case 'option':
      return {};
    case 'env':
      return { ...plain, MYSQL_PASSWORD: SECRET };
    case 'url':
      return { MYSQL_URL: `mysql://${USER}:${SECRET}@127.0.0.1:3306/test` };
    case 'file':
      return { ...plain, MYSQL_PASSWORD_FILE: passwordFile };
  }
}

function run(
  argv: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...argv], {
      cwd: REPO_ROOT,
      // Everything the library logs goes to stderr.
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        DEBUG: 'mysql2-keepalive-pool:*',
        DEBUG_COLORS: '0',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function assertNoSecret(where: string, text: string): void {
  assert.ok(text.length > 0, `${where}: produced output`);
  for (const needle of [
    SECRET,
    encodeURIComponent(SECRET),
    Buffer.from(SECRET).toString('base64'),
  ]) {
    const at = text.indexOf(needle);
    assert.equal(
      at,
      -1,
      `${where} leaks the password: …${text.slice(Math.max(0, at - 200), at + 50)}…`,
    );
  }
}

describe('the password never appears', { concurrency: true }, () => {
  for (const mode of ['option', 'env', 'url', 'file'] as const) {
    test(`given as ${mode}: events, errors, debug, inspect, stats, metrics`, async () => {
      const res = await run([CHILD, mode, SECRET], secretEnv(mode));
      assert.equal(res.code, 0, res.stdout.slice(-3000) + res.stderr.slice(-3000));
      assertNoSecret(`${mode} stdout`, res.stdout);
      assertNoSecret(`${mode} stderr (debug)`, res.stderr);
      const summary = JSON.parse(res.stdout.trim().split('\n').pop()!) as {
        counts: Record<string, number>;
        user: string;
      };
      // Proof that each path really ran, with the password in use.
      assert.equal(summary.user, USER);
      assert.match(res.stdout, new RegExp(`whoami: \\[\\{"u":"${USER}@`));
      for (const event of [
        'connection',
        'acquire',
        'release',
        'dead',
        'evicted',
        'acquireTimeout',
        'leak',
        'leakReleased',
      ]) {
        assert.ok((summary.counts[event] ?? 0) >= 1, `event ${event} was emitted`);
      }
      assert.equal(
        summary.counts.errors,
        4,
        'acquire timeout, access denied, health check, config',
      );
      assert.match(res.stdout, /access denied: .*ER_ACCESS_DENIED_ERROR/s);
      assert.match(res.stdout, /health check: .*HEALTH_CHECK_FAILED/s);
      assert.match(res.stdout, /config error: .*INVALID_CONFIG/s);
      assert.match(
        res.stderr,
        new RegExp(
          `mysql2-keepalive-pool:config secret-${mode}: resolved config .*password: '\\*\\*\\*'`,
        ),
      );
      assert.match(res.stderr, /possible leak/);
    });
  }

  for (const mode of ['env', 'url', 'file'] as const) {
    test(`the CLI with the password as ${mode}: doctor (text and --json) and probe`, async () => {
      const env = secretEnv(mode);
      const [text, json, probe] = await Promise.all([
        run([CLI, 'doctor'], env),
        run([CLI, 'doctor', '--json'], env),
        run([CLI, 'probe', '--json', '--durations', '0.2', '--timeout', '500'], env),
      ]);
      assert.equal(text.code, 0, text.stdout + text.stderr);
      assert.match(text.stdout, new RegExp(`user=${USER} password=\\*\\*\\*`));
      assert.equal(JSON.parse(json.stdout).config.password, '***');
      assert.equal(probe.code, 0, probe.stdout + probe.stderr);
      for (const [name, r] of Object.entries({ text, json, probe })) {
        assertNoSecret(`${mode} ${name} stdout`, r.stdout);
        assertNoSecret(`${mode} ${name} stderr`, r.stderr);
      }
    });
  }

  test('the CLI when the password is refused: exit 2, the error, no password', async () => {
    const res = await run([CLI, 'doctor'], {
      MYSQL_URL: `mysql://kapool_nobody:${SECRET}@127.0.0.1:3306/test`,
    });
    assert.equal(res.code, 2, res.stdout + res.stderr);
    assert.match(res.stdout, /ER_ACCESS_DENIED_ERROR: Access denied for user 'kapool_nobody'/);
    assertNoSecret('refused doctor stdout', res.stdout);
    assertNoSecret('refused doctor stderr', res.stderr);
  });
});
