/**
 * A cluster DNS outage never freezes the process (kernel rig with `dns: 'blackhole'`: the client
 * namespace's resolver is routed into a device that swallows every packet; the database is
 * reached by IP, as with the `MYSQL_SERVICE_HOST` address Kubernetes injects).
 *
 * net-keepalive's ffi-rs used to pick its binary with `process.report.getReport()`, which does a
 * blocking reverse DNS lookup for both ends of every open socket: here, seconds per socket, and
 * 80 s for four connections with glibc's default resolver timeouts. Opening connections,
 * validating them, pinging them and failing over must never stall the event loop by more than
 * 50 ms, and no diagnostic report may be built at all. The control shows the namespace really
 * turns one report into a stall of seconds.
 *
 * Needs root + iptables + netns + /dev/net/tun: FAILS under CI when the rig is unavailable,
 * skipped loudly elsewhere.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runInNs } from '../support/ns-run.js';
import { assertNoStall } from '../support/loop-delay.js';
import { createRig, RIG_CLIENT_ADDR, RIG_DNS, type Rig } from '../support/rig.js';
import { rigSkip } from '../support/rig-harness.js';
import type { DnsBlackholeResult } from '../support/scenarios/dns-blackhole.js';

const SCENARIO = 'test/support/scenarios/dns-blackhole.ts';
const STALL_LIMIT_MS = 50;
/** One reverse lookup through the black hole costs the resolver's 1 s timeout (RIG.md). */
const RESOLVER_TIMEOUT_MS = 1000;

const skip = rigSkip('dns-blackhole');

describe('cluster DNS black-holed (kernel rig)', { skip }, () => {
  test('opening, validating, pinging and failing over never stall the event loop', async (t) => {
    // A long conntrack timeout: flows die here by the partition only.
    const rig: Rig = await createRig({ mode: 'drop', idleTimeoutSec: 600, dns: 'blackhole' });
    try {
      const { result } = await runInNs<DnsBlackholeResult>(
        rig.clientNs,
        SCENARIO,
        [
          '--host',
          rig.host,
          '--port',
          String(rig.port),
          '--dns',
          RIG_DNS,
          '--local-addr',
          RIG_CLIENT_ADDR,
        ],
        {
          timeoutMs: 120_000,
          onEvent: async (evt, reply) => {
            if (evt.event === 'partition') {
              await rig.partition();
              reply('go');
            }
            if (evt.event === 'partitioned') {
              await rig.heal();
              reply('healed');
            }
          },
        },
      );
      t.diagnostic(JSON.stringify({ ...result, stats: undefined }));
      // First what the issue is about: the event loop, and no report.
      assertNoStall(result.loopDelay, STALL_LIMIT_MS, 'pool in a namespace without DNS');
      assert.equal(result.getReportCalls, 0, 'no diagnostic report was built');
      assert.equal(result.error, null, 'the pool did every phase');

      // The namespace is the pod of the issue: its resolver is the black hole...
      assert.deepEqual(result.servers, [RIG_DNS], 'the namespace resolves through the rig');
      assert.equal(result.resolverProbe.code, 'ETIMEOUT', 'a DNS query gets no answer at all');
      // ...and there, one report with one socket open stalls for resolver timeouts.
      assert.ok(
        result.controlReportMs >= RESOLVER_TIMEOUT_MS,
        `control: a diagnostic report took ${result.controlReportMs} ms`,
      );

      // The pool did all of it...
      assert.equal(result.warmCids.length, 4);
      const s = result.stats;
      // Validation ran (the phase under test): a connection handed straight from a releasing
      // caller to a waiting one has not idled, so not every one of the 8 checkouts pings.
      assert.ok(s.validations >= 4, `checkouts were validated: ${s.validations}`);
      assert.ok(s.idlePings >= 4, `idle pings: ${s.idlePings}`);
      assert.equal(s.healthChecks, 1);
      assert.equal(s.healthCheckFailures, 0);
      const dead = Object.values(s.dead).reduce((a, b) => a + b, 0);
      assert.ok(dead >= 4, `every connection was found dead: ${JSON.stringify(s.dead)}`);
      assert.ok(result.duringOutage, 'a query was sent during the outage');
      assert.notEqual(result.duringOutage.code, 'ANSWERED', 'the query during the outage failed');
      assert.equal(result.afterHealCids.length, 4);
      for (const cid of result.afterHealCids) {
        assert.ok(!result.warmCids.includes(cid), `served by a new connection after the heal`);
      }
    } finally {
      await rig.close();
    }
  });
});
