/**
 * A throwaway MariaDB server for tests that must stop, kill and restart "the database".
 *
 *   const db = await startThrowawayMariadb();
 *   // db.host / db.port (TCP on 127.0.0.1, a free port) and db.socketPath (unix socket)
 *   await db.kill();   // SIGKILL: the database vanishes mid-flight
 *   await db.start();  // same datadir, same port, ready when a connect succeeds
 *   await db.destroy();
 *
 * `mariadb-install-db` initialises a datadir in a fresh temp directory (about 0.5 s); `mariadbd`
 * then runs on it with `--no-defaults`, so nothing from /etc/mysql leaks in. Grant tables are ON
 * (root with an empty password on localhost and 127.0.0.1), so tests can also provoke a real
 * access-denied error. Readiness is a successful connect, polled; never a sleep.
 *
 * The server dies with the test process: it is started through `setpriv --pdeathsig KILL` when
 * setpriv exists, and an exit hook SIGKILLs it and removes its temp directory synchronously.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2';

/** Options of {@link startThrowawayMariadb}. */
export interface ThrowawayMariadbOptions {
  /** TCP port; default: a free port picked by the kernel (kept across restarts). */
  port?: number;
  /** Database created once the server is up. Default `test`. */
  database?: string;
  /** Extra `mariadbd` arguments (e.g. `--wait-timeout=5`). */
  args?: string[];
  /** Longest wait for readiness after each (re)start, ms. Default 30000. */
  readyTimeoutMs?: number;
  /** Longest wait for a graceful stop before SIGKILL, ms. Default 20000. */
  stopTimeoutMs?: number;
}

/** A running (or stopped) throwaway server. All methods are safe to call in any state. */
export interface ThrowawayMariadb {
  /** Always `127.0.0.1`. */
  readonly host: string;
  readonly port: number;
  /** Unix socket of the server (inside the temp directory). */
  readonly socketPath: string;
  readonly user: 'root';
  /** Always empty. */
  readonly password: '';
  /** The database created at start-up. */
  readonly database: string;
  /** The temp directory holding datadir, socket and error log. */
  readonly dir: string;
  /** pid of the running mariadbd, or null when stopped. */
  readonly pid: number | null;
  /** Connection options for mysql2 / our pool over TCP. */
  connectionOptions(): {
    host: string;
    port: number;
    user: string;
    password: string;
    database: string;
  };
  /** The last lines of the server's error log (for assertion messages). */
  errorLogTail(lines?: number): string;
  /** SIGTERM, then wait for the process to exit (SIGKILL after stopTimeoutMs). */
  stop(): Promise<void>;
  /** SIGKILL, then wait for the process to exit. */
  kill(): Promise<void>;
  /** Starts again on the same datadir and port; resolves once a connect succeeds. */
  start(): Promise<void>;
  /** stop() and remove the temp directory. Idempotent. */
  destroy(): Promise<void>;
}

const READY_POLL_MS = 50;
const live = new Set<{ child: ChildProcess | null; dir: string }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const entry of live) {
      try {
        if (entry.child?.pid !== undefined && entry.child.exitCode === null) {
          process.kill(entry.child.pid, 'SIGKILL');
        }
      } catch {
        /* gone */
      }
      try {
        fs.rmSync(entry.dir, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    }
  });
}

let setpriv: boolean | undefined;
function hasSetpriv(): boolean {
  if (setpriv === undefined) {
    try {
      execFileSync('setpriv', ['--pdeathsig', 'KILL', 'true'], { stdio: 'ignore' });
      setpriv = true;
    } catch {
      setpriv = false;
    }
  }
  return setpriv;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function tryConnect(
  opts: mysql.ConnectionOptions,
  timeoutMs: number,
): Promise<{ ok: true } | { ok: false; error: Error }> {
  return new Promise((resolve) => {
    const conn = mysql.createConnection({ ...opts, connectTimeout: timeoutMs });
    conn.on('error', () => {});
    conn.query('SELECT 1', (err) => {
      conn.destroy();
      resolve(err ? { ok: false, error: err } : { ok: true });
    });
  });
}

/** Resolves when `child` has exited (at once if it already has). */
function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Initialises a datadir in a new temp directory and starts `mariadbd` on it, listening on
 * 127.0.0.1:`port` and on a unix socket in the same directory. Resolves once a connect succeeds
 * and the database exists.
 */
export async function startThrowawayMariadb(
  opts: ThrowawayMariadbOptions = {},
): Promise<ThrowawayMariadb> {
  installExitHook();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kapool-mariadb-'));
  const entry: { child: ChildProcess | null; dir: string } = { child: null, dir };
  live.add(entry);
  const datadir = path.join(dir, 'data');
  const socketPath = path.join(dir, 'mysqld.sock');
  const errLog = path.join(dir, 'error.log');
  const database = opts.database ?? 'test';
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 20_000;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const userArgs = isRoot ? ['--user=root'] : [];

  try {
    execFileSync(
      'mariadb-install-db',
      [
        '--no-defaults',
        `--datadir=${datadir}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        ...userArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 },
    );
  } catch (error) {
    live.delete(entry);
    fs.rmSync(dir, { recursive: true, force: true });
    const stderr = String((error as { stderr?: unknown }).stderr ?? '');
    throw new Error(`mariadb-install-db failed: ${(error as Error).message}\n${stderr}`, {
      cause: error,
    });
  }

  const port = opts.port ?? (await freePort());
  const serverArgs = [
    '--no-defaults',
    `--datadir=${datadir}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--socket=${socketPath}`,
    `--pid-file=${path.join(dir, 'mariadbd.pid')}`,
    `--log-error=${errLog}`,
    '--skip-name-resolve',
    // Small and quick: this server holds a few rows at most.
    '--innodb-buffer-pool-size=16M',
    '--innodb-log-file-size=8M',
    '--skip-log-bin',
    ...userArgs,
    ...(opts.args ?? []),
  ];

  const connectOpts = { host: '127.0.0.1', port, user: 'root', password: '' };

  async function start(): Promise<void> {
    if (entry.child && entry.child.exitCode === null && entry.child.signalCode === null) return;
    const argv = hasSetpriv()
      ? ['setpriv', '--pdeathsig', 'KILL', 'mariadbd', ...serverArgs]
      : ['mariadbd', ...serverArgs];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    entry.child = child;
    child.on('error', () => {
      /* reported through the exit check below */
    });
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `mariadbd exited during start-up (code ${child.exitCode}, signal ${child.signalCode})\n${tail(errLog, 20)}`,
        );
      }
      const res = await tryConnect(connectOpts, 1000);
      if (res.ok) return;
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        await exited(child);
        throw new Error(
          `mariadbd not ready within ${readyTimeoutMs} ms (last connect error: ${res.error.message})\n${tail(errLog, 20)}`,
          { cause: res.error },
        );
      }
      // Polling interval between connection attempts, not a stand-in for an event: the server
      // offers no readiness signal we could wait on (sd_notify needs systemd).
      await new Promise((r) => setTimeout(r, READY_POLL_MS));
    }
  }

  async function signalAndWait(signal: NodeJS.Signals): Promise<void> {
    const child = entry.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const done = exited(child);
    child.kill(signal);
    if (signal === 'SIGKILL') {
      await done;
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const forced = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, stopTimeoutMs);
    });
    await Promise.race([done, forced]);
    clearTimeout(timer);
    await done;
  }

  await start();
  const created = await new Promise<Error | null>((resolve) => {
    const conn = mysql.createConnection(connectOpts);
    conn.on('error', () => {});
    conn.query(`CREATE DATABASE IF NOT EXISTS \`${database.replace(/`/g, '``')}\``, (err) => {
      conn.destroy();
      resolve(err);
    });
  });
  if (created) {
    await signalAndWait('SIGKILL');
    live.delete(entry);
    fs.rmSync(dir, { recursive: true, force: true });
    throw created;
  }

  let destroyed = false;
  return {
    host: '127.0.0.1',
    port,
    socketPath,
    user: 'root',
    password: '',
    database,
    dir,
    get pid(): number | null {
      const c = entry.child;
      return c && c.exitCode === null && c.signalCode === null ? (c.pid ?? null) : null;
    },
    connectionOptions: () => ({ ...connectOpts, database }),
    errorLogTail: (lines = 20) => tail(errLog, lines),
    stop: () => signalAndWait('SIGTERM'),
    kill: () => signalAndWait('SIGKILL'),
    start: async () => {
      if (destroyed) throw new Error('throwaway mariadb was destroyed');
      await start();
    },
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      await signalAndWait('SIGTERM');
      live.delete(entry);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function tail(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no error log)';
  }
}
