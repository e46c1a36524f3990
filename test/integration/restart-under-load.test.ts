/**
 * The database goes away and comes back while callers keep working. A throwaway mariadbd (its
 * own datadir and port) is killed (SIGKILL) and later stopped (SIGTERM), and restarted each time
 * on the same port, under eight callers in tight loops: four one-shot `pool.query` callers and
 * four that hold a connection (getConnection, query, release).
 *
 * During each outage every call fails with an error carrying a code, within a bound; none hangs.
 * After each restart the same pool serves again without any help. At the end no slot has leaked:
 * nothing borrowed, nobody waiting, no more connections than the limit. Through all of it the
 * event loop never stalls (test/support/loop-delay.ts).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { inspect } from 'node:util';
import type { PoolConnection } from 'mysql2';
import { createPool } from '../../src/index.js';
import type { Pool } from '../../src/index.js';
import { startThrowawayMariadb, type ThrowawayMariadb } from '../support/mariadb.js';
import { assertNoStall, FAULT_STALL_LIMIT_MS, watchLoop } from '../support/loop-delay.js';

const CALLERS = 8;
const LIMIT = 4;
const ACQUIRE_TIMEOUT = 2000;
const CONNECT_TIMEOUT = 1000;
/** No call may take longer than this: 3× the longest timeout a call can wait out. */
const CALL_BOUND_MS = 3 * Math.max(ACQUIRE_TIMEOUT, CONNECT_TIMEOUT);
/** How long each outage lasts at least: long enough for the back-off to reach its ceiling. */
const OUTAGE_MS = 2500;

/** Codes a caller may see while the server is going away, gone, or coming back. */
const OUTAGE_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST', // the server closed the socket under a command
  'ECONNRESET',
  'EPIPE',
  'ECONNREFUSED', // nothing listening
  'POOL_ACQUIRE_TIMEOUT', // no connection within acquireTimeout (cause: the last attempt's error)
  'ER_SERVER_SHUTDOWN', // SIGTERM: "Server shutdown in progress"
  'ER_CONNECTION_KILLED', // SIGTERM: the server kills its client threads
  'PROTOCOL_SEQUENCE_TIMEOUT',
]);
/** mysql2's only code-less error a holder can meet: its connection died after checkout. */
const CLOSED_STATE = "Can't add new command when connection is in closed state";

const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));

let db: ThrowawayMariadb;
before(async () => {
  db = await startThrowawayMariadb();
});
after(async () => {
  await db?.destroy();
  assert.deepEqual(unhandled, [], 'no unhandled promise rejection');
});

interface Tally {
  ok: number;
  failed: number;
  /** Which callers (by index) have failed, and succeeded, since the last `clear()`. */
  failedCallers: Set<number>;
  servedCallers: Set<number>;
  slowest: number;
  slowestWhat: string;
  codes: Map<string, number>;
  odd: string[];
}

/** Resolves when `pred` holds; checked after every call a caller completes. */
class Watch {
  #waiters: Array<{ pred: () => boolean; resolve: () => void }> = [];
  until(pred: () => boolean): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ pred, resolve }));
  }
  poke(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.pred()) return true;
      w.resolve();
      return false;
    });
  }
}

function getConn(p: Pool): Promise<PoolConnection> {
  return new Promise((resolve, reject) => p.getConnection((e, c) => (e ? reject(e) : resolve(c))));
}

/** Fails the test with `what` if `p` does not settle within `ms` (a hang, not a slow call). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

test('the server is killed and stopped under load: callers fail fast, the pool heals, no slot leaks', async (t) => {
  const loop = await watchLoop();
  const pool = createPool({
    ...db.connectionOptions(),
    connectionLimit: LIMIT,
    acquireTimeout: ACQUIRE_TIMEOUT,
    connectTimeout: CONNECT_TIMEOUT,
  });
  const tally: Tally = {
    ok: 0,
    failed: 0,
    failedCallers: new Set(),
    servedCallers: new Set(),
    slowest: 0,
    slowestWhat: '',
    codes: new Map(),
    odd: [],
  };
  const watch = new Watch();
  let running = true;

  const record = (
    caller: number,
    ms: number,
    err: (Error & { code?: unknown }) | null,
    what: string,
  ): void => {
    if (ms > tally.slowest) {
      tally.slowest = ms;
      tally.slowestWhat = `${what}: ${err ? `${String(err.code)} ${err.message}` : 'ok'}`;
    }
    if (!err) {
      tally.ok++;
      tally.servedCallers.add(caller);
    } else {
      tally.failed++;
      tally.failedCallers.add(caller);
      const code = typeof err.code === 'string' ? err.code : err.message;
      tally.codes.set(code, (tally.codes.get(code) ?? 0) + 1);
      if (!OUTAGE_CODES.has(code) && err.message !== CLOSED_STATE) tally.odd.push(inspect(err));
    }
    watch.poke();
  };

  const oneShot = async (caller: number): Promise<void> => {
    while (running) {
      const start = Date.now();
      try {
        await pool.promise().query('SELECT 1 AS one');
        record(caller, Date.now() - start, null, 'query');
      } catch (e) {
        record(caller, Date.now() - start, e as Error, 'query');
      }
    }
  };
  const holder = async (caller: number): Promise<void> => {
    while (running) {
      const start = Date.now();
      let conn: PoolConnection | undefined;
      try {
        conn = await getConn(pool);
        await conn.promise().query('SELECT 1 AS one');
        record(caller, Date.now() - start, null, 'held');
      } catch (e) {
        record(caller, Date.now() - start, e as Error, 'held');
      } finally {
        conn?.release();
      }
    }
  };
  const loops = [
    ...Array.from({ length: CALLERS / 2 }, (_, i) => oneShot(i)),
    ...Array.from({ length: CALLERS / 2 }, (_, i) => holder(CALLERS / 2 + i)),
  ];

  const outage = async (how: 'kill' | 'stop'): Promise<void> => {
    await within(
      watch.until(() => tally.ok >= 50),
      15_000,
      `${how}: callers are served before the outage`,
    );
    tally.failedCallers.clear();
    if (how === 'kill') await db.kill();
    else await db.stop();
    const downAt = Date.now();
    // Every caller meets the outage at least once...
    await within(
      watch.until(() => tally.failedCallers.size === CALLERS),
      CALL_BOUND_MS * 2,
      `${how}: callers fail`,
    );
    // ...and the server stays away long enough for the back-off to climb to its ceiling.
    await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (Date.now() - downAt))));
    await db.start();
    // (Cleared after the restart: a success before it says nothing about healing.)
    tally.servedCallers.clear();
    await within(
      watch.until(() => tally.servedCallers.size === CALLERS),
      15_000,
      `${how}: the pool serves again after the restart`,
    );
  };

  try {
    await outage('kill');
    await outage('stop');
  } finally {
    running = false;
    await within(Promise.all(loops), CALL_BOUND_MS * 2, 'every caller finishes');
  }

  const loopDelay = await loop.stop();
  const state = pool.state();
  const stats = pool.stats();
  t.diagnostic(
    JSON.stringify({
      ok: tally.ok,
      failed: tally.failed,
      slowest: tally.slowest,
      slowestWhat: tally.slowestWhat,
      codes: Object.fromEntries(tally.codes),
      state,
      created: stats.created,
      createErrors: stats.createErrors,
      retries: stats.retries,
      loopDelay,
    }),
  );
  try {
    assertNoStall(loopDelay, FAULT_STALL_LIMIT_MS, 'two outages under load');
    assert.deepEqual(tally.odd, [], 'every failure is an outage error with a code');
    assert.ok(tally.failed >= 2 * CALLERS, 'both outages reached the callers');
    assert.ok(
      tally.slowest < CALL_BOUND_MS,
      `slowest call: ${tally.slowest} ms (${tally.slowestWhat})`,
    );
    assert.equal(state.active, 0, 'nothing borrowed');
    assert.equal(state.waiting, 0, 'nobody waiting');
    // Attempts started for callers who have gone may still be finishing; they count too.
    assert.ok(
      state.total + state.pending <= LIMIT,
      `total ${state.total} + pending ${state.pending} <= ${LIMIT}`,
    );
    assert.ok(stats.created > LIMIT, 'connections were re-created after the restarts');
    const [rows] = await pool.promise().query('SELECT 1 AS one');
    assert.deepEqual(rows, [{ one: 1 }]);
  } finally {
    await new Promise<void>((resolve) => pool.end(() => resolve()));
  }
});
