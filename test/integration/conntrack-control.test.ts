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
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runInNs } from '../support/ns-run.js';
import {
  RIG_CAP_MS as CAP_MS,
  RIG_IDLE_FOR_SEC as IDLE_FOR_SEC,
  RUN_TIMEOUT_MS,
  SCENARIO,
  rigHarness,
  rigSkip,
  runScenario,
  summary,
} from '../support/rig-harness.js';
import type { ScenarioResult } from '../support/scenarios/idle-then-query.js';

const CONCURRENCY = 4;

// Under CI never skip: createRig() then throws with the reason and every test fails.
const skip = rigSkip('conntrack-control');
const { withRig } = rigHarness();

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
