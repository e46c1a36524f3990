/**
 * `mysql2-keepalive-pool doctor`: one screen that says whether this process, with this
 * configuration, on this network, keeps pooled connections alive. It connects once through a real
 * pool (so the socket options are the ones the library sets), reads them back from the kernel, and
 * turns what it sees into one line of advice per risk.
 *
 * The pure part ({@link advise}, {@link formatDoctor}) is separate from the part that talks to the
 * server and the kernel ({@link runDoctor}), so it can be tested without either.
 */
import { readFileSync } from 'node:fs';
import createDebug from 'debug';
import type { PoolConnection } from 'mysql2';
import { describeConfig, effectiveKeepAliveDelay, envName, resolveConfig } from './config.js';
import type { ResolvedConfig } from './config.js';
import { watchEventLoop } from './event-loop.js';
import type { EventLoopBlock } from './event-loop.js';
import { readSocketSettings, socketCapability, tcpSocketOf } from './health.js';
import type { SocketCapability, SocketReadback } from './health.js';
import type { PathTimeoutStats } from './path-timeout.js';
import { KeepalivePool } from './pool.js';

const debug = createDebug('mysql2-keepalive-pool:cli');

/** IPVS's default idle timeout for established TCP flows. */
const IPVS_IDLE_MS = 900_000;
/** Azure Load Balancer's default idle timeout (4 min); AWS NLB/NAT gateway use 350 s. */
const CLOUD_LB_IDLE_MS = 240_000;

/** Exit status of `doctor`: 0 healthy, 1 risky configuration, 2 cannot connect. */
export type DoctorExitCode = 0 | 1 | 2;

/** One line of advice. `risk` lines make `doctor` exit 1; `note` lines are information. */
export interface Advice {
  level: 'risk' | 'note';
  /** Stable identifier of the finding (for `--json` consumers). */
  code: string;
  message: string;
}

/** The kernel's TCP settings of this network namespace, from /proc/sys (absent = unreadable). */
export interface KernelSettings {
  tcpKeepaliveTimeSec?: number;
  tcpKeepaliveIntvlSec?: number;
  tcpKeepaliveProbes?: number;
  tcpRetries2?: number;
  /** Only when conntrack is loaded in this namespace: its idle timeout of established flows. */
  conntrackEstablishedTimeoutSec?: number;
}

/** What the server said about itself. */
export interface ServerInfo {
  version: string;
  waitTimeoutSec: number;
  interactiveTimeoutSec: number;
  threadId: number | null;
  /** Time to get the first connection (TCP + TLS + handshake), ms. */
  connectMs: number;
}

/** The live socket of the pooled connection, as the kernel holds it. */
export interface SocketInfo {
  /** False for a unix socket or a user-supplied stream: no TCP options apply. */
  tcp: boolean;
  local?: string;
  remote?: string;
  readback: SocketReadback;
}

/** The whole `doctor` report; `--json` prints exactly this. */
export interface DoctorReport {
  exitCode: DoctorExitCode;
  pool: string;
  /** Where it connects: `host:port` or the socket path. */
  target: string;
  /** Effective configuration, secrets masked ({@link describeConfig}). */
  config: Record<string, unknown>;
  server: ServerInfo | null;
  socket: SocketInfo | null;
  tcpUserTimeout: SocketCapability;
  kernel: KernelSettings;
  advice: Advice[];
  /** Why it could not connect (exit code 2). */
  error: { code: string | null; message: string } | null;
  /** How long the event loop was blocked at most while doctor ran (connecting included). */
  eventLoop: EventLoopBlock;
  /** What doctor's pool learned about the path (`stats().pathTimeout`), and its round trip and
   * hedge delay (null without a connection). */
  path: {
    rttMs: number | null;
    hedgeDelayMs: number | null;
    pathTimeout: PathTimeoutStats;
  } | null;
}

/** Everything {@link advise} looks at. */
export interface AdviceInput {
  config: Pick<
    ResolvedConfig,
    | 'enableKeepAlive'
    | 'keepAliveInitialDelay'
    | 'keepAliveInterval'
    | 'keepAliveCount'
    | 'tcpUserTimeout'
    | 'idlePingInterval'
    | 'warnings'
  >;
  server: Pick<ServerInfo, 'waitTimeoutSec'> | null;
  socket: SocketInfo | null;
  capability: SocketCapability;
  kernel: KernelSettings;
  /** Process warnings seen while resolving the configuration (unknown `MYSQL_*` variables). */
  processWarnings?: readonly string[];
  /** What a pool learned about the path's idle timeout (`stats().pathTimeout`), if anything. */
  pathTimeout?: Pick<PathTimeoutStats, 'boundMs'> | null;
}

/** Config warnings that {@link advise} already covers with its own advice. */
const COVERED_WARNINGS = [
  'enableKeepAlive is false',
  'keepAliveInitialDelay ',
  'keepAliveInterval ', // the probe spacing: judged below against the known timeouts instead
  'idlePingInterval is 0',
];

const sec = (ms: number): string => `${+(ms / 1000).toFixed(3)} s`;

/**
 * One line of advice per risk found. Pure: every input is passed in.
 *
 * @param input - configuration, what the server and the live socket said, the kernel's values
 */
export function advise(input: AdviceInput): Advice[] {
  const { config: c, server, socket, capability, kernel } = input;
  const out: Advice[] = [];
  const risk = (code: string, message: string): void => {
    out.push({ level: 'risk', code, message });
  };
  const note = (code: string, message: string): void => {
    out.push({ level: 'note', code, message });
  };
  const delayVar = envName('keepAliveInitialDelay');
  // The longest silence of an idle keepalive'd flow: the first probe comes after
  // keepAliveInitialDelay, every later one keepAliveInterval after the previous (Linux
  // tcp_keepalive_timer re-arms with TCP_KEEPINTVL even when the probe was answered).
  // A delay below 1 s (or above Linux's 32767 s) leaves the kernel's own idle time in place.
  const delay = effectiveKeepAliveDelay(c.keepAliveInitialDelay);
  const gap = Math.max(delay, c.keepAliveInterval);
  const gapText =
    c.keepAliveInterval > delay
      ? `keepAliveInterval ${sec(c.keepAliveInterval)} (the gap between keepalive probes)`
      : `keepAliveInitialDelay ${sec(c.keepAliveInitialDelay)}`;
  const gapFix =
    c.keepAliveInterval > delay ? `${envName('keepAliveInterval')}=10000` : `${delayVar}=60000`;

  if (!c.enableKeepAlive) {
    risk(
      'KEEPALIVE_OFF',
      `TCP keepalive is off: IPVS, NAT gateways and load balancers forget idle flows. Set ${envName('enableKeepAlive')}=true.`,
    );
  } else if (gap >= IPVS_IDLE_MS) {
    risk(
      'KEEPALIVE_DELAY_IPVS',
      `${gapText} is at or above the 900 s IPVS idle timeout (kube-proxy ipvs mode): idle flows are forgotten between keepalive probes. Set ${gapFix}.`,
    );
  } else if (gap >= CLOUD_LB_IDLE_MS) {
    risk(
      'KEEPALIVE_DELAY_CLOUD',
      `${gapText} is at or above Azure Load Balancer's 4 min idle timeout (AWS NLB/NAT: 350 s). Set ${gapFix}.`,
    );
  }
  if (c.enableKeepAlive && c.keepAliveInterval > delay && gap < CLOUD_LB_IDLE_MS) {
    note(
      'KEEPALIVE_SPACING',
      `keepAliveInterval ${sec(c.keepAliveInterval)} is above keepAliveInitialDelay ${sec(c.keepAliveInitialDelay)}: an idle connection is probed every ${sec(c.keepAliveInterval)}, which must stay below the idle timeout of the path (see probe).`,
    );
  }
  if (c.idlePingInterval === 0 && (!c.enableKeepAlive || delay >= IPVS_IDLE_MS)) {
    risk(
      'NO_IDLE_DEFENCE',
      `idle pings are off and TCP keepalive does not fire within 900 s: nothing keeps idle connections alive. Set ${envName('idlePingInterval')}=120000.`,
    );
  }

  if (socket && !socket.tcp) {
    note(
      'NOT_TCP',
      'connected through a unix socket or a custom stream: no middlebox on this path, TCP keepalive and TCP_USER_TIMEOUT do not apply.',
    );
  }
  const rb = socket?.tcp ? socket.readback : undefined;
  const kernelDecides = delay !== Math.floor(c.keepAliveInitialDelay / 1000) * 1000;
  if (c.enableKeepAlive && rb && rb.keepAliveIdle !== undefined && !kernelDecides) {
    const expected = delay;
    if (rb.keepAliveEnabled === false || rb.keepAliveIdle !== expected) {
      risk(
        'KEEPALIVE_NOT_APPLIED',
        `the live socket has SO_KEEPALIVE ${rb.keepAliveEnabled === false ? 'off' : 'on'}, TCP_KEEPIDLE ${sec(rb.keepAliveIdle)}, expected on and ${sec(expected)}: the setting did not reach the kernel.`,
      );
    }
  }

  const conntrack = kernel.conntrackEstablishedTimeoutSec;
  const pingCovers =
    c.idlePingInterval > 0 && conntrack !== undefined && c.idlePingInterval < conntrack * 1000;
  if (conntrack !== undefined && (c.enableKeepAlive ? gap >= conntrack * 1000 : !pingCovers)) {
    const suggested = Math.max(1000, Math.floor((conntrack * 1000) / 2 / 1000) * 1000);
    risk(
      'CONNTRACK_TIMEOUT',
      `conntrack in this network namespace forgets idle flows after ${conntrack} s (nf_conntrack_tcp_timeout_established), ${c.enableKeepAlive ? `at or below ${gapText}` : 'and keepalive is off'}. Set ${delayVar}=${suggested}${c.keepAliveInterval > suggested ? ` and ${envName('keepAliveInterval')}=${suggested}` : ''}.`,
    );
  }

  if (c.tcpUserTimeout === 0) {
    const retries = kernel.tcpRetries2 ?? 15;
    risk(
      'TCP_USER_TIMEOUT_OFF',
      `tcpUserTimeout is off: a query written into a dead network waits for tcp_retries2=${retries} retransmissions (≈ 15 min at 15) before failing. Set ${envName('tcpUserTimeout')}=90000.`,
    );
  } else if (!capability.available) {
    risk(
      'TCP_USER_TIMEOUT_UNAVAILABLE',
      `TCP_USER_TIMEOUT cannot be set here (${capability.reason ?? 'unknown reason'}): a query written into a dead network may hang ≈ 15 min.`,
    );
  } else if (rb && rb.tcpUserTimeout !== undefined && rb.tcpUserTimeout !== c.tcpUserTimeout) {
    risk(
      'TCP_USER_TIMEOUT_NOT_APPLIED',
      `the live socket has TCP_USER_TIMEOUT ${rb.tcpUserTimeout} ms, expected ${c.tcpUserTimeout} ms.`,
    );
  }

  if (server && server.waitTimeoutSec > 0) {
    const waitMs = server.waitTimeoutSec * 1000;
    if (c.idlePingInterval > 0 && c.idlePingInterval >= waitMs) {
      note(
        'IDLE_PING_ABOVE_WAIT_TIMEOUT',
        `idlePingInterval ${sec(c.idlePingInterval)} is above the server's wait_timeout ${server.waitTimeoutSec} s; the pool pings every ${sec(Math.floor(waitMs * 0.8))} instead. Set ${envName('idlePingInterval')} below ${waitMs} to say so.`,
      );
    } else if (c.idlePingInterval === 0) {
      note(
        'SERVER_CLOSES_IDLE',
        `idle pings are off: the server closes connections idle for wait_timeout=${server.waitTimeoutSec} s; the pool drops them and opens new ones on demand.`,
      );
    }
  }

  const bound = input.pathTimeout?.boundMs ?? null;
  if (bound !== null && (!c.enableKeepAlive || gap >= bound)) {
    const suggested = Math.max(1000, Math.floor(bound / 3 / 1000) * 1000);
    risk(
      'PATH_TIMEOUT_LEARNED',
      `the pool found connections dead after idling: the path forgets idle flows in less than ${sec(bound)}, ${c.enableKeepAlive ? `at or below ${gapText}` : 'and keepalive is off'}; the pool now keeps them alive itself. Set ${delayVar}=${suggested}${c.keepAliveInterval > suggested ? ` and ${envName('keepAliveInterval')}=${suggested}` : ''}.`,
    );
  }

  for (const w of c.warnings) {
    if (COVERED_WARNINGS.some((prefix) => w.startsWith(prefix))) continue;
    risk('CONFIG_WARNING', w);
  }
  for (const w of input.processWarnings ?? []) {
    risk('ENV_WARNING', w.replace(/^mysql2-keepalive-pool: /, ''));
  }
  return out;
}

/** The status a report ends with: 2 without a connection, 1 with any risk, else 0. */
export function exitCodeOf(error: unknown, advice: readonly Advice[]): DoctorExitCode {
  if (error) return 2;
  return advice.some((a) => a.level === 'risk') ? 1 : 0;
}

/** Reads the TCP settings of this network namespace from /proc/sys. */
export function readKernelSettings(procSys = '/proc/sys'): KernelSettings {
  const num = (file: string): number | undefined => {
    try {
      const n = Number(readFileSync(`${procSys}/${file}`, 'utf8').trim());
      return Number.isFinite(n) ? n : undefined;
    } catch {
      return undefined;
    }
  };
  const out: KernelSettings = {};
  const set = <K extends keyof KernelSettings>(key: K, value: number | undefined): void => {
    if (value !== undefined) out[key] = value;
  };
  set('tcpKeepaliveTimeSec', num('net/ipv4/tcp_keepalive_time'));
  set('tcpKeepaliveIntvlSec', num('net/ipv4/tcp_keepalive_intvl'));
  set('tcpKeepaliveProbes', num('net/ipv4/tcp_keepalive_probes'));
  set('tcpRetries2', num('net/ipv4/tcp_retries2'));
  set('conntrackEstablishedTimeoutSec', num('net/netfilter/nf_conntrack_tcp_timeout_established'));
  return out;
}

/** Options of {@link runDoctor}. */
export interface DoctorOptions {
  /** Process warnings seen while the configuration was resolved (the CLI collects them). */
  processWarnings?: () => readonly string[];
}

/**
 * Resolves the configuration from the environment (`MYSQL_*`, `MYSQL_URL`,
 * `MYSQL_PASSWORD_FILE`), connects once through a one-connection pool and reports. Never throws:
 * a configuration or connection error becomes `exitCode: 2` with `error` set.
 */
export async function runDoctor(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const loop = watchEventLoop();
  const kernel = readKernelSettings();
  const capability = socketCapability();
  let cfg: ResolvedConfig;
  try {
    cfg = resolveConfig();
  } catch (error) {
    return {
      exitCode: 2,
      pool: '',
      target: '',
      config: {},
      server: null,
      socket: null,
      tcpUserTimeout: capability,
      kernel,
      advice: [],
      error: errorSummary(error),
      eventLoop: loop.stop(),
      path: null,
    };
  }
  const config = describeConfig(cfg);
  const conn = cfg.connection as { socketPath?: string; host?: string; port?: number };
  const target =
    conn.socketPath !== undefined
      ? conn.socketPath
      : `${conn.host ?? 'localhost'}:${conn.port ?? 3306}`;
  debug('%s: doctor connecting to %s', cfg.name, target);

  let server: ServerInfo | null = null;
  let socket: SocketInfo | null = null;
  let error: DoctorReport['error'] = null;
  let path: DoctorReport['path'] = null;
  // One connection, the user's settings otherwise: the socket options are the ones the pool sets.
  const pool = new KeepalivePool({ name: cfg.name, connectionLimit: 1, maxIdle: 1, minIdle: 0 });
  try {
    const started = Date.now();
    const c = await new Promise<PoolConnection>((resolve, reject) =>
      pool.getConnection((err, got) => (err ? reject(err) : resolve(got))),
    );
    const connectMs = Date.now() - started;
    try {
      const rows = await new Promise<Array<Record<string, unknown>>>((resolve, reject) =>
        c.query(
          'SELECT VERSION() AS version, @@session.wait_timeout AS wait_timeout, @@session.interactive_timeout AS interactive_timeout',
          (err, res) => (err ? reject(err) : resolve(res as Array<Record<string, unknown>>)),
        ),
      );
      const row = rows[0] ?? {};
      server = {
        version: String(row.version),
        waitTimeoutSec: Number(row.wait_timeout),
        interactiveTimeoutSec: Number(row.interactive_timeout),
        threadId: c.threadId ?? null,
        connectMs,
      };
      const tcp = tcpSocketOf(c);
      socket = tcp
        ? {
            tcp: true,
            local: `${tcp.localAddress}:${tcp.localPort}`,
            remote: `${tcp.remoteAddress}:${tcp.remotePort}`,
            readback: readSocketSettings(c),
          }
        : { tcp: false, readback: {} };
    } finally {
      c.release();
    }
    const stats = pool.stats();
    path = {
      rttMs: stats.pathRttMs,
      hedgeDelayMs: stats.hedgeDelayMs,
      pathTimeout: stats.pathTimeout,
    };
  } catch (err) {
    error = errorSummary(err);
    debug('%s: doctor cannot connect: %s', cfg.name, error.message);
  } finally {
    await new Promise<void>((resolve) => pool.end(() => resolve()));
  }
  const advice = advise({
    config: cfg,
    server,
    socket,
    capability,
    kernel,
    processWarnings: opts.processWarnings?.() ?? [],
    pathTimeout: path?.pathTimeout ?? null,
  });
  return {
    exitCode: exitCodeOf(error, advice),
    pool: cfg.name,
    target,
    config,
    server,
    socket,
    tcpUserTimeout: capability,
    kernel,
    advice,
    error,
    eventLoop: loop.stop(),
    path,
  };
}

/** The code and message of an error, the cause's too when the error wraps one. */
function errorSummary(error: unknown): { code: string | null; message: string } {
  const e = error as { code?: unknown; message?: unknown; cause?: unknown };
  const code = typeof e?.code === 'string' ? e.code : null;
  let message = typeof e?.message === 'string' ? e.message : String(error);
  const cause = e?.cause as { code?: unknown; message?: unknown } | undefined;
  if (cause && typeof cause.message === 'string' && !message.includes(cause.message)) {
    message += ` (cause: ${typeof cause.code === 'string' ? `${cause.code} ` : ''}${cause.message})`;
  }
  return { code, message };
}

/** The report as one screen of text. */
export function formatDoctor(r: DoctorReport): string {
  const lines: string[] = [];
  const status =
    r.exitCode === 0 ? 'healthy' : r.exitCode === 1 ? 'risky configuration' : 'cannot connect';
  lines.push(`mysql2-keepalive-pool doctor: ${r.pool ? `pool "${r.pool}" → ${r.target}` : ''}`);
  if (Object.keys(r.config).length > 0) {
    lines.push('', 'Configuration (options, MYSQL_* env, MYSQL_URL, defaults; secrets masked)');
    lines.push(
      ...wrap(
        Object.entries(r.config).map(([k, v]) => `${k}=${String(v)}`),
        96,
        '  ',
      ),
    );
  }
  lines.push('', 'Server');
  if (r.server) {
    const s = r.server;
    lines.push(
      `  version ${s.version}, thread ${s.threadId ?? '?'}, connected in ${s.connectMs} ms`,
      `  wait_timeout ${s.waitTimeoutSec} s, interactive_timeout ${s.interactiveTimeoutSec} s`,
    );
  } else {
    lines.push('  not reached (see below)');
  }
  if (r.socket) {
    lines.push(
      '',
      r.socket.tcp ? `Live socket ${r.socket.local} → ${r.socket.remote}` : 'Live socket',
    );
    if (!r.socket.tcp) lines.push('  not TCP (unix socket or custom stream)');
    else {
      const b = r.socket.readback;
      const fmt = (ms: number | undefined): string => (ms === undefined ? '?' : sec(ms));
      lines.push(
        `  SO_KEEPALIVE ${b.keepAliveEnabled === undefined ? '?' : b.keepAliveEnabled ? 'on' : 'off'}, TCP_KEEPIDLE ${fmt(b.keepAliveIdle)}, TCP_KEEPINTVL ${fmt(b.keepAliveInterval)}, TCP_KEEPCNT ${b.keepAliveCount ?? '?'}, TCP_USER_TIMEOUT ${b.tcpUserTimeout === undefined ? '?' : b.tcpUserTimeout === 0 ? 'off' : `${b.tcpUserTimeout} ms`}`,
      );
      if (
        b.keepAliveEnabled &&
        b.keepAliveIdle !== undefined &&
        b.keepAliveInterval !== undefined &&
        b.keepAliveCount !== undefined
      ) {
        lines.push(
          `  an idle connection whose peer vanished is dropped after ≈ ${sec(b.keepAliveIdle + b.keepAliveCount * b.keepAliveInterval)}`,
        );
      }
    }
  }
  lines.push(
    '',
    `TCP_USER_TIMEOUT: ${r.tcpUserTimeout.available ? 'available' : `not available (${r.tcpUserTimeout.reason})`}`,
  );
  const k = r.kernel;
  lines.push(
    `Kernel (this network namespace): tcp_keepalive_time ${k.tcpKeepaliveTimeSec ?? '?'} s, tcp_keepalive_intvl ${k.tcpKeepaliveIntvlSec ?? '?'} s, tcp_keepalive_probes ${k.tcpKeepaliveProbes ?? '?'}, tcp_retries2 ${k.tcpRetries2 ?? '?'}` +
      (k.conntrackEstablishedTimeoutSec !== undefined
        ? `, conntrack established timeout ${k.conntrackEstablishedTimeoutSec} s`
        : ''),
  );
  if (r.path) {
    const p = r.path;
    const t = p.pathTimeout;
    lines.push(
      `Path: round trip ${p.rttMs === null ? '?' : `${p.rttMs} ms`}, checkout pings hedged after ${p.hedgeDelayMs === null ? '(hedging off)' : `${p.hedgeDelayMs} ms`}; idle timeout ${t.boundMs === null ? (t.enabled ? 'not learned (no connection died of idleness)' : 'not learned (learnPathTimeout off)') : `below ${sec(t.boundMs)} (learned)`}`,
    );
  }
  lines.push(
    `Event loop: blocked at most ${r.eventLoop.maxBlockMs} ms while doctor ran (connecting included)`,
  );
  lines.push('', 'Advice');
  if (r.advice.length === 0 && !r.error) lines.push('  ok    nothing risky found');
  for (const a of r.advice) lines.push(`  ${a.level === 'risk' ? 'RISK' : 'note'}  ${a.message}`);
  if (r.error)
    lines.push(
      `  FAIL  cannot connect to ${r.target || 'the database'}: ${r.error.code && !r.error.message.startsWith(r.error.code) ? `${r.error.code}: ` : ''}${r.error.message}`,
    );
  lines.push('', `Status: ${status} (exit ${r.exitCode})`);
  return `${lines.join('\n')}\n`;
}

function wrap(items: readonly string[], width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const item of items) {
    if (line && line.length + 1 + item.length > width) {
      lines.push(indent + line);
      line = item;
    } else {
      line = line ? `${line} ${item}` : item;
    }
  }
  if (line) lines.push(indent + line);
  return lines;
}
