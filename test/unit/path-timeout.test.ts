/**
 * src/path-timeout.ts with a fake clock: what counts as evidence, the bound and the settings
 * derived from it (never above the configured ones, never below the floor), convergence when the
 * first estimate was not low enough, and decay after a long quiet time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config.js';
import {
  DECAY_AFTER_MS,
  MIN_EVIDENCE_IDLE_MS,
  PATH_TIMEOUT_FLOOR_MS,
  PathTimeoutLearner,
  isPathEvidence,
} from '../../src/path-timeout.js';
import type { Death, LearnerClock, PathTimeoutEvent } from '../../src/path-timeout.js';

/** A clock whose time only moves when the test says so; one pending timer at a time is enough. */
function fakeClock(): LearnerClock & { advance(ms: number): void; pending(): number } {
  let now = 1_000_000;
  const timers: Array<{ at: number; fn: () => void; live: boolean }> = [];
  return {
    now: () => now,
    schedule(fn, ms) {
      const t = { at: now + ms, fn, live: true };
      timers.push(t);
      return () => {
        t.live = false;
      };
    },
    advance(ms) {
      const until = now + ms;
      for (;;) {
        const next = timers.filter((t) => t.live && t.at <= until).sort((a, b) => a.at - b.at)[0];
        if (!next) break;
        now = next.at;
        next.live = false;
        next.fn();
      }
      now = until;
    },
    pending: () => timers.filter((t) => t.live).length,
  };
}

const quiet = {} as NodeJS.ProcessEnv;

function setup(options: Record<string, unknown> = {}) {
  const cfg = resolveConfig(options, quiet);
  const clock = fakeClock();
  const events: PathTimeoutEvent[] = [];
  const learner = new PathTimeoutLearner(cfg, (e) => events.push(e), clock);
  return { cfg, clock, events, learner };
}

const death = (over: Partial<Death> = {}): Death => ({
  reason: 'checkout-ping-timeout',
  idleMs: 6000,
  errorCode: null,
  serverWaitTimeoutMs: 28_800_000,
  ...over,
});

/** Keepalive too slow to help (the kernel's 7200 s), idle pings at their default. */
const SLOW_KEEPALIVE = { keepAliveInitialDelay: 7_200_000 };

test('evidence: silence, or a reset met by a ping or a keepalive probe; not a FIN, a server error or a suspect', () => {
  assert.equal(isPathEvidence(death()), true);
  assert.equal(isPathEvidence(death({ reason: 'idle-ping-timeout' })), true);
  for (const reason of ['checkout-ping-error', 'idle-ping-error', 'socket-error'] as const) {
    assert.equal(isPathEvidence(death({ reason, errorCode: 'ECONNRESET' })), true, reason);
    assert.equal(isPathEvidence(death({ reason, errorCode: 'ETIMEDOUT' })), true, reason);
    assert.equal(isPathEvidence(death({ reason, errorCode: 'ER_CONNECTION_KILLED' })), false);
    assert.equal(isPathEvidence(death({ reason, errorCode: 'PROTOCOL_CONNECTION_LOST' })), false);
    assert.equal(isPathEvidence(death({ reason, errorCode: null })), false);
  }
  assert.equal(isPathEvidence(death({ reason: 'socket-end' })), false);
  assert.equal(isPathEvidence(death({ reason: 'suspect' })), false);
  // The server's own wait_timeout explains it.
  assert.equal(isPathEvidence(death({ idleMs: 29_000, serverWaitTimeoutMs: 30_000 })), false);
});

test('nothing learned: the configured settings, no event, no timer', () => {
  const { cfg, learner, events, clock } = setup();
  assert.deepEqual(learner.keepAlive(), {
    initialDelay: cfg.keepAliveInitialDelay,
    interval: cfg.keepAliveInterval,
  });
  assert.equal(learner.idlePingInterval(), cfg.idlePingInterval);
  assert.deepEqual(learner.snapshot(), {
    enabled: true,
    boundMs: null,
    keepAliveIdleMs: 60_000,
    keepAliveIntervalMs: 10_000,
    idlePingIntervalMs: 120_000,
    evidence: 0,
  });
  assert.equal(events.length, 0);
  assert.equal(clock.pending(), 0);
});

test('a first death after idling 6 s with slow keepalive: bound 6 s, flows kept alive at 2 s', () => {
  const { learner, events, clock } = setup(SLOW_KEEPALIVE);
  assert.equal(learner.observe(death({ idleMs: 6000 })), 6000);
  assert.equal(events.length, 1);
  const e = events[0]!;
  assert.equal(e.reason, 'learned');
  assert.equal(e.boundMs, 6000);
  assert.equal(e.idleMs, 6000);
  assert.equal(e.keepAliveIdleMs, 2000);
  assert.equal(e.keepAliveIntervalMs, 2000);
  assert.equal(e.idlePingIntervalMs, 2000);
  assert.match(e.advice, /forgets idle flows in less than 6 s/);
  assert.match(
    e.advice,
    /Set keepAliveInitialDelay \(MYSQL_KEEP_ALIVE_INITIAL_DELAY\) below 6000 ms/,
  );
  assert.deepEqual(learner.keepAlive(), { initialDelay: 2000, interval: 2000 });
  assert.equal(learner.idlePingInterval(), 2000);
  assert.equal(learner.snapshot().boundMs, 6000);
  assert.equal(clock.pending(), 1, 'the decay timer is armed');
  // The same evidence again changes nothing.
  learner.observe(death({ idleMs: 6000 }));
  assert.equal(events.length, 1);
  assert.equal(learner.snapshot().evidence, 2);
});

test('never above the configured values: with the default keepalive (60 s) a 200 s bound leaves keepalive alone', () => {
  const { learner, events } = setup({ keepAliveInitialDelay: 60_000 });
  // Died after 200 s idle although probes ran every 60 s: the silence was at most 60 s.
  assert.equal(learner.observe(death({ idleMs: 200_000 })), 60_000);
  const e = events[0]!;
  assert.equal(e.boundMs, 60_000);
  assert.equal(e.keepAliveIdleMs, 20_000, 'a third of the probe spacing');
  assert.equal(e.idlePingIntervalMs, 20_000);
  // Settings already at the floor change nothing, but the bound is still reported.
  const other = setup({ enableKeepAlive: false, idlePingInterval: 1000 });
  other.learner.observe(death({ idleMs: 3000 }));
  assert.equal(other.events[0]!.boundMs, 3000);
  assert.equal(other.events[0]!.idlePingIntervalMs, 1000);
  assert.equal(other.learner.idlePingInterval(), 1000);
});

test('never below the floor; deaths after a very short idle are not evidence', () => {
  const { learner, events } = setup(SLOW_KEEPALIVE);
  assert.equal(learner.observe(death({ idleMs: MIN_EVIDENCE_IDLE_MS - 1 })), null);
  assert.equal(events.length, 0);
  learner.observe(death({ idleMs: 1600 }));
  assert.equal(events[0]!.keepAliveIdleMs, PATH_TIMEOUT_FLOOR_MS);
  assert.equal(events[0]!.idlePingIntervalMs, PATH_TIMEOUT_FLOOR_MS);
});

test('converges: a death at the new probe spacing lowers the bound to that spacing', () => {
  const { learner, events, clock } = setup({ keepAliveInitialDelay: 7_200_000 });
  learner.observe(death({ idleMs: 30_000 }));
  assert.equal(events[0]!.keepAliveIdleMs, 10_000);
  // Later, a connection idle since after the change dies anyway (the path forgets in < 10 s).
  clock.advance(60_000);
  assert.equal(learner.observe(death({ reason: 'idle-ping-timeout', idleMs: 10_500 })), 10_000);
  assert.equal(events.length, 2);
  assert.equal(events[1]!.reason, 'lowered');
  assert.equal(events[1]!.boundMs, 10_000);
  assert.equal(events[1]!.keepAliveIdleMs, 3000);
});

test('a death whose idle spell began before the last change counts with its whole idle time', () => {
  const { learner, events, clock } = setup({ keepAliveInitialDelay: 60_000 });
  learner.observe(death({ idleMs: 100_000 })); // bound 60 s, keepalive 20 s
  clock.advance(5000);
  // Idle 50 s, i.e. since before the change: its probes ran every 60 s, not 20 s.
  assert.equal(learner.observe(death({ idleMs: 50_000 })), 50_000);
  assert.equal(events[1]!.boundMs, 50_000);
});

test('decay: after a long quiet time the bound doubles, then the configured values return', () => {
  const { learner, events, clock } = setup(SLOW_KEEPALIVE);
  learner.observe(death({ idleMs: 60_000 })); // bound 60 s, everything at 20 s
  clock.advance(DECAY_AFTER_MS - 1);
  assert.equal(events.length, 1, 'not yet');
  clock.advance(1);
  assert.equal(events[1]!.reason, 'decayed');
  assert.equal(events[1]!.boundMs, 120_000);
  assert.equal(events[1]!.idlePingIntervalMs, 40_000);
  // Evidence on the way re-arms the timer: a full quiet period is needed again.
  clock.advance(DECAY_AFTER_MS / 2);
  // Idle since before the decay changed the settings: its whole idle time, above the bound.
  assert.equal(
    learner.observe(death({ idleMs: DECAY_AFTER_MS / 2 + 1000 })),
    DECAY_AFTER_MS / 2 + 1000,
  );
  clock.advance(DECAY_AFTER_MS / 2 + 1);
  assert.equal(events.length, 2, 'the evidence reset the quiet period');
  // Each quiet period doubles the bound: pings reach their configured 120 s at a 480 s bound,
  // keepalive its configured 7200 s once a third of the bound does; then the configured values
  // apply again.
  for (let i = 0; i < 30 && events[events.length - 1]!.reason !== 'restored'; i++) {
    clock.advance(DECAY_AFTER_MS);
  }
  const decays = events.slice(1);
  assert.ok(decays.length >= 8, `${decays.length} decay steps`);
  for (let i = 1; i < decays.length - 1; i++) {
    assert.equal(decays[i]!.reason, 'decayed');
    assert.equal(decays[i]!.boundMs, 2 * decays[i - 1]!.boundMs!);
    assert.ok(decays[i]!.idlePingIntervalMs! <= 120_000, 'never above the configured period');
  }
  const pingsBack = decays.find((e) => e.idlePingIntervalMs === 120_000)!;
  assert.equal(pingsBack.boundMs, 480_000);
  const restored = decays[decays.length - 1]!;
  assert.equal(restored.reason, 'restored');
  assert.equal(restored.boundMs, null);
  assert.deepEqual(learner.keepAlive(), { initialDelay: 7_200_000, interval: 10_000 });
  assert.equal(learner.snapshot().boundMs, null);
  assert.equal(clock.pending(), 0, 'no timer left once restored');
});

test('learnPathTimeout false: nothing is learned; keepalive off: only pings are lowered', () => {
  const off = setup({ ...SLOW_KEEPALIVE, learnPathTimeout: false });
  assert.equal(off.learner.observe(death()), null);
  assert.equal(off.events.length, 0);
  assert.equal(off.learner.snapshot().enabled, false);

  const noKeepalive = setup({ enableKeepAlive: false });
  noKeepalive.learner.observe(death({ idleMs: 30_000 }));
  const e = noKeepalive.events[0]!;
  assert.equal(e.keepAliveIdleMs, null);
  assert.equal(e.idlePingIntervalMs, 10_000);

  const nothing = setup({ enableKeepAlive: false, idlePingInterval: 0 });
  nothing.learner.observe(death({ idleMs: 30_000 }));
  assert.match(nothing.events[0]!.advice, /keepalive and idle pings are off/);
  assert.equal(nothing.learner.idlePingInterval(), 0, 'pings stay off');
});

test('stop(): the decay timer goes and nothing more is learned', () => {
  const { learner, clock, events } = setup(SLOW_KEEPALIVE);
  learner.observe(death());
  learner.stop();
  assert.equal(clock.pending(), 0);
  assert.equal(learner.observe(death({ idleMs: 2000 })), null);
  assert.equal(events.length, 1);
});
