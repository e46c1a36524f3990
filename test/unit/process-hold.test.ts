/**
 * process-hold.ts: holding is immediate, letting go applies at the end of the event-loop turn,
 * and a connection held again within the turn makes no ref/unref call at all.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectionRecord } from '../../src/health.js';
import { hold, letGo } from '../../src/process-hold.js';

function record(): { rec: ConnectionRecord; calls: string[] } {
  const calls: string[] = [];
  const stream = { ref: () => calls.push('ref'), unref: () => calls.push('unref') };
  const conn = { stream } as never;
  return { rec: new ConnectionRecord(1, conn, Date.now(), 0), calls };
}
const endOfTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

test('a new connection is let go at the end of the turn, held again at once', async () => {
  const { rec, calls } = record();
  letGo(rec);
  assert.deepEqual(calls, [], 'not yet: the turn is not over');
  await endOfTurn();
  assert.deepEqual(calls, ['unref']);
  hold(rec);
  assert.deepEqual(calls, ['unref', 'ref'], 'holding takes effect at once');
  hold(rec);
  assert.deepEqual(calls, ['unref', 'ref'], 'and only once');
});

test('released and borrowed again within one turn: no ref/unref call', async () => {
  const { rec, calls } = record();
  hold(rec);
  for (let i = 0; i < 100; i++) {
    letGo(rec);
    hold(rec);
  }
  await endOfTurn();
  assert.deepEqual(calls, []);
  letGo(rec);
  await endOfTurn();
  assert.deepEqual(calls, ['unref'], 'let go for good: unref once');
});
