/**
 * The connection lifecycle: opening connections within `connectionLimit` (with back-off after
 * failures, socket settings), closing them, and the record of every open one. This file owns the
 * back-off timers; it knows nothing of callers (checkout.ts decides when to open,
 * health-monitor.ts when a connection must go).
 *
 * generic-pool creates and destroys connections within a hard ceiling ({@link connectionCeiling}),
 * through its documented API only (createPool, acquire, destroy, drain, clear). Every open
 * connection stays borrowed from it for its whole life: its idle list, evictor, validation and
 * `min` are never used, and checkout (checkout.ts) never goes through it.
 */
import type { EventEmitter } from 'node:events';
import createDebug from 'debug';
import { createPool as createGenericPool } from 'generic-pool';
import type { Pool as GenericPool } from 'generic-pool';
import type { PoolConnection } from 'mysql2';
import type { ResolvedConfig } from './config.js';
import { PoolError } from './errors.js';
import {
  ConnectionRecord,
  type SocketSettings,
  applySocketSettings,
  closeConnection,
  jitterDown,
  letPeerClose,
} from './health.js';
import { PoolConnectionClass } from './mysql2-parts.js';
import { hold, letGo } from './process-hold.js';
import type { MysqlConnectionConfig } from './mysql2-parts.js';
import type { Counters, EvictedConnectionEvent } from './stats.js';
import { preferTls } from './tls-preferred.js';

const debug = createDebug('mysql2-keepalive-pool:pool');

/** How long a polite COM_QUIT may take before the socket is simply destroyed. */
export const QUIT_GRACE_MS = 1000;
/** Back-off after consecutive failed connection attempts: keeps a dead database from costing CPU. */
const CREATE_BACKOFF_MIN_MS = 50;
const CREATE_BACKOFF_MAX_MS = 2000;

/**
 * How long a connection attempt waits before it starts: 0 after a success, else 50 ms doubling per
 * consecutive failure up to 2 s, counted from the last failure. Counting from the failure (not from
 * the attempt) makes the back-off decay on its own: after a quiet spell longer than the delay, the
 * next caller connects at once instead of paying for an outage that is long over.
 *
 * @param consecutiveFailures - failed attempts since the last success
 * @param msSinceLastFailure - time since the most recent failure
 */
export function createBackoffMs(consecutiveFailures: number, msSinceLastFailure: number): number {
  if (consecutiveFailures <= 0) return 0;
  const delay = Math.min(
    CREATE_BACKOFF_MAX_MS,
    CREATE_BACKOFF_MIN_MS * 2 ** Math.min(consecutiveFailures - 1, 16),
  );
  return Math.max(0, delay - Math.max(0, msSinceLastFailure));
}

/**
 * The most connections, open plus being opened, that generic-pool allows (its `max`). The pool
 * itself opens only while {@link Connections.canOpen} (within `connectionLimit`, plus one per
 * hedged checkout ping still outstanding: hedge.ts); this is the bound that holds even for an
 * `open()` that did not ask, which then waits for a free slot. With `hedgeCheckout` it is twice
 * `connectionLimit`: at most one hedge per connection being pinged.
 */
export function connectionCeiling(options: ResolvedConfig): number {
  return options.hedgeCheckout ? 2 * options.connectionLimit : options.connectionLimit;
}

/** A connection attempt that failed. generic-pool 3.9 answers a rejected `create` by emitting
 * `factoryCreateError` and creating again, while the `acquire()` that asked stays pending, so a
 * failure is handed back as a resource of its own, which `open()` destroys at once. */
class FailedAttempt {
  constructor(
    readonly error: unknown,
    /** When its connect began (after any back-off), epoch ms. */
    readonly startedAt: number,
  ) {}
}

/** A connect that failed, and when it began. */
class ConnectFailure {
  constructor(
    readonly error: unknown,
    readonly startedAt: number,
  ) {}
}

/** What generic-pool's factory makes: an open, recorded connection or a failed attempt. */
type Attempt = ConnectionRecord | FailedAttempt;

/** What the lifecycle tells the rest of the pool. */
export interface LifecycleHooks {
  /** A new connection is open and recorded; it is nobody's yet. */
  opened(rec: ConnectionRecord): void;
  /** An attempt whose connect began at `startedAt` (epoch ms) failed with `error` (already
   * counted). */
  openFailed(error: unknown, startedAt: number): void;
  /** A connection was closed and forgotten: its slot is free. */
  closed(rec: ConnectionRecord): void;
  /** Whether a caller waits (a back-off then holds the process, as work in progress). */
  callersWaiting(): boolean;
  /** The most connections to open now: `connectionLimit`, or less when lowered at runtime
   * (mysql2 reads `pool.config.connectionLimit` on every checkout). */
  connectionLimit(): number;
  /** A connect succeeded in `ms` (TCP, TLS and handshake): a round-trip sample (path-rtt.ts). */
  connected?(ms: number): void;
  /** The keepalive idle time and probe interval to give a socket now, ms (path-timeout.ts may
   * have lowered them below the configured ones). */
  keepAlive?(): { initialDelay: number; interval: number };
}

/** The pool as mysql2's PoolConnection sees it (`_closed`, `releaseConnection`,
 * `_removeConnection`), and as the emitter of `connection` and `evicted`. */
export type PoolForConnections = EventEmitter & { readonly _closed: boolean };

export class Connections {
  /** Every open connection, by mysql2 connection. */
  readonly records = new Map<PoolConnection, ConnectionRecord>();
  /** Connection attempts in progress (waiting out a back-off, or connecting). */
  opening = 0;
  readonly #pool: PoolForConnections;
  readonly #options: ResolvedConfig;
  readonly #connectionConfig: MysqlConnectionConfig;
  readonly #counters: Counters;
  readonly #hooks: LifecycleHooks;
  #nextId = 1;
  #consecutiveFailures = 0;
  #lastFailure: { error: unknown; at: number } | null = null;
  /** Attempts waiting out their back-off; end() and a success cut them short. */
  readonly #backoffs = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  /** The slots: one per open connection or attempt in progress, at most connectionCeiling(). */
  readonly #slots: GenericPool<Attempt>;

  constructor(
    pool: PoolForConnections,
    options: ResolvedConfig,
    connectionConfig: MysqlConnectionConfig,
    counters: Counters,
    hooks: LifecycleHooks,
  ) {
    this.#pool = pool;
    this.#options = options;
    this.#connectionConfig = connectionConfig;
    this.#counters = counters;
    this.#hooks = hooks;
    this.#slots = createGenericPool<Attempt>(
      {
        create: () =>
          this.#create().catch((failure: unknown) =>
            failure instanceof ConnectFailure
              ? new FailedAttempt(failure.error, failure.startedAt)
              : new FailedAttempt(failure, Date.now()),
          ),
        // The socket is already closed by destroy() or closeAll() (COM_QUIT or a hard close, as
        // the connection's state calls for), and a failed attempt closed its own.
        destroy: () => Promise.resolve(),
      },
      // No acquireTimeoutMillis or maxWaitingClients: callers' deadlines are checkout.ts's acquire
      // timer. No evictionRunIntervalMillis (off by default): health-monitor.ts retires
      // connections, and generic-pool keeps no timer.
      { max: connectionCeiling(options), min: 0 },
    );
  }

  /** generic-pool's own count of the slots (its documented Pool properties): `size` (open plus
   * being created), `borrowed` (open connections and attempts not yet handed back), `pending`
   * (opens waiting for a slot) and `max`. For tests and debugging; not part of stats(). */
  slots(): { size: number; borrowed: number; pending: number; max: number } {
    const s = this.#slots;
    return { size: s.size, borrowed: s.borrowed, pending: s.pending, max: s.max };
  }

  /** Open connections. */
  get size(): number {
    return this.records.size;
  }

  /** Whether one more connection may be opened without exceeding `connectionLimit` (as it is
   * now: see {@link LifecycleHooks.connectionLimit}), plus `extra`: the hedges in progress,
   * hedge.ts. */
  canOpen(extra = 0): boolean {
    return this.records.size + this.opening < this.#hooks.connectionLimit() + extra;
  }

  /** The error of the most recent attempt while attempts keep failing, else null. */
  recentError(): unknown {
    return this.#lastFailure ? this.#lastFailure.error : null;
  }

  /** Starts one connection attempt in a slot of generic-pool's (waiting for one if the ceiling is
   * reached); the hooks hear how it ends, then `done` if given. Attempts are interchangeable: each
   * open() gets the outcome of the next attempt to finish. */
  open(done?: (error: unknown) => void): void {
    this.opening++;
    this.#slots.acquire().then(
      (attempt) => {
        this.opening--;
        if (attempt instanceof FailedAttempt) {
          // The slot is free before the hook runs: it may open again at once.
          this.#free(attempt);
          this.#hooks.openFailed(attempt.error, attempt.startedAt);
          done?.(attempt.error);
        } else if (this.records.get(attempt.conn) !== attempt) {
          // Closed in the few microtasks between #create recording it and this callback (end(),
          // or destroy() when it died at once), while it was not yet on loan: free its slot now.
          this.#free(attempt);
          if (this.#pool._closed) {
            const error = closedError();
            this.#hooks.openFailed(error, Date.now());
            done?.(error);
          } else {
            // destroy() told the pool of a free slot while this attempt still counted as opening.
            this.#hooks.closed(attempt);
            done?.(null);
          }
        } else {
          this.#hooks.opened(attempt);
          done?.(null);
        }
      },
      () => {
        // generic-pool refuses new work only once closeAll() has drained it.
        this.opening--;
        const error = closedError();
        this.#hooks.openFailed(error, Date.now());
        done?.(error);
      },
    );
  }

  /** Hands a connection's or failed attempt's slot back to generic-pool. */
  #free(attempt: Attempt): void {
    if (!this.#slots.isBorrowedResource(attempt)) return;
    this.#slots.destroy(attempt).catch((error: unknown) => {
      debug('%s: generic-pool refused a slot back: %s', this.#options.name, error);
    });
  }

  /** Opens connections until `minIdle` are open or being opened. */
  ensureMinimum(): void {
    for (let n = this.#options.minIdle - this.records.size - this.opening; n > 0; n--) this.open();
  }

  /** Closes a connection for good and forgets it: COM_QUIT when it is healthy, a hard close when
   * it was found dead. Emits `evicted` with the reason. */
  destroy(rec: ConnectionRecord): void {
    const conn = rec.conn;
    if (this.records.get(conn) !== rec) return;
    rec.dispose();
    this.records.delete(conn);
    this.#counters.destroyed++;
    const reason = rec.dead ?? rec.retired ?? 'destroyed';
    debug('%s: connection %d closed (%s)', this.#options.name, rec.id, reason);
    this.#pool.emit('evicted', {
      threadId: conn.threadId ?? null,
      reason,
    } satisfies EvictedConnectionEvent);
    // As mysql2: a connection closed by the idle rule is destroyed without COM_QUIT unless
    // gracefulEnd is set, and one whose server closed it finishes closing on its own (mysql2
    // then emits its 'error').
    const graceful =
      rec.dead === null &&
      (rec.retired !== 'idle-timeout' || this.#options.connection.gracefulEnd === true);
    if (rec.dead === 'socket-end') letPeerClose(conn, QUIT_GRACE_MS);
    else closeConnection(conn, graceful, QUIT_GRACE_MS);
    this.#free(rec);
    this.#hooks.closed(rec);
  }

  /** end(): cuts back-offs short and closes every connection, borrowed ones too (as mysql2
   * does). Resolves once every socket is gone. */
  closeAll(): Promise<void> {
    this.#cutBackoffsShort();
    const closing: Array<Promise<void>> = [];
    for (const rec of this.records.values()) {
      rec.dispose();
      rec.retired ??= 'pool-closed';
      const conn = rec.conn;
      closing.push(
        new Promise<void>((resolve) => {
          const stream = (conn as unknown as { stream?: EventEmitter & { destroyed?: boolean } })
            .stream;
          if (!stream || stream.destroyed) return resolve();
          stream.once('close', () => resolve());
        }),
      );
      // Closing is work in progress: an idle (unref'd) socket would let the process exit before
      // the callback, e.g. while COM_QUIT waits behind a resetOnRelease reset. The grace timer
      // of closeConnection bounds how long this holds the process.
      hold(rec);
      // A connection with a ping in flight is closed hard: the ping is health traffic (a checkout
      // ping whose caller a hedge already served, an idle ping), and on a black-holed flow a
      // COM_QUIT queued behind it would keep end() waiting until tcpUserTimeout.
      closeConnection(conn, rec.dead === null && rec.pinging === null, QUIT_GRACE_MS);
      this.#free(rec);
    }
    this.records.clear();
    // From now on generic-pool refuses new attempts; its books close once the attempts in
    // progress have landed (each lands as POOL_CLOSED and frees its slot). end()'s callback does
    // not wait for that, as it never waited for attempts in progress.
    this.#slots
      .drain()
      .then(() => this.#slots.clear())
      .then(
        () => debug('%s: generic-pool drained', this.#options.name),
        (error: unknown) => debug('%s: generic-pool drain failed: %s', this.#options.name, error),
      );
    return Promise.all(closing).then(() => undefined);
  }

  /** The socket settings for a connection now: the configured ones, with the keepalive idle time
   * and interval the hooks give (path-timeout.ts). */
  #socketSettings(): SocketSettings {
    const o = this.#options;
    const keepAlive = this.#hooks.keepAlive?.();
    return {
      enableKeepAlive: o.enableKeepAlive,
      keepAliveInitialDelay: keepAlive?.initialDelay ?? o.keepAliveInitialDelay,
      keepAliveInterval: keepAlive?.interval ?? o.keepAliveInterval,
      keepAliveCount: o.keepAliveCount,
      tcpUserTimeout: o.tcpUserTimeout,
      name: o.name,
    };
  }

  /** Gives every open connection's socket the keepalive settings of now (after path-timeout.ts
   * lowered or restored them). */
  reapplySocketSettings(): void {
    const settings = this.#socketSettings();
    for (const rec of this.records.values()) applySocketSettings(rec.conn, settings);
  }

  #cutBackoffsShort(): void {
    for (const backoff of this.#backoffs) {
      clearTimeout(backoff.timer);
      backoff.resolve();
    }
    this.#backoffs.clear();
  }

  async #create(): Promise<ConnectionRecord> {
    const last = this.#lastFailure;
    const delay = createBackoffMs(this.#consecutiveFailures, last ? Date.now() - last.at : 0);
    if (delay > 0) {
      // Several attempts can wait at once (one per missing connection); end() cuts them all short.
      await new Promise<void>((resolve) => {
        const backoff = {
          timer: setTimeout(() => {
            this.#backoffs.delete(backoff);
            resolve();
          }, delay),
          resolve,
        };
        // A waiting caller is work in progress; an idle pool retrying for minIdle is not.
        if (!this.#hooks.callersWaiting()) backoff.timer.unref();
        this.#backoffs.add(backoff);
      });
    }
    const name = this.#options.name;
    if (this.#pool._closed) throw closedError();
    const cc = this.#connectionConfig;
    // A per-connection copy, as mysql2 does: changeUser mutates connection.config in place.
    const connConfig = Object.create(
      Object.getPrototypeOf(cc),
      Object.getOwnPropertyDescriptors(cc),
    ) as MysqlConnectionConfig;
    const conn = new PoolConnectionClass(this.#pool, { config: connConfig });
    if (this.#options.sslMode === 'PREFERRED') preferTls(conn as never, this.#options.name);
    const connectStart = Date.now();
    const connectClock = performance.now();
    try {
      await new Promise<void>((resolve, reject) => {
        (conn as unknown as { connect(cb: (err: unknown) => void): void }).connect((err) =>
          err ? reject(err) : resolve(),
        );
      });
    } catch (error) {
      closeConnection(conn, false, 0);
      this.#consecutiveFailures++;
      this.#counters.createErrors++;
      this.#lastFailure = { error, at: Date.now() };
      debug('%s: connection attempt failed: %s', name, (error as Error).message);
      throw new ConnectFailure(error, connectStart);
    }
    this.#hooks.connected?.(performance.now() - connectClock);
    this.#consecutiveFailures = 0;
    this.#lastFailure = null;
    // The server is back: attempts still waiting out a back-off go now.
    this.#cutBackoffsShort();
    const o = this.#options;
    applySocketSettings(conn, this.#socketSettings());
    const now = Date.now();
    const retireAt = o.maxLifetime > 0 ? now + jitterDown(o.maxLifetime, 0.025) : 0;
    const rec = new ConnectionRecord(this.#nextId++, conn, now, retireAt);
    if (this.#pool._closed) {
      closeConnection(conn, true, QUIT_GRACE_MS);
      throw closedError();
    }
    this.records.set(conn, rec);
    this.#counters.created++;
    // Idle until it is handed to a caller (lent within this turn, it is held again before the
    // let-go applies).
    letGo(rec);
    debug('%s: connection %d opened (thread %d)', name, rec.id, conn.threadId);
    this.#pool.emit('connection', conn);
    return rec;
  }
}

/** The error of everything asked of a closed pool. */
export function closedError(): PoolError {
  return new PoolError('POOL_CLOSED', 'Pool is closed.');
}
