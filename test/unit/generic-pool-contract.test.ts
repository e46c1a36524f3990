/**
 * The generic-pool 3.9.0 internals src/pool.ts relies on. If an upgrade changes any of them,
 * this file fails before a user notices.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as genericPool from 'generic-pool';

const gp = genericPool as unknown as {
  Pool: new (...args: unknown[]) => any;
  PriorityQueue: new (n: number) => any;
  Deque: unknown;
  DefaultEvictor: unknown;
};

test('generic-pool exports the classes the pool composes', () => {
  assert.equal(typeof gp.Pool, 'function');
  assert.equal(typeof gp.PriorityQueue, 'function');
  assert.equal(typeof gp.Deque, 'function');
});

function makePool(factory: Record<string, unknown>, opts: Record<string, unknown> = {}) {
  let lastRequest: any;
  const queue = new gp.PriorityQueue(1);
  const enqueue = queue.enqueue.bind(queue);
  queue.enqueue = (req: unknown, p?: number) => {
    lastRequest = req;
    enqueue(req, p);
  };
  const evicted: unknown[] = [];
  class Evictor {
    evict(_c: unknown, pooled: { obj: { dead?: boolean } }) {
      if (pooled.obj.dead) evicted.push(pooled.obj);
      return Boolean(pooled.obj.dead);
    }
  }
  const pool = new gp.Pool(
    Evictor,
    gp.Deque,
    function () {
      return queue;
    },
    factory,
    { max: 1, testOnBorrow: true, evictionRunIntervalMillis: 0, autostart: false, ...opts },
  );
  return { pool, lastRequest: () => lastRequest, evicted };
}

test('a request rejected with a TimeoutError-named error leaves the queue', async () => {
  let created = 0;
  const { pool, lastRequest } = makePool({
    create: async () => ({ id: ++created }),
    destroy: async () => {},
    validate: async () => true,
  });
  const first = await pool.acquire();
  const second = pool.acquire();
  const req = lastRequest();
  assert.equal(pool.pending, 1);
  const err = Object.assign(new Error('withdrawn'), { name: 'TimeoutError' });
  req.reject(err);
  await assert.rejects(second, /withdrawn/);
  assert.equal(pool.pending, 0, 'the withdrawn request no longer counts as waiting');
  await pool.release(first);
  const third = await pool.acquire();
  assert.equal(third, first, 'the released resource was not swallowed by the withdrawn request');
  await pool.release(third);
});

test('_evict asks the evictor about every idle resource and destroys what it names', async () => {
  const destroyed: unknown[] = [];
  const { pool, evicted } = makePool(
    {
      create: async () => ({ dead: false }),
      destroy: async (r: unknown) => void destroyed.push(r),
      validate: async () => true,
    },
    { max: 3, numTestsPerEvictionRun: 3 },
  );
  const rs = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
  for (const r of rs) await pool.release(r);
  rs[1].dead = true;
  assert.equal(pool.available, 3);
  pool._evict();
  assert.deepEqual(evicted, [rs[1]]);
  assert.equal(pool.available, 2);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(destroyed, [rs[1]]);
});

test('the private members the pool reads exist', () => {
  const { pool } = makePool({
    create: async () => ({}),
    destroy: async () => {},
    validate: async () => true,
  });
  assert.equal(typeof pool._evict, 'function');
  assert.equal(typeof pool._ensureMinimum, 'function');
  assert.ok(pool._factoryCreateOperations instanceof Set);
  assert.equal(pool._draining, false);
  assert.equal(typeof pool.spareResourceCapacity, 'number');
  // The hot path lends and returns idle resources itself (src/pool.ts #lendIdle, #giveBack).
  assert.equal(typeof pool._availableObjects.shift, 'function');
  assert.ok('head' in pool._availableObjects);
  assert.ok(pool._resourceLoans instanceof Map);
  assert.equal(typeof pool._addPooledResourceToAvailableObjects, 'function');
  assert.equal(typeof pool._dispense, 'function');
  assert.equal(typeof pool._createResource, 'function');
});

test('a validate that says false destroys the resource and serves the waiter with a new one', async () => {
  let n = 0;
  let failFirst = false;
  const destroyed: number[] = [];
  const { pool } = makePool({
    create: async () => ({ id: ++n }),
    destroy: async (r: { id: number }) => void destroyed.push(r.id),
    // generic-pool validates fresh resources too: only fail id 1 once it has been used.
    validate: async (r: { id: number }) => !(failFirst && r.id === 1),
  });
  const a = await pool.acquire();
  assert.equal(a.id, 1);
  await pool.release(a);
  failFirst = true;
  const b = await pool.acquire();
  assert.equal(b.id, 2);
  assert.deepEqual(destroyed, [1]);
  await pool.release(b);
});
