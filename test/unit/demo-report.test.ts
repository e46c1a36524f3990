/**
 * The demo's table and conclusion (scripts/lib/report.ts) from hand-made scenario results: the
 * conclusion must never claim what the run did not show.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cells,
  conclusion,
  table,
  type Client,
  type Mode,
  type Row,
} from '../../scripts/lib/report.js';
import type { QueryOutcome, ScenarioResult } from '../support/scenarios/idle-then-query.js';

const MYSQL2: Client = { id: 'mysql2', label: 'mysql2 createPool', module: 'mysql2', options: {} };
const POOL: Client = {
  id: 'pool',
  label: 'this pool, defaults',
  module: 'src/index.ts',
  options: {},
};
const KEEPALIVE: Client = {
  id: 'pool-keepalive',
  label: 'this pool, keepalive 1s',
  module: 'src/index.ts',
  options: { keepAliveInitialDelay: 1000 },
};

function outcome(over: Partial<QueryOutcome>): QueryOutcome {
  return {
    ok: true,
    ms: 3,
    errorCode: null,
    hung: false,
    errno: null,
    fatal: null,
    errorMessage: null,
    cid: 10,
    reused: true,
    ...over,
  };
}

function result(results: QueryOutcome[], stats?: unknown): ScenarioResult {
  return {
    module: 'x',
    kind: 'pool',
    options: {},
    concurrency: results.length,
    idleSec: 6,
    tickMs: 0,
    capMs: 5000,
    warmup: { cids: [1, 2], ms: 5 },
    ticks: { rounds: 0, failures: [] },
    results,
    connectionErrors: [],
    finalMode: 'concurrent',
    timings: { warmupMs: 5, idleMs: 6000, finalMs: 10, totalMs: 6100 },
    ...(stats === undefined ? {} : { stats }),
  };
}

const hung = outcome({ ok: false, ms: 5000, hung: true, cid: null, reused: null });
const reset = outcome({ ok: false, ms: 2, errorCode: 'ECONNRESET', cid: null, reused: null });
const fresh = (cid: number, ms: number): QueryOutcome => outcome({ cid, ms, reused: false });
const deadStats = (key: string, n: number): unknown => ({ dead: { [key]: n, suspect: 0 } });

function expectedRows(): Row[] {
  const rows: Row[] = [];
  for (const mode of ['drop', 'rst'] as Mode[]) {
    rows.push({
      mode,
      client: MYSQL2,
      res: result(mode === 'drop' ? [hung, hung] : [reset, reset]),
    });
    rows.push({
      mode,
      client: POOL,
      res: result(
        [fresh(21, mode === 'drop' ? 1010 : 30), fresh(22, mode === 'drop' ? 1012 : 31)],
        deadStats(mode === 'drop' ? 'checkout-ping-timeout' : 'checkout-ping-error', 2),
      ),
    });
    rows.push({ mode, client: KEEPALIVE, res: result([outcome({ cid: 1 }), outcome({ cid: 2 })]) });
  }
  return rows;
}

test('cells: hung, reset and validated outcomes read as the demo prints them', () => {
  const [plainDrop, poolDrop, kaDrop, plainRst] = expectedRows();
  assert.deepEqual(cells(plainDrop!), {
    mode: 'drop',
    client: 'mysql2 createPool',
    verdict: 'FAIL',
    got: '2 × hung (no answer in 5 s)',
    latency: '> 5000 ms',
    connections: 'stale, handed out unchecked',
  });
  assert.equal(cells(plainRst!).got, '2 × error ECONNRESET');
  assert.equal(cells(plainRst!).latency, '2 ms');
  assert.deepEqual(
    [cells(poolDrop!).verdict, cells(poolDrop!).latency, cells(poolDrop!).connections],
    ['PASS', '1010–1012 ms', 'new; 2 stale caught by ping'],
  );
  assert.equal(cells(kaDrop!).connections, 'warm-up ones, kept alive');
});

test('table: one aligned line per row, a blank line between the modes', () => {
  const lines = table(expectedRows()).split('\n');
  assert.equal(lines.length, 2 + 3 + 1 + 3);
  assert.equal(lines[5], '');
  const resultCol = lines[0]!.indexOf('result');
  for (const l of lines.slice(2).filter(Boolean)) {
    assert.match(l.slice(resultCol, resultCol + 4), /^(PASS|FAIL)$/, l);
  }
});

test('conclusion: explains the expected outcome with the measured latencies', () => {
  const text = conclusion(expectedRows(), true, 3);
  assert.doesNotMatch(text, /Unexpected/);
  assert.match(text, /1010–1012 ms in drop mode/);
  assert.match(text, /30–31 ms in rst mode/);
  assert.match(text, /"this pool, keepalive 1s": 3 ms/);
  const standIn = conclusion(
    expectedRows().filter((r) => r.client.id !== 'pool-keepalive'),
    false,
    3,
  );
  assert.match(standIn, /cannot show keepalive/);
});

test('conclusion: says so plainly when mysql2 did not fail or this pool did', () => {
  const rows = expectedRows();
  rows[0] = { ...rows[0]!, res: result([outcome({}), outcome({})]) };
  rows[4] = { ...rows[4]!, res: result([reset, outcome({})]) };
  const text = conclusion(rows, true, 3);
  assert.match(text, /^Unexpected result: /);
  assert.match(text, /plain mysql2 got answers in drop mode/);
  assert.match(text, /this pool, defaults failed in rst mode/);
  assert.doesNotMatch(text, /This pool pings/);
});
