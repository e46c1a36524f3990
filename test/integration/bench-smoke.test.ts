/**
 * `npm run bench -- --smoke` end to end, so the bench never rots: every section runs with tiny
 * sizes and the results file has the full shape. Timings are never asserted (CI machines are
 * noisy; bench/README.md has the real figures).
 *
 * The recovery section needs the kernel rig (root, iptables, netns). Where it is unavailable the
 * bench reports why; under CI=true that makes this test fail, as the other kernel tests do.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { BenchResult } from '../../bench/bench.js';
import type { MemoryResult } from '../../bench/memory-child.js';
import { REPO_ROOT } from '../support/rig.js';

const ci = (process.env.CI ?? '').toLowerCase();
const inCI = ci !== '' && ci !== '0' && ci !== 'false';
const PEERS = ['keepalive', 'mysql2', 'mariadb'];

function isNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function assertSpread(v: unknown, what: string): void {
  const s = v as { median: unknown; min: unknown; max: unknown; values: unknown };
  assert.ok(isNumber(s?.median), `${what}.median`);
  assert.ok(isNumber(s.min) && isNumber(s.max), `${what}.min/max`);
  assert.ok(Array.isArray(s.values) && s.values.length >= 1, `${what}.values`);
  assert.ok((s.values as unknown[]).every(isNumber), `${what}.values are numbers`);
}

function assertLatency(v: unknown, what: string): void {
  const l = v as { samples: unknown; p50Us: unknown; p99Us: unknown; maxUs: unknown };
  assert.ok(isNumber(l?.samples) && l.samples > 0, `${what}.samples`);
  for (const k of ['p50Us', 'p99Us', 'maxUs'] as const) assert.ok(isNumber(l[k]), `${what}.${k}`);
}

function assertSnapshot(v: unknown, what: string): void {
  const m = v as { heapUsed: unknown; rss: unknown; external: unknown };
  for (const k of ['heapUsed', 'rss', 'external'] as const)
    assert.ok(isNumber(m?.[k]), `${what}.${k}`);
}

test('npm run bench -- --smoke writes a complete results file', { timeout: 180_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
  const out = path.join(dir, 'smoke.json');
  try {
    const res = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'bench/bench.ts', '--smoke', '--out', out],
      { cwd: REPO_ROOT, encoding: 'utf8', timeout: 170_000 },
    );
    assert.equal(res.error, undefined, `the bench did not finish: ${String(res.error)}`);
    assert.equal(res.status, 0, `bench failed:\n${res.stdout}\n${res.stderr}`);
    assert.match(res.stdout, /results: /, 'it prints where the results went');
    const r = JSON.parse(fs.readFileSync(out, 'utf8')) as BenchResult;

    assert.equal(r.schema, 1);
    assert.equal(r.smoke, true);
    assert.ok(isNumber(r.durationMs));
    assert.ok(!Number.isNaN(Date.parse(r.startedAt)));
    const e = r.environment;
    assert.match(e.node, /^v\d+/);
    assert.ok(isNumber(e.cpus) && e.cpus > 0);
    assert.equal(typeof e.cpuModel, 'string');
    assert.ok(e.server.length > 0, 'server version');
    for (const k of ['mysql2', 'mariadb', 'generic-pool', 'mysql2-keepalive-pool']) {
      assert.equal(typeof e.versions[k], 'string', `versions.${k}`);
    }
    assert.equal(e.loadavgStart.length, 3);
    assert.ok(!JSON.stringify(r).includes('"password"'), 'no password field in the results');

    // throughput: 2 APIs × 2 methods × 3 concurrencies; this pool from CommonJS and ESM, mysql2,
    // and mariadb in the callback cells; ratios to mysql2 of the same API for the others.
    assert.ok(Array.isArray(r.throughput));
    const cells = r.throughput!;
    assert.deepEqual(
      cells.map((c) => `${c.api}/${c.method}/${c.concurrency}`),
      ['callback', 'promise'].flatMap((a) =>
        ['query', 'execute'].flatMap((m) => [8, 32, 128].map((n) => `${a}/${m}/${n}`)),
      ),
    );
    for (const c of cells) {
      const variants = ['keepalive', 'keepalive-esm', 'mysql2'];
      if (c.api === 'callback') variants.push('mariadb');
      else assert.equal(c.qps.mariadb, undefined, 'mariadb runs in the callback cells only');
      const where = `${c.api}/${c.method}/${c.concurrency}`;
      for (const p of variants) {
        assertSpread(c.qps[p as 'mysql2'], `${where} qps.${p}`);
        assertSpread(c.cpuUsPerQuery[p as 'mysql2'], `${where} cpuUsPerQuery.${p}`);
        assertSpread(c.gcUsPerQuery[p as 'mysql2'], `${where} gcUsPerQuery.${p}`);
        if (p === 'mysql2') continue;
        assertSpread(c.ratioToMysql2[p as 'mariadb'], `${where} ratioToMysql2.${p}`);
        assertSpread(c.cpuRatioToMysql2[p as 'mariadb'], `${where} cpuRatioToMysql2.${p}`);
      }
      assert.equal(c.ratioToMysql2.mysql2, undefined);
    }

    // checkout latency, hot and validating, every peer.
    assert.ok(r.checkout);
    for (const p of PEERS) {
      assertLatency(r.checkout!.hot[p as 'mysql2'], `checkout.hot.${p}`);
      assertLatency(r.checkout!.validating[p as 'mysql2'], `checkout.validating.${p}`);
    }
    assert.ok(isNumber(r.checkout!.validating.windowMs));
    assert.ok(isNumber(r.checkout!.validating.gapMs));

    // memory, one fresh process per peer.
    assert.ok(r.memory);
    for (const p of PEERS) {
      const m: MemoryResult = r.memory![p as 'mysql2']!;
      assert.equal(m.peer, p);
      assert.ok(isNumber(m.queries) && m.queries > 0);
      assert.ok(isNumber(m.idleConnections) && m.idleConnections >= 2);
      for (const k of [
        'baseline',
        'poolWithOneConnection',
        'perIdleConnection',
        'afterQueries',
        'retainedByQueries',
      ] as const) {
        assertSnapshot(m[k], `memory.${p}.${k}`);
      }
    }

    // instructions under callgrind: every workload of the settings, this pool (CommonJS and
    // ESM) and mysql2, with ratios to mysql2; and the hot checkout.
    const ins = r.instructions!;
    assert.ok(ins, 'instructions section');
    if (!ins.available) {
      assert.equal(typeof ins.reason, 'string');
      assert.ok(!inCI, `CI=true and valgrind is unavailable: ${ins.reason}`);
      process.stderr.write(`\n*** bench smoke: instructions not counted: ${ins.reason}\n`);
    } else {
      assert.match(ins.valgrind ?? '', /valgrind/);
      assert.ok(ins.nodeFlags.includes('--single-threaded'));
      const st = ins.settings;
      assert.deepEqual(
        ins.cells.map((c) => `${c.api}/${c.method}/${c.concurrency}`),
        st.apis.flatMap((a) =>
          st.methods.flatMap((m) => st.concurrency.map((n) => `${a}/${m}/${n}`)),
        ),
      );
      assert.ok(ins.checkout, 'hot checkout counted');
      assert.equal(ins.checkout!.method, 'checkout');
      for (const c of [...ins.cells, ins.checkout!]) {
        const where = `instructions ${c.api}/${c.method}/${c.concurrency}`;
        for (const p of ['keepalive', 'keepalive-esm', 'mysql2']) {
          const per = c.perCommand[p as 'mysql2'];
          assertSpread(per, `${where} perCommand.${p}`);
          assert.equal(per!.values.length, st.repeats, `${where}: one value per repeat`);
          assert.ok(per!.min > 0, `${where}: ${p} executed instructions`);
          assertSpread(c.segments[p as 'mysql2'], `${where} segments.${p}`);
          assert.equal(c.segments[p as 'mysql2']!.values.length, st.repeats * st.segments);
          if (p === 'mysql2') continue;
          assertSpread(c.ratioToMysql2[p as 'keepalive'], `${where} ratioToMysql2.${p}`);
          assertSpread(c.diffToMysql2[p as 'keepalive'], `${where} diffToMysql2.${p}`);
        }
        assert.equal(c.ratioToMysql2.mysql2, undefined);
      }
    }

    // recovery through the kernel rig.
    const rec = r.recovery!;
    assert.ok(rec, 'recovery section');
    assert.ok(isNumber(rec.validationTimeoutMs));
    if (!rec.available) {
      assert.equal(typeof rec.reason, 'string');
      assert.ok(!inCI, `CI=true and the conntrack rig is unavailable: ${rec.reason}`);
      process.stderr.write(`\n*** bench smoke: recovery not run: ${rec.reason}\n`);
      return;
    }
    assert.equal(
      rec.runs.length,
      2 * (PEERS.length + 1),
      'drop and rst for every peer, and for this pool with hedging off',
    );
    assert.deepEqual(
      [...new Set(rec.runs.map((run) => run.variant))].sort(),
      [...PEERS, 'keepalive-no-hedge'].sort(),
    );
    for (const run of rec.runs) {
      assert.ok(['drop', 'rst'].includes(run.mode));
      assert.ok(PEERS.includes(run.peer));
      if (run.peer === 'keepalive') {
        assert.ok(isNumber(run.hedges), 'this pool reports its hedges');
        if (run.variant === 'keepalive-no-hedge') assert.equal(run.hedgeDelayMs, null);
        else assert.ok(isNumber(run.hedgeDelayMs));
      } else {
        assert.equal(run.hedges, null);
      }
      assert.ok(['recovered', 'error', 'timed-out'].includes(run.outcome), run.outcome);
      assert.ok(isNumber(run.maxMs) && isNumber(run.minMs));
      assert.ok(isNumber(run.conntrackAtWarm) && isNumber(run.conntrackBeforeQuery));
      assert.equal(run.results.length, rec.settings.concurrency);
      for (const q of run.results) {
        assert.equal(typeof q.ok, 'boolean');
        assert.equal(typeof q.hung, 'boolean');
        assert.ok(isNumber(q.ms));
      }
    }
    // The learning run: drop and rst, learning on and off, deaths per idle spell.
    assert.equal(rec.learning.length, 4);
    for (const l of rec.learning) {
      assert.ok(['drop', 'rst'].includes(l.mode));
      assert.equal(typeof l.learnPathTimeout, 'boolean');
      assert.equal(l.deathsPerSpell.length, rec.settings.learningSpells);
      assert.equal(l.slowestMsPerSpell.length, rec.settings.learningSpells);
      for (const d of l.deathsPerSpell) assert.ok(isNumber(d));
      assert.ok(l.boundMs === null || isNumber(l.boundMs));
      if (!l.learnPathTimeout) assert.equal(l.boundMs, null);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
