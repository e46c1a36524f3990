/**
 * The tcpUserTimeout default and its interplay with keepalive. On Linux, with TCP_USER_TIMEOUT
 * set, an idle connection is dropped at the first keepalive tick (delay, delay + interval, …) at
 * which nothing has been heard for tcpUserTimeout and a probe is unanswered; TCP_KEEPCNT is then
 * ignored. So tcpUserTimeout <= delay + interval makes the first lost probe fatal.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config.js';

/** The tick at which Linux drops a silent idle peer, and how many probes went unanswered. */
function idleDeath(delay: number, interval: number, userTimeout: number): [number, number] {
  let probes = 0;
  for (let tick = delay; ; tick += interval) {
    if (tick >= userTimeout && probes > 0) return [tick, probes];
    probes++;
  }
}

test('the defaults drop a silent idle peer after keepAliveCount lost probes, as TCP_KEEPCNT would', () => {
  const c = resolveConfig({}, {});
  assert.equal(c.tcpUserTimeout, 90_000);
  assert.equal(c.keepAliveInitialDelay, 60_000);
  assert.equal(c.keepAliveInterval, 10_000);
  assert.equal(c.keepAliveCount, 3);
  const [at, lost] = idleDeath(c.keepAliveInitialDelay, c.keepAliveInterval, c.tcpUserTimeout);
  assert.equal(lost, c.keepAliveCount);
  assert.equal(at, c.keepAliveInitialDelay + c.keepAliveCount * c.keepAliveInterval);
  assert.deepEqual(c.warnings, []);
});

test('a user timeout at delay + interval makes one lost probe fatal: warned', () => {
  const c = resolveConfig(
    { keepAliveInitialDelay: 60_000, keepAliveInterval: 10_000, tcpUserTimeout: 70_000 },
    {},
  );
  assert.deepEqual(idleDeath(60_000, 10_000, 70_000), [70_000, 1]);
  assert.equal(c.warnings.length, 1);
  assert.match(
    c.warnings[0]!,
    /a single lost keepalive probe would kill a healthy idle connection/,
  );
});

test('raising keepAliveInitialDelay alone raises the default user timeout with it: no warning', () => {
  const c = resolveConfig({ keepAliveInitialDelay: 300_000 }, {});
  assert.equal(c.tcpUserTimeout, 330_000);
  assert.deepEqual(idleDeath(300_000, 10_000, c.tcpUserTimeout), [330_000, 3]);
  assert.deepEqual(c.warnings, []);
});

test('raising keepAliveInitialDelay past a tcpUserTimeout that was set is warned about', () => {
  const c = resolveConfig({ keepAliveInitialDelay: 300_000, tcpUserTimeout: 90_000 }, {});
  assert.deepEqual(idleDeath(300_000, 10_000, 90_000), [310_000, 1]);
  assert.match(c.warnings.join('\n'), /use at least 330000 ms/);
});

test('one millisecond more tolerates a lost probe: no warning', () => {
  const c = resolveConfig(
    { keepAliveInitialDelay: 60_000, keepAliveInterval: 10_000, tcpUserTimeout: 70_001 },
    {},
  );
  assert.deepEqual(idleDeath(60_000, 10_000, 70_001), [80_000, 2]);
  assert.deepEqual(c.warnings, []);
});

test('tcpUserTimeout 0 (off) is never warned about', () => {
  assert.deepEqual(resolveConfig({ tcpUserTimeout: 0 }, {}).warnings, []);
});
