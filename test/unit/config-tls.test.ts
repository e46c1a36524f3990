/**
 * TLS from the environment: MYSQL_SSL_MODE and the MYSQL_SSL_*_FILE variables mapped onto
 * mysql2's `ssl` option (src/config.ts, resolveSslEnv). Certificates are real (openssl CLI);
 * the server side is in test/integration/tls.test.ts.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import * as mysql2 from 'mysql2';
import {
  SSL_ENV,
  SSL_MODES,
  connectionOptions,
  describeConfig,
  resolveConfig,
  type KeepalivePoolOptions,
} from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { makePki, type TestPki } from '../support/certs.js';

type Env = Record<string, string>;
type Ssl = Record<string, unknown> | undefined;

const ConnectionConfig = (
  mysql2 as unknown as { ConnectionConfig: new (options: unknown) => Record<string, unknown> }
).ConnectionConfig;

let pki: TestPki;
before(() => {
  pki = makePki();
});
after(() => pki.cleanup());

function resolve(t: TestContext, env: Env, options?: KeepalivePoolOptions) {
  const warn = t.mock.method(process, 'emitWarning', () => {});
  const cfg = resolveConfig(options, env);
  return {
    cfg,
    ssl: cfg.connection.ssl as Ssl,
    warnings: warn.mock.calls.map((c) => String(c.arguments[0])),
  };
}

function rejects(t: TestContext, env: Env, options?: KeepalivePoolOptions): ConfigError {
  t.mock.method(process, 'emitWarning', () => {});
  try {
    resolveConfig(options, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${inspect(err)}`);
    assert.equal(err.code, 'INVALID_CONFIG');
    assert.equal(err.option, 'ssl');
    assert.equal(err.source, 'env');
    assert.match(err.message, /^mysql2-keepalive-pool: ssl \(MYSQL_SSL_[A-Z_]+\) must be /);
    return err;
  }
  return assert.fail('expected resolveConfig to throw');
}

/** Every rendering of an error that could end up in a log. */
function everythingAbout(err: unknown): string {
  const e = err as Error;
  return [e.message, e.stack, inspect(e, { depth: 10, showHidden: true }), JSON.stringify(e)].join(
    '\n',
  );
}

/** The base64 body of a PEM file: what must never show up anywhere. */
function pemBody(file: string): string {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('-----'))
    .join('');
}

describe('MYSQL_SSL_MODE', () => {
  it('unset, with no TLS variable at all: mysql2’s default (no TLS)', (t) => {
    const { cfg, ssl } = resolve(t, {});
    assert.equal(ssl, undefined);
    assert.equal('ssl' in cfg.sources, false);
  });

  it('knows exactly the five MySQL client modes, in any case', (t) => {
    assert.deepEqual(
      [...SSL_MODES],
      ['DISABLED', 'PREFERRED', 'REQUIRED', 'VERIFY_CA', 'VERIFY_IDENTITY'],
    );
    for (const text of ['required', ' Required ', 'REQUIRED']) {
      assert.deepEqual(resolve(t, { MYSQL_SSL_MODE: text }).ssl, { rejectUnauthorized: false });
    }
  });

  it('REQUIRED encrypts without verifying the server certificate', (t) => {
    const { cfg, ssl } = resolve(t, { MYSQL_SSL_MODE: 'REQUIRED' });
    assert.deepEqual(ssl, { rejectUnauthorized: false });
    assert.equal(cfg.sources.ssl, 'env');
  });

  it("PREFERRED asks for REQUIRED's TLS and records the mode (each connection decides, see tls-preferred)", (t) => {
    const { cfg, ssl } = resolve(t, { MYSQL_SSL_MODE: 'PREFERRED' });
    assert.deepEqual(ssl, { rejectUnauthorized: false });
    assert.equal(cfg.sslMode, 'PREFERRED');
    assert.equal(resolve(t, { MYSQL_SSL_MODE: 'REQUIRED' }).cfg.sslMode, 'REQUIRED');
    assert.equal(resolve(t, {}).cfg.sslMode, undefined);
  });

  it('DISABLED means no TLS', (t) => {
    const { cfg, ssl } = resolve(t, { MYSQL_SSL_MODE: 'disabled' });
    assert.equal(ssl, undefined);
    assert.equal(cfg.sources.ssl, 'env');
  });

  it('VERIFY_CA verifies the chain against the CA file, not the host name', (t) => {
    const { ssl } = resolve(t, { MYSQL_SSL_MODE: 'VERIFY_CA', MYSQL_SSL_CA_FILE: pki.caFile });
    assert.deepEqual(ssl, { rejectUnauthorized: true, ca: pki.caPem });
  });

  it('VERIFY_IDENTITY also checks the host name', (t) => {
    const { ssl } = resolve(t, {
      MYSQL_SSL_MODE: 'VERIFY_IDENTITY',
      MYSQL_SSL_CA_FILE: pki.caFile,
      MYSQL_HOST: 'db.internal',
    });
    assert.deepEqual(ssl, { rejectUnauthorized: true, verifyIdentity: true, ca: pki.caPem });
  });

  it('VERIFY_* without a CA file verify against Node’s CA store', (t) => {
    assert.deepEqual(resolve(t, { MYSQL_SSL_MODE: 'VERIFY_CA' }).ssl, {
      rejectUnauthorized: true,
    });
  });

  it('unset with a CA file means VERIFY_CA, as in MySQL’s clients', (t) => {
    const { ssl } = resolve(t, { MYSQL_SSL_CA_FILE: pki.caFile });
    assert.deepEqual(ssl, { rejectUnauthorized: true, ca: pki.caPem });
  });

  it('unset with only a client certificate means REQUIRED, sending the certificate', (t) => {
    const { ssl } = resolve(t, {
      MYSQL_SSL_CERT_FILE: pki.client.certFile,
      MYSQL_SSL_KEY_FILE: pki.client.keyFile,
    });
    assert.deepEqual(ssl, {
      rejectUnauthorized: false,
      cert: pki.client.certPem,
      key: fs.readFileSync(pki.client.keyFile, 'utf8'),
    });
  });

  it('VERIFY_CA with a client certificate carries all three', (t) => {
    const { ssl } = resolve(t, {
      MYSQL_SSL_MODE: 'VERIFY_CA',
      MYSQL_SSL_CA_FILE: pki.caFile,
      MYSQL_SSL_CERT_FILE: pki.client.certFile,
      MYSQL_SSL_KEY_FILE: pki.client.keyFile,
    });
    assert.equal(ssl?.rejectUnauthorized, true);
    assert.equal(ssl?.ca, pki.caPem);
    assert.equal(ssl?.cert, pki.client.certPem);
    assert.equal(ssl?.key, fs.readFileSync(pki.client.keyFile, 'utf8'));
  });

  it('REQUIRED with a CA file warns that the CA is not used, and does not pass it', (t) => {
    const { cfg, ssl } = resolve(t, { MYSQL_SSL_MODE: 'REQUIRED', MYSQL_SSL_CA_FILE: pki.caFile });
    assert.deepEqual(ssl, { rejectUnauthorized: false });
    assert.ok(
      cfg.warnings.some((w) =>
        /MYSQL_SSL_MODE=REQUIRED encrypts without verifying .* MYSQL_SSL_CA_FILE is not used; set MYSQL_SSL_MODE=VERIFY_CA/.test(
          w,
        ),
      ),
      inspect(cfg.warnings),
    );
  });

  it('mysql2 accepts what we build, and can write rejectUnauthorized into it', (t) => {
    const { cfg } = resolve(t, {
      MYSQL_SSL_MODE: 'VERIFY_IDENTITY',
      MYSQL_SSL_CA_FILE: pki.caFile,
      MYSQL_HOST: 'db.internal',
    });
    const mc = new ConnectionConfig(connectionOptions(cfg));
    const ssl = mc.ssl as Record<string, unknown>;
    assert.equal(ssl.rejectUnauthorized, true);
    assert.equal(ssl.verifyIdentity, true);
    assert.equal(ssl.ca, pki.caPem);
  });
});

describe('explicit ssl wins', () => {
  it('an explicit ssl object: MYSQL_SSL_* are not read, not even checked', (t) => {
    const env = { MYSQL_SSL_MODE: 'NONSENSE', MYSQL_SSL_CA_FILE: '/does/not/exist.pem' };
    const { cfg, ssl } = resolve(t, env, { ssl: { rejectUnauthorized: false, ca: 'X' } });
    assert.deepEqual(ssl, { rejectUnauthorized: false, ca: 'X' });
    assert.equal(cfg.sources.ssl, 'option');
  });

  it('ssl: false turns TLS off whatever the environment says', (t) => {
    const { ssl } = resolve(t, { MYSQL_SSL_MODE: 'VERIFY_CA' }, { ssl: false as never });
    assert.equal(ssl, false);
  });

  it('undefined counts as not given', (t) => {
    const { ssl } = resolve(t, { MYSQL_SSL_MODE: 'REQUIRED' }, { ssl: undefined });
    assert.deepEqual(ssl, { rejectUnauthorized: false });
  });
});

describe('bad TLS settings fail at createPool, naming the variable', () => {
  it('an unknown mode lists the accepted ones', (t) => {
    const err = rejects(t, { MYSQL_SSL_MODE: 'VERIFY_FULL' });
    assert.equal(
      err.message,
      'mysql2-keepalive-pool: ssl (MYSQL_SSL_MODE) must be DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY (any case), got "VERIFY_FULL"',
    );
    assert.equal(err.envVar, 'MYSQL_SSL_MODE');
    assert.equal(err.value, 'VERIFY_FULL');
  });

  it('an unreadable file names the path and the reason, with the cause chained', (t) => {
    const missing = path.join(pki.dir, 'nope.pem');
    const err = rejects(t, { MYSQL_SSL_CA_FILE: missing });
    assert.equal(
      err.message,
      `mysql2-keepalive-pool: ssl (MYSQL_SSL_CA_FILE) must be the path of a readable file, got ${JSON.stringify(missing)}: ENOENT`,
    );
    assert.equal(err.envVar, 'MYSQL_SSL_CA_FILE');
    assert.equal(err.value, missing);
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'ENOENT');

    const dirErr = rejects(t, {
      MYSQL_SSL_CERT_FILE: pki.dir,
      MYSQL_SSL_KEY_FILE: pki.client.keyFile,
    });
    assert.equal(dirErr.envVar, 'MYSQL_SSL_CERT_FILE');
    assert.match(dirErr.message, /: EISDIR$/);

    const keyErr = rejects(t, {
      MYSQL_SSL_CERT_FILE: pki.client.certFile,
      MYSQL_SSL_KEY_FILE: missing,
    });
    assert.equal(keyErr.envVar, 'MYSQL_SSL_KEY_FILE');
    assert.match(keyErr.message, /readable file, got ".*nope\.pem": ENOENT$/);
  });

  it('a CA file that holds no certificate', (t) => {
    const err = rejects(t, { MYSQL_SSL_CA_FILE: pki.garbageFile });
    assert.equal(
      err.message,
      `mysql2-keepalive-pool: ssl (MYSQL_SSL_CA_FILE) must be a PEM file of CA certificates, got ${JSON.stringify(pki.garbageFile)}: no PEM certificate in it`,
    );
    const keyAsCa = rejects(t, { MYSQL_SSL_CA_FILE: pki.client.keyFile });
    assert.match(keyAsCa.message, /no PEM certificate in it$/);
  });

  it('a PEM block that does not parse', (t) => {
    const broken = path.join(pki.dir, 'broken-ca.pem');
    fs.writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    const err = rejects(t, { MYSQL_SSL_MODE: 'VERIFY_CA', MYSQL_SSL_CA_FILE: broken });
    assert.equal(err.envVar, 'MYSQL_SSL_CA_FILE');
    assert.ok(err.cause instanceof Error);
  });

  it('a certificate without its key, or a key without its certificate', (t) => {
    const noKey = rejects(t, { MYSQL_SSL_CERT_FILE: pki.client.certFile });
    assert.equal(noKey.envVar, 'MYSQL_SSL_CERT_FILE');
    assert.match(
      noKey.message,
      /must be set together with MYSQL_SSL_KEY_FILE, got ".*": a client certificate is sent with its private key$/,
    );
    const noCert = rejects(t, { MYSQL_SSL_KEY_FILE: pki.client.keyFile });
    assert.equal(noCert.envVar, 'MYSQL_SSL_KEY_FILE');
    assert.match(noCert.message, /must be set together with MYSQL_SSL_CERT_FILE/);
  });

  it('a key that does not belong to the certificate', (t) => {
    const err = rejects(t, {
      MYSQL_SSL_CERT_FILE: pki.client.certFile,
      MYSQL_SSL_KEY_FILE: pki.strayKeyFile,
    });
    assert.equal(err.envVar, 'MYSQL_SSL_KEY_FILE');
    assert.equal(
      err.message,
      `mysql2-keepalive-pool: ssl (MYSQL_SSL_KEY_FILE) must be an unencrypted PEM private key matching MYSQL_SSL_CERT_FILE, got ${JSON.stringify(pki.strayKeyFile)}: it is not the key of ${pki.client.certFile}`,
    );
  });

  it('an encrypted key points at the explicit ssl option', (t) => {
    const err = rejects(t, {
      MYSQL_SSL_CERT_FILE: pki.client.certFile,
      MYSQL_SSL_KEY_FILE: pki.encryptedKeyFile,
    });
    assert.match(err.message, /the key is encrypted; pass ssl: \{ key, passphrase, … \}/);
  });

  it('a key file that is not a key; no key material in any rendering of any error', (t) => {
    const garbage = rejects(t, {
      MYSQL_SSL_CERT_FILE: pki.client.certFile,
      MYSQL_SSL_KEY_FILE: pki.garbageFile,
    });
    assert.equal(garbage.envVar, 'MYSQL_SSL_KEY_FILE');
    assert.ok(garbage.cause instanceof Error);
    const stray = rejects(t, {
      MYSQL_SSL_CERT_FILE: pki.client.certFile,
      MYSQL_SSL_KEY_FILE: pki.strayKeyFile,
    });
    const encrypted = rejects(t, {
      MYSQL_SSL_CERT_FILE: pki.client.certFile,
      MYSQL_SSL_KEY_FILE: pki.encryptedKeyFile,
    });
    for (const err of [garbage, stray, encrypted]) {
      const text = everythingAbout(err);
      for (const keyFile of [pki.client.keyFile, pki.strayKeyFile, pki.encryptedKeyFile]) {
        assert.equal(text.includes(pemBody(keyFile)), false, `key material leaked:\n${text}`);
        assert.equal(text.includes(pemBody(keyFile).slice(0, 40)), false);
      }
    }
  });

  it('DISABLED together with a file is a contradiction', (t) => {
    const err = rejects(t, { MYSQL_SSL_MODE: 'DISABLED', MYSQL_SSL_CA_FILE: pki.caFile });
    assert.equal(err.envVar, 'MYSQL_SSL_MODE');
    assert.match(
      err.message,
      /DISABLED turns TLS off, so MYSQL_SSL_CA_FILE would be ignored; unset one of them$/,
    );
  });

  it('VERIFY_IDENTITY with an IP address as host (mysql2 would check "localhost")', (t) => {
    for (const [env, options] of [
      [{ MYSQL_SSL_MODE: 'VERIFY_IDENTITY', MYSQL_HOST: '10.0.0.5' }, undefined],
      [{ MYSQL_SSL_MODE: 'VERIFY_IDENTITY' }, { host: '::1' }],
      [{ MYSQL_SSL_MODE: 'VERIFY_IDENTITY', MYSQL_URL: 'mysql://u@127.0.0.1/db' }, undefined],
    ] as [Env, KeepalivePoolOptions | undefined][]) {
      const err = rejects(t, env, options);
      assert.match(
        err.message,
        /must be VERIFY_CA when host is an IP address, got "VERIFY_IDENTITY": VERIFY_IDENTITY needs host to be the DNS name in the server certificate/,
      );
    }
    // A name is fine, and so is VERIFY_CA with an IP address.
    resolve(t, { MYSQL_SSL_MODE: 'VERIFY_IDENTITY', MYSQL_HOST: 'db.internal' });
    resolve(t, { MYSQL_SSL_MODE: 'VERIFY_CA', MYSQL_HOST: '10.0.0.5' });
  });
});

describe('the environment around TLS', () => {
  it('MYSQL_SSL_* names are known; the mysql CLI’s names get a suggestion', (t) => {
    assert.deepEqual(
      [...SSL_ENV],
      ['MYSQL_SSL_MODE', 'MYSQL_SSL_CA_FILE', 'MYSQL_SSL_CERT_FILE', 'MYSQL_SSL_KEY_FILE'],
    );
    const quiet = resolve(t, { MYSQL_SSL_MODE: 'REQUIRED', MYSQL_SSL_CA_FILE: pki.caFile });
    assert.equal(
      quiet.warnings.some((w) => /unknown environment/.test(w)),
      false,
      inspect(quiet.warnings),
    );
    const { warnings } = resolve(t, {
      MYSQL_SSL_CA: '/ca.pem',
      MYSQL_SSL_CERT: '/c.pem',
      MYSQL_SSL_KEY: '/k.pem',
      MYSQL_SSLMODE: 'REQUIRED',
    });
    const unknown = warnings.find((w) => /unknown environment/.test(w)) ?? '';
    assert.match(unknown, /MYSQL_SSL_CA \(did you mean MYSQL_SSL_CA_FILE\?\)/);
    assert.match(unknown, /MYSQL_SSL_CERT \(did you mean MYSQL_SSL_CERT_FILE\?\)/);
    assert.match(unknown, /MYSQL_SSL_KEY \(did you mean MYSQL_SSL_KEY_FILE\?\)/);
    assert.match(unknown, /MYSQL_SSLMODE \(did you mean MYSQL_SSL_MODE\?\)/);
  });

  it('files are read at resolution: later changes to them do not matter', (t) => {
    const ca = path.join(pki.dir, 'ca-copy.pem');
    fs.copyFileSync(pki.caFile, ca);
    const { ssl } = resolve(t, { MYSQL_SSL_CA_FILE: ca });
    fs.rmSync(ca);
    assert.equal(ssl?.ca, pki.caPem);
  });

  it('key material never shows in describeConfig or util.inspect of the config', (t) => {
    const { cfg } = resolve(t, {
      MYSQL_SSL_MODE: 'VERIFY_CA',
      MYSQL_SSL_CA_FILE: pki.caFile,
      MYSQL_SSL_CERT_FILE: pki.client.certFile,
      MYSQL_SSL_KEY_FILE: pki.client.keyFile,
    });
    const d = describeConfig(cfg);
    assert.equal(d['ssl.key'], '***');
    assert.equal(d['ssl.rejectUnauthorized'], true);
    const key = pemBody(pki.client.keyFile).slice(0, 40);
    for (const text of [
      JSON.stringify(d),
      inspect(d, { depth: 10 }),
      inspect(cfg, { depth: 10 }),
      JSON.stringify(cfg),
    ]) {
      assert.equal(text.includes(key), false, `key material leaked:\n${text}`);
    }
  });
});
