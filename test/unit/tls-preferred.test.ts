/**
 * MYSQL_SSL_MODE=PREFERRED's per-connection decision: reading the server greeting, and making the
 * connection's config.ssl say what the server offers before mysql2 answers the greeting.
 * Against real servers (with and without TLS): test/integration/tls.test.ts.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { greetingOffersTls, preferTls } from '../../src/tls-preferred.js';

/** A HandshakeV10 greeting as a server sends it, with these capability flags (lower 16 bits). */
function greeting(flags: number, version = '11.8.3-MariaDB'): Buffer {
  const payload = Buffer.concat([
    Buffer.from([10]),
    Buffer.from(`${version}\0`, 'latin1'),
    Buffer.from([1, 0, 0, 0]), // connection id
    Buffer.alloc(8, 0x61), // auth-plugin-data part 1
    Buffer.from([0]), // filler
    Buffer.from([flags & 0xff, flags >> 8]),
    Buffer.alloc(20, 0), // the rest, irrelevant here
  ]);
  const header = Buffer.from([payload.length & 0xff, (payload.length >> 8) & 0xff, 0, 0]);
  return Buffer.concat([header, payload]);
}
const WITH_TLS = 0xfffe; // a typical server: CLIENT_SSL (0x0800) among the others
const WITHOUT_TLS = WITH_TLS & ~0x0800;

describe('greetingOffersTls', () => {
  it('reads CLIENT_SSL from the capability flags', () => {
    assert.equal(greetingOffersTls(greeting(WITH_TLS)), true);
    assert.equal(greetingOffersTls(greeting(WITHOUT_TLS)), false);
  });

  it('needs the bytes up to the flags, however they are split', () => {
    const g = greeting(WITH_TLS);
    const flagsEnd = 4 + 1 + '11.8.3-MariaDB'.length + 1 + 4 + 8 + 1 + 2;
    for (let n = 0; n < flagsEnd; n++) assert.equal(greetingOffersTls(g.subarray(0, n)), undefined);
    assert.equal(greetingOffersTls(g.subarray(0, flagsEnd)), true);
  });

  it('an error packet (0xff) is not an offer', () => {
    const err = Buffer.from([9, 0, 0, 0, 0xff, 0x10, 0x04, 0x54, 0x6f, 0x6f, 0x20, 0x6d, 0x61]);
    assert.equal(greetingOffersTls(err), false);
  });

  it('reads the greeting of the test server (whatever it offers, the answer is a boolean)', async () => {
    const socket = net.connect(3306, '127.0.0.1');
    const first = await new Promise<Buffer>((resolve, reject) => {
      let seen = Buffer.alloc(0);
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        seen = Buffer.concat([seen, chunk]);
        if (greetingOffersTls(seen) !== undefined) resolve(seen);
      });
    });
    socket.destroy();
    assert.equal(typeof greetingOffersTls(first), 'boolean');
  });
});

describe('preferTls', () => {
  function connection() {
    const ssl = { rejectUnauthorized: false };
    const stream = new EventEmitter();
    const conn = { config: { ssl } as { ssl?: unknown }, stream };
    // mysql2 attaches its listener in the connection's constructor, before the pool's call.
    const atMysql2: unknown[] = [];
    stream.on('data', () => atMysql2.push(conn.config.ssl));
    preferTls(conn, 'p');
    return { conn, ssl, stream, atMysql2 };
  }

  it('keeps ssl when the server offers TLS, decided before mysql2 reads the greeting', () => {
    const { stream, ssl, atMysql2, conn } = connection();
    const g = greeting(WITH_TLS);
    stream.emit('data', g.subarray(0, 7));
    stream.emit('data', g.subarray(7));
    assert.deepEqual(atMysql2, [ssl, ssl]);
    assert.equal(conn.config.ssl, ssl);
    assert.equal(stream.listenerCount('data'), 1, 'the sniffer is gone after the greeting');
  });

  it('drops ssl for this connection when the server offers none', () => {
    const { stream, atMysql2, conn } = connection();
    const g = greeting(WITHOUT_TLS);
    stream.emit('data', g.subarray(0, 10));
    stream.emit('data', g.subarray(10));
    // The first chunk ends before the flags: mysql2 cannot answer yet either.
    assert.equal(atMysql2[1], false);
    assert.equal(conn.config.ssl, false);
    assert.equal(stream.listenerCount('data'), 1);
  });

  it('a later write to config.ssl (mysql2 normalising it) is kept', () => {
    const { conn, stream } = connection();
    const replaced = { rejectUnauthorized: true };
    conn.config.ssl = replaced;
    stream.emit('data', greeting(WITH_TLS));
    assert.equal(conn.config.ssl, replaced);
  });
});
