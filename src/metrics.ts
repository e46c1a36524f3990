/**
 * The pool's statistics as Prometheus metrics, with no dependency: {@link metricsText} renders the
 * text exposition format 0.0.4 that any Prometheus scrapes, and {@link registerPromClient} hands
 * the same families to a prom-client `Registry` for apps that already serve one. prom-client is
 * never imported: the registry is duck-typed.
 *
 * Naming follows https://prometheus.io/docs/practices/naming/: one `mysql2_keepalive_pool_`
 * prefix, base units (`_seconds`), `_total` on counters, a `pool` label on every sample.
 */
import { PoolError } from './errors.js';
import type { PoolStats } from './stats.js';

/** The `Content-Type` to serve {@link metricsText} with. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Prefix of every metric name. */
export const METRIC_PREFIX = 'mysql2_keepalive_pool_';

/** What the metrics are read from: a pool, or anything with a name and `stats()`. */
export interface MetricsSource {
  readonly name: string;
  /** Labels added to every sample of this source (a cluster adds `node`). */
  readonly labels?: Readonly<Record<string, string>>;
  stats(): PoolStats;
}

/** One sample of a {@link MetricFamily}. */
export interface MetricSample {
  labels: Record<string, string>;
  value: number;
}

/** A metric family: a name, its HELP text, its TYPE and its samples. */
export interface MetricFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples: MetricSample[];
}

type Counter = Exclude<
  {
    [K in keyof PoolStats]: PoolStats[K] extends number ? K : never;
  }[keyof PoolStats],
  undefined
>;

/** Plain counters of {@link PoolStats}, in exposition order. */
const COUNTERS: ReadonlyArray<{ key: Counter; name: string; help: string }> = [
  { key: 'created', name: 'connections_created_total', help: 'Connections opened.' },
  {
    key: 'destroyed',
    name: 'connections_destroyed_total',
    help: 'Connections closed, for any reason.',
  },
  { key: 'createErrors', name: 'connect_errors_total', help: 'Failed connection attempts.' },
  { key: 'acquires', name: 'acquires_total', help: 'Connections handed to callers.' },
  {
    key: 'acquireTimeouts',
    name: 'acquire_timeouts_total',
    help: 'getConnection calls that failed with POOL_ACQUIRE_TIMEOUT.',
  },
  { key: 'idlePings', name: 'idle_pings_total', help: 'COM_PINGs sent to idle connections.' },
  {
    key: 'validations',
    name: 'validations_total',
    help: 'Checkout validations (pings of connections idle longer than validationSkipWindow).',
  },
  {
    key: 'retries',
    name: 'retries_total',
    help: 'One-shot queries retried because their connection closed before anything was sent.',
  },
  {
    key: 'leaks',
    name: 'leaks_total',
    help: 'Connections held longer than leakDetectionThreshold.',
  },
  { key: 'healthChecks', name: 'health_checks_total', help: 'healthCheck() calls.' },
  {
    key: 'healthCheckFailures',
    name: 'health_check_failures_total',
    help: 'healthCheck() calls that rejected.',
  },
  {
    key: 'hedges',
    name: 'hedges_total',
    help: 'Connections opened because a checkout ping was still unanswered after the hedge delay.',
  },
  {
    key: 'hedgeWins',
    name: 'hedge_wins_total',
    help: 'Callers served by another connection while their checkout ping was still unanswered.',
  },
  {
    key: 'hedgeSurplus',
    name: 'hedge_surplus_closed_total',
    help: 'Healthy connections closed because the pool was above connectionLimit once hedged pings had resolved.',
  },
];

/**
 * The metric families of one or more pools, freshly read from `stats()`. Every sample carries a
 * `pool` label; pool names must differ.
 *
 * @param pools - a pool or several
 * @throws PoolError `INVALID_CONFIG` when two pools share a name (their series would collide)
 */
export function collectMetrics(pools: MetricsSource | readonly MetricsSource[]): MetricFamily[] {
  const list: readonly MetricsSource[] = Array.isArray(pools)
    ? (pools as readonly MetricsSource[])
    : [pools as MetricsSource];
  const seen = new Set<string>();
  for (const p of list) {
    if (seen.has(p.name)) {
      throw new PoolError(
        'INVALID_CONFIG',
        `metrics: two pools are named "${p.name}"; give each pool its own name option`,
        { details: { option: 'name' } },
      );
    }
    seen.add(p.name);
  }
  const snapshots = list.map((p) => ({ pool: p.name, extra: p.labels ?? {}, s: p.stats() }));
  const family = (
    name: string,
    type: MetricFamily['type'],
    help: string,
    samples: (pool: string, s: PoolStats) => Array<[Record<string, string>, number | null]>,
  ): MetricFamily => ({
    name: METRIC_PREFIX + name,
    help,
    type,
    samples: snapshots.flatMap(({ pool, extra, s }) =>
      samples(pool, s)
        .filter((x): x is [Record<string, string>, number] => x[1] !== null)
        .map(([labels, value]) => ({ labels: { pool, ...extra, ...labels }, value })),
    ),
  });
  const seconds = (ms: number | null | undefined): number | null =>
    ms === null || ms === undefined ? null : ms / 1000;

  return [
    family(
      'connections',
      'gauge',
      'Connections by state: idle, borrowed by a caller, being validated for a caller, or being opened. Their sum counts toward connectionLimit.',
      (_pool, s) => [
        [{ state: 'idle' }, s.idle],
        [{ state: 'borrowed' }, s.borrowed],
        [{ state: 'validating' }, Math.max(0, s.total - s.idle - s.borrowed)],
        [{ state: 'connecting' }, s.pending],
      ],
    ),
    family(
      'connections_max',
      'gauge',
      'connectionLimit: the most connections the pool opens.',
      (_pool, s) => [[{}, s.max]],
    ),
    family(
      'waiting_callers',
      'gauge',
      'getConnection calls waiting for a connection.',
      (_pool, s) => [[{}, s.waiting]],
    ),
    ...COUNTERS.map((c) => family(c.name, 'counter', c.help, (_pool, s) => [[{}, s[c.key]]])),
    family(
      'dead_connections_total',
      'counter',
      'Connections found dead, by how: checkout or idle ping timeout/error, socket end/error while idle, or suspect (idle as long as one found dead).',
      (_pool, s) =>
        Object.entries(s.dead).map(([reason, n]): [Record<string, string>, number] => [
          { reason },
          n,
        ]),
    ),
    family(
      'dead_idle_min_seconds',
      'gauge',
      'Smallest idle age at which a connection was found dead: the best evidence of the idle timeout of a middlebox on the path. Absent until one is found.',
      (_pool, s) => [[{}, seconds(s.deadIdleMsMin)]],
    ),
    family(
      'dead_idle_last_seconds',
      'gauge',
      'Idle age of the connection most recently found dead. Absent until one is found.',
      (_pool, s) => [[{}, seconds(s.deadIdleMsRecent[s.deadIdleMsRecent.length - 1])]],
    ),
    family(
      'hedge_delay_seconds',
      'gauge',
      'How long a checkout ping may go unanswered before a fresh connection is opened in parallel (from the path round trip). Absent with hedgeCheckout off.',
      (_pool, s) => [[{}, seconds(s.hedgeDelayMs)]],
    ),
    family(
      'path_rtt_seconds',
      'gauge',
      'Smoothed round trip to the server as the pool has seen it (answered pings; connects / 1.5 before the first). Absent before any.',
      (_pool, s) => [[{}, seconds(s.pathRttMs)]],
    ),
    family(
      'path_timeout_bound_seconds',
      'gauge',
      "Learned upper bound of the path's idle timeout (from connections found dead after idling). Absent until learned.",
      (_pool, s) => [[{}, seconds(s.pathTimeout.boundMs)]],
    ),
    family(
      'keepalive_idle_seconds',
      'gauge',
      'TCP_KEEPIDLE the pool gives its sockets now (the configured value, or lower once a path timeout was learned). Absent with keepalive off.',
      (_pool, s) => [[{}, seconds(s.pathTimeout.keepAliveIdleMs)]],
    ),
    family(
      'idle_ping_interval_seconds',
      'gauge',
      'Idle-ping period now (the configured value, or lower once a path timeout was learned). Absent with idle pings off.',
      (_pool, s) => [[{}, seconds(s.pathTimeout.idlePingIntervalMs)]],
    ),
  ];
}

/**
 * The pools' statistics in the Prometheus text exposition format 0.0.4 (serve it with
 * {@link PROMETHEUS_CONTENT_TYPE}). HELP and TYPE come once per family, samples of every pool
 * below them.
 *
 * @example
 * ```ts
 * http.createServer((req, res) => {
 *   res.setHeader('Content-Type', PROMETHEUS_CONTENT_TYPE);
 *   res.end(metricsText([ordersPool, reportsPool]));
 * });
 * ```
 * @param pools - a pool or several (each with a distinct `name`)
 */
export function metricsText(pools: MetricsSource | readonly MetricsSource[]): string {
  const lines: string[] = [];
  for (const f of collectMetrics(pools)) {
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`);
    lines.push(`# TYPE ${f.name} ${f.type}`);
    for (const sample of f.samples) {
      lines.push(`${f.name}${formatLabels(sample.labels)} ${formatValue(sample.value)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The part of prom-client's `Registry` that {@link registerPromClient} uses. */
export interface PromClientRegistryLike {
  registerMetric(metric: unknown): void;
}

/**
 * Registers the pools' metric families on a prom-client `Registry` (prom-client stays your
 * dependency, not ours). Values are read at each scrape. Register each pool once, all pools in
 * one call: prom-client refuses a second metric of the same name.
 *
 * @example
 * ```ts
 * import { register } from 'prom-client';
 * registerPromClient(register, [pool]);
 * ```
 */
export function registerPromClient(
  registry: PromClientRegistryLike,
  pools: MetricsSource | readonly MetricsSource[],
): void {
  for (const f of collectMetrics(pools)) {
    const name = f.name;
    registry.registerMetric({
      name,
      help: f.help,
      type: f.type,
      aggregator: 'sum',
      get: () => {
        const fresh = collectMetrics(pools).find((x) => x.name === name);
        return {
          name,
          help: f.help,
          type: f.type,
          aggregator: 'sum',
          values: (fresh?.samples ?? []).map((x) => ({ labels: x.labels, value: x.value })),
        };
      },
      reset: () => {},
    });
  }
}

/** Label values: backslash, double quote and line feed are escaped (exposition format 0.0.4). */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text: backslash and line feed are escaped. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatLabels(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
