/**
 * Everything that keeps a pooled connection honest: TCP socket options, the per-connection health
 * record with its idle-ping timer, and the COM_PING with a deadline used by checkout validation.
 *
 * The pool (pool.ts) decides *when* a connection is checked; this file knows *how*.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import createDebug from 'debug';
import type { PoolConnection } from 'mysql2';
import { PoolError } from './errors.js';
import { requireNative } from './native.js';

const debug = createDebug('mysql2-keepalive-pool:health');

/** Why a connection was found dead or taken out of service. */
export type DeadReason =
  | 'checkout-ping-timeout'
  | 'checkout-ping-error'
  | 'idle-ping-timeout'
  | 'idle-ping-error'
  | 'socket-end'
  | 'socket-error'
  | 'suspect';

/** Why a healthy connection was closed on purpose. `hedge-surplus`: it became free while the pool
 * was above `connectionLimit` after a hedged checkout (hedge.ts). */
export type RetireReason =
  'max-lifetime' | 'idle-timeout' | 'reset-failed' | 'pool-closed' | 'hedge-surplus';

/**
 * The pool's bookkeeping for one connection. It owns the connection's timers: each is created
 * here, `unref`'d so an idle pool never keeps the process alive, and cleared in {@link dispose}.
 */
export class ConnectionRecord {
  /** Monotonic id inside this pool (not the server's CONNECTION_ID). */
  readonly id: number;
  readonly conn: PoolConnection;
  readonly createdAt: number;
  /** When a caller last gave it back (or when it was created). */
  lastReleasedAt: number;
  /** When it last proved to be alive: a release after use, or a successful ping. */
  lastAliveAt: number;
  /** Retirement deadline from maxLifetime (jittered), 0 = never. */
  retireAt: number;
  borrowed = false;
  borrowedAt = 0;
  /** Stack of the code that borrowed it, captured only when leak detection is on. */
  borrowStack: string | undefined;
  leakReported = false;
  /** A ping that is running right now; a borrower waits for its verdict instead of racing it. */
  pinging: Promise<boolean> | null = null;
  /** That ping is a checkout ping that was hedged (hedge.ts): however it ends, its duration
   * says more about this flow than about the path, so it is no round-trip sample. */
  pingHedged = false;
  dead: DeadReason | null = null;
  retired: RetireReason | null = null;
  /** Whether the socket should keep the process alive (borrowed, pinged for a caller, closing),
   * and whether it does right now; see process-hold.ts. */
  wantsHold = false;
  holding = true;
  letGoPending = false;
  /** Idle-ping timer: created once per connection, re-armed when it fires. */
  pingTimer: NodeJS.Timeout | null = null;
  leakTimer: NodeJS.Timeout | null = null;

  constructor(id: number, conn: PoolConnection, now: number, retireAt: number) {
    this.id = id;
    this.conn = conn;
    this.createdAt = now;
    this.lastReleasedAt = now;
    this.lastAliveAt = now;
    this.retireAt = retireAt;
  }

  /** How long the connection has gone without proof of life. */
  idleFor(now: number): number {
    return now - this.lastAliveAt;
  }

  /** Found dead or retired: it must never be handed out again. */
  get outOfService(): boolean {
    return this.dead !== null || this.retired !== null;
  }

  /** Its jittered maxLifetime has run out. */
  lifetimeOver(now: number): boolean {
    return this.retireAt > 0 && now >= this.retireAt;
  }

  /** Marks it dead once; the first reason wins. */
  markDead(reason: DeadReason): boolean {
    if (this.outOfService) return false;
    this.dead = reason;
    return true;
  }

  /** Stops every timer this record owns. Idempotent. */
  dispose(): void {
    if (this.pingTimer) clearTimeout(this.pingTimer);
    if (this.leakTimer) clearTimeout(this.leakTimer);
    this.pingTimer = null;
    this.leakTimer = null;
  }
}

/**
 * True when the connection is known to be closed, so a command given to it now could not reach
 * the server: mysql2 saw a fatal or protocol error, is closing it, or has switched to its
 * closed-state `addCommand` (which fails every command with "Can't add new command when
 * connection is in closed state" without writing a byte); or the socket is destroyed, or ended
 * in either direction (a MySQL server never half-closes: a FIN means its side is gone, and Node
 * refuses writes after it).
 */
export function isUnusable(conn: PoolConnection): boolean {
  const c = conn as unknown as {
    _fatalError?: unknown;
    _protocolError?: unknown;
    _closing?: boolean;
    addCommand?: unknown;
    _addCommandClosedState?: unknown;
    stream?: { destroyed?: boolean; readableEnded?: boolean; writableEnded?: boolean };
  };
  return Boolean(
    c._fatalError ||
    c._protocolError ||
    c._closing ||
    (c._addCommandClosedState !== undefined && c.addCommand === c._addCommandClosedState) ||
    c.stream?.destroyed ||
    c.stream?.readableEnded ||
    c.stream?.writableEnded,
  );
}

/** Result of {@link pingWithTimeout}; it never rejects. */
export type PingOutcome = { ok: true } | CommandFailure;

/** A failed command of {@link pingWithTimeout} or {@link readWaitTimeout}. */
type CommandFailure = { ok: false; timedOut: boolean; error?: unknown };

/**
 * Runs a command under a deadline: `send` gets the settle function, which takes the first
 * outcome only; at `timeoutMs` the outcome is `{ ok: false, timedOut: true }`, and a throw of
 * `send` is a failure. Never rejects. The timer is owned here, unref'd, and cleared on settling.
 */
function withDeadline<T extends { ok: boolean }>(
  timeoutMs: number,
  send: (settle: (outcome: T | CommandFailure) => void) => void,
): Promise<T | CommandFailure> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: T | CommandFailure): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const timer = setTimeout(() => settle({ ok: false, timedOut: true }), timeoutMs);
    timer.unref();
    try {
      send(settle);
    } catch (error) {
      settle({ ok: false, timedOut: false, error });
    }
  });
}

/**
 * COM_PING raced against a deadline. A ping is not a query, so it does not show up on mysql2's
 * `mysql2:query` diagnostics channel: health traffic never looks like user traffic.
 */
export function pingWithTimeout(conn: PoolConnection, timeoutMs: number): Promise<PingOutcome> {
  return withDeadline<{ ok: true }>(timeoutMs, (settle) => {
    conn.ping((err) => settle(err ? { ok: false, timedOut: false, error: err } : { ok: true }));
  });
}

/** Result of {@link readWaitTimeout}; it never rejects. `error`: the server answered with an
 * error or closed the connection (a protocol-only server does on any query). */
export type WaitTimeoutOutcome = { ok: true; ms: number } | CommandFailure;

/**
 * Reads the session's wait_timeout (seconds → ms) under a deadline. Sent as a raw command so that
 * it bypasses mysql2's `mysql2:query` tracing: this is health traffic, not the user's. An answer
 * that is not a positive number of seconds is `{ ok: true, ms: 0 }` (unknown).
 */
export function readWaitTimeout(
  conn: PoolConnection,
  timeoutMs: number,
): Promise<WaitTimeoutOutcome> {
  return withDeadline<{ ok: true; ms: number }>(timeoutMs, (settle) => {
    const c = conn as unknown as {
      addCommand(cmd: unknown): unknown;
      config: unknown;
      constructor: { createQuery(sql: string, v: unknown, cb: unknown, cfg: unknown): unknown };
    };
    const cmd = c.constructor.createQuery(
      'SELECT @@wait_timeout AS w',
      [],
      (err: unknown, rows: Array<{ w: unknown }>) => {
        if (err) return settle({ ok: false, timedOut: false, error: err });
        const seconds = Number(rows?.[0]?.w);
        settle({ ok: true, ms: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0 });
      },
      c.config,
    );
    c.addCommand(cmd);
  });
}

/**
 * Lets a connection whose server closed it (its socket ended) finish closing on its own, as a
 * connection of mysql2's pool does: mysql2 then emits its `'error'` (`PROTOCOL_CONNECTION_LOST`)
 * when the socket closes, which a hard close would suppress. A socket still open after `graceMs`
 * (a stream that allows half-open sockets) is destroyed. The grace timer is owned here, unref'd,
 * and cancelled by the socket's `close`.
 */
export function letPeerClose(conn: PoolConnection, graceMs: number): void {
  const c = conn as unknown as { _pool: unknown; stream?: Socket };
  c._pool = null;
  // mysql2's PoolConnection has spent its once-listener on `end`; its `error` one may be spent
  // too. A late error must not crash the process.
  conn.on('error', noop);
  const stream = c.stream;
  if (!stream || stream.destroyed || typeof stream.once !== 'function') return;
  const timer = setTimeout(() => closeConnection(conn, false, 0), graceMs);
  timer.unref();
  stream.once('close', () => clearTimeout(timer));
}

/** Closes a connection for good: the polite COM_QUIT when it is healthy, a hard socket destroy
 * when it is dead or when the polite way does not finish in `graceMs` (a black-holed peer never
 * answers, and a half-closed socket would keep the process alive for ~15 minutes). */
export function closeConnection(conn: PoolConnection, graceful: boolean, graceMs: number): void {
  const c = conn as unknown as {
    _pool: unknown;
    _realEnd?: (cb: (err?: unknown) => void) => void;
    stream?: Socket;
  };
  c._pool = null;
  // Whatever happens from now on, a late socket error must not crash the process.
  conn.on('error', noop);
  const hardClose = (): void => {
    try {
      failPendingCommands(conn);
    } finally {
      // A callback that throws is the caller's uncaught exception, as in mysql2; the close still
      // happens.
      try {
        conn.destroy();
      } catch {
        /* already closed */
      }
      c.stream?.destroy();
    }
  };
  if (!graceful || isUnusable(conn) || typeof c._realEnd !== 'function') {
    hardClose();
    return;
  }
  // COM_QUIT queues behind whatever is running, as in mysql2's end(): a running query finishes
  // first (a dead network still fails it within tcpUserTimeout). Only an idle connection gets a
  // deadline, for a peer that never answers the QUIT.
  const cc = conn as unknown as { _command?: unknown; _commands?: { length: number } };
  const busy = Boolean(cc._command) || (cc._commands?.length ?? 0) > 0;
  const timer = busy ? null : setTimeout(hardClose, graceMs);
  timer?.unref();
  try {
    c._realEnd.call(conn, () => {
      if (timer) clearTimeout(timer);
      c.stream?.destroy();
    });
  } catch {
    if (timer) clearTimeout(timer);
    hardClose();
  }
}

/**
 * Gives every command still waiting on `conn` its error before a hard close. mysql2 ignores the
 * socket's `close` once it is `_closing`, so without this a command in flight (a query cut short
 * by `end()`, a query on a connection whose server went away) would wait forever. The error is the
 * one mysql2 itself gives when the server closed the socket, else a `POOL_CLOSED` PoolError.
 */
function failPendingCommands(conn: PoolConnection): void {
  const c = conn as unknown as {
    _command?: unknown;
    _commands?: { length: number };
    _fatalError?: unknown;
    _protocolError?: unknown;
    _notifyError?: (err: Error) => void;
    stream?: { readableEnded?: boolean };
  };
  // mysql2 has reported a fatal error, or the socket's close, to every pending command already.
  if (c._fatalError || c._protocolError || typeof c._notifyError !== 'function') return;
  if (!c._command && !(c._commands && c._commands.length > 0)) return;
  const err = c.stream?.readableEnded
    ? Object.assign(new Error('Connection lost: The server closed the connection.'), {
        code: 'PROTOCOL_CONNECTION_LOST',
        fatal: true,
      })
    : new PoolError(
        'POOL_CLOSED',
        'the pool closed this connection while a command was still running on it',
        { details: { fatal: true } },
      );
  c._notifyError.call(conn, err);
}

function noop(): void {}

// ---------------------------------------------------------------------------------------------
// TCP socket options
// ---------------------------------------------------------------------------------------------

/** Socket-level settings applied to every pooled TCP connection. */
export interface SocketSettings {
  enableKeepAlive: boolean;
  keepAliveInitialDelay: number;
  keepAliveInterval: number;
  keepAliveCount: number;
  tcpUserTimeout: number;
  /** Pool name, prefixed to debug lines. */
  name?: string;
}

interface NetKeepalive {
  setKeepAliveInterval(socket: Socket, ms: number): boolean;
  setKeepAliveProbes(socket: Socket, count: number): boolean;
  setUserTimeout(socket: Socket, ms: number): boolean;
  getKeepAliveInterval(socket: Socket): number;
  getKeepAliveProbes(socket: Socket): number;
  getUserTimeout(socket: Socket): number;
}

/** What this platform can set beyond Node's own `setKeepAlive`. */
export interface SocketCapability {
  /** TCP_KEEPINTVL, TCP_KEEPCNT and TCP_USER_TIMEOUT can be set. */
  available: boolean;
  /** Why not, when not. */
  reason?: string;
}

let netKeepalive: NetKeepalive | null | undefined;
let capability: SocketCapability | undefined;

/**
 * Loads the optional `net-keepalive` package once. It calls `setsockopt` through `ffi-rs`, whose
 * prebuilt binaries ship inside npm packages, so no compiler is needed at install time. Where it
 * cannot load (an unsupported platform, `--omit=optional`), the pool keeps working with Node's
 * own keepalive and says so once through `debug`.
 *
 * The load goes through {@link requireNative}, so ffi-rs's loader cannot build a diagnostic
 * report (native.ts), and it happens when this module loads (below).
 */
export function socketCapability(name = ''): SocketCapability {
  if (capability) return capability;
  if (process.platform !== 'linux') {
    capability = {
      available: false,
      reason: `TCP_USER_TIMEOUT is Linux-only (platform ${process.platform})`,
    };
  } else {
    try {
      const req = createRequire(import.meta.url);
      netKeepalive = requireNative(() => req('net-keepalive') as NetKeepalive);
      capability = { available: true };
    } catch (error) {
      netKeepalive = null;
      capability = {
        available: false,
        reason: `optional dependency net-keepalive could not be loaded (${(error as Error).message.split('\n')[0]})`,
      };
    }
  }
  if (!capability.available) {
    debug(
      '%s: TCP_KEEPINTVL/TCP_KEEPCNT/TCP_USER_TIMEOUT not set: %s; falling back to Node keepalive only',
      name || '(process)',
      capability.reason,
    );
  }
  return capability;
}

// The load is synchronous (a `require`, a `dlopen`): it happens here, with the rest of the
// library's module loading, where an application expects synchronous work. Not in a connect
// callback (it used to, and the first connect then froze every socket the process had), and
// not in createPool either, which applications also call while serving (a pool per tenant,
// created on demand).
socketCapability();

/** The socket of a connection when it is a TCP socket we may tune (not a unix socket or a
 * user-supplied stream). */
export function tcpSocketOf(conn: PoolConnection): Socket | undefined {
  const stream = (conn as unknown as { stream?: Socket & { _handle?: { fd?: number } } }).stream;
  if (!stream || typeof stream.setKeepAlive !== 'function') return undefined;
  if (stream.remoteFamily !== 'IPv4' && stream.remoteFamily !== 'IPv6') return undefined;
  const fd = stream._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  return stream;
}

/**
 * Applies keepalive and user-timeout settings to a connected socket. mysql2 already called
 * `setKeepAlive(true, keepAliveInitialDelay)` on connect (we pass our delay to it); Node then sets
 * TCP_KEEPINTVL=1 s and TCP_KEEPCNT=10, which we override here so that one lost probe is not fatal
 * and TCP_USER_TIMEOUT does not cut an idle connection short.
 */
export function applySocketSettings(conn: PoolConnection, s: SocketSettings): void {
  const socket = tcpSocketOf(conn);
  if (!socket) return;
  if (!s.enableKeepAlive) return;
  socket.setKeepAlive(true, s.keepAliveInitialDelay);
  if (!socketCapability(s.name).available || !netKeepalive) return;
  try {
    netKeepalive.setKeepAliveInterval(socket, s.keepAliveInterval);
    netKeepalive.setKeepAliveProbes(socket, s.keepAliveCount);
    if (s.tcpUserTimeout > 0) netKeepalive.setUserTimeout(socket, s.tcpUserTimeout);
  } catch (error) {
    debug('%s: setsockopt failed: %s', s.name ?? '(process)', (error as Error).message);
  }
}

/** What the kernel holds for a socket, read back with getsockopt; all durations in ms. */
export interface SocketReadback {
  /** SO_KEEPALIVE. */
  keepAliveEnabled?: boolean;
  /** TCP_KEEPIDLE (the kernel keeps whole seconds). */
  keepAliveIdle?: number;
  /** TCP_KEEPINTVL. */
  keepAliveInterval?: number;
  /** TCP_KEEPCNT. */
  keepAliveCount?: number;
  /** TCP_USER_TIMEOUT; 0 = off. */
  tcpUserTimeout?: number;
}

/** Reads back what the kernel holds for a socket; `undefined` fields could not be read. */
export function readSocketSettings(conn: PoolConnection): SocketReadback {
  const socket = tcpSocketOf(conn);
  if (!socket || !socketCapability().available || !netKeepalive) return {};
  const out: SocketReadback = {};
  try {
    out.keepAliveInterval = netKeepalive.getKeepAliveInterval(socket);
    out.keepAliveCount = netKeepalive.getKeepAliveProbes(socket);
    out.tcpUserTimeout = netKeepalive.getUserTimeout(socket);
  } catch {
    return out;
  }
  // net-keepalive has no getter for these two; the same getsockopt through its ffi-rs does it.
  const fd = (socket as Socket & { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number') return out;
  const enabled = getsockoptInt(fd, SOL_SOCKET, SO_KEEPALIVE);
  if (enabled !== undefined) out.keepAliveEnabled = enabled !== 0;
  const idle = getsockoptInt(fd, IPPROTO_TCP, TCP_KEEPIDLE);
  if (idle !== undefined) out.keepAliveIdle = idle * 1000;
  return out;
}

/** Linux values (readSocketSettings only reads on Linux, see socketCapability). */
const SOL_SOCKET = 1;
const SO_KEEPALIVE = 9;
const IPPROTO_TCP = 6;
const TCP_KEEPIDLE = 4;

interface FfiRs {
  DataType: { I32: number; External: number };
  open(params: { library: string; path: string }): void;
  load(params: Record<string, unknown>): { value: number; errnoCode: number };
  createPointer(params: { paramsType: number[]; paramsValue: unknown[] }): unknown[];
  restorePointer(params: { retType: number[]; paramsValue: unknown[] }): unknown[];
}
let ffi: FfiRs | null | undefined;

/** An int socket option, or undefined when it cannot be read. */
function getsockoptInt(fd: number, level: number, option: number): number | undefined {
  if (ffi === undefined) {
    try {
      const req = createRequire(import.meta.url);
      // Already loaded by net-keepalive (readSocketSettings asks socketCapability first); the
      // guard is for the day that order changes.
      ffi = requireNative(() => createRequire(req.resolve('net-keepalive'))('ffi-rs') as FfiRs);
      // The library name net-keepalive uses: the process's own symbols (libc).
      ffi.open({ library: 'libnative', path: '' });
    } catch (error) {
      debug('(process): getsockopt unavailable: %s', (error as Error).message.split('\n')[0]);
      ffi = null;
    }
  }
  if (!ffi) return undefined;
  try {
    const { I32, External } = ffi.DataType;
    const [value] = ffi.createPointer({ paramsType: [I32], paramsValue: [0] });
    const [length] = ffi.createPointer({ paramsType: [I32], paramsValue: [4] });
    const res = ffi.load({
      library: 'libnative',
      funcName: 'getsockopt',
      retType: I32,
      paramsType: [I32, I32, I32, External, External],
      paramsValue: [fd, level, option, value, length],
      errno: true,
    });
    if (res.value !== 0) return undefined;
    const [out] = ffi.restorePointer({ retType: [I32], paramsValue: [value] });
    return typeof out === 'number' ? out : undefined;
  } catch {
    return undefined;
  }
}

/** `base` shortened by a random 0–`fraction` share, so that timers of connections created
 * together do not fire in lockstep (HikariCP does the same for keepalive and max lifetime). */
export function jitterDown(
  base: number,
  fraction: number,
  random: () => number = Math.random,
): number {
  return Math.max(1, Math.round(base - base * fraction * random()));
}
