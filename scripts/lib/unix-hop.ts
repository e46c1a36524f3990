/**
 * A unix socket in front of a TCP database, for the kernel rig. The rig's forwarder lives in a
 * private network namespace and reaches the database through a unix socket (unix sockets are not
 * scoped to a network namespace); a database reachable only over TCP (MYSQL_URL to a host, the
 * local server on 127.0.0.1:3306) gets this second hop, which runs in the demo's own process and
 * connects to exactly the configured address, nothing else.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface UnixHop {
  /** Unix socket to hand to the rig. */
  readonly socketPath: string;
  /** Stops listening, destroys every connection and removes the temp directory. Idempotent. */
  close(): Promise<void>;
}

export function startUnixHop(target: { host: string; port: number }): Promise<UnixHop> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kapool-demo-hop-'));
  const socketPath = path.join(dir, 'mysql.sock');
  const removeDir = (): void => fs.rmSync(dir, { recursive: true, force: true });
  // Even when the demo dies half-way, no temp directory stays behind.
  process.once('exit', removeDir);
  const pairs = new Set<[net.Socket, net.Socket]>();

  const server = net.createServer({ pauseOnConnect: true }, (local) => {
    const remote = net.connect({ host: target.host, port: target.port });
    const pair: [net.Socket, net.Socket] = [local, remote];
    pairs.add(pair);
    // Either side ending or failing ends both: a half-open hop would hide the very failures the
    // demo shows.
    const teardown = (): void => {
      pairs.delete(pair);
      local.destroy();
      remote.destroy();
    };
    for (const s of pair) {
      s.on('error', teardown);
      s.on('close', teardown);
      s.on('end', teardown);
    }
    remote.once('connect', () => {
      local.pipe(remote);
      remote.pipe(local);
      local.resume();
    });
  });

  return new Promise((resolve, reject) => {
    server.once('error', (e) => {
      removeDir();
      reject(e);
    });
    server.listen(socketPath, () => {
      let closing: Promise<void> | null = null;
      resolve({
        socketPath,
        close() {
          closing ??= new Promise<void>((done) => {
            for (const [a, b] of [...pairs]) {
              a.destroy();
              b.destroy();
            }
            pairs.clear();
            server.close(() => {
              removeDir();
              process.off('exit', removeDir);
              done();
            });
          });
          return closing;
        },
      });
    });
  });
}
