/**
 * `healthCheck()`, the readiness check: does a connection of this pool answer COM_PING within
 * `validationTimeout`? It never takes a connection from a caller and never opens one beyond
 * `connectionLimit`. See {@link runHealthCheck} for the steps.
 */
import type { EventEmitter } from 'node:events';
import createDebug from 'debug';
import type { PoolConnection } from 'mysql2';
import type { ResolvedConfig } from './config.js';
import { PoolError } from './errors.js';
import type { ConnectionRecord } from './health.js';
import { hold, letGo } from './process-hold.js';
import type { Counters, PoolState } from './stats.js';

const debug = createDebug('mysql2-keepalive-pool:pool');

/** What the health check needs from the pool. */
export interface HealthCheckParts {
  readonly pool: EventEmitter;
  readonly options: ResolvedConfig;
  readonly counters: Counters;
  /** mysql2's connectTimeout of the pool's connections. */
  readonly connectTimeout: unknown;
  readonly records: ReadonlyMap<PoolConnection, ConnectionRecord>;
  /** Idle connections, least recently released first. */
  idle(): readonly ConnectionRecord[];
  ping(rec: ConnectionRecord, why: 'health'): Promise<boolean>;
  evictOutOfService(): void;
  waiting(): number;
  canOpen(): boolean;
  /** Opens one connection into the pool; `done` hears whether it worked. */
  open(done: (error: unknown) => void): void;
  closed(): boolean;
  closedError(): Error;
  state(): PoolState;
  lastPingFailure(): unknown;
  recentCreateError(): unknown;
}

/**
 * 1. An idle connection (the least recently used) is reserved and pinged, like an idle ping: a
 *    caller who borrows it meanwhile waits for the verdict. A dead one is evicted, as an idle
 *    ping would, and the next idle one is tried: a stale connection is the pool's business,
 *    not a sign that the database is down.
 * 2. With no idle connection, no caller waiting and room below `connectionLimit`, one
 *    connection is opened; it stays in the pool afterwards.
 * 3. When every connection is borrowed (or callers wait), nothing is taken: it resolves if a
 *    connection proved alive (a release or a ping) within the last `validationTimeout` ms or
 *    does so within the next `validationTimeout` ms.
 *
 * It settles within `connectTimeout + 2 × validationTimeout`.
 */
export function runHealthCheck(p: HealthCheckParts): Promise<void> {
  p.counters.healthChecks++;
  const name = p.options.name;
  const budget =
    (typeof p.connectTimeout === 'number' && p.connectTimeout > 0 ? p.connectTimeout : 10_000) +
    2 * p.options.validationTimeout;
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const fail = (message: string, cause: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      p.counters.healthCheckFailures++;
      debug('%s: health check failed: %s', name, message);
      reject(
        new PoolError('HEALTH_CHECK_FAILED', `${name}: health check failed: ${message}`, {
          cause,
          details: { poolState: p.state() },
        }),
      );
    };
    // Not unref'd, like a waiting caller's acquire timer: a caller awaiting the verdict is work
    // in progress (a startup script awaiting it must not exit halfway); cleared on settling.
    const timer = setTimeout(
      () => fail(`no verdict within ${budget} ms`, p.lastPingFailure() ?? undefined),
      budget,
    );
    steps(p).then(
      (verdict) => {
        if (verdict === null) {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve();
        } else {
          fail(verdict.message, verdict.cause);
        }
      },
      (error: unknown) => fail(error instanceof Error ? error.message : String(error), error),
    );
  });
}

type Verdict = { message: string; cause: unknown } | null;

/** The steps of {@link runHealthCheck}; `null` means healthy. */
async function steps(p: HealthCheckParts): Promise<Verdict> {
  let opened = false;
  for (;;) {
    if (p.closed()) return { message: 'the pool is closed', cause: p.closedError() };
    // The idle connection a borrower would take last.
    const rec = p
      .idle()
      .find((r) => !r.borrowed && !r.pinging && r.dead === null && r.retired === null);
    if (rec) {
      // A caller awaiting this check is work in progress: keep the process alive for the ping.
      hold(rec);
      const alive = await p.ping(rec, 'health');
      if (!rec.borrowed) letGo(rec);
      if (alive) return null;
      p.evictOutOfService();
      continue;
    }
    // The connection opened below was handed to a caller at once: its handshake is the answer.
    if (opened) return null;
    if (p.waiting() > 0 || !p.canOpen()) return proofOfLife(p);
    const error = await new Promise<unknown>((resolve) => p.open(resolve));
    if (error) {
      const message = error instanceof Error ? error.message : String(error);
      return { message: `cannot connect: ${message}`, cause: error };
    }
    opened = true;
  }
}

/** Step 3: every connection is busy, so judge by recent evidence. */
function proofOfLife(p: HealthCheckParts): Promise<Verdict> {
  const window = p.options.validationTimeout;
  let newest = 0;
  for (const rec of p.records.values()) newest = Math.max(newest, rec.lastAliveAt);
  if (Date.now() - newest <= window) return Promise.resolve(null);
  const state = p.state();
  return new Promise((resolve) => {
    const onRelease = (): void => {
      cleanup();
      resolve(null);
    };
    const timer = setTimeout(() => {
      cleanup();
      resolve({
        message:
          `no connection free to ping (total=${state.total}, active=${state.active}, ` +
          `waiting=${state.waiting}) and none released or answered a ping within ${window} ms`,
        cause: p.lastPingFailure() ?? p.recentCreateError() ?? undefined,
      });
    }, window);
    timer.unref();
    const cleanup = (): void => {
      clearTimeout(timer);
      p.pool.off('release', onRelease);
    };
    p.pool.on('release', onRelease);
  });
}
