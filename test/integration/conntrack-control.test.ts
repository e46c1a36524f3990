/**
 * Control for the conntrack rig (test/support/RIG.md): plain mysql2 createPool through a
 * kernel-conntrack "IPVS" that forgets flows idle longer than IDLE_SEC.
 *
 *  - drop mode: after an idle period > timeout, every query on a pooled connection hangs.
 *  - rst mode:  the same queries fail fast with ECONNRESET.
 *  - positive control: activity every 1 s keeps every pooled connection working.
 *  - keepalive: a mysql2 connection with enableKeepAlive/keepAliveInitialDelay 1000 survives the
 *    idle period, because keepalive probes refresh conntrack (the fact the library relies on).
 *
 * Needs root + iptables + netns. If the rig is unavailable this file FAILS under CI and is skipped
 * (loudly) elsewhere.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRig, rigAvailable, type Rig, type RigMode } from '../support/rig.js';
import { runInNs } from '../support/ns-run.js';
import type { ScenarioResult } from '../support/scenarios/idle-then-query.js';

const IDLE_SEC = 3; // conntrack established timeout in the client namespace
const IDLE_FOR_SEC = IDLE_SEC + 3; // how long the pool sits idle
const CAP_MS = 6000; // a query not answered within this is "hung"
const CONCURRENCY = 4;
const SCENARIO = 'test/support/scenarios/idle-then-query.ts';
const RUN_TIMEOUT_MS = IDLE_FOR_SEC * 1000 + 2 * CAP_MS + 20_000;

const ci = (process.env.CI ?? '').toLowerCase();
const inCI = ci !== '' && ci !== '0' && ci !== 'false';
const avail = rigAvailable();
if (!avail.ok) {
  process.stderr.write(
    `\n*** conntrack rig unavailable: ${avail.reason}\n*** ${inCI ? 'CI=true: conntrack-control tests will FAIL' : 'not CI: skipping conntrack-control tests'}\n\n`,
  );
}
// Under CI never skip: createRig() then throws with the reason and every test fails.
const skip = !avail.ok && !inCI ? `conntrack rig unavailable: ${avail.reason}` : false;

const rigs = new Set<Rig>();
after(async () => {
  await Promise.all([...rigs].map((r) => r.close()));
});

async function withRig<T>(mode: RigMode, fn: (rig: Rig) => Promise<T>): Promise<T> {
  const rig = await createRig({ mode, idleTimeoutSec: IDLE_SEC });
  rigs.add(rig);
  try {
    return await fn(rig);
  } finally {
    await rig.close();
    rigs.delete(rig);
  }
}

interface Observed {
  atWarm: number | null;
  atIdleDone: number | null;
}

/** Run the scenario in the rig's client ns; record conntrack entries right after warm-up and idle. */
async function runScenario(
  rig: Rig,
  extra: string[],
): Promise<{ res: ScenarioResult; ct: Observed }> {
  const ct: Observed = { atWarm: null, atIdleDone: null };
  const { result } = await runInNs<ScenarioResult>(
    rig.clientNs,
    SCENARIO,
    [
      '--module',
      'mysql2',
      '--host',
      rig.host,
      '--port',
      String(rig.port),
      '--idle-sec',
      String(IDLE_FOR_SEC),
      '--cap-ms',
      String(CAP_MS),
      '--await-go',
      ...extra,
    ],
    {
      timeoutMs: RUN_TIMEOUT_MS,
      onEvent: async (evt, reply) => {
        if (evt.event === 'warm') ct.atWarm = await rig.conntrackEntries();
        if (evt.event === 'idle-done') {
          ct.atIdleDone = await rig.conntrackEntries();
          reply('go');
        }
      },
    },
  );
  return { res: result, ct };
}

function summary(res: ScenarioResult, ct: Observed): string {
  return JSON.stringify({
    conntrack: ct,
    warmup: res.warmup,
    ticks: res.ticks,
    results: res.results.map((r) => ({
      ok: r.ok,
      ms: r.ms,
      errorCode: r.errorCode,
      hung: r.hung,
      fatal: r.fatal,
      reused: r.reused,
    })),
    timings: res.timings,
  });
}

describe('conntrack control: plain mysql2 through the rig', { skip, concurrency: true }, () => {
  test('drop mode: every query on an idle pooled connection hangs', async (t) => {
    await withRig('drop', async (rig) => {
      const { res, ct } = await runScenario(rig, ['--concurrency', String(CONCURRENCY)]);
      t.diagnostic(summary(res, ct));
      assert.equal(
        new Set(res.warmup.cids).size,
        CONCURRENCY,
        'warm-up used N distinct connections',
      );
      assert.equal(
        ct.atWarm,
        CONCURRENCY,
        'one conntrack entry per pooled connection after warm-up',
      );
      assert.equal(ct.atIdleDone, 0, 'conntrack forgot every flow after the idle period');
      assert.equal(res.results.length, CONCURRENCY);
      for (const r of res.results) {
        assert.equal(r.hung, true, `expected hung, got ${JSON.stringify(r)}`);
        assert.ok(r.ms >= CAP_MS - 50);
      }
    });
  });

  test('rst mode: every query on an idle pooled connection fails fast with ECONNRESET', async (t) => {
    await withRig('rst', async (rig) => {
      const { res, ct } = await runScenario(rig, ['--concurrency', String(CONCURRENCY)]);
      t.diagnostic(summary(res, ct));
      assert.equal(ct.atWarm, CONCURRENCY);
      assert.equal(ct.atIdleDone, 0);
      assert.equal(res.results.length, CONCURRENCY);
      for (const r of res.results) {
        assert.equal(r.ok, false, `expected failure, got ${JSON.stringify(r)}`);
        assert.equal(r.hung, false);
        // mysql2 3.x reports the socket error itself: code 'ECONNRESET', errno -104, fatal: true.
        assert.equal(r.errorCode, 'ECONNRESET', `unexpected error ${JSON.stringify(r)}`);
        assert.equal(r.fatal, true);
        assert.ok(r.ms < 1000, `RST should fail fast, took ${r.ms} ms`);
      }
    });
  });

  test('positive control: queries every 1 s keep every pooled connection alive', async (t) => {
    await withRig('drop', async (rig) => {
      const { res, ct } = await runScenario(rig, [
        '--concurrency',
        String(CONCURRENCY),
        '--tick-ms',
        '1000',
      ]);
      t.diagnostic(summary(res, ct));
      assert.equal(ct.atWarm, CONCURRENCY);
      assert.equal(ct.atIdleDone, CONCURRENCY, 'flows stayed in conntrack');
      assert.ok(
        res.ticks.rounds >= IDLE_FOR_SEC - 1,
        `expected ~${IDLE_FOR_SEC} activity rounds, got ${res.ticks.rounds}`,
      );
      assert.deepEqual(res.ticks.failures, []);
      for (const r of res.results) {
        assert.equal(r.ok, true, `expected success, got ${JSON.stringify(r)}`);
        assert.equal(r.reused, true, 'final queries ran on the warm-up connections (no reconnect)');
      }
    });
  });

  test('rig self-check: partition() black-holes a live connection (even in rst mode), heal() undoes it', async (t) => {
    await withRig('rst', async (rig) => {
      const args = ['--host', rig.host, '--port', String(rig.port), '--kind', 'connection'];
      const { result: cut } = await runInNs<ScenarioResult>(
        rig.clientNs,
        SCENARIO,
        [...args, '--idle-sec', '0', '--cap-ms', '2000', '--await-go'],
        {
          timeoutMs: RUN_TIMEOUT_MS,
          onEvent: async (evt, reply) => {
            if (evt.event === 'idle-done') {
              await rig.partition();
              reply('go');
            }
          },
        },
      );
      await rig.heal();
      const { result: healed } = await runInNs<ScenarioResult>(
        rig.clientNs,
        SCENARIO,
        [...args, '--cap-ms', '2000'],
        {
          timeoutMs: RUN_TIMEOUT_MS,
        },
      );
      t.diagnostic(JSON.stringify({ partitioned: cut.results, healed: healed.results }));
      assert.equal(cut.results[0]?.hung, true, 'query during partition hangs (no RST)');
      assert.equal(healed.results[0]?.ok, true, 'new connection works after heal');
    });
  });

  test('keepalive (1 s) keeps an idle mysql2 connection usable through the rig', async (t) => {
    await withRig('drop', async (rig) => {
      const { res, ct } = await runScenario(rig, [
        '--kind',
        'connection',
        '--keepalive-delay',
        '1000',
      ]);
      t.diagnostic(summary(res, ct));
      assert.equal(ct.atWarm, 1);
      assert.equal(ct.atIdleDone, 1, 'keepalive probes kept the conntrack entry');
      assert.deepEqual(res.connectionErrors, []);
      assert.equal(res.results.length, 1);
      const r = res.results[0]!;
      assert.equal(r.ok, true, `expected success, got ${JSON.stringify(r)}`);
      assert.equal(r.reused, true, 'same connection as warm-up');
    });
  });
});
