/**
 * Throwaway TLS material for tests, made with the `openssl` CLI (installed by .ci/run): a CA,
 * server certificates with chosen names, a client certificate, and a few wrong files.
 *
 *   const pki = makePki();
 *   const server = pki.issue('server', { dns: ['localhost'], ips: ['127.0.0.1'] });
 *   // pki.caFile, server.certFile, server.keyFile, pki.client.certFile, …
 *   pki.cleanup();
 *
 * EC P-256 keys: generating them takes milliseconds, where RSA takes a noticeable fraction of a
 * second per key on a busy 2-core machine.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A certificate and its key, as files. */
export interface Issued {
  readonly certFile: string;
  readonly keyFile: string;
  readonly certPem: string;
}

export interface TestPki {
  readonly dir: string;
  /** The CA that signs everything below. */
  readonly caFile: string;
  readonly caPem: string;
  /** A second, unrelated CA: verification against it must fail. */
  readonly otherCaFile: string;
  /** A client certificate (extendedKeyUsage clientAuth), CN `kapool-client`. */
  readonly client: Issued;
  /** A private key that belongs to no certificate here. */
  readonly strayKeyFile: string;
  /** `client`'s key, encrypted with a passphrase. */
  readonly encryptedKeyFile: string;
  /** A file that is not PEM at all. */
  readonly garbageFile: string;
  /** Issues a server certificate signed by the CA (extendedKeyUsage serverAuth). */
  issue(name: string, san: { dns?: string[]; ips?: string[] }): Issued;
  /** Removes the directory. Idempotent. */
  cleanup(): void;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '');
    throw new Error(`openssl ${args[0]} failed: ${(error as Error).message}\n${stderr}`, {
      cause: error,
    });
  }
}

/** True when the `openssl` CLI runs; the TLS tests need it. */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function makeCa(dir: string, base: string, cn: string): void {
  openssl(
    [
      'req',
      '-x509',
      ...EC,
      '-keyout',
      `${base}-key.pem`,
      '-out',
      `${base}.pem`,
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
}

/** Makes a CA (and the wrong files) in a new temp directory. */
export function makePki(): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kapool-pki-'));
  makeCa(dir, 'ca', 'kapool test CA');
  makeCa(dir, 'other-ca', 'kapool unrelated CA');

  const sign = (base: string, cn: string, ext: string): Issued => {
    fs.writeFileSync(path.join(dir, `${base}.ext`), ext);
    openssl(
      [
        'req',
        '-new',
        ...EC,
        '-keyout',
        `${base}-key.pem`,
        '-out',
        `${base}.csr`,
        '-subj',
        `/CN=${cn}`,
      ],
      dir,
    );
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${base}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca-key.pem',
        '-set_serial',
        `0x${randomBytes(8).toString('hex')}`,
        '-days',
        '2',
        '-out',
        `${base}.pem`,
        '-extfile',
        `${base}.ext`,
      ],
      dir,
    );
    const certFile = path.join(dir, `${base}.pem`);
    return {
      certFile,
      keyFile: path.join(dir, `${base}-key.pem`),
      certPem: fs.readFileSync(certFile, 'utf8'),
    };
  };

  const client = sign(
    'client',
    'kapool-client',
    'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n',
  );
  openssl(
    ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'stray-key.pem'],
    dir,
  );
  openssl(
    [
      'pkey',
      '-in',
      client.keyFile,
      '-aes256',
      '-passout',
      'pass:kapool-passphrase',
      '-out',
      'client-key-encrypted.pem',
    ],
    dir,
  );
  const garbageFile = path.join(dir, 'garbage.pem');
  fs.writeFileSync(garbageFile, 'this is not a certificate\n');

  return {
    dir,
    caFile: path.join(dir, 'ca.pem'),
    caPem: fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8'),
    otherCaFile: path.join(dir, 'other-ca.pem'),
    client,
    strayKeyFile: path.join(dir, 'stray-key.pem'),
    encryptedKeyFile: path.join(dir, 'client-key-encrypted.pem'),
    garbageFile,
    issue(name, san) {
      const alt = [
        ...(san.dns ?? []).map((d) => `DNS:${d}`),
        ...(san.ips ?? []).map((i) => `IP:${i}`),
      ].join(',');
      return sign(
        name,
        san.dns?.[0] ?? san.ips?.[0] ?? name,
        `basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n${alt === '' ? '' : `subjectAltName=${alt}\n`}`,
      );
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
