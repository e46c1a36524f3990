/**
 * Turns scenario results into the demo's table rows and its closing paragraph. Pure functions:
 * no I/O, so the wording can be checked without a database.
 */
import type { QueryOutcome, ScenarioResult } from '../../test/support/scenarios/idle-then-query.js';

export type Mode = 'drop' | 'rst';

/** One pool under test. */
export interface Client {
  /** Stable key used by the conclusion. */
  id: 'mysql2' | 'pool' | 'pool-keepalive';
  label: string;
  /** `mysql2` or a module path relative to the repo root. */
  module: string;
  options: Record<string, unknown>;
}

export interface Row {
  mode: Mode;
  client: Client;
  res: ScenarioResult;
}

export interface Cells {
  mode: string;
  client: string;
  verdict: 'PASS' | 'FAIL';
  got: string;
  latency: string;
  connections: string;
}

/** Every caller got an answer. */
export function passed(res: ScenarioResult): boolean {
  return res.results.length > 0 && res.results.every((r) => r.ok);
}

function range(values: number[]): string {
  const min = Math.min(...values);
  const max = Math.max(...values);
  return min === max ? `${min} ms` : `${min}–${max} ms`;
}

/** "4 × answer", "3 × no answer, 1 × error ECONNRESET" … */
function outcomes(results: QueryOutcome[], capMs: number): string {
  const groups = new Map<string, number>();
  for (const r of results) {
    const key = r.ok
      ? 'answer'
      : r.hung
        ? `hung (no answer in ${capMs / 1000} s)`
        : `error ${r.errorCode ?? r.errorMessage ?? 'unknown'}`;
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  return [...groups].map(([k, n]) => `${n} × ${k}`).join(', ');
}

interface DeadCounts {
  dead?: Record<string, number>;
}

function connections(row: Row): string {
  const { res } = row;
  const ok = res.results.filter((r) => r.ok);
  if (ok.length < res.results.length) {
    return row.client.id === 'mysql2' ? 'stale, handed out unchecked' : 'stale';
  }
  const reused = ok.filter((r) => r.reused === true).length;
  const parts: string[] = [];
  if (reused === ok.length) parts.push('warm-up ones, kept alive');
  else if (reused > 0) parts.push(`${reused} warm-up, ${ok.length - reused} new`);
  else parts.push('new');
  const dead = (res.stats as DeadCounts | undefined)?.dead;
  if (dead) {
    const byPing = (dead['checkout-ping-timeout'] ?? 0) + (dead['checkout-ping-error'] ?? 0);
    const suspects = dead.suspect ?? 0;
    if (byPing > 0) parts.push(`${byPing} stale caught by ping`);
    if (suspects > 0) parts.push(`${suspects} more retired as suspects`);
  }
  return parts.join('; ');
}

export function cells(row: Row): Cells {
  const { res } = row;
  const ok = res.results.filter((r) => r.ok);
  const latency =
    ok.length === res.results.length
      ? range(ok.map((r) => r.ms))
      : res.results.some((r) => r.hung)
        ? `> ${res.capMs} ms`
        : range(res.results.map((r) => r.ms));
  return {
    mode: row.mode,
    client: row.client.label,
    verdict: passed(res) ? 'PASS' : 'FAIL',
    got: outcomes(res.results, res.capMs),
    latency,
    connections: connections(row),
  };
}

/** The rows as an aligned plain-text table (no colours: it must read the same in a CI log). */
export function table(rows: Row[]): string {
  const head: Record<keyof Cells, string> = {
    mode: 'mode',
    client: 'pool',
    verdict: 'result',
    got: 'what the callers got',
    latency: 'latency',
    connections: 'connections',
  };
  const body = rows.map(cells);
  const keys = Object.keys(head) as (keyof Cells)[];
  const width = (k: keyof Cells): number =>
    Math.max(head[k].length, ...body.map((c) => String(c[k]).length));
  const line = (c: Record<keyof Cells, string>): string =>
    keys
      .map((k) => c[k].padEnd(width(k)))
      .join('  ')
      .trimEnd();
  const out = [line(head), keys.map((k) => '-'.repeat(width(k))).join('  ')];
  body.forEach((c, i) => {
    if (i > 0 && c.mode !== body[i - 1]!.mode) out.push('');
    out.push(line(c));
  });
  return out.map((l) => (l ? `  ${l}` : l)).join('\n');
}

function latencies(row: Row | undefined): string {
  return row ? range(row.res.results.map((r) => r.ms)) : '?';
}

/**
 * One paragraph. When the run showed what the demo is meant to show, it explains why; otherwise
 * it says plainly what differed, without pretending.
 */
export function conclusion(rows: Row[], kernel: boolean, idleTimeoutSec: number): string {
  const find = (mode: Mode, id: Client['id']): Row | undefined =>
    rows.find((r) => r.mode === mode && r.client.id === id);
  const surprises: string[] = [];
  for (const mode of ['drop', 'rst'] as Mode[]) {
    const m = find(mode, 'mysql2');
    if (m && passed(m.res)) {
      surprises.push(
        `plain mysql2 got answers in ${mode} mode, so the middlebox did not forget its flows`,
      );
    }
    for (const r of rows.filter((x) => x.mode === mode && x.client.id !== 'mysql2')) {
      if (!passed(r.res)) surprises.push(`${r.client.label} failed in ${mode} mode`);
    }
  }
  if (surprises.length > 0) {
    return `Unexpected result: ${surprises.join('; ')}. The table above is what really happened; run again, or with DEBUG=mysql2-keepalive-pool:* for the pool's own account.`;
  }
  const defDrop = find('drop', 'pool');
  const defRst = find('rst', 'pool');
  const parts = [
    'Plain mysql2 hands out its most recently used idle connection without checking it. The middlebox had forgotten those flows, so its callers hung in drop mode (in production for ~15 minutes, until the kernel stops retransmitting) and got ECONNRESET in rst mode.',
    `This pool pings a connection idle for more than 500 ms before handing it out, bounded by validationTimeout (1 s); a ping still unanswered after a few round trips (the hedge delay) makes it open a fresh connection in parallel, and the caller takes whichever is ready first; a stale one is thrown away, with every connection idle as long. Its callers saw only extra latency: ${latencies(defDrop)} in drop mode (the hedge delay and a new connection), ${latencies(defRst)} in rst mode (the reset comes back at once).`,
  ];
  const ka = find('drop', 'pool-keepalive');
  if (kernel && ka) {
    parts.push(
      `Keepalive probes more frequent than the middlebox timeout keep the flows from being forgotten at all, so the warm-up connections answered ("${ka.client.label}": ${latencies(ka)}). The pool's defaults (first probe after 60 s, idle pings every 120 s) are sized for real middleboxes, which forget flows after 240 s (Azure LB), 350 s (AWS NLB/NAT) or 900 s (IPVS); against this ${idleTimeoutSec} s one, the "${defDrop?.client.label ?? 'defaults'}" rows show the last line of defence (validation) and the "${ka.client.label}" rows the first (keepalive), scaled down.`,
    );
  } else {
    parts.push(
      "This stand-in cannot show keepalive: keepalive probes carry no data and the proxy's own kernel answers them, so only validation is shown. Run the demo as root on Linux with ip, iptables and conntrack to see keepalive keep the flows alive through the kernel's conntrack.",
    );
  }
  return parts.join(' ');
}
