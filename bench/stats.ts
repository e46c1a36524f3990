/** Small order statistics for the bench. Everything here is pure and allocation-light. */

/** Summary of repeated measurements: the median is the figure, min/max show the spread. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  /** Every value, in measurement order. */
  values: number[];
}

/** Nearest-rank quantile (q in 0..1) of an ascending-sorted array; NaN when empty. */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** The median (mean of the middle pair for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function spread(values: readonly number[]): Spread {
  return {
    median: median(values),
    min: values.length ? Math.min(...values) : Number.NaN,
    max: values.length ? Math.max(...values) : Number.NaN,
    values: [...values],
  };
}

/** p50/p99/max of latency samples (ms in, µs out: checkouts are sub-millisecond). */
export interface LatencySummary {
  samples: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
}

export function latencySummary(samplesMs: readonly number[]): LatencySummary {
  const s = [...samplesMs].sort((a, b) => a - b);
  const us = (ms: number): number => Math.round(ms * 1000 * 10) / 10;
  return {
    samples: s.length,
    p50Us: us(quantileSorted(s, 0.5)),
    p99Us: us(quantileSorted(s, 0.99)),
    maxUs: us(s.length ? s[s.length - 1]! : Number.NaN),
  };
}

/** Rounds to `digits` decimals (JSON and tables stay readable). */
export function round(value: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
