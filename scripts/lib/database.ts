/**
 * Which database the demo uses, in this order:
 *   1. the one the environment configures (MYSQL_URL or MYSQL_HOST/PORT/USER/PASSWORD/DATABASE/
 *      SOCKET_PATH, MYSQL_PASSWORD_FILE), read through the library's own resolveConfig;
 *   2. a local server on 127.0.0.1:3306 (root, empty password);
 *   3. a throwaway MariaDB started from PATH in a temp directory (test/support/mariadb.ts);
 *   4. none: one message saying how to start one.
 */
import fs from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2';
import { resolveConfig } from '../../src/index.js';
import { startThrowawayMariadb } from '../../test/support/mariadb.js';
import type { ProxyTarget } from './idle-proxy.js';

export interface DemoDatabase {
  /** One line for the screen; never contains a password. */
  readonly label: string;
  readonly target: ProxyTarget;
  readonly user: string;
  readonly password: string;
  /** '' for none. */
  readonly database: string;
  /** Stops what the demo started (the throwaway server); no-op otherwise. */
  close(): Promise<void>;
}

/** The demo cannot run: the message says why and what to do. */
export class NoDatabaseError extends Error {
  override name = 'NoDatabaseError';
}

const IDENTITY = ['host', 'port', 'user', 'password', 'database', 'socketPath'] as const;
const LOCAL = { host: '127.0.0.1', port: 3306, user: 'root', password: '', database: 'test' };
const PROBE_TIMEOUT_MS = 3000;

/** Connects, runs SELECT 1, disconnects; resolves with the error instead of rejecting. */
function probe(
  target: ProxyTarget,
  user: string,
  password: string,
  database: string,
): Promise<Error | null> {
  return new Promise((resolve) => {
    const conn = mysql.createConnection({
      ...target,
      user,
      password,
      ...(database ? { database } : {}),
      connectTimeout: PROBE_TIMEOUT_MS,
    });
    conn.on('error', () => {
      /* reported through the query callback */
    });
    conn.query('SELECT 1', (err) => {
      conn.destroy();
      resolve(err);
    });
  });
}

function where(target: ProxyTarget): string {
  return 'socketPath' in target
    ? `unix socket ${target.socketPath}`
    : `${target.host}:${target.port}`;
}

function errText(e: Error): string {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && !e.message.includes(code)
    ? `${code}: ${e.message}`
    : e.message;
}

/** For tests: where to look for "the local server", and whether a throwaway one may be started. */
export interface FindDatabaseOptions {
  local?: { host: string; port: number };
  throwaway?: boolean;
}

/**
 * Finds (or starts) the database. Throws {@link NoDatabaseError}, with a message for the user,
 * when there is none or when the configured one does not answer.
 */
export async function findDatabase(
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
  opts: FindDatabaseOptions = {},
): Promise<DemoDatabase> {
  // 1. Configured by the environment: the library decides what the variables mean.
  const cfg = resolveConfig(undefined, env);
  const configured = IDENTITY.filter((k) => cfg.sources[k] !== 'default');
  if (configured.length > 0) {
    const c = cfg.connection;
    const target: ProxyTarget =
      typeof c.socketPath === 'string'
        ? { socketPath: c.socketPath }
        : { host: c.host ?? 'localhost', port: c.port ?? 3306 };
    const db = {
      target,
      user: c.user ?? '',
      password: c.password ?? '',
      database: c.database ?? '',
    };
    const err = await probe(db.target, db.user, db.password, db.database);
    if (err) {
      throw new NoDatabaseError(
        `The database configured by the environment (${where(target)}) did not answer: ${errText(err)}`,
      );
    }
    return {
      ...db,
      label: `${where(target)} as ${db.user || '(no user)'}${db.database ? `, database ${db.database}` : ''} (from the environment)`,
      close: async () => {},
    };
  }

  // 2. A local server, as in the README's quick start.
  const localTarget = opts.local ?? { host: LOCAL.host, port: LOCAL.port };
  const localErr = await probe(localTarget, LOCAL.user, LOCAL.password, LOCAL.database);
  if (!localErr) {
    return {
      ...LOCAL,
      target: localTarget,
      label: `local server ${where(localTarget)} as root, database test`,
      close: async () => {},
    };
  }
  log(`(no usable server on ${where(localTarget)}: ${errText(localErr)})`);

  // 3. A throwaway MariaDB from PATH.
  if (opts.throwaway !== false) {
    try {
      const t0 = Date.now();
      const srv = await startThrowawayMariadb({ readyTimeoutMs: 20_000 });
      return {
        target: { socketPath: srv.socketPath },
        user: srv.user,
        password: srv.password,
        database: srv.database,
        label: `throwaway mariadbd in ${srv.dir} (started in ${((Date.now() - t0) / 1000).toFixed(1)} s, removed at exit)`,
        close: () => srv.destroy(),
      };
    } catch (e) {
      log(`(no throwaway server: ${(e as Error).message.split('\n')[0]})`);
    }
  }

  // 4. Nothing: say how to get one.
  const compose = fs.existsSync(path.resolve(__dirname, '..', '..', 'docker-compose.yml'));
  throw new NoDatabaseError(
    [
      `No MySQL/MariaDB server to run the demo against: MYSQL_URL / MYSQL_* are not set, nothing answers on ${where(localTarget)} as root, and no throwaway mariadbd could be started (it needs mariadbd and mariadb-install-db on PATH).`,
      'Start one, then run the demo again:',
      compose
        ? '  docker compose up -d'
        : '  docker run -d --name kapool-demo -p 127.0.0.1:3306:3306 -e MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1 -e MARIADB_DATABASE=test mariadb:10.11',
      '  MYSQL_URL=mysql://root@127.0.0.1:3306/test npm run demo',
      '(or point MYSQL_URL, or MYSQL_HOST/MYSQL_PORT/MYSQL_USER/MYSQL_PASSWORD/MYSQL_DATABASE, at any server you may use)',
    ].join('\n'),
  );
}
