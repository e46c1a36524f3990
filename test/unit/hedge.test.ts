/**
 * Hedge accounting (src/hedge.ts with src/checkout.ts), with stand-ins for the connections and
 * the pings and Node's mock timers: a hedge starts only for a ping still unanswered after the
 * hedge delay, at most one per outstanding ping; connections never exceed connectionLimit + the
 * hedged pings outstanding; once those have resolved the pool is back within connectionLimit
 * (a connection that becomes free above it is closed as `hedge-surplus`).
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import type { PoolConnection } from 'mysql2';
import { Checkout } from '../../src/checkout.js';
import { resolveConfig } from '../../src/config.js';
import { ConnectionRecord } from '../../src/health.js';
import { LEND, VALIDATE } from '../../src/health-monitor.js';
import { Hedges } from '../../src/hedge.js';
import { HEDGE_FLOOR_MS, PathRtt } from '../../src/path-rtt.js';
import { Counters } from '../../src/stats.js';

/** Lets promise callbacks, nextTicks and immediates run (the hedge decides in a setImmediate
 * after its timer). */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
};

/** Mock setTimeout only: the hedge delay and the acquire timer move when the test says. */
function mockTimers(t: TestContext): void {
  t.mock.timers.enable({ apis: ['setTimeout'] });
}

/** The hedge delay passes (no round trip seen: the floor). */
async function hedgeDelayPasses(t: TestContext): Promise<void> {
  t.mock.timers.tick(HEDGE_FLOOR_MS);
  await flush();
}

function setup(limit: number, options: Record<string, unknown> = {}) {
  const cfg = resolveConfig({ connectionLimit: limit, ...options }, {} as NodeJS.ProcessEnv);
  const counters = new Counters();
  const records = new Set<ConnectionRecord>();
  const stale = new Set<ConnectionRecord>();
  const pings = new Map<ConnectionRecord, (alive: boolean) => void>();
  let opening = 0;
  let nextId = 1;
  let maxCount = 0;
  const note = (): void => {
    maxCount = Math.max(maxCount, records.size + opening);
  };
  const newRec = (): ConnectionRecord => {
    const rec = new ConnectionRecord(nextId++, {} as PoolConnection, Date.now(), 0);
    records.add(rec);
    return rec;
  };
  const closed: Array<{ id: number; why: string }> = [];
  const hedges = new Hedges(cfg, new PathRtt(), counters, {
    canOpen: (extra) => records.size + opening < limit + extra,
    open: () => {
      opening++;
      note();
    },
    count: () => records.size,
  });
  const checkout: Checkout = new Checkout(new EventEmitter(), cfg, counters, {
    verdict: (rec) => (stale.has(rec) ? VALIDATE : LEND),
    validate: (rec) => new Promise<boolean>((resolve) => pings.set(rec, resolve)),
    lent: () => undefined,
    hedges,
    canOpen: () => records.size + opening < limit,
    opening: () => opening,
    open: () => {
      opening++;
      note();
    },
    destroy: (rec) => {
      records.delete(rec);
      closed.push({ id: rec.id, why: rec.dead ?? rec.retired ?? 'destroyed' });
      checkout.dispatch();
    },
    closed: () => false,
    state: () => ({ total: records.size, active: 0, idle: 0, waiting: 0, pending: opening }),
    recentCreateError: () => null,
  });
  return {
    counters,
    records,
    hedges,
    checkout,
    closed,
    maxCount: () => maxCount,
    opening: () => opening,
    /** A stale idle connection, as after an idle spell. */
    idleStale(): ConnectionRecord {
      const rec = newRec();
      stale.add(rec);
      checkout.offer(rec);
      return rec;
    },
    /** The next connection attempt lands. */
    land(): ConnectionRecord {
      assert.ok(opening > 0, 'an attempt is in progress');
      opening--;
      const rec = newRec();
      note();
      checkout.offer(rec);
      return rec;
    },
    answer(rec: ConnectionRecord, alive: boolean): void {
      const resolve = pings.get(rec);
      assert.ok(resolve, `a ping is outstanding on ${rec.id}`);
      pings.delete(rec);
      if (!alive) rec.dead = 'checkout-ping-timeout';
      else stale.delete(rec);
      resolve(alive);
    },
    /** A caller; resolves with the id of the connection it got. */
    caller(): Promise<number> {
      return new Promise((resolve, reject) =>
        checkout.acquire((err, conn) => {
          if (err) return reject(err);
          const rec = [...records].find((r) => r.conn === conn)!;
          resolve(rec.id);
        }, undefined),
      );
    },
  };
}

test('4 stale connections at connectionLimit 4, 4 callers: 4 hedges, each caller served by one, back to 4', async (t) => {
  mockTimers(t);
  const s = setup(4);
  const stale = [s.idleStale(), s.idleStale(), s.idleStale(), s.idleStale()];
  const callers = [s.caller(), s.caller(), s.caller(), s.caller()];
  await flush();
  assert.equal(s.counters.hedges, 0, 'nothing before the hedge delay');
  await hedgeDelayPasses(t);
  assert.equal(s.counters.hedges, 4, 'one hedge per outstanding ping');
  assert.equal(s.hedges.outstanding, 4);
  assert.equal(s.opening(), 4);
  for (let i = 0; i < 4; i++) s.land();
  const ids = await Promise.all(callers);
  assert.deepEqual(ids.sort(), [5, 6, 7, 8], 'every caller got a fresh connection');
  assert.equal(s.counters.hedgeWins, 4);
  for (const rec of stale) s.answer(rec, false);
  await flush();
  assert.equal(s.hedges.outstanding, 0);
  assert.equal(s.records.size, 4, 'back to connectionLimit');
  assert.ok(s.maxCount() <= 8, `never above limit + hedged pings: ${s.maxCount()}`);
});

test('a ping answered before the hedge delay: no hedge', async (t) => {
  mockTimers(t);
  const s = setup(1);
  const rec = s.idleStale();
  const caller = s.caller();
  await flush();
  s.answer(rec, true);
  await flush();
  assert.equal(await caller, rec.id);
  await hedgeDelayPasses(t);
  assert.equal(s.counters.hedges, 0);
  assert.equal(s.opening(), 0);
});

test('the hedge wins, the ping answers late at connectionLimit: the late connection is the surplus and goes', async (t) => {
  mockTimers(t);
  const s = setup(1);
  const rec = s.idleStale();
  const caller = s.caller();
  await flush();
  await hedgeDelayPasses(t);
  assert.equal(s.counters.hedges, 1);
  const fresh = s.land();
  assert.equal(await caller, fresh.id);
  assert.equal(s.records.size, 2, 'limit + 1 while the hedged ping is outstanding');
  s.answer(rec, true);
  await flush();
  assert.deepEqual(s.closed, [{ id: rec.id, why: 'hedge-surplus' }]);
  assert.equal(s.counters.hedgeSurplus, 1);
  assert.equal(s.records.size, 1);
});

test('the ping answers before the hedge lands: the caller keeps its connection, the hedge is the surplus', async (t) => {
  mockTimers(t);
  const s = setup(1);
  const rec = s.idleStale();
  const caller = s.caller();
  await flush();
  await hedgeDelayPasses(t);
  assert.equal(s.counters.hedges, 1);
  s.answer(rec, true);
  await flush();
  assert.equal(await caller, rec.id, 'whichever is ready first: the pinged one');
  const late = s.land();
  assert.deepEqual(s.closed, [{ id: late.id, why: 'hedge-surplus' }]);
  assert.equal(s.records.size, 1);
  assert.equal(s.counters.hedgeWins, 0);
});

test('with room below connectionLimit the late answer goes back to the idle stack', async (t) => {
  mockTimers(t);
  const s = setup(3);
  const rec = s.idleStale();
  const caller = s.caller();
  await flush();
  await hedgeDelayPasses(t);
  const fresh = s.land();
  assert.equal(await caller, fresh.id);
  s.answer(rec, true);
  await flush();
  assert.deepEqual(s.closed, []);
  assert.ok(s.checkout.idle().includes(rec), 'idle again');
});

test('hedgeCheckout false: no hedge, the caller waits for the verdict', async (t) => {
  mockTimers(t);
  const s = setup(1, { hedgeCheckout: false });
  const rec = s.idleStale();
  const caller = s.caller();
  await flush();
  await hedgeDelayPasses(t);
  assert.equal(s.counters.hedges, 0);
  assert.equal(s.hedges.delay(), null);
  s.answer(rec, true);
  assert.equal(await caller, rec.id);
});
