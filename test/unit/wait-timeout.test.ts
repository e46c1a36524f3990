/**
 * The server's wait_timeout is read lazily, once per pool (health-monitor.ts): never on a fresh
 * connection before the caller's first command, only on a connection idle for
 * WAIT_TIMEOUT_READ_IDLE_MS, reserved like an idle ping, and it then bounds every connection's
 * idle pings. Stub connections and mock timers (Date included): the logic, not the server.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import type { PoolConnection } from 'mysql2';
import { resolveConfig } from '../../src/config.js';
import { ConnectionRecord } from '../../src/health.js';
import { HealthMonitor, VALIDATE, WAIT_TIMEOUT_READ_IDLE_MS } from '../../src/health-monitor.js';
import { Counters } from '../../src/stats.js';

type ResultCb = (err: unknown, rows?: unknown) => void;

/** A connection that records the commands it is given and the pings it is asked for; the test
 * answers them. */
class StubConn extends EventEmitter {
  readonly config = {};
  readonly queries: Array<{ sql: string; answer: ResultCb }> = [];
  readonly pings: Array<(err: Error | null) => void> = [];
  threadId = 1;
  static createQuery(
    sql: string,
    _values: unknown,
    answer: ResultCb,
  ): { sql: string; answer: ResultCb } {
    return { sql, answer };
  }
  addCommand(cmd: { sql: string; answer: ResultCb }): void {
    this.queries.push(cmd);
  }
  ping(cb: (err: Error | null) => void): void {
    this.pings.push(cb);
  }
}

interface Rig {
  monitor: HealthMonitor;
  add(): { rec: ConnectionRecord; conn: StubConn };
  evicted: ConnectionRecord[];
}

function rig(t: TestContext, options: Record<string, unknown> = {}): Rig {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 });
  const cfg = resolveConfig(
    { host: '127.0.0.1', idlePingInterval: 60_000, validationTimeout: 1000, ...options },
    {},
  );
  const records = new Map<PoolConnection, ConnectionRecord>();
  const evicted: ConnectionRecord[] = [];
  const monitor = new HealthMonitor(new EventEmitter(), cfg, new Counters(), {
    records,
    idle: () => [...records.values()].filter((r) => !r.borrowed),
    evictOutOfService: () => {
      for (const rec of records.values()) {
        if (rec.outOfService && !rec.borrowed) {
          records.delete(rec.conn);
          rec.dispose();
          evicted.push(rec);
        }
      }
    },
    dispatch: () => undefined,
    ensureMinimum: () => undefined,
    count: () => records.size,
    opening: () => 0,
    closed: () => false,
  });
  t.after(() => {
    monitor.stop();
    for (const rec of records.values()) rec.dispose();
  });
  let id = 1;
  return {
    monitor,
    evicted,
    add() {
      const conn = new StubConn();
      const rec = new ConnectionRecord(id++, conn as unknown as PoolConnection, Date.now(), 0);
      records.set(rec.conn, rec);
      monitor.watch(rec);
      return { rec, conn };
    },
  };
}

const READ = 'SELECT @@wait_timeout AS w';
/** Lets the promise callbacks of an answered read run. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

test('a fresh connection sends nothing; once idle for the read window, one SELECT @@wait_timeout', (t) => {
  const { add } = rig(t);
  const { conn } = add();
  t.mock.timers.tick(WAIT_TIMEOUT_READ_IDLE_MS - 1);
  assert.equal(conn.queries.length, 0, 'nothing before the window is over');
  t.mock.timers.tick(1);
  assert.deepEqual(
    conn.queries.map((q) => q.sql),
    [READ],
  );
  assert.equal(conn.pings.length, 0);
});

test('a connection in use never reads; it reads once it has idled for the window after its release', (t) => {
  const { add } = rig(t);
  const { rec, conn } = add();
  rec.borrowed = true;
  t.mock.timers.tick(10 * WAIT_TIMEOUT_READ_IDLE_MS);
  assert.equal(conn.queries.length, 0, 'never while a caller holds it');
  rec.borrowed = false;
  rec.lastAliveAt = rec.lastReleasedAt = Date.now();
  t.mock.timers.tick(WAIT_TIMEOUT_READ_IDLE_MS - 1);
  assert.equal(conn.queries.length, 0, 'not within the window after its release');
  t.mock.timers.tick(1);
  assert.equal(conn.queries.length, 1);
});

test('the read is reserved like a ping: a borrower waits for its verdict', async (t) => {
  const { monitor, add } = rig(t);
  const { rec, conn } = add();
  t.mock.timers.tick(WAIT_TIMEOUT_READ_IDLE_MS);
  assert.equal(conn.queries.length, 1);
  assert.equal(monitor.checkoutVerdict(rec, Date.now()), VALIDATE);
  let verdict: boolean | undefined;
  void monitor.validate(rec).then((alive) => (verdict = alive));
  await settle();
  assert.equal(verdict, undefined, 'the borrower waits while the read runs');
  assert.equal(conn.pings.length, 0, 'no ping races the read');
  conn.queries[0]!.answer(null, [{ w: 28_800 }]);
  await settle();
  assert.equal(verdict, true);
  assert.equal(monitor.serverWaitTimeoutMs, 28_800_000);
});

test('once per pool: the answer bounds every connection’s idle pings, and nobody asks again', async (t) => {
  const { monitor, add } = rig(t, { idlePingInterval: 60_000 });
  const a = add();
  const b = add();
  t.mock.timers.tick(WAIT_TIMEOUT_READ_IDLE_MS);
  assert.equal(a.conn.queries.length + b.conn.queries.length, 1, 'one read for the pool');
  const reader = a.conn.queries.length === 1 ? a : b;
  reader.conn.queries[0]!.answer(null, [{ w: 10 }]); // wait_timeout 10 s
  await settle();
  assert.equal(monitor.serverWaitTimeoutMs, 10_000);
  const c = add();
  // Pings every 80 % of 10 s (jittered down by up to 10 %), not every 60 s: within 8 s each of
  // the three connections has pinged.
  t.mock.timers.tick(8_000);
  for (const { conn } of [a, b, c]) {
    assert.equal(conn.pings.length, 1, 'pinged below wait_timeout');
    conn.pings[0]!(null);
  }
  await settle();
  t.mock.timers.tick(60_000);
  assert.equal(
    a.conn.queries.length + b.conn.queries.length + c.conn.queries.length,
    1,
    'never read again',
  );
});

test('a read that is not answered in time: that connection is dead, and the next idle one asks', async (t) => {
  const { monitor, add, evicted } = rig(t);
  const a = add();
  t.mock.timers.tick(WAIT_TIMEOUT_READ_IDLE_MS);
  assert.equal(a.conn.queries.length, 1);
  t.mock.timers.tick(1000); // validationTimeout
  await settle();
  assert.deepEqual(evicted, [a.rec]);
  assert.equal(a.rec.dead, 'idle-ping-timeout');
  assert.equal(monitor.serverWaitTimeoutMs, 0);
  const b = add();
  t.mock.timers.tick(WAIT_TIMEOUT_READ_IDLE_MS);
  assert.deepEqual(
    b.conn.queries.map((q) => q.sql),
    [READ],
    'asked again on another connection',
  );
});

test('a read answered with an error (a protocol-only server) is not repeated; pings keep idlePingInterval', async (t) => {
  const { monitor, add } = rig(t, { idlePingInterval: 5_000 });
  const a = add();
  const b = add();
  t.mock.timers.tick(WAIT_TIMEOUT_READ_IDLE_MS);
  const reader = a.conn.queries.length === 1 ? a : b;
  const other = reader === a ? b : a;
  reader.conn.queries[0]!.answer(Object.assign(new Error('no such variable'), { errno: 1193 }));
  await settle();
  assert.equal(reader.rec.dead, null, 'an answered error leaves the connection alive');
  // Its next ping is due 90–100 % of idlePingInterval after it was last alive (at 0).
  t.mock.timers.tick(3_999);
  assert.equal(other.conn.pings.length, 0, 'no ping before 90 % of idlePingInterval');
  t.mock.timers.tick(501);
  assert.equal(other.conn.pings.length, 1);
  assert.equal(a.conn.queries.length + b.conn.queries.length, 1, 'never read again');
  assert.equal(monitor.serverWaitTimeoutMs, 0);
});

test('idle pings off: wait_timeout is never read', (t) => {
  const { add } = rig(t, { idlePingInterval: 0 });
  const { conn } = add();
  t.mock.timers.tick(60_000);
  assert.equal(conn.queries.length, 0);
  assert.equal(conn.pings.length, 0);
});
