/**
 * `createPoolCluster`: mysql2's own `PoolCluster` (selectors, patterns, error counting,
 * `offline`/`online`/`remove`/`warn`, `end`, `Symbol.dispose`) whose every node is a
 * {@link KeepalivePool}, with all its defences, created through the pool's public constructor.
 * The subclass overrides only how a node is added. mysql2's PoolCluster keeps its node table in
 * `_nodes`, `_serviceableNodeIds`, `_lastId` and `_clearFindCaches()`; `add` is the one method
 * that writes them, and test/unit/cluster-contract.test.ts pins the shape relied on here.
 *
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import createDebug from 'debug';
import mysql from 'mysql2';
import type { PoolClusterOptions, PoolConnection as CorePoolConnection } from 'mysql2';
import * as mysqlPromise from 'mysql2/promise';
import type { PoolConnection as PromisePoolConnection } from 'mysql2/promise';
import type { KeepalivePoolOptions } from './config.js';
import { metricsText } from './metrics.js';
import { KeepalivePool } from './pool.js';
import type { PoolStats } from './stats.js';

const debug = createDebug('mysql2-keepalive-pool:cluster');

/** A node of mysql2's PoolCluster, as its `_nodes` table holds it. */
interface ClusterNode {
  id: string;
  errorCount: number;
  pool: KeepalivePool;
  _offlineUntil: number;
}

/** The parts of mysql2's PoolCluster that `add` maintains (see the file comment). */
interface Mysql2PoolClusterInternals extends EventEmitter {
  _nodes: Record<string, ClusterNode>;
  _serviceableNodeIds: string[];
  _lastId: number;
  _closed: boolean;
  _clearFindCaches(): void;
}

const Mysql2PoolCluster = (
  mysql as unknown as {
    PoolCluster: new (config?: PoolClusterOptions) => Mysql2PoolClusterInternals;
  }
).PoolCluster;

/** Options of `createPoolCluster`: mysql2's {@link PoolClusterOptions}. */
export type KeepalivePoolClusterOptions = PoolClusterOptions;

/**
 * mysql2's `PoolCluster` whose nodes are keepalive pools. Create it with `createPoolCluster`.
 * Node configs are `createPool` options (or a `mysql://` URL): `MYSQL_*` variables fill in what
 * a node config does not set, exactly as for `createPool`, and a node's pool is named after its
 * id unless the config names it.
 */
export class KeepalivePoolCluster extends Mysql2PoolCluster {
  /** The options the cluster was created with (mysql2's typings declare this field). */
  readonly config: PoolClusterOptions;
  readonly #env: NodeJS.ProcessEnv;

  /**
   * @param options - mysql2's PoolCluster options: `canRetry`, `removeNodeErrorCount`,
   *   `restoreNodeTimeout`, `defaultSelector`.
   * @param env - where node pools read `MYSQL_*` from; defaults to `process.env`.
   */
  constructor(options?: PoolClusterOptions, env: NodeJS.ProcessEnv = process.env) {
    super(options);
    this.config = { ...options };
    this.#env = env;
  }

  /**
   * Adds a node (mysql2 semantics): `add(config)` names it `CLUSTER::<n>`; adding an id that
   * exists already is ignored. Bad configuration throws a `ConfigError` here, naming the option.
   */
  add(idOrConfig: string | KeepalivePoolOptions, config?: KeepalivePoolOptions | string): void {
    let id: string;
    let nodeConfig: KeepalivePoolOptions | string | undefined;
    if (typeof idOrConfig === 'object') {
      nodeConfig = idOrConfig;
      id = `CLUSTER::${++this._lastId}`;
    } else {
      id = idOrConfig;
      nodeConfig = config;
    }
    if (this._nodes[id] !== undefined) return;
    const options: KeepalivePoolOptions =
      typeof nodeConfig === 'string' ? { uri: nodeConfig } : { ...nodeConfig };
    if (options.name === undefined || options.name === null) options.name = id;
    const pool = new KeepalivePool(options, this.#env);
    this._nodes[id] = { id, errorCount: 0, pool, _offlineUntil: 0 };
    this._serviceableNodeIds.push(id);
    this._clearFindCaches();
    debug('%s: node added', pool.name);
  }

  /** The pool of each node still in the cluster, by node id. */
  pools(): ReadonlyMap<string, KeepalivePool> {
    return new Map(Object.values(this._nodes).map((n) => [n.id, n.pool]));
  }

  /** {@link PoolStats} of each node still in the cluster, by node id. */
  stats(): Record<string, PoolStats> {
    const out: Record<string, PoolStats> = {};
    for (const node of Object.values(this._nodes)) out[node.id] = node.pool.stats();
    return out;
  }

  /** Every node's metrics in one Prometheus text exposition, each sample labelled with its
   * `node` id (and its pool's name as `pool`). */
  metrics(): string {
    return metricsText(
      Object.values(this._nodes).map((node) => ({
        name: node.pool.name,
        labels: { node: node.id },
        stats: () => node.pool.stats(),
      })),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// The mysql2/promise shape

type Executable = (
  sql: unknown,
  values: unknown,
  cb: (err: Error | null, rows?: unknown, fields?: unknown) => void,
) => unknown;

interface CoreNamespace {
  getConnection(cb: (err: Error | null, conn: CorePoolConnection) => void): void;
  query: Executable;
  execute: Executable;
}

const PromisePoolConnectionClass = (
  mysqlPromise as unknown as {
    PromisePoolConnection: new (
      conn: CorePoolConnection,
      p: PromiseConstructor,
    ) => PromisePoolConnection;
  }
).PromisePoolConnection;

function run(
  P: PromiseConstructor,
  target: CoreNamespace,
  method: 'query' | 'execute',
  sql: unknown,
  values: unknown,
): Promise<[unknown, unknown]> {
  if (typeof values === 'function') {
    throw new Error('Callback function is not available with promise clients.');
  }
  return new P((resolve, reject) => {
    target[method](sql, values, (err, rows, fields) =>
      err ? reject(err) : resolve([rows, fields]),
    );
  });
}

function connectionOf(
  P: PromiseConstructor,
  get: (cb: (err: Error | null, conn: CorePoolConnection) => void) => void,
): Promise<PromisePoolConnection> {
  return new P((resolve, reject) => {
    get((err, conn) => (err ? reject(err) : resolve(new PromisePoolConnectionClass(conn, P))));
  });
}

/** mysql2/promise's `PoolNamespace` over a namespace of a {@link KeepalivePoolCluster}. */
class PromisePoolNamespace {
  constructor(
    readonly poolNamespace: CoreNamespace,
    readonly Promise: PromiseConstructor,
  ) {}

  getConnection(): Promise<PromisePoolConnection> {
    return connectionOf(this.Promise, (cb) => this.poolNamespace.getConnection(cb));
  }

  query(sql: unknown, values?: unknown): Promise<[unknown, unknown]> {
    return run(this.Promise, this.poolNamespace, 'query', sql, values);
  }

  execute(sql: unknown, values?: unknown): Promise<[unknown, unknown]> {
    return run(this.Promise, this.poolNamespace, 'execute', sql, values);
  }
}

/** Events of the callback cluster that the promise cluster re-emits (as mysql2's does). */
const CLUSTER_EVENTS: ReadonlySet<string | symbol> = new Set([
  'warn',
  'remove',
  'online',
  'offline',
]);

/**
 * mysql2/promise's `PoolCluster` over a {@link KeepalivePoolCluster} (`.poolCluster`): the same
 * methods, resolving `[rows, fields]` and promise connections; `warn`, `remove`, `online` and
 * `offline` are re-emitted with the promise cluster as `this`.
 */
export class PromiseKeepalivePoolCluster extends EventEmitter {
  constructor(
    readonly poolCluster: KeepalivePoolCluster,
    readonly Promise: PromiseConstructor = globalThis.Promise,
  ) {
    super();
    const forwarders = new Map<string | symbol, (...args: unknown[]) => void>();
    // Subscribe to the callback cluster only while someone listens here, as mysql2 does.
    this.on('newListener', (event: string | symbol) => {
      if (!CLUSTER_EVENTS.has(event) || forwarders.has(event)) return;
      const forward = (...args: unknown[]): void => {
        this.emit(event, ...args);
      };
      forwarders.set(event, forward);
      poolCluster.on(event, forward);
    });
    this.on('removeListener', (event: string | symbol) => {
      const forward = forwarders.get(event);
      if (forward === undefined || this.listenerCount(event) > 0) return;
      poolCluster.removeListener(event, forward);
      forwarders.delete(event);
    });
  }

  /** The callback cluster's options. */
  get config(): PoolClusterOptions {
    return this.poolCluster.config;
  }

  /** See {@link KeepalivePoolCluster.add}. */
  add(idOrConfig: string | KeepalivePoolOptions, config?: KeepalivePoolOptions | string): void {
    this.poolCluster.add(idOrConfig, config);
  }

  /** Removes (and ends) the nodes whose id matches the pattern. */
  remove(pattern: string): void {
    (this.poolCluster as unknown as { remove(p: string): void }).remove(pattern);
  }

  /** A connection from a node matching `pattern` (default `*`), picked by `selector`. */
  getConnection(pattern?: string, selector?: string): Promise<PromisePoolConnection> {
    return connectionOf(this.Promise, (cb) => this.#namespace(pattern, selector).getConnection(cb));
  }

  /** A query on a node of the default namespace (`of('*')`). */
  query(sql: unknown, values?: unknown): Promise<[unknown, unknown]> {
    return run(this.Promise, this.#namespace(), 'query', sql, values);
  }

  /** A prepared statement on a node of the default namespace (`of('*')`). */
  execute(sql: unknown, values?: unknown): Promise<[unknown, unknown]> {
    return run(this.Promise, this.#namespace(), 'execute', sql, values);
  }

  /** The nodes matching `pattern`, picked by `selector`. */
  of(pattern?: string, selector?: string): PromisePoolNamespace {
    return new PromisePoolNamespace(this.#namespace(pattern, selector), this.Promise);
  }

  /** Ends every node's pool. */
  end(): Promise<void> {
    return new this.Promise<void>((resolve, reject) => {
      (this.poolCluster as unknown as { end(cb: (err?: Error | null) => void): void }).end((err) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.poolCluster._closed) await this.end();
  }

  #namespace(pattern?: string, selector?: string): CoreNamespace {
    return (this.poolCluster as unknown as { of(p?: string, s?: string): CoreNamespace }).of(
      pattern,
      selector,
    );
  }
}
