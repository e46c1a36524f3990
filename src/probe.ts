/**
 * `mysql2-keepalive-pool probe`: measures the idle timeout of the network path to the database,
 * the number no dashboard shows. Several connections with TCP keepalive OFF sit idle for
 * increasing durations, all at once; each is then pinged. The longest idle that survived and the
 * shortest that died bracket the timeout of whatever middlebox (IPVS, NAT, load balancer) forgets
 * idle flows, and give the keepalive delay to use.
 *
 * Each probe connection raises its session `wait_timeout` above the longest duration, so the
 * server's own idle timeout cannot be mistaken for the path's.
 */
import mysql from 'mysql2';
import type { ConnectionOptions, PoolConnection } from 'mysql2';
import createDebug from 'debug';
import { connectionOptions, envName } from './config.js';
import type { ResolvedConfig } from './config.js';
import { watchEventLoop } from './event-loop.js';
import type { EventLoopBlock } from './event-loop.js';
import { applySocketSettings, closeConnection, pingWithTimeout } from './health.js';

const debug = createDebug('mysql2-keepalive-pool:cli');

/** Default durations (s): 60 s to 30 min, bracketing Azure LB (240 s), AWS NLB/NAT (350 s),
 * IPVS (900 s) and GCP Cloud NAT (1200 s). */
export const DEFAULT_PROBE_DURATIONS_SEC: readonly number[] = [
  60, 120, 230, 250, 340, 360, 600, 890, 910, 1190, 1210, 1800,
];
/** The library's default keepalive delay: the recommendation never goes above it. */
const DEFAULT_DELAY_MS = 60_000;

/** What happened to one probe connection. */
export interface ProbeOutcome {
  /** How long it sat idle before the ping, s. */
  idleSec: number;
  alive: boolean;
  /** `ping-ok`, `ping-timeout` (black hole), `ping-error` (e.g. ECONNRESET), `closed-while-idle`
   * (the socket ended or failed before its time), `connect-error`. */
  how: 'ping-ok' | 'ping-timeout' | 'ping-error' | 'closed-while-idle' | 'connect-error';
  /** Error code or message, when it died. */
  error?: string;
  /** For `closed-while-idle`: after how long, s. */
  closedAfterSec?: number;
}

/** The result of a probe; `--json` prints exactly this. */
export interface ProbeReport {
  exitCode: 0 | 1 | 2;
  pool: string;
  target: string;
  durationsSec: number[];
  pingTimeoutMs: number;
  outcomes: ProbeOutcome[];
  /** A connection with the configured keepalive, idle for the longest duration (null when
   * keepalive is off or the control was not asked for). */
  control: (ProbeOutcome & { keepAliveInitialDelayMs: number }) | null;
  longestSurvivedSec: number | null;
  shortestDiedSec: number | null;
  /** The keepalive delay to use on this path, ms. */
  recommendedKeepAliveInitialDelayMs: number;
  configuredKeepAliveInitialDelayMs: number;
  enableKeepAlive: boolean;
  /** One sentence: what was found and what to do. */
  verdict: string;
  error: { code: string | null; message: string } | null;
  /** How long the event loop was blocked at most while the probe ran. */
  eventLoop: EventLoopBlock;
}

/** Options of {@link runProbe}. */
export interface ProbeOptions {
  durationsSec: readonly number[];
  /** Ping deadline after the idle period, ms; a black-holed flow never answers. */
  pingTimeoutMs: number;
  /** Also hold one connection with the configured keepalive for the longest duration. */
  control: boolean;
  /** Progress lines (the CLI writes them to stderr). */
  onProgress?: (line: string) => void;
}

/** `--min/--max/--steps`: a geometric series from min to max, deduplicated. */
export function geometricDurations(minSec: number, maxSec: number, steps: number): number[] {
  if (steps <= 1 || maxSec <= minSec) return [minSec];
  const ratio = (maxSec / minSec) ** (1 / (steps - 1));
  const out = new Set<number>();
  for (let i = 0; i < steps; i++) {
    const d = minSec * ratio ** i;
    // Whole seconds, tenths below 10 s (short durations are for test rigs).
    out.add(d >= 10 ? Math.round(d) : Math.round(d * 10) / 10);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * What the outcomes say: the bracket of the path's idle timeout, the keepalive delay to use (half
 * the longest idle that survived, whole seconds, at least 1 s, at most the library's 60 s), and
 * whether the configured keepalive beats the timeout. Pure.
 */
export function summarize(
  outcomes: readonly ProbeOutcome[],
  control: ProbeReport['control'],
  cfg: Pick<ResolvedConfig, 'enableKeepAlive' | 'keepAliveInitialDelay' | 'keepAliveInterval'>,
): Pick<
  ProbeReport,
  | 'longestSurvivedSec'
  | 'shortestDiedSec'
  | 'recommendedKeepAliveInitialDelayMs'
  | 'verdict'
  | 'exitCode'
> {
  const measured = outcomes.filter((o) => o.how !== 'connect-error');
  const survived = measured.filter((o) => o.alive).map((o) => o.idleSec);
  const died = measured.filter((o) => !o.alive).map((o) => o.idleSec);
  const longestSurvivedSec = survived.length > 0 ? Math.max(...survived) : null;
  const shortestDiedSec = died.length > 0 ? Math.min(...died) : null;
  const bound = longestSurvivedSec ?? (shortestDiedSec !== null ? shortestDiedSec / 2 : null);
  const recommended =
    shortestDiedSec === null || bound === null
      ? DEFAULT_DELAY_MS
      : Math.min(DEFAULT_DELAY_MS, Math.max(1000, Math.floor(bound / 2) * 1000));
  // After the first probe, Linux sends the next one keepAliveInterval later even when the first
  // was answered: the interval must fit under the timeout too.
  const delayVar =
    `${envName('keepAliveInitialDelay')}=${recommended}` +
    (cfg.keepAliveInterval > recommended
      ? ` and ${envName('keepAliveInterval')}=${recommended}`
      : '');
  const gapMs = Math.max(cfg.keepAliveInitialDelay, cfg.keepAliveInterval);
  let verdict: string;
  let risky = false;
  if (shortestDiedSec === null) {
    const max = longestSurvivedSec ?? 0;
    verdict = `no idle timeout up to ${max} s on this path; keep keepalive on below the timeouts of the middleboxes you may meet (${delayVar}).`;
  } else {
    const bracket =
      longestSurvivedSec === null || longestSurvivedSec > shortestDiedSec
        ? `at or below ${shortestDiedSec} s (nothing shorter survived; probe shorter durations)`
        : `between ${longestSurvivedSec} s and ${shortestDiedSec} s`;
    verdict = `the path forgets idle connections after a time ${bracket}; use ${delayVar}.`;
    const safeSec = longestSurvivedSec ?? 0;
    risky = !cfg.enableKeepAlive || gapMs / 1000 > safeSec;
    if (risky) {
      verdict += cfg.enableKeepAlive
        ? ` The configured keepalive (keepAliveInitialDelay ${cfg.keepAliveInitialDelay} ms, keepAliveInterval ${cfg.keepAliveInterval} ms) leaves longer silences than that.`
        : ' TCP keepalive is off in the configuration.';
    }
  }
  if (control && !control.alive) {
    risky = true;
    verdict += ` A connection with the configured keepalive died after ${control.idleSec} s idle.`;
  }
  return {
    longestSurvivedSec,
    shortestDiedSec,
    recommendedKeepAliveInitialDelayMs: recommended,
    verdict,
    exitCode: risky ? 1 : 0,
  };
}

/**
 * Runs the probe with the resolved configuration (the same `MYSQL_*` variables and `MYSQL_URL`
 * as the library). Takes as long as the longest duration plus the ping timeout. Never throws:
 * when not even one connection can be opened, `exitCode` is 2 and `error` says why.
 */
export async function runProbe(cfg: ResolvedConfig, opts: ProbeOptions): Promise<ProbeReport> {
  const loop = watchEventLoop();
  const durations = [...opts.durationsSec].sort((a, b) => a - b);
  const maxSec = durations[durations.length - 1] ?? 0;
  const conn = cfg.connection as { socketPath?: string; host?: string; port?: number };
  const target =
    conn.socketPath !== undefined
      ? conn.socketPath
      : `${conn.host ?? 'localhost'}:${conn.port ?? 3306}`;
  // The session may stay idle this long without the server closing it.
  const waitTimeoutSec = Math.min(31_536_000, Math.max(28_800, Math.ceil(maxSec) + 600));
  const progress = opts.onProgress ?? ((): void => {});
  progress(
    `probe: ${durations.length} connection(s) to ${target} idle with keepalive off for ${durations.join(', ')} s, all at once; done in about ${maxSec} s`,
  );
  debug('%s: probe of %s, durations %o', cfg.name, target, durations);

  const one = async (idleSec: number, keepalive: boolean): Promise<ProbeOutcome> => {
    const options: ConnectionOptions = { ...connectionOptions(cfg), enableKeepAlive: keepalive };
    const c = mysql.createConnection(options);
    let closedAt: number | null = null;
    let closeError: string | undefined;
    c.on('error', (err: NodeJS.ErrnoException) => {
      closedAt ??= Date.now();
      closeError ??= err.code ?? err.message;
    });
    c.on('end', () => {
      closedAt ??= Date.now();
    });
    try {
      await new Promise<void>((resolve, reject) =>
        c.query(`SET SESSION wait_timeout = ${waitTimeoutSec}`, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
    } catch (err) {
      closeConnection(c as unknown as PoolConnection, false, 0);
      return { idleSec, alive: false, how: 'connect-error', error: describeError(err) };
    }
    if (keepalive) {
      applySocketSettings(c as unknown as PoolConnection, {
        enableKeepAlive: true,
        keepAliveInitialDelay: cfg.keepAliveInitialDelay,
        keepAliveInterval: cfg.keepAliveInterval,
        keepAliveCount: cfg.keepAliveCount,
        tcpUserTimeout: 0,
        name: cfg.name,
      });
    }
    const idleFrom = Date.now();
    // Not unref'd: waiting is the command's whole job (Ctrl-C ends it, and the process with it).
    await new Promise<void>((resolve) => setTimeout(resolve, idleSec * 1000));
    let outcome: ProbeOutcome;
    if (closedAt !== null) {
      outcome = {
        idleSec,
        alive: false,
        how: 'closed-while-idle',
        closedAfterSec: Math.round((closedAt - idleFrom) / 100) / 10,
        ...(closeError ? { error: closeError } : {}),
      };
    } else {
      const ping = await pingWithTimeout(c as unknown as PoolConnection, opts.pingTimeoutMs);
      if (ping.ok) outcome = { idleSec, alive: true, how: 'ping-ok' };
      else if (ping.timedOut) outcome = { idleSec, alive: false, how: 'ping-timeout' };
      else {
        const e = ping.error as NodeJS.ErrnoException | undefined;
        outcome = {
          idleSec,
          alive: false,
          how: 'ping-error',
          error: e?.code ?? e?.message ?? 'unknown',
        };
      }
    }
    // A hard close: a polite end() into a black hole would linger and keep the process alive.
    closeConnection(c as unknown as PoolConnection, false, 0);
    progress(
      `  ${keepalive ? 'control ' : ''}${idleSec} s idle: ${outcome.alive ? 'alive' : `dead (${outcome.how}${outcome.error ? ` ${outcome.error}` : ''})`}`,
    );
    return outcome;
  };

  const withControl = opts.control && cfg.enableKeepAlive;
  const [outcomes, controlOutcome] = await Promise.all([
    Promise.all(durations.map((d) => one(d, false))),
    withControl ? one(maxSec, true) : Promise.resolve(null),
  ]);
  const control = controlOutcome
    ? { ...controlOutcome, keepAliveInitialDelayMs: cfg.keepAliveInitialDelay }
    : null;
  const base = {
    pool: cfg.name,
    target,
    durationsSec: durations,
    pingTimeoutMs: opts.pingTimeoutMs,
    outcomes,
    control,
    configuredKeepAliveInitialDelayMs: cfg.keepAliveInitialDelay,
    enableKeepAlive: cfg.enableKeepAlive,
  };
  if (outcomes.every((o) => o.how === 'connect-error')) {
    const first = outcomes[0];
    return {
      ...base,
      exitCode: 2,
      longestSurvivedSec: null,
      shortestDiedSec: null,
      recommendedKeepAliveInitialDelayMs: DEFAULT_DELAY_MS,
      verdict: `cannot connect to ${target}: ${first?.error ?? 'no durations given'}`,
      error: {
        code: first?.error?.split(':')[0] ?? null,
        message: `cannot connect to ${target}: ${first?.error ?? 'no durations given'}`,
      },
      eventLoop: loop.stop(),
    };
  }
  return { ...base, ...summarize(outcomes, control, cfg), error: null, eventLoop: loop.stop() };
}

/** `CODE: message` of a connection error (mysql2 puts the errno name in `code`). */
function describeError(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  const message = e?.message ?? String(err);
  return e?.code && !message.startsWith(e.code) ? `${e.code}: ${message}` : message;
}
