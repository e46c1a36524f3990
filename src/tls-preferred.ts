/**
 * `MYSQL_SSL_MODE=PREFERRED`: TLS when the server offers it, plain text when it does not,
 * decided per connection at the handshake, as MySQL's own clients do.
 *
 * mysql2 has no such mode: with `ssl` set it refuses a server without TLS
 * (`HANDSHAKE_NO_SSL_SUPPORT`); without, it never asks for TLS. It reads `config.ssl` when it
 * answers the server's greeting, so {@link preferTls} reads the greeting first, from the
 * connection's own socket (a `data` listener placed before mysql2's), and makes that
 * connection's `config.ssl` say what the server offers. One connection, one handshake, no retry.
 *
 * @packageDocumentation
 */
import type { EventEmitter } from 'node:events';
import createDebug from 'debug';

const debug = createDebug('mysql2-keepalive-pool:tls');

/** CLIENT_SSL in the server's capability flags (lower 16 bits). */
const CLIENT_SSL = 0x0800;
/** Packet header: 3 bytes length, 1 byte sequence id. */
const HEADER = 4;

/**
 * Whether the greeting (the first packet a server sends) offers TLS: `true`/`false`, or
 * `undefined` while more bytes are needed. An error packet (0xff, e.g. "too many connections")
 * or anything that is not a HandshakeV10 counts as not offering TLS; mysql2 reports the error.
 *
 * HandshakeV10: protocol version (1 byte, 10), server version (NUL-terminated), connection id
 * (4), auth-plugin-data part 1 (8), filler (1), capability flags, lower 2 bytes.
 */
export function greetingOffersTls(bytes: Buffer): boolean | undefined {
  if (bytes.length < HEADER + 1) return undefined;
  const protocol = bytes[HEADER];
  if (protocol !== 10) return false;
  const nul = bytes.indexOf(0, HEADER + 1);
  if (nul < 0) return undefined;
  const flagsAt = nul + 1 + 4 + 8 + 1;
  if (bytes.length < flagsAt + 2) return undefined;
  return (bytes.readUInt16LE(flagsAt) & CLIENT_SSL) !== 0;
}

/** What {@link preferTls} needs of a mysql2 connection: its per-connection config and socket. */
interface PreferTlsConnection {
  readonly config: { ssl?: unknown };
  readonly stream: EventEmitter;
  readonly threadId?: number | null;
}

/**
 * Makes this connection use TLS only if its server offers it. Call right after creating the
 * connection (before any byte can arrive), with `config.ssl` set as for REQUIRED; the
 * connection's `config` must be its own (the pool passes a per-connection copy).
 *
 * @param conn - a mysql2 connection just created.
 * @param name - the pool name, for the debug line.
 */
export function preferTls(conn: PreferTlsConnection, name: string): void {
  const config = conn.config;
  let ssl = config.ssl;
  let offered: boolean | undefined;
  Object.defineProperty(config, 'ssl', {
    configurable: true,
    enumerable: true,
    get: () => (offered === false ? false : ssl),
    set: (value: unknown) => {
      ssl = value;
    },
  });
  let seen: Buffer = Buffer.alloc(0);
  const sniff = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const verdict = greetingOffersTls(seen);
    if (verdict === undefined) return;
    offered = verdict;
    seen = Buffer.alloc(0);
    conn.stream.removeListener('data', sniff);
    debug(
      verdict
        ? '%s: MYSQL_SSL_MODE=PREFERRED: the server offers TLS, this connection uses TLS'
        : '%s: MYSQL_SSL_MODE=PREFERRED: the server does not offer TLS, this connection uses plain text',
      name,
    );
  };
  // Before mysql2's own listener, which answers the greeting in the same call.
  conn.stream.prependListener('data', sniff);
}
