/**
 * TLS configured from the environment (MYSQL_SSL_MODE, MYSQL_SSL_CA_FILE, MYSQL_SSL_CERT_FILE,
 * MYSQL_SSL_KEY_FILE) against a real server: a throwaway MariaDB started with
 * --ssl-ca/--ssl-cert/--ssl-key and certificates this file makes with the openssl CLI, plus a
 * second one without TLS.
 *
 * What is checked on the server side, not just in our config: the session is encrypted
 * (Ssl_cipher), the chain and the host name are verified when asked, a client certificate is
 * what authenticates a REQUIRE SUBJECT user, and a server without TLS is refused rather than
 * silently used in plain text, except with PREFERRED, which asks for exactly that.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { format, inspect } from 'node:util';
import createDebug from 'debug';
import mysql from 'mysql2';
import type { PoolConnection, RowDataPacket } from 'mysql2';
import { ConfigError } from '../../src/errors.js';
import { readSocketSettings } from '../../src/health.js';
import { KeepalivePool } from '../../src/pool.js';
import { makePki, type Issued, type TestPki } from '../support/certs.js';
import { startThrowawayMariadb, type ThrowawayMariadb } from '../support/mariadb.js';

let pki: TestPki;
let rightCert: Issued; // names localhost and 127.0.0.1
let wrongCert: Issued; // names only db.kapool.test
let tlsDb: ThrowawayMariadb;
let plainDb: ThrowawayMariadb;
let liveCert = '';
let liveKey = '';
const pools: KeepalivePool[] = [];

before(async () => {
  pki = makePki();
  rightCert = pki.issue('server-right', { dns: ['localhost'], ips: ['127.0.0.1'] });
  wrongCert = pki.issue('server-wrong', { dns: ['db.kapool.test'] });
  // The server reads these two paths; FLUSH SSL reloads them (to switch certificates).
  liveCert = path.join(pki.dir, 'live-cert.pem');
  liveKey = path.join(pki.dir, 'live-key.pem');
  fs.copyFileSync(rightCert.certFile, liveCert);
  fs.copyFileSync(rightCert.keyFile, liveKey);
  [tlsDb, plainDb] = await Promise.all([
    startThrowawayMariadb({
      args: [`--ssl-ca=${pki.caFile}`, `--ssl-cert=${liveCert}`, `--ssl-key=${liveKey}`],
    }),
    startThrowawayMariadb({ args: ['--skip-ssl'] }),
  ]);
  await admin(
    tlsDb,
    "CREATE USER 'kapool_x509'@'%' REQUIRE SUBJECT '/CN=kapool-client' AND ISSUER '/CN=kapool test CA'",
  );
  await admin(tlsDb, `GRANT SELECT ON \`${tlsDb.database}\`.* TO 'kapool_x509'@'%'`);
});

after(async () => {
  await Promise.all(pools.map((p) => new Promise<void>((r) => p.end(() => r()))));
  await Promise.all([tlsDb?.destroy(), plainDb?.destroy()]);
  pki?.cleanup();
});

/** A plain connection as root over the unix socket, for setup. */
function admin(db: ThrowawayMariadb, sql: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const conn = mysql.createConnection({ socketPath: db.socketPath, user: 'root' });
    conn.on('error', () => {});
    conn.query(sql, (err) => {
      conn.destroy();
      if (err) reject(err);
      else resolve();
    });
  });
}

/** A pool configured like a container would be: connection and TLS settings from the env. */
function envPool(
  db: ThrowawayMariadb,
  env: Record<string, string>,
  options: Record<string, unknown> = {},
): KeepalivePool {
  const pool = new KeepalivePool(
    { connectionLimit: 2, idlePingInterval: 0, acquireTimeout: 8000, ...options },
    {
      MYSQL_HOST: '127.0.0.1',
      MYSQL_PORT: String(db.port),
      MYSQL_USER: 'root',
      MYSQL_DATABASE: db.database,
      ...env,
    },
  );
  pools.push(pool);
  return pool;
}

function getConn(pool: KeepalivePool): Promise<PoolConnection> {
  return new Promise((resolve, reject) =>
    pool.getConnection((err, conn) => (err ? reject(err) : resolve(conn))),
  );
}

function failure(pool: KeepalivePool): Promise<NodeJS.ErrnoException> {
  return getConn(pool).then(
    (conn) => {
      conn.release();
      return assert.fail('expected the connection to be refused');
    },
    (err: NodeJS.ErrnoException) => err,
  );
}

async function sessionStatus(conn: PoolConnection, name: string): Promise<string> {
  const rows = await new Promise<RowDataPacket[]>((resolve, reject) =>
    conn.query<RowDataPacket[]>(`SHOW SESSION STATUS LIKE '${name}'`, (err, r) =>
      err ? reject(err) : resolve(r),
    ),
  );
  return String(rows[0]?.Value ?? '');
}

async function cipherOf(pool: KeepalivePool): Promise<string> {
  const conn = await getConn(pool);
  try {
    return await sessionStatus(conn, 'Ssl_cipher');
  } finally {
    conn.release();
  }
}

async function flushSsl(cert: Issued): Promise<void> {
  fs.copyFileSync(cert.certFile, liveCert);
  fs.copyFileSync(cert.keyFile, liveKey);
  await admin(tlsDb, 'FLUSH SSL');
}

describe('MYSQL_SSL_MODE against a server with TLS', () => {
  test('REQUIRED encrypts every connection of the pool', async () => {
    const pool = envPool(tlsDb, { MYSQL_SSL_MODE: 'REQUIRED' });
    const conns = await Promise.all([getConn(pool), getConn(pool)]);
    try {
      assert.notEqual(conns[0]!.threadId, conns[1]!.threadId);
      for (const conn of conns) {
        assert.notEqual(await sessionStatus(conn, 'Ssl_cipher'), '', 'the session is encrypted');
        assert.match(await sessionStatus(conn, 'Ssl_version'), /^TLSv1\.[23]$/);
      }
    } finally {
      for (const conn of conns) conn.release();
    }
  });

  test('DISABLED (the control): the same server, in plain text', async () => {
    assert.equal(await cipherOf(envPool(tlsDb, { MYSQL_SSL_MODE: 'DISABLED' })), '');
    assert.equal(await cipherOf(envPool(tlsDb, {})), '', 'no TLS variable: mysql2’s default');
  });

  test('PREFERRED encrypts when the server offers TLS, and says so in a debug line', async () => {
    let cipher = '';
    const lines = await captureTlsDebug(async () => {
      cipher = await cipherOf(
        envPool(tlsDb, { MYSQL_SSL_MODE: 'PREFERRED' }, { name: 'pref-tls' }),
      );
    });
    assert.notEqual(cipher, '');
    assert.ok(
      lines.some((l) =>
        /pref-tls: MYSQL_SSL_MODE=PREFERRED: the server offers TLS, this connection uses TLS/.test(
          l,
        ),
      ),
      lines.join('\n'),
    );
  });

  test('REQUIRED does not verify: a certificate from another CA is accepted', async () => {
    const pool = envPool(tlsDb, {
      MYSQL_SSL_MODE: 'REQUIRED',
      MYSQL_SSL_CA_FILE: pki.otherCaFile,
    });
    assert.notEqual(await cipherOf(pool), '');
    assert.ok(
      pool.options.warnings.some((w) => /MYSQL_SSL_CA_FILE is not used/.test(w)),
      'and the pool said the CA file is not used',
    );
  });

  test('VERIFY_CA accepts the server certificate signed by the CA file', async () => {
    const pool = envPool(tlsDb, { MYSQL_SSL_MODE: 'VERIFY_CA', MYSQL_SSL_CA_FILE: pki.caFile });
    assert.notEqual(await cipherOf(pool), '');
    // A CA file alone means VERIFY_CA.
    assert.notEqual(await cipherOf(envPool(tlsDb, { MYSQL_SSL_CA_FILE: pki.caFile })), '');
  });

  test('VERIFY_CA refuses a server whose certificate another CA signed, with the real cause', async () => {
    const started = Date.now();
    const err = await failure(
      envPool(tlsDb, { MYSQL_SSL_MODE: 'VERIFY_CA', MYSQL_SSL_CA_FILE: pki.otherCaFile }),
    );
    assert.equal(err.code, 'HANDSHAKE_SSL_ERROR', String(err));
    assert.match(err.message, /certificate/);
    assert.ok(
      Date.now() - started < 8000,
      'failed before acquireTimeout: the cause, not a timeout',
    );
  });

  test('VERIFY_IDENTITY checks the host name against the certificate', async () => {
    const env = {
      MYSQL_SSL_MODE: 'VERIFY_IDENTITY',
      MYSQL_SSL_CA_FILE: pki.caFile,
      MYSQL_HOST: 'localhost',
    };
    assert.notEqual(await cipherOf(envPool(tlsDb, env)), '', 'localhost is in the certificate');

    await flushSsl(wrongCert); // the server now presents a certificate for db.kapool.test only
    try {
      const err = await failure(envPool(tlsDb, env));
      assert.equal(err.code, 'HANDSHAKE_SSL_ERROR', String(err));
      assert.match(err.message, /does not match certificate's altnames/);
      // VERIFY_CA does not look at the name: the same certificate passes.
      const verifyCa = envPool(tlsDb, { ...env, MYSQL_SSL_MODE: 'VERIFY_CA' });
      assert.notEqual(await cipherOf(verifyCa), '');
    } finally {
      await flushSsl(rightCert);
    }
  });

  test('a client certificate from MYSQL_SSL_CERT_FILE/MYSQL_SSL_KEY_FILE authenticates a REQUIRE SUBJECT user', async () => {
    const base = { MYSQL_USER: 'kapool_x509', MYSQL_SSL_MODE: 'VERIFY_CA' };
    const without = await failure(envPool(tlsDb, { ...base, MYSQL_SSL_CA_FILE: pki.caFile }));
    assert.equal(without.code, 'ER_ACCESS_DENIED_ERROR', String(without));

    const pool = envPool(tlsDb, {
      ...base,
      MYSQL_SSL_CA_FILE: pki.caFile,
      MYSQL_SSL_CERT_FILE: pki.client.certFile,
      MYSQL_SSL_KEY_FILE: pki.client.keyFile,
    });
    const conn = await getConn(pool);
    try {
      const rows = await new Promise<RowDataPacket[]>((resolve, reject) =>
        conn.query<RowDataPacket[]>('SELECT CURRENT_USER() AS u', (err, r) =>
          err ? reject(err) : resolve(r),
        ),
      );
      assert.equal(rows[0]?.u, 'kapool_x509@%');
    } finally {
      conn.release();
    }
    // The key is in the pool (mysql2 needs it), but no rendering of the pool shows it.
    const keyLine = fs.readFileSync(pki.client.keyFile, 'utf8').split('\n')[1]!;
    const ssl = (pool.config.connectionConfig as { ssl: Record<string, unknown> }).ssl;
    assert.equal(typeof ssl.key, 'string');
    for (const text of [
      inspect(pool, { depth: 10 }),
      inspect(pool.config, { depth: 10 }),
      inspect(pool.options, { depth: 10 }),
      JSON.stringify(ssl),
      inspect(conn, { depth: 10 }),
    ]) {
      assert.equal(text.includes(keyLine), false, `key material in:\n${text.slice(0, 2000)}`);
    }
  });

  test('files are read once, at creation: rewriting them later changes nothing', async () => {
    const ca = path.join(pki.dir, 'ca-read-once.pem');
    fs.copyFileSync(pki.caFile, ca);
    const env = { MYSQL_SSL_MODE: 'VERIFY_CA', MYSQL_SSL_CA_FILE: ca };
    const pool = envPool(tlsDb, env, { connectionLimit: 1 });
    const first = await getConn(pool);
    first.destroy();
    fs.writeFileSync(ca, 'rotated away\n');
    // A new connection (the first one was destroyed) still verifies against the CA read at start.
    const second = await getConn(pool);
    try {
      assert.notEqual(second.threadId, first.threadId);
      assert.notEqual(await sessionStatus(second, 'Ssl_cipher'), '');
    } finally {
      second.release();
    }
    // While a pool created now reads the new content and refuses it at once.
    assert.throws(() => envPool(tlsDb, env), ConfigError);
  });

  test('TLS connections get the same TCP keepalive and user-timeout settings', async () => {
    const pool = envPool(tlsDb, { MYSQL_SSL_MODE: 'REQUIRED' }, { keepAliveInitialDelay: 45_000 });
    const conn = await getConn(pool);
    try {
      assert.equal((conn as unknown as { stream: object }).stream.constructor.name, 'TLSSocket');
      const s = readSocketSettings(conn);
      assert.equal(s.keepAliveEnabled, true);
      assert.equal(s.keepAliveIdle, 45_000);
      assert.equal(s.keepAliveInterval, 10_000);
      assert.equal(s.keepAliveCount, 3);
      assert.equal(s.tcpUserTimeout, 90_000);
    } finally {
      conn.release();
    }
  });

  test('an idle TLS pool does not keep the process alive', () => {
    const res = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'test/fixtures/tls-idle-pool-exits.ts'],
      {
        encoding: 'utf8',
        timeout: 15_000,
        env: {
          ...process.env,
          MYSQL_HOST: '127.0.0.1',
          MYSQL_PORT: String(tlsDb.port),
          MYSQL_USER: 'root',
          MYSQL_DATABASE: tlsDb.database,
          MYSQL_SSL_MODE: 'VERIFY_IDENTITY',
          MYSQL_SSL_CA_FILE: pki.caFile,
        },
      },
    );
    // VERIFY_IDENTITY with an IP host is refused at createPool: the child must fail loudly.
    assert.equal(res.status, 1);
    assert.match(res.stderr, /VERIFY_IDENTITY needs host to be the DNS name/);

    const ok = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'test/fixtures/tls-idle-pool-exits.ts'],
      {
        encoding: 'utf8',
        timeout: 15_000,
        env: {
          ...process.env,
          MYSQL_HOST: 'localhost',
          MYSQL_PORT: String(tlsDb.port),
          MYSQL_USER: 'root',
          MYSQL_DATABASE: tlsDb.database,
          MYSQL_SSL_MODE: 'VERIFY_IDENTITY',
          MYSQL_SSL_CA_FILE: pki.caFile,
        },
      },
    );
    assert.equal(ok.error, undefined, 'the child exited on its own before the 15 s limit');
    assert.equal(ok.status, 0, ok.stderr);
    const out = JSON.parse(ok.stdout.trim().split('\n').pop() ?? '{}') as { cipher?: string };
    assert.ok(out.cipher, 'its connection was encrypted');
  });
});

describe('a server without TLS', () => {
  test('REQUIRED (and VERIFY_CA) fail at once with mysql2’s HANDSHAKE_NO_SSL_SUPPORT: never a silent downgrade', async () => {
    const envs: Record<string, string>[] = [
      { MYSQL_SSL_MODE: 'REQUIRED' },
      { MYSQL_SSL_MODE: 'VERIFY_CA', MYSQL_SSL_CA_FILE: pki.caFile },
    ];
    for (const env of envs) {
      const started = Date.now();
      const err = await failure(envPool(plainDb, env));
      assert.equal(err.code, 'HANDSHAKE_NO_SSL_SUPPORT', `${env.MYSQL_SSL_MODE}: ${String(err)}`);
      assert.ok(Date.now() - started < 8000, 'the cause, before acquireTimeout');
    }
    assert.equal(await cipherOf(envPool(plainDb, { MYSQL_SSL_MODE: 'DISABLED' })), '');
  });

  test('PREFERRED falls back to plain text on the same connection, and says so in a debug line', async () => {
    const pool = envPool(plainDb, { MYSQL_SSL_MODE: 'PREFERRED' }, { name: 'pref-plain' });
    let cipher = 'unset';
    let conns: PoolConnection[] = [];
    const lines = await captureTlsDebug(async () => {
      conns = await Promise.all([getConn(pool), getConn(pool)]);
      cipher = await sessionStatus(conns[0]!, 'Ssl_cipher');
    });
    try {
      assert.equal(cipher, '', 'plain text');
      assert.equal(pool.stats().created, 2, 'one handshake per connection, no retry');
      assert.equal(pool.stats().createErrors, 0);
      const decided = lines.filter((l) =>
        /pref-plain: MYSQL_SSL_MODE=PREFERRED: the server does not offer TLS, this connection uses plain text/.test(
          l,
        ),
      );
      assert.equal(decided.length, 2, lines.join('\n'));
    } finally {
      for (const c of conns) c.release();
    }
  });
});

/** Debug lines of the :tls namespace written while `fn` runs. */
async function captureTlsDebug(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const saved = { log: createDebug.log, namespaces: createDebug.disable() };
  createDebug.log = (...args: unknown[]) => {
    lines.push(format(...args));
  };
  createDebug.enable('mysql2-keepalive-pool:tls');
  try {
    await fn();
  } finally {
    createDebug.disable();
    if (saved.namespaces) createDebug.enable(saved.namespaces);
    createDebug.log = saved.log;
  }
  return lines;
}
