/**
 * The pools under comparison, behind one callback-shaped adapter so the measuring loops are the
 * same code for every peer: this library's pool (defaults), mysql2's own `createPool`, and the
 * `mariadb` package's pool (its callback API, so no peer pays for promises the others skip).
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import mysql from 'mysql2';
import mysqlPromise from 'mysql2/promise';
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

// ---------------------------------------------------------------------------------------------
// Throughput variants: the API (callback or promise) and, for this pool, the module format.

/** How a throughput variant is called: mysql2's callback API or its promise API. */
export type Api = 'callback' | 'promise';
/** How this pool is loaded: `require()` of the CommonJS bundle, or `import` of the ESM one. */
export type ModuleFormat = 'cjs' | 'esm';
export const APIS: readonly Api[] = ['callback', 'promise'];
export const FORMATS: readonly ModuleFormat[] = ['cjs', 'esm'];

/** A throughput peer: `keepalive` (CommonJS), `keepalive-esm`, `mysql2`, `mariadb`. */
export type VariantName = 'keepalive' | 'keepalive-esm' | 'mysql2' | 'mariadb';

export interface KeepaliveEntries {
  index: typeof KeepaliveModule;
  promise: typeof import('../src/promise.js');
}
const variants = new Map<ModuleFormat, KeepaliveEntries>();

/**
 * Loads this pool's bundles for the throughput variants: the CommonJS entries with `require`,
 * the ESM ones with `import` (two module instances, as two applications would have); with
 * `null`, both are src/ through tsx.
 */
export async function loadKeepaliveVariants(
  build: { index: { cjs: string; esm: string }; promise: { cjs: string; esm: string } } | null,
): Promise<void> {
  if (build === null) {
    const entries = {
      index: load('../src/index.ts') as typeof KeepaliveModule,
      promise: load('../src/promise.ts') as KeepaliveEntries['promise'],
    };
    variants.set('cjs', entries);
    variants.set('esm', entries);
    return;
  }
  variants.set('cjs', { index: load(build.index.cjs), promise: load(build.promise.cjs) });
  const url = (file: string): string => pathToFileURL(file).href;
  variants.set('esm', {
    index: (await import(url(build.index.esm))) as typeof KeepaliveModule,
    promise: (await import(url(build.promise.esm))) as KeepaliveEntries['promise'],
  });
}

/** Sets one format's entries directly (a child process that loads only the bundle it measures). */
export function setKeepaliveVariant(format: ModuleFormat, entries: KeepaliveEntries): void {
  variants.set(format, entries);
}

/** The variants a throughput cell runs for `api`, given the peers and formats asked for. */
export function variantsFor(
  api: Api,
  peers: readonly PeerName[],
  formats: readonly ModuleFormat[],
): VariantName[] {
  const out: VariantName[] = [];
  for (const peer of peers) {
    if (peer === 'keepalive') {
      if (formats.includes('cjs')) out.push('keepalive');
      if (formats.includes('esm')) out.push('keepalive-esm');
    } else if (peer === 'mariadb') {
      // mariadb's callback API is its fair counterpart; its promise API is a different driver
      // path (no mysql2 PromisePool wrapper), so it runs in the callback cells only.
      if (api === 'callback') out.push('mariadb');
    } else {
      out.push(peer);
    }
  }
  return out;
}

interface PromiseLikePool {
  query(sql: string): Promise<unknown>;
  execute(sql: string): Promise<unknown>;
  getConnection(): Promise<{ release(): void }>;
  end(): Promise<void>;
}

function promiseShaped(name: PeerName, pool: PromiseLikePool): PeerPool {
  return {
    name,
    query: (sql, cb) => void pool.query(sql).then(() => cb(null), cb),
    execute: (sql, cb) => void pool.execute(sql).then(() => cb(null), cb),
    getConnection: (cb) =>
      void pool.getConnection().then(
        (c) => cb(null, c),
        (e: Error) => cb(e),
      ),
    release: (conn) => (conn as { release(): void }).release(),
    end: () => pool.end(),
    settings: () => ({ connectionLimit: 'see the callback peer' }),
  };
}

/** A throughput peer: `variant` called through `api`. The harness around it (the adapter's
 * callbacks) is the same code for every variant of one API. */
export function createVariant(variant: VariantName, api: Api, o: PeerOptions): PeerPool {
  const base = {
    host: o.db.host,
    port: o.db.port,
    user: o.db.user,
    password: o.db.password,
    database: o.db.database,
    connectionLimit: o.connectionLimit,
  };
  if (variant === 'keepalive' || variant === 'keepalive-esm') {
    const entries = variants.get(variant === 'keepalive' ? 'cjs' : 'esm');
    if (!entries) throw new Error('bench: loadKeepaliveVariants() was not called');
    const options = {
      ...base,
      ...(o.validationWindowMs === undefined ? {} : { validationSkipWindow: o.validationWindowMs }),
    };
    if (api === 'promise') {
      return promiseShaped('keepalive', entries.promise.createPool(options) as never);
    }
    const pool = entries.index.createPool(options);
    return mysql2Shaped('keepalive', pool as unknown as CallbackPool, () => ({}));
  }
  if (api === 'callback') return createPeer(variant, o);
  if (variant === 'mysql2') return promiseShaped('mysql2', mysqlPromise.createPool(base) as never);
  throw new Error(`bench: no promise variant of ${variant}`);
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
