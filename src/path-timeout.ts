/**
 * Learning the path's idle timeout. Every connection found dead after idling T is evidence that
 * something on the path (IPVS, a NAT gateway, a load balancer) forgets flows that carry no packet
 * for less than T. From that evidence this file derives an upper bound of the path's idle timeout
 * and keeps later flows alive below it by itself: the pool lowers the keepalive idle time (and
 * interval) of its sockets and its idle-ping period to a third of the bound, never above the
 * configured values and never below {@link PATH_TIMEOUT_FLOOR_MS}.
 *
 * - Evidence: a checkout or idle ping that went unanswered (the flow is black-holed), or a reset
 *   (`ECONNRESET`, `EPIPE`, `ETIMEDOUT`…) met by a ping or by a keepalive probe of an idle socket.
 *   Not evidence: a FIN (`socket-end`: the server or a proxy closed it on purpose), a server
 *   error (`ER_*`), a suspect (its death is inferred), a death after less than
 *   {@link MIN_EVIDENCE_IDLE_MS} idle (no middlebox forgets that fast: a partition or a restart),
 *   or one explained by the server's own `wait_timeout`.
 * - The flow's longest silence was not T itself when keepalive probes ran: it was at most the
 *   probe spacing (max of the keepalive idle time and interval), if those settings were in force
 *   for the whole idle spell. That smaller figure is the evidence. So when a first estimate was
 *   not low enough, the next death happens at the new spacing and the bound drops to it: the
 *   estimate converges (a factor of 3 per round) instead of repeating itself.
 * - Decay: after {@link DECAY_AFTER_MS} with no evidence the bound doubles (the path may have
 *   changed), until the derived values reach the configured ones, which then apply again.
 *
 * Every change is reported through `onChange` (pool.ts emits `pathTimeout`, logs it with `debug`,
 * and warns once per pool with the advice to set `keepAliveInitialDelay` below the bound).
 *
 * Timer owned here: the decay timer (one, unref'd, re-armed by each piece of evidence, cancelled
 * by {@link PathTimeoutLearner.stop}). The clock is injectable for tests.
 */
import { effectiveKeepAliveDelay, envName } from './config.js';
import type { ResolvedConfig } from './config.js';
import type { DeadReason } from './health.js';

/** Nothing is lowered below this, ms (the kernel keeps TCP_KEEPIDLE in whole seconds, and 1 s is
 * the shortest idlePingInterval). */
export const PATH_TIMEOUT_FLOOR_MS = 1000;
/** A death after less idle time than this is not taken as evidence, ms. */
export const MIN_EVIDENCE_IDLE_MS = 1500;
/** Flows are kept alive at this share of the bound. */
export const KEEP_ALIVE_SHARE = 1 / 3;
/** How long without evidence before the bound doubles, ms. */
export const DECAY_AFTER_MS = 6 * 60 * 60 * 1000;

/** Error codes of a path that reset or lost a flow (rather than a server that closed it). */
const PATH_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/** A connection found dead, as the learner needs to know it. */
export interface Death {
  reason: DeadReason;
  /** How long it had gone without proof of life, ms. */
  idleMs: number;
  /** The connection's error code, when it has one (a reset: `ECONNRESET`). */
  errorCode: string | null;
  /** The server's wait_timeout, ms (0: unknown). */
  serverWaitTimeoutMs: number;
}

/** Payload of the pool's `pathTimeout` event: what the pool learned and what it now does. */
export interface PathTimeoutEvent {
  /** `learned`: a first bound; `lowered`: a lower one (the first was not low enough);
   * `decayed`: raised after a long time without evidence; `restored`: back to the configured
   * values. */
  reason: 'learned' | 'lowered' | 'decayed' | 'restored';
  /** Upper bound of the path's idle timeout, ms (null once restored). */
  boundMs: number | null;
  /** The idle time a connection had when found dead, ms (the evidence; null for decay). */
  idleMs: number | null;
  /** TCP_KEEPIDLE the pool now gives its sockets, ms (null: keepalive off). */
  keepAliveIdleMs: number | null;
  /** TCP_KEEPINTVL the pool now gives its sockets, ms (null: keepalive off). */
  keepAliveIntervalMs: number | null;
  /** The idle-ping period now, ms (null: idle pings off). */
  idlePingIntervalMs: number | null;
  /** One sentence for a human: what was seen, what the pool does, what to configure. */
  advice: string;
}

/** What `stats().pathTimeout` reports. */
export interface PathTimeoutStats {
  /** Whether the pool learns (`learnPathTimeout`). */
  enabled: boolean;
  /** The learned upper bound of the path's idle timeout, ms; null when none is in force. */
  boundMs: number | null;
  /** TCP_KEEPIDLE given to sockets now, ms (null: keepalive off). */
  keepAliveIdleMs: number | null;
  /** TCP_KEEPINTVL given to sockets now, ms (null: keepalive off). */
  keepAliveIntervalMs: number | null;
  /** Idle-ping period now, ms (null: idle pings off). */
  idlePingIntervalMs: number | null;
  /** Deaths taken as evidence. */
  evidence: number;
}

/** Time, injectable for tests. */
export interface LearnerClock {
  now(): number;
  /** Runs `fn` after `ms`; returns the cancel. The timer must not hold the process. */
  schedule(fn: () => void, ms: number): () => void;
}

const realClock: LearnerClock = {
  now: () => Date.now(),
  schedule(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

type LearnerConfig = Pick<
  ResolvedConfig,
  | 'learnPathTimeout'
  | 'enableKeepAlive'
  | 'keepAliveInitialDelay'
  | 'keepAliveInterval'
  | 'idlePingInterval'
>;

const sec = (ms: number): string => `${+(ms / 1000).toFixed(1)} s`;

export class PathTimeoutLearner {
  readonly #cfg: LearnerConfig;
  readonly #clock: LearnerClock;
  readonly #onChange: (event: PathTimeoutEvent) => void;
  /** The configured keepalive idle time as the kernel uses it (null: keepalive off). */
  readonly #cfgIdle: number | null;
  #bound: number | null = null;
  /** Lowered values in force (null: the configured one). */
  #idle: number | null = null;
  #interval: number | null = null;
  #ping: number | null = null;
  /** When the settings in force last changed (the configured ones have always applied). */
  #since = -Infinity;
  #evidence = 0;
  #cancelDecay: (() => void) | null = null;
  #stopped = false;

  constructor(
    cfg: LearnerConfig,
    onChange: (event: PathTimeoutEvent) => void,
    clock: LearnerClock = realClock,
  ) {
    this.#cfg = cfg;
    this.#clock = clock;
    this.#onChange = onChange;
    this.#cfgIdle = cfg.enableKeepAlive ? effectiveKeepAliveDelay(cfg.keepAliveInitialDelay) : null;
  }

  /** The keepalive settings to give a socket now (the configured ones until something is
   * learned; a delay below 1000 ms keeps its meaning there: the kernel's own). */
  keepAlive(): { initialDelay: number; interval: number } {
    return {
      initialDelay: this.#idle ?? this.#cfg.keepAliveInitialDelay,
      interval: this.#interval ?? this.#cfg.keepAliveInterval,
    };
  }

  /** The idle-ping period now, ms (0: off, as configured). */
  idlePingInterval(): number {
    return this.#ping ?? this.#cfg.idlePingInterval;
  }

  snapshot(): PathTimeoutStats {
    return {
      enabled: this.#cfg.learnPathTimeout,
      boundMs: this.#bound,
      keepAliveIdleMs: this.#cfgIdle === null ? null : (this.#idle ?? this.#cfgIdle),
      keepAliveIntervalMs: this.#cfgIdle === null ? null : this.keepAlive().interval,
      idlePingIntervalMs: this.#cfg.idlePingInterval > 0 ? this.idlePingInterval() : null,
      evidence: this.#evidence,
    };
  }

  /** The longest silence a flow can have had in the settings in force, ms (Infinity when
   * keepalive does not send probes). */
  #probeSpacing(): number {
    if (this.#cfgIdle === null) return Infinity;
    const k = this.keepAlive();
    return Math.max(effectiveKeepAliveDelay(k.initialDelay), k.interval);
  }

  /**
   * A connection was found dead. Returns the flow silence taken as evidence (ms), or null when
   * the death is not evidence of the path's idle timeout.
   */
  observe(death: Death): number | null {
    if (!this.#cfg.learnPathTimeout || this.#stopped) return null;
    if (!isPathEvidence(death)) return null;
    const now = this.#clock.now();
    const idleFrom = now - death.idleMs;
    // The probes kept the silence at or below their spacing, if they ran as set now for the whole
    // idle spell; else all we know is the idle time itself.
    const silence =
      this.#since <= idleFrom ? Math.min(death.idleMs, this.#probeSpacing()) : death.idleMs;
    if (silence < MIN_EVIDENCE_IDLE_MS) return null;
    this.#evidence++;
    this.#armDecay();
    if (this.#bound !== null && silence >= this.#bound) return silence;
    const first = this.#bound === null;
    this.#bound = Math.round(silence);
    this.#apply(first ? 'learned' : 'lowered', death.idleMs);
    return silence;
  }

  /** end(): the decay timer goes. */
  stop(): void {
    this.#stopped = true;
    this.#cancelDecay?.();
    this.#cancelDecay = null;
  }

  /** Derives the settings from the bound (or the configured ones without one) and reports. */
  #apply(reason: PathTimeoutEvent['reason'], idleMs: number | null): void {
    const c = this.#cfg;
    const bound = this.#bound;
    if (bound === null) {
      this.#idle = this.#interval = this.#ping = null;
    } else {
      const target = Math.max(PATH_TIMEOUT_FLOOR_MS, Math.floor(bound * KEEP_ALIVE_SHARE));
      if (this.#cfgIdle !== null) {
        // Whole seconds, as the kernel keeps it.
        const idle = Math.max(PATH_TIMEOUT_FLOOR_MS, Math.floor(target / 1000) * 1000);
        this.#idle = idle < this.#cfgIdle ? idle : null;
        this.#interval =
          Math.min(target, c.keepAliveInterval) < c.keepAliveInterval ? target : null;
      }
      if (c.idlePingInterval > 0) {
        this.#ping = target < c.idlePingInterval ? target : null;
      }
    }
    this.#since = this.#clock.now();
    const s = this.snapshot();
    this.#onChange({
      reason,
      boundMs: bound,
      idleMs,
      keepAliveIdleMs: s.keepAliveIdleMs,
      keepAliveIntervalMs: s.keepAliveIntervalMs,
      idlePingIntervalMs: s.idlePingIntervalMs,
      advice: this.#advice(reason, idleMs, s),
    });
  }

  #advice(reason: PathTimeoutEvent['reason'], idleMs: number | null, s: PathTimeoutStats): string {
    const does: string[] = [];
    if (s.keepAliveIdleMs !== null)
      does.push(`keepalive probes after ${sec(s.keepAliveIdleMs)} idle`);
    if (s.idlePingIntervalMs !== null) does.push(`idle pings every ${sec(s.idlePingIntervalMs)}`);
    const now =
      does.length > 0
        ? `the pool now sends ${does.join(' and ')}`
        : 'keepalive and idle pings are off, so the pool cannot keep flows alive';
    if (s.boundMs === null) {
      return `no connection died of idleness for a long time: ${now}, as configured`;
    }
    const seen =
      reason === 'decayed'
        ? `no connection died of idleness for a long time; the path's idle timeout is now assumed below ${sec(s.boundMs)}`
        : `a connection idle ${sec(idleMs ?? s.boundMs)} was found dead: something on the path (IPVS, a NAT gateway, a load balancer) forgets idle flows in less than ${sec(s.boundMs)}`;
    const suggest = Math.max(
      PATH_TIMEOUT_FLOOR_MS,
      Math.floor((s.boundMs * KEEP_ALIVE_SHARE) / 1000) * 1000,
    );
    return `${seen}; ${now}. Set keepAliveInitialDelay (${envName('keepAliveInitialDelay')}) below ${s.boundMs} ms, e.g. ${suggest}, to keep them alive from the first connection.`;
  }

  #armDecay(): void {
    this.#cancelDecay?.();
    this.#cancelDecay = this.#clock.schedule(() => this.#decay(), DECAY_AFTER_MS);
  }

  #decay(): void {
    this.#cancelDecay = null;
    if (this.#stopped || this.#bound === null) return;
    this.#bound *= 2;
    const c = this.#cfg;
    const target = Math.floor(this.#bound * KEEP_ALIVE_SHARE);
    const keepaliveDone = this.#cfgIdle === null || target >= this.#cfgIdle;
    const pingDone = c.idlePingInterval <= 0 || target >= c.idlePingInterval;
    if (keepaliveDone && pingDone) {
      this.#bound = null;
      this.#apply('restored', null);
      return;
    }
    this.#apply('decayed', null);
    this.#armDecay();
  }
}

/** Whether a death says something about the path's idle timeout (see the file comment). */
export function isPathEvidence(death: Death): boolean {
  switch (death.reason) {
    case 'checkout-ping-timeout':
    case 'idle-ping-timeout':
      break;
    case 'checkout-ping-error':
    case 'idle-ping-error':
    case 'socket-error':
      if (death.errorCode === null || !PATH_ERROR_CODES.has(death.errorCode)) return false;
      break;
    default:
      return false;
  }
  if (death.serverWaitTimeoutMs > 0 && death.idleMs >= 0.9 * death.serverWaitTimeoutMs) {
    return false;
  }
  return true;
}
