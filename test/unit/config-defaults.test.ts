/**
 * Defaults follow what the user set (issue 9): every combination of the timing options a user
 * may set, the defaults derived for the others, and the warnings, which name only set options.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { effectiveKeepAliveDelay, resolveConfig } from '../../src/config.js';
import type { KeepalivePoolOptions } from '../../src/config.js';

interface Row {
  readonly set: KeepalivePoolOptions;
  readonly env?: Record<string, string>;
  /** Expected resolved values (only the ones listed are checked). */
  readonly want: Partial<
    Record<
      | 'keepAliveInitialDelay'
      | 'keepAliveInterval'
      | 'keepAliveCount'
      | 'tcpUserTimeout'
      | 'acquireTimeout'
      | 'connectTimeout'
      | 'idleTimeout'
      | 'maxIdle',
      number | undefined
    >
  >;
  /** Each expected warning, by a pattern; none when empty. */
  readonly warnings: readonly RegExp[];
}

const ROWS: readonly Row[] = [
  {
    set: {},
    want: {
      keepAliveInitialDelay: 60_000,
      keepAliveInterval: 10_000,
      keepAliveCount: 3,
      tcpUserTimeout: 90_000,
      acquireTimeout: 10_000,
      connectTimeout: undefined,
    },
    warnings: [],
  },
  // The issue's case: a middlebox forgets flows idle 5 s; mysql2 probes every 2 s, so must we.
  {
    set: { keepAliveInitialDelay: 2000 },
    want: { keepAliveInterval: 2000, tcpUserTimeout: 90_000 },
    warnings: [],
  },
  {
    set: { keepAliveInitialDelay: 600_000 },
    want: { keepAliveInterval: 10_000, tcpUserTimeout: 630_000 },
    warnings: [],
  },
  // mysql2's meaning of a delay below 1 s: the kernel's 7200 s stays. Accepted, with a warning.
  {
    set: { keepAliveInitialDelay: 500 },
    want: { keepAliveInitialDelay: 500, keepAliveInterval: 10_000, tcpUserTimeout: 7_230_000 },
    warnings: [/^keepAliveInitialDelay 500 ms is below 1000 ms/],
  },
  {
    set: { keepAliveInitialDelay: 0 },
    want: { keepAliveInitialDelay: 0 },
    warnings: [/^keepAliveInitialDelay 0 ms is below 1000 ms/],
  },
  {
    set: { keepAliveInitialDelay: 900_000 },
    want: { keepAliveInterval: 10_000, tcpUserTimeout: 930_000 },
    warnings: [/^keepAliveInitialDelay 900000 ms is at or above the 900 s IPVS idle timeout/],
  },
  {
    set: { keepAliveInterval: 2000 },
    want: { keepAliveInitialDelay: 60_000, tcpUserTimeout: 90_000 },
    warnings: [],
  },
  // Only the interval set, above the default delay: the user gets the spacing they set.
  {
    set: { keepAliveInterval: 120_000 },
    want: { keepAliveInitialDelay: 60_000, tcpUserTimeout: 420_000 },
    warnings: [],
  },
  {
    set: { keepAliveCount: 9 },
    want: { keepAliveInterval: 10_000, tcpUserTimeout: 150_000 },
    warnings: [],
  },
  // A short tcpUserTimeout alone makes the keepalive defaults fit inside it.
  {
    set: { tcpUserTimeout: 30_000 },
    want: { keepAliveInitialDelay: 15_000, keepAliveInterval: 5000, tcpUserTimeout: 30_000 },
    warnings: [],
  },
  {
    set: { tcpUserTimeout: 5000 },
    want: { keepAliveInitialDelay: 2000, keepAliveInterval: 1000 },
    warnings: [],
  },
  {
    set: { tcpUserTimeout: 2000 },
    want: { keepAliveInitialDelay: 1000, keepAliveInterval: 1000 },
    warnings: [/^tcpUserTimeout 2000 ms leaves tcpUserTimeout \(2000 ms\) not above/],
  },
  {
    set: { tcpUserTimeout: 0 },
    want: { keepAliveInitialDelay: 60_000, keepAliveInterval: 10_000, tcpUserTimeout: 0 },
    warnings: [],
  },
  {
    set: { keepAliveInitialDelay: 20_000, tcpUserTimeout: 40_000 },
    want: { keepAliveInterval: 6666, tcpUserTimeout: 40_000 },
    warnings: [],
  },
  {
    set: { keepAliveInitialDelay: 60_000, tcpUserTimeout: 5000 },
    want: { keepAliveInterval: 10_000 },
    warnings: [
      /^tcpUserTimeout 5000 ms and keepAliveInitialDelay 60000 ms leave .* use at least 90000 ms/,
    ],
  },
  {
    set: { keepAliveInitialDelay: 1000, keepAliveInterval: 10_000, tcpUserTimeout: 0 },
    want: {},
    warnings: [/^keepAliveInterval 10000 ms is above keepAliveInitialDelay 1000 ms/],
  },
  {
    set: { enableKeepAlive: false },
    want: { tcpUserTimeout: 90_000 },
    warnings: [/^enableKeepAlive is false/],
  },
  // Count 1 asks for one-probe detection: the derived user timeout matches it, no warning.
  {
    set: { keepAliveCount: 1, keepAliveInitialDelay: 600_000 },
    want: { tcpUserTimeout: 610_000 },
    warnings: [],
  },
  {
    set: { acquireTimeout: 2000 },
    want: { acquireTimeout: 2000, connectTimeout: 2000 },
    warnings: [],
  },
  {
    set: { acquireTimeout: 0 },
    want: { acquireTimeout: 0, connectTimeout: undefined },
    warnings: [],
  },
  {
    set: { connectTimeout: 30_000 },
    want: { acquireTimeout: 30_000, connectTimeout: 30_000 },
    warnings: [],
  },
  {
    set: { acquireTimeout: 2000, connectTimeout: 5000 },
    want: { acquireTimeout: 2000, connectTimeout: 5000 },
    warnings: [/^acquireTimeout 2000 ms is shorter than connectTimeout \(5000 ms\)/],
  },
  // mysql2 accepts these; so do we, silently (mysql2's graceful-end tests use idleTimeout 500).
  { set: { idleTimeout: 500 }, want: { idleTimeout: 500 }, warnings: [] },
  { set: { idleTimeout: 0 }, want: { idleTimeout: 0 }, warnings: [] },
  { set: { connectionLimit: 2, maxIdle: 5 }, want: { maxIdle: 5 }, warnings: [] },
  // The environment counts as set, exactly like an option.
  {
    set: {},
    env: { MYSQL_KEEP_ALIVE_INITIAL_DELAY: '2000' },
    want: { keepAliveInitialDelay: 2000, keepAliveInterval: 2000 },
    warnings: [],
  },
];

/** Option names a warning may mention. */
const OPTION_WORDS =
  /\b(keepAliveInitialDelay|keepAliveInterval|keepAliveCount|tcpUserTimeout|acquireTimeout|connectTimeout|idlePingInterval|enableKeepAlive|minIdle|maxIdle|idleTimeout|connectionLimit)\b/g;

function resolvedValue(cfg: ReturnType<typeof resolveConfig>, key: keyof Row['want']): unknown {
  if (key === 'connectTimeout') return cfg.connection.connectTimeout;
  return cfg[key];
}

describe('defaults derived from what the user set', () => {
  for (const row of ROWS) {
    const label = `${JSON.stringify(row.set)}${row.env ? ` env ${JSON.stringify(row.env)}` : ''}`;
    it(label, () => {
      const cfg = resolveConfig({ name: 'defaults', ...row.set }, row.env ?? {});
      for (const [key, value] of Object.entries(row.want)) {
        assert.equal(resolvedValue(cfg, key as keyof Row['want']), value, key);
      }
      assert.equal(cfg.warnings.length, row.warnings.length, cfg.warnings.join('\n'));
      row.warnings.forEach((re, i) => assert.match(cfg.warnings[i] ?? '', re));
      const set = new Set([
        ...Object.keys(row.set),
        ...Object.keys(cfg.sources).filter((k) => cfg.sources[k] === 'env'),
      ]);
      for (const w of cfg.warnings) {
        for (const [word] of w.matchAll(OPTION_WORDS)) {
          assert.ok(set.has(word), `warning names ${word}, which was not set: ${w}`);
        }
      }
      // The invariant behind the tcpUserTimeout default: one lost probe cannot trip it.
      if (!('tcpUserTimeout' in row.set) && cfg.enableKeepAlive && cfg.keepAliveCount > 1) {
        assert.ok(
          cfg.tcpUserTimeout >
            effectiveKeepAliveDelay(cfg.keepAliveInitialDelay) + cfg.keepAliveInterval,
          'derived tcpUserTimeout leaves room for a lost probe',
        );
      }
      // And behind the interval default: probes every keepAliveInitialDelay when only it is set.
      if ('keepAliveInitialDelay' in row.set && !('keepAliveInterval' in row.set)) {
        assert.ok(
          cfg.keepAliveInterval <=
            Math.max(1000, effectiveKeepAliveDelay(cfg.keepAliveInitialDelay)),
        );
      }
    });
  }

  it('a set value always wins over a derived one', () => {
    const cfg = resolveConfig(
      { keepAliveInitialDelay: 2000, keepAliveInterval: 1500, tcpUserTimeout: 20_000 },
      {},
    );
    assert.equal(cfg.keepAliveInterval, 1500);
    assert.equal(cfg.tcpUserTimeout, 20_000);
    assert.deepEqual(cfg.warnings, []);
  });
});
