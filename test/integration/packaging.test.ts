/**
 * The published package, as users get it, built the way a release job, a git install and a
 * `npm pack` consumer build it: from a clean copy of the repository without dist/.
 *
 *  - `git archive` of the tree under test (HEAD plus uncommitted changes to tracked files, via
 *    `git stash create`) into a temporary folder, whose node_modules is a link to the
 *    repository's (the build tools), then `npm pack` there: the lifecycle (prepack/prepare)
 *    builds dist/;
 *  - that tarball installed with npm into a fresh consumer folder outside the repository, used
 *    from ESM and CommonJS through both entries, its types checked (@arethetypeswrong/cli, and
 *    a consumer compiled with `module: nodenext` in both module kinds), its bin run;
 *  - the same tree committed to a throwaway git repository and installed from its
 *    `git+file://` URL (npm clones it, installs its dependencies, runs prepare), then required.
 *
 * npm installs use the local npm cache first (`--prefer-offline`).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { dbOptions } from '../support/db.js';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'node_modules', '.bin');

interface PackageJson {
  name: string;
  version: string;
  license: string;
  engines: { node: string };
  sideEffects: boolean;
  files: string[];
  repository: { url: string };
  types: string;
  bin: Record<string, string>;
  scripts: Record<string, string>;
  exports: Record<string, Record<string, Record<string, string>> | string>;
}

interface PackedFile {
  path: string;
}

async function sh(
  cmd: string,
  args: string[],
  cwd: string,
  timeout = 120_000,
): Promise<{ stdout: string; stderr: string }> {
  return run(cmd, args, { cwd, maxBuffer: 64 * 1024 * 1024, timeout });
}

const NPM_INSTALL = [
  'install',
  '--prefer-offline',
  '--no-audit',
  '--no-fund',
  '--foreground-scripts',
];

/** A copy of the tree under test, as `git archive` gives it: committed files only, no dist/. */
async function cleanCopy(ref: string, dest: string): Promise<void> {
  fs.mkdirSync(dest, { recursive: true });
  await sh('sh', ['-c', `git -C "${ROOT}" archive "${ref}" | tar -x -C "${dest}"`], ROOT);
}

/** A fresh npm project folder. */
function consumerDir(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }),
  );
  return dir;
}

/**
 * Everything lives in a folder outside the repository: inside it, Node and TypeScript would
 * resolve the package name to the repository itself (a package may import itself by name).
 */
let work = '';
let tarball = '';
let packedFiles: string[] = [];
let consumer = '';
let installOutput = '';
let pkg: PackageJson;
let gitInstall: Promise<string>;
before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'kapool-pack-'));
  // The tree under test: HEAD plus uncommitted changes to tracked files (untracked files are
  // not part of it; commit or add them first).
  const stash = (await sh('git', ['stash', 'create'], ROOT)).stdout.trim();
  const ref = stash === '' ? 'HEAD' : stash;

  // The git install runs alongside: npm clones the repository, installs its dependencies and
  // runs prepare, which takes longer than everything else here.
  gitInstall = (async () => {
    const repo = path.join(work, 'git-repo');
    await cleanCopy(ref, repo);
    const git = ['-c', 'user.name=packaging-test', '-c', 'user.email=test@example.invalid'];
    await sh('git', ['init', '-q'], repo);
    await sh('git', ['add', '-A'], repo);
    await sh('git', [...git, 'commit', '-q', '-m', 'tree under test'], repo);
    const dir = consumerDir(path.join(work, 'git-consumer'));
    await sh('npm', [...NPM_INSTALL, `git+file://${repo}`], dir, 240_000);
    return dir;
  })();
  gitInstall.catch(() => {}); // awaited by its test

  const src = path.join(work, 'src');
  await cleanCopy(ref, src);
  assert.equal(fs.existsSync(path.join(src, 'dist')), false, 'the clean copy has no dist/');
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(src, 'node_modules'));
  const packed = await sh(
    'npm',
    ['pack', '--json', '--foreground-scripts=false', '--pack-destination', work],
    src,
  );
  const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: PackedFile[] }>;
  tarball = path.join(work, info!.filename);
  packedFiles = info!.files.map((f) => f.path).sort();

  consumer = consumerDir(path.join(work, 'consumer'));
  const installed = await sh('npm', [...NPM_INSTALL, tarball], consumer);
  installOutput = installed.stdout + installed.stderr;
  pkg = JSON.parse(
    fs.readFileSync(
      path.join(consumer, 'node_modules', 'mysql2-keepalive-pool', 'package.json'),
      'utf8',
    ),
  ) as PackageJson;
});
after(() => {
  if (work !== '') fs.rmSync(work, { recursive: true, force: true });
});

const INSTALLED = (): string => path.join(consumer, 'node_modules', 'mysql2-keepalive-pool');

describe('npm pack of a clean copy', () => {
  test('builds dist/ itself and contains dist, README, CHANGELOG, LICENSE and package.json, nothing else', () => {
    const files = packedFiles;
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
      'dist/cli.cjs',
    ]) {
      assert.ok(files.includes(required), `${required} is missing from the package`);
    }
  });

  test('the build runs on pack, publish and git installs (prepack, prepare), never on install', () => {
    assert.equal(pkg.scripts.prepack, 'npm run build');
    assert.equal(pkg.scripts.prepare, 'npm run build');
    for (const hook of ['preinstall', 'install', 'postinstall']) {
      assert.equal(pkg.scripts[hook], undefined, `no ${hook} script`);
    }
    // npm runs prepare only for linked folders and git dependencies, not for a tarball (or a
    // registry package): installing it ran nothing, and left exactly what was packed.
    assert.doesNotMatch(installOutput, /> mysql2-keepalive-pool@[^ ]+ (?:prepare|prepack|build)/);
    assert.equal(fs.existsSync(path.join(INSTALLED(), 'src')), false);
    assert.equal(fs.existsSync(path.join(INSTALLED(), 'tsup.config.ts')), false);
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
    for (const t of Object.values(pkg.bin)) targets.push(t);
    for (const t of targets) {
      assert.ok(fs.existsSync(path.join(INSTALLED(), t)), `${t} does not exist in the package`);
    }
  });
});

describe('types for ESM and CommonJS consumers', { concurrency: true }, () => {
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
    const source = `
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
    fs.writeFileSync(path.join(consumer, 'consumer.mts'), source);
    fs.writeFileSync(
      path.join(consumer, 'consumer.cts'),
      `${source}\nimport whole = require('mysql2-keepalive-pool');\nexport const same: typeof createPool = whole.createPool;\n`,
    );
    fs.writeFileSync(
      path.join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          strict: true,
          noEmit: true,
          types: ['node'],
          // @types/node is the repository's: the consumer installed only the package.
          typeRoots: [path.join(ROOT, 'node_modules', '@types')],
          // Our declaration files are checked too, not only their use.
          skipLibCheck: false,
        },
        files: ['consumer.mts', 'consumer.cts'],
      }),
    );
    const res = await run(path.join(BIN, 'tsc'), ['-p', consumer, '--traceResolution'], {
      cwd: consumer,
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
    const dist = `${consumer}/node_modules/mysql2-keepalive-pool/dist/`;
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
      path.join(consumer, 'run.mjs'),
      body(`import { createPool, PoolError, escape, format, Types } from 'mysql2-keepalive-pool';
import * as root from 'mysql2-keepalive-pool';
const { createPoolCluster } = root;
import { createPool as createPromisePool, PoolError as PromisePoolError, createPoolCluster as createPromisePoolCluster } from 'mysql2-keepalive-pool/promise';`),
    );
    const { stdout } = await run(process.execPath, ['run.mjs'], {
      cwd: consumer,
      env,
      timeout: 30_000,
    });
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.equal(out.two, 2);
    assert.equal(out.sameErrorClass, true, 'one PoolError class across the two entry points');
    assert.deepEqual(out.helpers, ['function', 'function', 'number', 'function']);
    assert.equal(out.three, 3, 'a cluster node of the packed build answered');
  });

  test('loading the package from ESM or CommonJS leaves process.stdin unmade', async () => {
    // An ESM `import process from 'node:process'` makes node build every export of process,
    // process.stdin included: stdin turns non-blocking under its owner's feet (a synchronous read
    // of fd 0 then fails with EAGAIN), and node's stream code slows down for the whole process
    // (bench/README.md). With stdin a pipe, making process.stdin opens a pipe handle, seen here as
    // its async resource; stdout and stderr are files (debug, a dependency, looks at stderr).
    fs.writeFileSync(
      path.join(consumer, 'load.mjs'),
      `import { createHook } from 'node:async_hooks';
const types = new Set();
const hook = createHook({ init(id, type) { types.add(type); } }).enable();
await import(process.argv[2]);
hook.disable();
console.log(JSON.stringify([...types]));
`,
    );
    for (const entry of [
      'mysql2-keepalive-pool',
      'mysql2-keepalive-pool/promise',
      './node_modules/mysql2-keepalive-pool/dist/index.cjs',
    ]) {
      const outFile = path.join(consumer, 'load.out');
      const out = fs.openSync(outFile, 'w');
      const child = spawn(process.execPath, ['load.mjs', entry], {
        cwd: consumer,
        env,
        stdio: ['pipe', out, out],
      });
      fs.closeSync(out);
      const [code] = (await once(child, 'exit')) as [number | null];
      const printed = fs.readFileSync(outFile, 'utf8');
      assert.equal(code, 0, `${entry}: ${printed}`);
      const types = JSON.parse(printed.trim().split('\n').pop()!) as string[];
      assert.ok(types.includes('PROMISE'), `${entry}: the hook saw the load (${types.join(', ')})`);
      assert.ok(!types.includes('PIPEWRAP'), `${entry}: loading it made process.stdin`);
    }
  });

  test('CommonJS: require the package name', async () => {
    fs.writeFileSync(
      path.join(consumer, 'run.cjs'),
      `(async () => {
const { createPool, PoolError, escape, format, Types, createPoolCluster } = require('mysql2-keepalive-pool');
const { createPool: createPromisePool, PoolError: PromisePoolError, createPoolCluster: createPromisePoolCluster } = require('mysql2-keepalive-pool/promise');
const resolved = require.resolve('mysql2-keepalive-pool');
${body('').replace('from: import.meta.url ?? null', 'from: resolved').replace(/^\n/, '')}
})().catch((e) => { console.error(e); process.exitCode = 1; });
`,
    );
    const { stdout } = await run(process.execPath, ['run.cjs'], {
      cwd: consumer,
      env,
      timeout: 30_000,
    });
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.equal(out.two, 2);
    assert.equal(out.sameErrorClass, true, 'one PoolError class across the two entry points');
    assert.match(
      String(out.from),
      /kapool-pack-[^/]+\/consumer\/node_modules\/mysql2-keepalive-pool\/dist\/index\.cjs$/,
    );
    assert.deepEqual(out.helpers, ['function', 'function', 'number', 'function']);
    assert.equal(out.three, 3, 'a cluster node of the packed build answered');
  });
});

describe('the installed bin and a git install', () => {
  const db = dbOptions();
  const dbEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    MYSQL_HOST: db.host,
    MYSQL_PORT: String(db.port),
    MYSQL_USER: db.user,
    MYSQL_DATABASE: db.database,
    ...(db.password === '' ? {} : { MYSQL_PASSWORD: db.password }),
  };

  test('the mysql2-keepalive-pool bin runs doctor from the installed package', async () => {
    const bin = path.join(consumer, 'node_modules', '.bin', 'mysql2-keepalive-pool');
    const help = await run(bin, ['--help'], { cwd: consumer, timeout: 30_000 });
    assert.match(help.stdout, /^Usage: mysql2-keepalive-pool <command>/);
    // doctor exits 1 on a risky configuration; both 0 and 1 mean it connected and reported.
    const doctor = await run(bin, ['doctor', '--json'], {
      cwd: consumer,
      env: dbEnv,
      timeout: 30_000,
    }).catch((e: { code?: number; stdout?: string }) => {
      if (e.code === 1) return { stdout: e.stdout ?? '' };
      throw e;
    });
    const report = JSON.parse(doctor.stdout.trim()) as {
      server: { version: string } | null;
      error: unknown;
    };
    assert.equal(report.error, null);
    assert.match(report.server?.version ?? '', /^\d+\.\d+\.\d+/);
  });

  test('npm install git+file://… builds dist/ through prepare; require and import work', async () => {
    const dir = await gitInstall;
    const installed = path.join(dir, 'node_modules', 'mysql2-keepalive-pool');
    assert.ok(fs.existsSync(path.join(installed, 'dist', 'index.cjs')), 'dist/ was built');
    assert.equal(fs.existsSync(path.join(installed, 'src')), false, 'packed like a tarball');
    const script = `
const cjs = require('mysql2-keepalive-pool');
const promise = require('mysql2-keepalive-pool/promise');
import('mysql2-keepalive-pool').then((esm) => {
  console.log(JSON.stringify({
    cjs: typeof cjs.createPool,
    promise: typeof promise.createPool,
    esm: typeof esm.createPool,
    from: require.resolve('mysql2-keepalive-pool'),
  }));
});
`;
    fs.writeFileSync(path.join(dir, 'use.cjs'), script);
    const { stdout } = await run(process.execPath, ['use.cjs'], { cwd: dir, timeout: 30_000 });
    const out = JSON.parse(stdout.trim()) as Record<string, string>;
    assert.deepEqual(
      { cjs: out.cjs, promise: out.promise, esm: out.esm },
      { cjs: 'function', promise: 'function', esm: 'function' },
    );
    assert.equal(out.from, path.join(installed, 'dist', 'index.cjs'));
  });
});
