/**
 * The pools under comparison, behind one callback-shaped adapter so the measuring loops are the
 * same code for every peer: this library's pool (defaults), mysql2's own `createPool`, and the
 * `mariadb` package's pool (its callback API, so no peer pays for promises the others skip).
 */
import { createRequire } from 'node:module';
import mysql from 'mysql2';
import * as mariadb from 'mariadb/callback';
import type * as KeepaliveModule from '../src/index.js';
import type { DbOptions } from '../test/support/db.js';

const load = createRequire(__filename);
let keepalive: typeof KeepaliveModule | null = null;

/**
 * Chooses what `keepalive` runs: a built bundle (bench/build.ts; what the bench measures), or
 * with `null` the TypeScript sources through tsx (quicker to iterate on, slower to run).
 */
export function useKeepaliveModule(file: string | null): void {
  keepalive = load(file ?? '../src/index.ts') as typeof KeepaliveModule;
}

export const PEERS = ['keepalive', 'mysql2', 'mariadb'] as const;
export type PeerName = (typeof PEERS)[number];

/** What the bench needs from a pool. Callbacks are passed straight through (no wrapper closure
 * per call), so the harness costs every peer the same. */
export interface PeerPool {
  readonly name: PeerName;
  query(sql: string, cb: (err: Error | null) => void): void;
  execute(sql: string, cb: (err: Error | null) => void): void;
  getConnection(cb: (err: Error | null, conn?: unknown) => void): void;
  release(conn: unknown): void;
  end(): Promise<void>;
  /** The settings the pool actually runs with (no secrets). */
  settings(): Record<string, unknown>;
}

export interface PeerOptions {
  db: DbOptions;
  connectionLimit: number;
  /** Lower the validation skip window (ours: validationSkipWindow, mariadb: minDelayValidation).
   * mysql2's pool has no validation, so it ignores this. */
  validationWindowMs?: number;
  /** Open connections only on demand. mariadb's pool opens `connectionLimit` connections at
   * creation by default (minimumIdle); the memory section needs to control the count. */
  onDemand?: boolean;
}

type Cb = (err: Error | null, ...rest: unknown[]) => void;
interface CallbackPool {
  query(sql: string, cb: Cb): unknown;
  execute(sql: string, cb: Cb): unknown;
  getConnection(cb: Cb): void;
  end(cb: Cb): void;
}

function noop(): void {}

function mysql2Shaped(
  name: PeerName,
  pool: CallbackPool,
  settings: () => Record<string, unknown>,
): PeerPool {
  return {
    name,
    query: (sql, cb) => void pool.query(sql, cb),
    execute: (sql, cb) => void pool.execute(sql, cb),
    getConnection: (cb) => pool.getConnection(cb as Cb),
    release: (conn) => (conn as { release(): void }).release(),
    end: () => new Promise<void>((resolve) => pool.end(() => resolve())),
    settings,
  };
}

export function createPeer(name: PeerName, o: PeerOptions): PeerPool {
  const base = {
    host: o.db.host,
    port: o.db.port,
    user: o.db.user,
    password: o.db.password,
    database: o.db.database,
    connectionLimit: o.connectionLimit,
  };
  switch (name) {
    case 'keepalive': {
      if (keepalive === null) throw new Error('bench: useKeepaliveModule() was not called');
      const { createPool, describeConfig } = keepalive;
      const pool = createPool({
        ...base,
        ...(o.validationWindowMs === undefined
          ? {}
          : { validationSkipWindow: o.validationWindowMs }),
      });
      return mysql2Shaped(name, pool as unknown as CallbackPool, () => {
        const { password: _p, ...shown } = describeConfig(pool.options);
        return shown;
      });
    }
    case 'mysql2': {
      const pool = mysql.createPool(base);
      return mysql2Shaped(name, pool as unknown as CallbackPool, () => ({
        connectionLimit: o.connectionLimit,
        validation: 'none (mysql2 hands out the last released connection unchecked)',
      }));
    }
    case 'mariadb': {
      const pool = mariadb.createPool({
        ...base,
        ...(o.validationWindowMs === undefined ? {} : { minDelayValidation: o.validationWindowMs }),
        ...(o.onDemand ? { minimumIdle: 0 } : {}),
      });
      const cbPool = pool as unknown as CallbackPool;
      return {
        name,
        query: (sql, cb) => void cbPool.query(sql, cb),
        execute: (sql, cb) => void cbPool.execute(sql, cb),
        getConnection: (cb) => cbPool.getConnection(cb as Cb),
        release: (conn) => (conn as { release(cb: () => void): void }).release(noop),
        end: () => new Promise<void>((resolve) => cbPool.end(() => resolve())),
        settings: () => ({
          connectionLimit: o.connectionLimit,
          minDelayValidation: o.validationWindowMs ?? 500,
        }),
      };
    }
  }
}

/** Installed versions of the peers, for the results file. */
export function peerVersions(): Record<string, string> {
  const req = createRequire(__filename);
  const version = (file: string): string => {
    try {
      return (req(file) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  };
  return {
    mysql2: version('mysql2/package.json'),
    // mariadb's exports map hides package.json; the module exports its version.
    mariadb: (mariadb as unknown as { version?: string }).version ?? 'unknown',
    'generic-pool': version('generic-pool/package.json'),
    'mysql2-keepalive-pool': version('../package.json'),
  };
}
