/**
 * The measuring loops. Closed loops with callbacks: `concurrency` workers each issue the next
 * command as soon as the previous one completes, so the pool, the driver and the server are the
 * only things that set the pace.
 */
import { constants, performance, PerformanceObserver } from 'node:perf_hooks';
import type { PeerPool } from './peers.js';

export const SQL = 'SELECT 1';

/** Garbage-collection time of this process so far, ms, by kind (observed once started). */
const gcMs = { minor: 0, major: 0 };
let gcObserver: PerformanceObserver | null = null;
export function gcTotals(): { minor: number; major: number } {
  if (gcObserver === null) {
    gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = (e as { detail?: { kind?: number } }).detail?.kind;
        if (kind === constants.NODE_PERFORMANCE_GC_MINOR) gcMs.minor += e.duration;
        else gcMs.major += e.duration;
      }
    });
    gcObserver.observe({ entryTypes: ['gc'] });
  }
  return { ...gcMs };
}
export type Method = 'query' | 'execute';

/** Rejects with the first error a peer reports: a bench that hides failures measures nothing.
 * `cpuUsPerQuery` is this process's CPU time (user + system) per query: the client-side cost,
 * far steadier than throughput on a shared machine. */
export function throughputCell(
  pool: PeerPool,
  method: Method,
  concurrency: number,
  durationMs: number,
): Promise<{ count: number; elapsedMs: number; qps: number; cpuUsPerQuery: number }> {
  return new Promise((resolve, reject) => {
    let count = 0;
    let active = concurrency;
    let failed: Error | null = null;
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    const end = start + durationMs;
    const issue =
      method === 'query' ? (): void => pool.query(SQL, done) : (): void => pool.execute(SQL, done);
    function done(err: Error | null): void {
      if (err) failed ??= err;
      else count++;
      if (failed !== null || performance.now() >= end) {
        if (--active === 0) {
          const elapsedMs = performance.now() - start;
          const cpu = process.cpuUsage(cpu0);
          if (failed) reject(failed);
          else {
            resolve({
              count,
              elapsedMs,
              qps: (count * 1000) / elapsedMs,
              cpuUsPerQuery: (cpu.user + cpu.system) / count,
            });
          }
        }
        return;
      }
      issue();
    }
    for (let i = 0; i < concurrency; i++) issue();
  });
}

/** Checkout latency samples (ms): getConnection → callback → release, one at a time; `gapMs` >
 * 0 idles between samples (to step outside a validation skip window). */
export function checkoutSamples(pool: PeerPool, samples: number, gapMs: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const out: number[] = [];
    let t0 = 0;
    // mariadb's pool calls back synchronously when it has an idle connection: loop instead of
    // recursing, or thousands of samples overflow the stack.
    let inNext = false;
    let again = false;
    const next = (): void => {
      if (inNext) {
        again = true;
        return;
      }
      inNext = true;
      do {
        again = false;
        t0 = performance.now();
        pool.getConnection(got);
      } while (again);
      inNext = false;
    };
    function got(err: Error | null, conn?: unknown): void {
      if (err) {
        reject(err);
        return;
      }
      pool.release(conn);
      out.push(performance.now() - t0);
      if (out.length >= samples) resolve(out);
      else if (gapMs > 0) setTimeout(next, gapMs);
      else next();
    }
    next();
  });
}

/** Holds `n` connections at once and releases them: the pool then has `n` open, idle ones. */
export function fill(pool: PeerPool, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const held: unknown[] = [];
    let pending = n;
    let failed: Error | null = null;
    for (let i = 0; i < n; i++) {
      pool.getConnection((err, conn) => {
        if (err) failed ??= err;
        else held.push(conn);
        if (--pending > 0) return;
        for (const c of held) pool.release(c);
        if (failed) reject(failed);
        else resolve();
      });
    }
  });
}

/** Runs exactly `total` commands with `concurrency` workers. */
export function countLoop(
  pool: PeerPool,
  method: Method,
  concurrency: number,
  total: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let issued = 0;
    let active = 0;
    let failed: Error | null = null;
    const issue = (): void => {
      issued++;
      active++;
      if (method === 'query') pool.query(SQL, done);
      else pool.execute(SQL, done);
    };
    function done(err: Error | null): void {
      active--;
      if (err) failed ??= err;
      if (failed === null && issued < total) {
        issue();
        return;
      }
      if (active === 0) {
        if (failed) reject(failed);
        else resolve();
      }
    }
    for (let i = 0; i < Math.min(concurrency, total); i++) issue();
  });
}

/** `n` hot checkouts back to back (getConnection → callback → release, nothing else per
 * checkout); resolves with the elapsed ns. A pool that calls back synchronously (mariadb's, when
 * it has an idle connection) is looped, not recursed into. */
export function hotCheckouts(pool: PeerPool, n: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let i = 0;
    let inNext = false;
    let again = false;
    const t0 = process.hrtime.bigint();
    const next = (): void => {
      if (inNext) {
        again = true;
        return;
      }
      inNext = true;
      do {
        again = false;
        pool.getConnection(got);
      } while (again);
      inNext = false;
    };
    function got(err: Error | null, conn?: unknown): void {
      if (err) {
        reject(err);
        return;
      }
      pool.release(conn);
      if (++i < n) next();
      else resolve(Number(process.hrtime.bigint() - t0));
    }
    next();
  });
}
