/**
 * The pure parts of the CLI: doctor's advice rules (src/doctor.ts) and probe's reading of its
 * outcomes (src/probe.ts). The commands themselves run against a real server and the kernel rig
 * in test/integration/cli.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config.js';
import { advise, exitCodeOf, formatDoctor, readKernelSettings } from '../../src/doctor.js';
import { watchEventLoop } from '../../src/event-loop.js';
import type { AdviceInput, DoctorReport } from '../../src/doctor.js';
import { geometricDurations, summarize } from '../../src/probe.js';
import type { ProbeOutcome } from '../../src/probe.js';

const quiet = {}; // no MYSQL_* at all: the library defaults

function input(over: Partial<AdviceInput> = {}, options = {}): AdviceInput {
  return {
    config: resolveConfig(options, quiet),
    server: { waitTimeoutSec: 28_800 },
    socket: {
      tcp: true,
      readback: {
        keepAliveEnabled: true,
        keepAliveIdle: 60_000,
        keepAliveInterval: 10_000,
        keepAliveCount: 3,
        tcpUserTimeout: 90_000,
      },
    },
    capability: { available: true },
    kernel: { tcpRetries2: 15, conntrackEstablishedTimeoutSec: 432_000 },
    ...over,
  };
}

const codes = (i: AdviceInput): string[] => advise(i).map((a) => `${a.level}:${a.code}`);

test('advise: the defaults on a healthy socket raise nothing', () => {
  assert.deepEqual(codes(input()), []);
  assert.equal(exitCodeOf(null, advise(input())), 0);
});

test('advise: keepalive at or above the IPVS 900 s, and above the cloud 4 min', () => {
  const ipvs = advise(input({ socket: null }, { keepAliveInitialDelay: 900_000 })).filter(
    (a) => a.code !== 'CONFIG_WARNING', // tcpUserTimeout below delay + interval, tested below
  );
  assert.deepEqual(
    ipvs.map((a) => a.code),
    ['KEEPALIVE_DELAY_IPVS'],
  );
  assert.match(ipvs[0]!.message, /900 s IPVS.*MYSQL_KEEP_ALIVE_INITIAL_DELAY=60000/);
  const cloud = { keepAliveInitialDelay: 300_000, tcpUserTimeout: 400_000 };
  assert.deepEqual(codes(input({ socket: null }, cloud)), ['risk:KEEPALIVE_DELAY_CLOUD']);
  const below = { keepAliveInitialDelay: 239_000, tcpUserTimeout: 300_000 };
  assert.deepEqual(codes(input({ socket: null }, below)), []);
  // The gap between later probes is keepAliveInterval, answered or not (Linux re-arms with it).
  const interval = advise(input({ socket: null }, { keepAliveInterval: 600_000 }));
  const long = interval.find((a) => a.code === 'KEEPALIVE_DELAY_CLOUD');
  assert.match(long!.message, /keepAliveInterval 600 s.*MYSQL_KEEP_ALIVE_INTERVAL=10000/);
});

test('advise: keepalive off, and keepalive off with pings off too', () => {
  assert.deepEqual(codes(input({}, { enableKeepAlive: false })), ['risk:KEEPALIVE_OFF']);
  assert.deepEqual(codes(input({}, { enableKeepAlive: false, idlePingInterval: 0 })), [
    'risk:KEEPALIVE_OFF',
    'risk:NO_IDLE_DEFENCE',
    'risk:CONNTRACK_TIMEOUT', // nothing refreshes a flow, so even 5 days of conntrack end it
    'note:SERVER_CLOSES_IDLE',
  ]);
});

test('advise: TCP_USER_TIMEOUT off, unavailable, or not what the socket holds', () => {
  const off = advise(input({}, { tcpUserTimeout: 0 }));
  assert.deepEqual(
    off.map((a) => a.code),
    ['TCP_USER_TIMEOUT_OFF'],
  );
  assert.match(off[0]!.message, /tcp_retries2=15.*MYSQL_TCP_USER_TIMEOUT=90000/);
  assert.deepEqual(codes(input({ capability: { available: false, reason: 'platform darwin' } })), [
    'risk:TCP_USER_TIMEOUT_UNAVAILABLE',
  ]);
  const rb = { ...input().socket!.readback, tcpUserTimeout: 0 };
  assert.deepEqual(codes(input({ socket: { tcp: true, readback: rb } })), [
    'risk:TCP_USER_TIMEOUT_NOT_APPLIED',
  ]);
});

test('advise: a live socket whose TCP_KEEPIDLE is not the configured one', () => {
  const rb = { ...input().socket!.readback, keepAliveIdle: 7_200_000 };
  const a = advise(input({ socket: { tcp: true, readback: rb } }));
  assert.deepEqual(
    a.map((x) => x.code),
    ['KEEPALIVE_NOT_APPLIED'],
  );
  assert.match(a[0]!.message, /TCP_KEEPIDLE 7200 s, expected on and 60 s/);
});

test("advise: keepAliveInitialDelay below 1 s leaves the kernel's idle time: not a mismatch, but no protection", () => {
  const rb = { ...input().socket!.readback, keepAliveIdle: 7_200_000 };
  const a = advise(
    input(
      { socket: { tcp: true, readback: rb } },
      { keepAliveInitialDelay: 500, idlePingInterval: 0 },
    ),
  );
  const codes = a.map((x) => x.code);
  assert.ok(!codes.includes('KEEPALIVE_NOT_APPLIED'), codes.join());
  // With pings off, the 7200 s the kernel keeps is what is judged (no keepalive within 900 s).
  assert.ok(codes.length > 0, 'the unprotected idle connections are reported');
});

test("advise: this namespace's conntrack forgets flows before keepalive fires", () => {
  const a = advise(input({ kernel: { conntrackEstablishedTimeoutSec: 5 } }));
  assert.deepEqual(
    a.map((x) => x.code),
    ['CONNTRACK_TIMEOUT'],
  );
  assert.match(
    a[0]!.message,
    /after 5 s.*MYSQL_KEEP_ALIVE_INITIAL_DELAY=2000 and MYSQL_KEEP_ALIVE_INTERVAL=2000/,
  );
  assert.deepEqual(
    codes(
      input(
        { kernel: { conntrackEstablishedTimeoutSec: 5 } },
        { keepAliveInitialDelay: 2000, keepAliveInterval: 2000, tcpUserTimeout: 10_000 },
      ),
    ).filter((c) => c.includes('CONNTRACK')),
    [],
  );
});

test('advise: idle pings above wait_timeout are a note (the pool pings below it anyway)', () => {
  const a = advise(input({ server: { waitTimeoutSec: 60 } }));
  assert.deepEqual(
    a.map((x) => `${x.level}:${x.code}`),
    ['note:IDLE_PING_ABOVE_WAIT_TIMEOUT'],
  );
  assert.match(a[0]!.message, /wait_timeout 60 s; the pool pings every 48 s/);
  assert.equal(exitCodeOf(null, a), 0, 'a note alone is healthy');
});

test('advise: config warnings not covered above, and unknown MYSQL_* variables, are risks', () => {
  const a = advise(
    input(
      {
        processWarnings: [
          'mysql2-keepalive-pool: ignoring unknown environment variable MYSQL_KEEPALIVE',
        ],
      },
      {
        acquireTimeout: 5000,
        connectTimeout: 10_000,
      },
    ),
  );
  assert.deepEqual(
    a.map((x) => x.code),
    ['CONFIG_WARNING', 'ENV_WARNING'],
  );
  assert.match(a[0]!.message, /acquireTimeout 5000 ms is shorter than connectTimeout/);
  assert.equal(a[1]!.message, 'ignoring unknown environment variable MYSQL_KEEPALIVE');
  // Covered ones are not repeated: keepalive off gives exactly one keepalive line.
  const off = advise(input({}, { enableKeepAlive: false }));
  assert.equal(off.filter((x) => /keepalive/i.test(x.message)).length, 1);
});

test('advise: probes spaced by keepAliveInterval above the delay are a note below 4 min', () => {
  const a = advise(
    input({ socket: null }, { keepAliveInitialDelay: 5000, keepAliveInterval: 20_000 }),
  );
  assert.deepEqual(
    a.map((x) => `${x.level}:${x.code}`),
    ['note:KEEPALIVE_SPACING'],
  );
  assert.match(a[0]!.message, /probed every 20 s/);
});

test('advise: a unix socket is a note, and its (empty) readback raises nothing', () => {
  assert.deepEqual(codes(input({ socket: { tcp: false, readback: {} } })), ['note:NOT_TCP']);
});

test('exitCodeOf: 2 when it could not connect, whatever the advice', () => {
  assert.equal(exitCodeOf(new Error('ECONNREFUSED'), []), 2);
  assert.equal(exitCodeOf(null, [{ level: 'risk', code: 'X', message: 'x' }]), 1);
});

test('readKernelSettings reads the tcp_keepalive_* files, and leaves out what is missing', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'kapool-proc-'));
  mkdirSync(path.join(root, 'net/ipv4'), { recursive: true });
  writeFileSync(path.join(root, 'net/ipv4/tcp_keepalive_time'), '7200\n');
  writeFileSync(path.join(root, 'net/ipv4/tcp_keepalive_intvl'), '75\n');
  writeFileSync(path.join(root, 'net/ipv4/tcp_keepalive_probes'), '9\n');
  assert.deepEqual(readKernelSettings(root), {
    tcpKeepaliveTimeSec: 7200,
    tcpKeepaliveIntvlSec: 75,
    tcpKeepaliveProbes: 9,
  });
});

test('formatDoctor: one screen, password masked, advice lines and the status', () => {
  const cfg = resolveConfig({ host: 'db', user: 'app', password: 'hunter2' }, quiet);
  const report: DoctorReport = {
    exitCode: 1,
    pool: cfg.name,
    target: 'db:3306',
    config: { user: 'app', password: '***' },
    server: {
      version: '10.11.6-MariaDB',
      waitTimeoutSec: 28_800,
      interactiveTimeoutSec: 28_800,
      threadId: 7,
      connectMs: 3,
    },
    socket: input().socket,
    tcpUserTimeout: { available: true },
    kernel: { tcpKeepaliveTimeSec: 7200 },
    advice: [{ level: 'risk', code: 'X', message: 'do something' }],
    error: null,
    eventLoop: { maxBlockMs: 12 },
    path: {
      rttMs: 0.4,
      hedgeDelayMs: 20,
      pathTimeout: {
        enabled: true,
        boundMs: 6000,
        keepAliveIdleMs: 2000,
        keepAliveIntervalMs: 2000,
        idlePingIntervalMs: 2000,
        evidence: 1,
      },
    },
  };
  const text = formatDoctor(report);
  assert.match(
    text,
    /Path: round trip 0\.4 ms, checkout pings hedged after 20 ms; idle timeout below 6 s \(learned\)/,
  );
  assert.ok(text.split('\n').length <= 30, 'fits one screen');
  assert.match(text, /password=\*\*\*/);
  assert.match(
    text,
    /TCP_KEEPIDLE 60 s, TCP_KEEPINTVL 10 s, TCP_KEEPCNT 3, TCP_USER_TIMEOUT 90000 ms/,
  );
  assert.match(text, /wait_timeout 28800 s/);
  assert.match(text, /RISK {2}do something/);
  assert.match(text, /Event loop: blocked at most 12 ms while doctor ran/);
  assert.match(text, /Status: risky configuration \(exit 1\)/);
  assert.doesNotMatch(text, /hunter2/);
});

const ok = (idleSec: number): ProbeOutcome => ({ idleSec, alive: true, how: 'ping-ok' });
const dead = (idleSec: number): ProbeOutcome => ({ idleSec, alive: false, how: 'ping-timeout' });
const defaults = {
  enableKeepAlive: true,
  keepAliveInitialDelay: 60_000,
  keepAliveInterval: 10_000,
};

test('probe summary: brackets the timeout and recommends half the longest survivor', () => {
  const s = summarize([ok(60), ok(230), dead(250), dead(340)], null, defaults);
  assert.equal(s.longestSurvivedSec, 230);
  assert.equal(s.shortestDiedSec, 250);
  assert.equal(s.recommendedKeepAliveInitialDelayMs, 60_000, 'never above the library default');
  assert.equal(s.exitCode, 0, 'the configured 60 s beats a timeout above 230 s');
  assert.match(s.verdict, /between 230 s and 250 s/);

  const short = summarize([ok(1), ok(2), dead(6), dead(8)], null, defaults);
  assert.equal(short.recommendedKeepAliveInitialDelayMs, 1000);
  assert.equal(short.exitCode, 1, 'a 60 s keepalive loses a flow forgotten after < 6 s');
  assert.match(
    short.verdict,
    /MYSQL_KEEP_ALIVE_INITIAL_DELAY=1000 and MYSQL_KEEP_ALIVE_INTERVAL=1000/,
  );
});

test('probe summary: nothing died, everything died, keepalive off, control died', () => {
  const none = summarize([ok(60), ok(1800)], null, defaults);
  assert.equal(none.shortestDiedSec, null);
  assert.equal(none.exitCode, 0);
  assert.match(none.verdict, /no idle timeout up to 1800 s/);

  const all = summarize([dead(60), dead(120)], null, defaults);
  assert.equal(all.longestSurvivedSec, null);
  assert.equal(all.recommendedKeepAliveInitialDelayMs, 15_000, 'half of half the shortest death');
  assert.match(all.verdict, /at or below 60 s .*probe shorter durations/);
  assert.equal(all.exitCode, 1);

  const off = summarize([ok(60), dead(400)], null, { ...defaults, enableKeepAlive: false });
  assert.equal(off.exitCode, 1);
  assert.match(off.verdict, /keepalive is off/);

  const control = { ...dead(400), keepAliveInitialDelayMs: 60_000 };
  const c = summarize([ok(300), dead(400)], control, defaults);
  assert.equal(c.exitCode, 1);
  assert.match(c.verdict, /configured keepalive died after 400 s/);

  const connectErrors = summarize(
    [{ idleSec: 1, alive: false, how: 'connect-error', error: 'ECONNREFUSED' }, ok(2)],
    null,
    defaults,
  );
  assert.equal(connectErrors.shortestDiedSec, null, 'a failed connect is not an idle death');
});

test('geometricDurations: from min to max, rounded, ascending, no duplicates', () => {
  assert.deepEqual(geometricDurations(60, 1800, 4), [60, 186, 579, 1800]);
  assert.deepEqual(geometricDurations(1, 8, 4), [1, 2, 4, 8]);
  assert.deepEqual(geometricDurations(1, 1, 5), [1]);
  const d = geometricDurations(60, 1800, 8);
  assert.equal(d.length, 8);
  assert.equal(d[0], 60);
  assert.equal(d[7], 1800);
});

test('the event-loop figure of doctor and probe sees a block, and little when idle', async () => {
  const idle = watchEventLoop();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.ok(idle.stop().maxBlockMs < 50, 'idle');
  const busy = watchEventLoop();
  await new Promise((resolve) => setTimeout(resolve, 30));
  const end = performance.now() + 150;
  while (performance.now() < end) {
    /* a synchronous stall, on purpose */
  }
  await new Promise((resolve) => setTimeout(resolve, 30));
  const seen = busy.stop();
  assert.ok(seen.maxBlockMs >= 130, JSON.stringify(seen));
  assert.equal(busy.stop(), seen, 'stop() is idempotent');
});

test('advise: a learned path timeout at or below the keepalive spacing is a risk with the fix', () => {
  // The default keepalive (60 s) against a learned bound of 45 s.
  const learned = advise(input({ pathTimeout: { boundMs: 45_000 } }));
  const risk = learned.find((a) => a.code === 'PATH_TIMEOUT_LEARNED');
  assert.ok(risk, JSON.stringify(learned));
  assert.equal(risk.level, 'risk');
  assert.match(risk.message, /less than 45 s/);
  assert.match(risk.message, /MYSQL_KEEP_ALIVE_INITIAL_DELAY=15000/);
  // A bound above the spacing: keepalive already covers it; nothing learned: nothing said.
  assert.deepEqual(codes(input({ pathTimeout: { boundMs: 600_000 } })), []);
  assert.deepEqual(codes(input({ pathTimeout: { boundMs: null } })), []);
});
