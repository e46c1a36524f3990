/**
 * The published package, as users get it: `npm pack` contains only what they need, the types
 * resolve for ESM and CommonJS consumers (@arethetypeswrong/cli, and a consumer compiled with
 * `module: nodenext` in both module kinds), and the packed tarball works at run time from ESM and
 * from CommonJS. Needs dist/ (npm test builds before testing).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { dbOptions } from '../support/db.js';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'node_modules', '.bin');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  license: string;
  engines: { node: string };
  sideEffects: boolean;
  files: string[];
  repository: { url: string };
  types: string;
  exports: Record<string, Record<string, Record<string, string>> | string>;
};

interface PackedFile {
  path: string;
}

async function npm(args: string[], cwd = ROOT): Promise<string> {
  const { stdout } = await run('npm', args, { cwd, maxBuffer: 16 * 1024 * 1024, timeout: 60_000 });
  return stdout;
}

/**
 * A directory outside the repository: inside it, Node and TypeScript would resolve the package
 * name to the repository itself (a package may import itself by name), not to the packed copy.
 */
let work = '';
let tarball = '';
before(async () => {
  assert.ok(
    fs.existsSync(path.join(ROOT, 'dist', 'index.cjs')),
    'dist/ is missing: run `npm run build` (npm test builds before testing)',
  );
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'kapool-pack-'));
  const out = await npm(['pack', '--json', '--pack-destination', work]);
  const [info] = JSON.parse(out) as Array<{ filename: string }>;
  tarball = path.join(work, info!.filename);
  // Unpacked as an installed dependency would be: work/node_modules/<name>, next to its own
  // dependencies (mysql2, generic-pool… and @types/node for the type check), which are links to
  // the repository's installed ones.
  const modules = path.join(work, 'node_modules');
  fs.mkdirSync(modules);
  for (const entry of fs.readdirSync(path.join(ROOT, 'node_modules'))) {
    if (entry === pkg.name || entry.startsWith('.')) continue;
    fs.symlinkSync(path.join(ROOT, 'node_modules', entry), path.join(modules, entry));
  }
  const dest = path.join(modules, pkg.name);
  fs.mkdirSync(dest);
  await run('tar', ['-xzf', tarball, '-C', dest, '--strip-components=1']);
});
after(() => {
  if (work !== '') fs.rmSync(work, { recursive: true, force: true });
});

describe('npm pack', () => {
  test('contains dist, README, CHANGELOG, LICENSE and package.json, nothing else', async () => {
    const [info] = JSON.parse(await npm(['pack', '--dry-run', '--json'])) as Array<{
      files: PackedFile[];
    }>;
    const files = info!.files.map((f) => f.path).sort();
    const allowed =
      /^(?:dist\/[\w.-]+\.(?:cjs|mjs|d\.ts|d\.mts)|README\.md|CHANGELOG\.md|LICENSE|package\.json)$/;
    for (const f of files) assert.match(f, allowed, `${f} should not be published`);
    for (const required of [
      'LICENSE',
      'CHANGELOG.md',
      'README.md',
      'package.json',
      'dist/index.cjs',
      'dist/index.mjs',
      'dist/index.d.ts',
      'dist/index.d.mts',
      'dist/promise.cjs',
      'dist/promise.mjs',
      'dist/promise.d.ts',
      'dist/promise.d.mts',
    ]) {
      assert.ok(files.includes(required), `${required} is missing from the package`);
    }
  });

  test('package.json: license, engines, sideEffects, files, repository, and every export exists', () => {
    assert.equal(pkg.license, 'MIT');
    assert.equal(pkg.engines.node, '>=20');
    assert.equal(pkg.sideEffects, false);
    assert.deepEqual([...pkg.files].sort(), ['CHANGELOG.md', 'LICENSE', 'README.md', 'dist']);
    assert.match(pkg.repository.url, /^git\+https:\/\//);
    const targets: string[] = [pkg.types];
    for (const entry of Object.values(pkg.exports)) {
      if (typeof entry === 'string') continue;
      for (const cond of Object.values(entry)) targets.push(...Object.values(cond));
    }
    for (const t of targets) assert.ok(fs.existsSync(path.join(ROOT, t)), `${t} does not exist`);
  });
});

describe('types for ESM and CommonJS consumers', () => {
  test('@arethetypeswrong/cli finds no problem', async () => {
    const { stdout } = await run(path.join(BIN, 'attw'), [tarball, '--format', 'json'], {
      cwd: ROOT,
      maxBuffer: 64 * 1024 * 1024,
      timeout: 120_000,
    }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
    const report = JSON.parse(stdout) as {
      analysis: { problems: unknown[]; entrypoints: Record<string, unknown> };
    };
    assert.deepEqual(report.analysis.problems, []);
    assert.deepEqual(Object.keys(report.analysis.entrypoints).sort(), [
      '.',
      './package.json',
      './promise',
    ]);
  });

  test('a consumer type-checks with module nodenext, as .mts (import) and as .cts (require)', async () => {
    const consumer = `
import { createPool, ConfigError, PoolError, escape, format, raw, Types } from 'mysql2-keepalive-pool';
import type { KeepalivePoolOptions, Pool, PoolStats, SslMode } from 'mysql2-keepalive-pool';
import { createPool as createPromisePool } from 'mysql2-keepalive-pool/promise';
import type { Pool as PromisePool } from 'mysql2-keepalive-pool/promise';
import type { PoolConnection, RowDataPacket } from 'mysql2';

const options: KeepalivePoolOptions = { host: 'db', idlePingInterval: 60_000, ssl: { ca: 'x' } };
const pool: Pool = createPool(options);
pool.getConnection((_err, conn: PoolConnection) => conn.release());
pool.query<RowDataPacket[]>('SELECT 1', (_err, rows) => rows.length);
const stats: PoolStats = pool.stats();
export const created: number = stats.created;
const promise: PromisePool = createPromisePool();
export async function count(): Promise<number> {
  const [rows] = await promise.query<RowDataPacket[]>('SELECT 1');
  return rows.length;
}
const err: PoolError = new ConfigError('x', { option: 'o', accepted: 'a' });
export const code: string = err.code;
export const mode: SslMode = 'VERIFY_IDENTITY';
export const sql: string = format('SELECT ?', [escape('a')]) + String(raw('NOW()').toSqlString());
export const decimal: number = Types.DECIMAL;
// @ts-expect-error an unknown option is a type error
createPool({ idlePingIntervall: 1 });
`;
    fs.writeFileSync(path.join(work, 'consumer.mts'), consumer);
    fs.writeFileSync(
      path.join(work, 'consumer.cts'),
      `${consumer}\nimport whole = require('mysql2-keepalive-pool');\nexport const same: typeof createPool = whole.createPool;\n`,
    );
    fs.writeFileSync(
      path.join(work, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          strict: true,
          noEmit: true,
          types: ['node'],
          // Our declaration files are checked too, not only their use.
          skipLibCheck: false,
        },
        files: ['consumer.mts', 'consumer.cts'],
      }),
    );
    const res = await run(path.join(BIN, 'tsc'), ['-p', work, '--traceResolution'], {
      cwd: work,
      timeout: 120_000,
      maxBuffer: 64 * 1024 * 1024,
    }).then(
      (r) => ({ ok: true, out: r.stdout }),
      (e: { stdout?: string; stderr?: string }) => ({ ok: false, out: `${e.stdout}${e.stderr}` }),
    );
    assert.ok(
      res.ok,
      res.out
        .split('\n')
        .filter((l) => /error TS/.test(l))
        .join('\n'),
    );
    // The two kinds really resolved to the packed copy's two declaration files.
    const dist = `${work}/node_modules/mysql2-keepalive-pool/dist/`;
    for (const file of ['index.d.mts', 'index.d.ts']) {
      assert.ok(
        res.out.includes(`'mysql2-keepalive-pool' was successfully resolved to '${dist}${file}'`),
        `no resolution to ${dist}${file}`,
      );
    }
  });
});

describe('the packed package at run time', () => {
  const db = dbOptions();
  const env = {
    ...process.env,
    MYSQL_HOST: db.host,
    MYSQL_PORT: String(db.port),
    MYSQL_USER: db.user,
    MYSQL_DATABASE: db.database,
    ...(db.password === '' ? {} : { MYSQL_PASSWORD: db.password }),
  };
  const body = (imports: string): string => `${imports}
const pool = createPool({ connectionLimit: 1 });
const rows = await pool.promise().query('SELECT 1 + 1 AS two').then(([r]) => r);
await pool.promise().end();
const promisePool = createPromisePool({ connectionLimit: 1 });
await promisePool.end();
// createPoolCluster from both entries, on the packed build: a node answers.
const cluster = createPromisePoolCluster();
cluster.add('NODE', { connectionLimit: 1 });
const [clusterRows] = await cluster.of('NODE').query('SELECT 3 AS three');
await cluster.end();
const callbackCluster = createPoolCluster();
callbackCluster.add('NODE', { connectionLimit: 1 });
callbackCluster.end();
console.log(JSON.stringify({
  two: rows[0].two,
  three: clusterRows[0].three,
  from: import.meta.url ?? null,
  sameErrorClass: PoolError === PromisePoolError,
  helpers: [typeof escape, typeof format, typeof Types.DECIMAL, typeof createPoolCluster],
}));
`;

  test('ESM: import from the package name', async () => {
    fs.writeFileSync(
      path.join(work, 'run.mjs'),
      body(`import { createPool, PoolError, escape, format, Types } from 'mysql2-keepalive-pool';
import * as root from 'mysql2-keepalive-pool';
const { createPoolCluster } = root;
import { createPool as createPromisePool, PoolError as PromisePoolError, createPoolCluster as createPromisePoolCluster } from 'mysql2-keepalive-pool/promise';`),
    );
    const { stdout } = await run(process.execPath, ['run.mjs'], {
      cwd: work,
      env,
      timeout: 30_000,
    });
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.equal(out.two, 2);
    assert.equal(out.sameErrorClass, true, 'one PoolError class across the two entry points');
    assert.deepEqual(out.helpers, ['function', 'function', 'number', 'function']);
    assert.equal(out.three, 3, 'a cluster node of the packed build answered');
  });

  test('CommonJS: require the package name', async () => {
    fs.writeFileSync(
      path.join(work, 'run.cjs'),
      `(async () => {
const { createPool, PoolError, escape, format, Types, createPoolCluster } = require('mysql2-keepalive-pool');
const { createPool: createPromisePool, PoolError: PromisePoolError, createPoolCluster: createPromisePoolCluster } = require('mysql2-keepalive-pool/promise');
const resolved = require.resolve('mysql2-keepalive-pool');
${body('').replace('from: import.meta.url ?? null', 'from: resolved').replace(/^\n/, '')}
})().catch((e) => { console.error(e); process.exitCode = 1; });
`,
    );
    const { stdout } = await run(process.execPath, ['run.cjs'], {
      cwd: work,
      env,
      timeout: 30_000,
    });
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.equal(out.two, 2);
    assert.equal(out.sameErrorClass, true, 'one PoolError class across the two entry points');
    assert.match(
      String(out.from),
      /kapool-pack-[^/]+\/node_modules\/mysql2-keepalive-pool\/dist\/index\.cjs$/,
    );
    assert.deepEqual(out.helpers, ['function', 'function', 'number', 'function']);
    assert.equal(out.three, 3, 'a cluster node of the packed build answered');
  });
});
