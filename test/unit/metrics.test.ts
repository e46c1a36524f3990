/**
 * The Prometheus exposition (src/metrics.ts) from stub stats: names, types, units, label escaping,
 * several pools, and the prom-client bridge against a real prom-client Registry.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import {
  collectMetrics,
  escapeLabelValue,
  metricsText,
  PROMETHEUS_CONTENT_TYPE,
  registerPromClient,
} from '../../src/metrics.js';
import type { MetricsSource } from '../../src/metrics.js';
import { PoolError } from '../../src/errors.js';
import type { PoolStats } from '../../src/stats.js';
import type { DeadReason } from '../../src/health.js';

const REASONS: DeadReason[] = [
  'checkout-ping-timeout',
  'checkout-ping-error',
  'idle-ping-timeout',
  'idle-ping-error',
  'socket-end',
  'socket-error',
  'suspect',
];

function stats(over: Partial<PoolStats> = {}): PoolStats {
  const base: PoolStats = {
    total: 5,
    active: 2,
    idle: 2,
    waiting: 3,
    pending: 1,
    size: 5,
    borrowed: 2,
    max: 10,
    created: 40,
    destroyed: 35,
    createErrors: 4,
    acquires: 1000,
    acquireTimeouts: 6,
    idlePings: 70,
    validations: 80,
    retries: 9,
    leaks: 11,
    healthChecks: 12,
    healthCheckFailures: 13,
    dead: Object.fromEntries(REASONS.map((r, i) => [r, i + 1])) as Record<DeadReason, number>,
    deadIdleMsRecent: [905_000, 901_500],
    deadIdleMsMin: 900_250,
    deadIdleMsByReason: Object.fromEntries(
      REASONS.map((r) => [r, { recent: [], min: null }]),
    ) as unknown as PoolStats['deadIdleMsByReason'],
    hedges: 14,
    hedgeWins: 15,
    hedgeSurplus: 16,
    hedgeDelayMs: 20,
    pathRttMs: 0.5,
    pathTimeout: {
      enabled: true,
      boundMs: 6000,
      keepAliveIdleMs: 2000,
      keepAliveIntervalMs: 2000,
      idlePingIntervalMs: 2000,
      evidence: 3,
    },
  };
  return { ...base, ...over };
}

const source = (name: string, s: PoolStats = stats()): MetricsSource => ({ name, stats: () => s });

/** Every non-comment line: `name{labels} value`, with valid names and escaped label values. */
const SAMPLE_RE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/;

test('metricsText: HELP and TYPE once per family, then samples that parse', () => {
  const text = metricsText(source('orders'));
  assert.ok(text.endsWith('\n'), 'the exposition ends with a line feed');
  const lines = text.trimEnd().split('\n');
  const types = new Map<string, string>();
  const helps = new Set<string>();
  for (const line of lines) {
    if (line.startsWith('# HELP ')) {
      const name = line.split(' ')[2]!;
      assert.ok(!helps.has(name), `one HELP for ${name}`);
      helps.add(name);
    } else if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      assert.ok(!types.has(name!), `one TYPE for ${name}`);
      assert.match(type!, /^(counter|gauge)$/);
      types.set(name!, type!);
    } else {
      const m = SAMPLE_RE.exec(line);
      assert.ok(m, `sample line parses: ${line}`);
      assert.ok(types.has(m[1]!), `sample ${m[1]} follows its TYPE line`);
    }
  }
  for (const [name, type] of types) {
    assert.ok(name.startsWith('mysql2_keepalive_pool_'), name);
    assert.equal(name.endsWith('_total'), type === 'counter', `${name}: _total iff counter`);
  }
});

test('metricsText: the values of stats(), in base units, with a pool label', () => {
  const text = metricsText(source('orders'));
  const has = (line: string): void => assert.ok(text.includes(`${line}\n`), `missing: ${line}`);
  has('mysql2_keepalive_pool_connections{pool="orders",state="idle"} 2');
  has('mysql2_keepalive_pool_connections{pool="orders",state="borrowed"} 2');
  has('mysql2_keepalive_pool_connections{pool="orders",state="validating"} 1');
  has('mysql2_keepalive_pool_connections{pool="orders",state="connecting"} 1');
  has('mysql2_keepalive_pool_connections_max{pool="orders"} 10');
  has('mysql2_keepalive_pool_waiting_callers{pool="orders"} 3');
  has('mysql2_keepalive_pool_connections_created_total{pool="orders"} 40');
  has('mysql2_keepalive_pool_connections_destroyed_total{pool="orders"} 35');
  has('mysql2_keepalive_pool_connect_errors_total{pool="orders"} 4');
  has('mysql2_keepalive_pool_acquires_total{pool="orders"} 1000');
  has('mysql2_keepalive_pool_acquire_timeouts_total{pool="orders"} 6');
  has('mysql2_keepalive_pool_idle_pings_total{pool="orders"} 70');
  has('mysql2_keepalive_pool_validations_total{pool="orders"} 80');
  has('mysql2_keepalive_pool_retries_total{pool="orders"} 9');
  has('mysql2_keepalive_pool_leaks_total{pool="orders"} 11');
  has('mysql2_keepalive_pool_health_checks_total{pool="orders"} 12');
  has('mysql2_keepalive_pool_health_check_failures_total{pool="orders"} 13');
  REASONS.forEach((reason, i) =>
    has(`mysql2_keepalive_pool_dead_connections_total{pool="orders",reason="${reason}"} ${i + 1}`),
  );
  has('mysql2_keepalive_pool_dead_idle_min_seconds{pool="orders"} 900.25');
  has('mysql2_keepalive_pool_dead_idle_last_seconds{pool="orders"} 901.5');
  has('mysql2_keepalive_pool_hedges_total{pool="orders"} 14');
  has('mysql2_keepalive_pool_hedge_wins_total{pool="orders"} 15');
  has('mysql2_keepalive_pool_hedge_surplus_closed_total{pool="orders"} 16');
  has('mysql2_keepalive_pool_hedge_delay_seconds{pool="orders"} 0.02');
  has('mysql2_keepalive_pool_path_rtt_seconds{pool="orders"} 0.0005');
  has('mysql2_keepalive_pool_path_timeout_bound_seconds{pool="orders"} 6');
  has('mysql2_keepalive_pool_keepalive_idle_seconds{pool="orders"} 2');
  has('mysql2_keepalive_pool_idle_ping_interval_seconds{pool="orders"} 2');
});

test('metricsText: nothing learned and hedging off mean no such samples (not a fake 0)', () => {
  const text = metricsText(
    source(
      'fresh',
      stats({
        hedgeDelayMs: null,
        pathRttMs: null,
        pathTimeout: {
          enabled: false,
          boundMs: null,
          keepAliveIdleMs: null,
          keepAliveIntervalMs: null,
          idlePingIntervalMs: null,
          evidence: 0,
        },
      }),
    ),
  );
  assert.match(text, /# TYPE mysql2_keepalive_pool_path_timeout_bound_seconds gauge\n/);
  assert.doesNotMatch(
    text,
    /^mysql2_keepalive_pool_(path_timeout_bound|hedge_delay|path_rtt|keepalive_idle|idle_ping_interval)_seconds\{/m,
  );
});

test('metricsText: no dead connection yet means no idle-age sample (not a fake 0)', () => {
  const text = metricsText(source('fresh', stats({ deadIdleMsMin: null, deadIdleMsRecent: [] })));
  assert.match(text, /# TYPE mysql2_keepalive_pool_dead_idle_min_seconds gauge\n/);
  assert.doesNotMatch(text, /^mysql2_keepalive_pool_dead_idle_(min|last)_seconds\{/m);
});

test('metricsText: several pools share HELP/TYPE lines, each sample carries its pool', () => {
  const text = metricsText([source('orders'), source('reports', stats({ created: 7 }))]);
  assert.equal(text.match(/^# TYPE mysql2_keepalive_pool_connections_created_total /gm)?.length, 1);
  assert.match(text, /^mysql2_keepalive_pool_connections_created_total\{pool="orders"\} 40$/m);
  assert.match(text, /^mysql2_keepalive_pool_connections_created_total\{pool="reports"\} 7$/m);
});

test('metricsText: label values are escaped (backslash, quote, line feed)', () => {
  assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  const text = metricsText(source('we"ird\\name\nx'));
  assert.ok(text.includes('{pool="we\\"ird\\\\name\\nx"}'));
  for (const line of text.trimEnd().split('\n')) {
    if (!line.startsWith('#')) assert.match(line, SAMPLE_RE);
  }
});

test('metricsText: two pools with one name are refused with a code', () => {
  assert.throws(
    () => metricsText([source('same'), source('same')]),
    (e: unknown) =>
      e instanceof PoolError && e.code === 'INVALID_CONFIG' && /"same"/.test(e.message),
  );
});

test('PROMETHEUS_CONTENT_TYPE is the 0.0.4 text format', () => {
  assert.equal(PROMETHEUS_CONTENT_TYPE, 'text/plain; version=0.0.4; charset=utf-8');
});

test('registerPromClient: a real prom-client Registry serves the same samples, read at scrape', async () => {
  const registry = new Registry();
  let created = 40;
  const live: MetricsSource = { name: 'orders', stats: () => stats({ created }) };
  registerPromClient(registry, live);
  created = 41;
  const served = await registry.metrics();
  assert.match(served, /^mysql2_keepalive_pool_connections_created_total\{pool="orders"\} 41$/m);
  assert.match(served, /^# TYPE mysql2_keepalive_pool_dead_connections_total counter$/m);
  // Same families, same samples as our own exposition (prom-client may order lines alike).
  const ours = metricsText(live)
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .sort();
  const theirs = served
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .sort();
  assert.deepEqual(theirs, ours);
  assert.equal(
    collectMetrics(live).length,
    registry.getMetricsAsArray().length,
    'one registered metric per family',
  );
});
