/**
 * The round-trip time of the path to the server, as this pool has seen it, and the hedge delay of
 * a checkout ping derived from it (checkout.ts starts a hedge when a ping is still unanswered
 * after {@link PathRtt.hedgeDelay}).
 *
 * Two kinds of samples, both of the pool's own traffic:
 *
 * - a COM_PING that was answered: one round trip (plus the server's and the client's turn);
 * - a connect (TCP, TLS, greeting, authentication): at least 1.5 round trips on the wire, since
 *   the server speaks first and the client answers once, so `connectMs / 1.5` is an upper bound of
 *   the round trip even where the TCP handshake itself is answered by a local proxy.
 *
 * Pings are the direct measure: once one was answered, only pings count, smoothed as TCP smooths
 * its RTT (RFC 6298: `srtt`, `rttvar`, gains 1/8 and 1/4), and the hedge delay is 1.5 × (srtt + 4 ×
 * rttvar), TCP's retransmission timeout with a margin: a healthy ping is answered well within it,
 * so on a slow but healthy path nothing is opened needlessly. Before the first answered ping the
 * hedge delay is the fastest connect seen: a ping that has taken as long as a whole connect (at
 * least 1.5 round trips, plus the server's authentication) is better raced by a new connection.
 * Never below {@link HEDGE_FLOOR_MS}, which is also the delay before anything was seen. Pure: no
 * timer, no clock.
 */

/** The shortest hedge delay, and the one used before any round trip was seen, ms. It keeps a
 * busy event loop (a late timer, a late read) from looking like a slow path. */
export const HEDGE_FLOOR_MS = 20;
/** Round trips a connect takes at least (greeting, then the client's answer and the server's
 * verdict). */
export const CONNECT_ROUND_TRIPS = 1.5;
/** Margin of the hedge delay over TCP's retransmission timeout of the samples. */
const HEDGE_MARGIN = 1.5;

/** One smoothed estimator (RFC 6298 §2). */
class Smoothed {
  srtt: number | null = null;
  rttvar = 0;
  samples = 0;

  add(r: number): void {
    this.samples++;
    if (this.srtt === null) {
      this.srtt = r;
      this.rttvar = r / 2;
      return;
    }
    this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
    this.srtt = 0.875 * this.srtt + 0.125 * r;
  }

  /** srtt + 4 × rttvar, or null before the first sample. */
  rto(): number | null {
    return this.srtt === null ? null : this.srtt + 4 * this.rttvar;
  }
}

/** What {@link PathRtt.snapshot} reports (stats()). */
export interface PathRttSnapshot {
  /** Smoothed round trip, ms (pings once one was answered, else connects / 1.5); null before any
   * sample. */
  rttMs: number | null;
  /** The delay after which a checkout ping still unanswered is hedged, ms. */
  hedgeDelayMs: number;
  /** Answered pings and connects seen. */
  pingSamples: number;
  connectSamples: number;
}

export class PathRtt {
  readonly #pings = new Smoothed();
  readonly #connects = new Smoothed();
  #fastestConnect = Infinity;

  /** An answered COM_PING that took `ms`. */
  observePing(ms: number): void {
    if (Number.isFinite(ms) && ms >= 0) this.#pings.add(ms);
  }

  /** A connect (TCP to authenticated session) that took `ms`. */
  observeConnect(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.#connects.add(ms / CONNECT_ROUND_TRIPS);
    this.#fastestConnect = Math.min(this.#fastestConnect, ms);
  }

  /** The estimator that speaks for the path: pings once there is one. */
  #source(): Smoothed {
    return this.#pings.samples > 0 ? this.#pings : this.#connects;
  }

  /** Smoothed round trip, ms, or null before any sample. */
  rttMs(): number | null {
    const s = this.#source().srtt;
    return s === null ? null : Math.round(s * 10) / 10;
  }

  /** How long a checkout ping may go unanswered before a hedge starts, ms. */
  hedgeDelay(): number {
    if (this.#pings.samples > 0) {
      return Math.max(HEDGE_FLOOR_MS, Math.ceil(HEDGE_MARGIN * this.#pings.rto()!));
    }
    if (this.#connects.samples > 0)
      return Math.max(HEDGE_FLOOR_MS, Math.ceil(this.#fastestConnect));
    return HEDGE_FLOOR_MS;
  }

  snapshot(): PathRttSnapshot {
    return {
      rttMs: this.rttMs(),
      hedgeDelayMs: this.hedgeDelay(),
      pingSamples: this.#pings.samples,
      connectSamples: this.#connects.samples,
    };
  }
}
