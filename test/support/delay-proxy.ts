/**
 * A small TCP proxy in front of the test server that makes the path slow or stalls it, for the
 * hedged-checkout tests (test/integration/hedge-slow-path.test.ts):
 *
 * - `delayMs`: every chunk is passed on that long after it arrived, in each direction (a path
 *   with `delayMs` added each way: a round trip of 2 × delayMs). Order is kept.
 * - `stall()`: from now on nothing is passed on for the connections open right now, in either
 *   direction (a black-holed flow); `unstall()` passes on everything held back, in order.
 *   Connections accepted later are never stalled.
 *
 * Plain `net`, timers owned by the proxy and cleared by `close()`.
 */
import net from 'node:net';
import { once } from 'node:events';
import { dbOptions } from './db.js';

interface Pipe {
  client: net.Socket;
  upstream: net.Socket;
  stalled: boolean;
  held: Array<{ to: net.Socket; chunk: Buffer }>;
}

export interface DelayProxy {
  readonly port: number;
  /** Connections accepted so far. */
  accepted(): number;
  stall(): void;
  unstall(): void;
  close(): Promise<void>;
}

export async function startDelayProxy(delayMs: number): Promise<DelayProxy> {
  const db = dbOptions();
  const pipes = new Set<Pipe>();
  const timers = new Set<NodeJS.Timeout>();
  let accepted = 0;
  const pass = (pipe: Pipe, to: net.Socket, chunk: Buffer): void => {
    if (pipe.stalled) {
      pipe.held.push({ to, chunk });
      return;
    }
    if (delayMs <= 0) {
      if (!to.destroyed) to.write(chunk);
      return;
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (pipe.stalled) pipe.held.push({ to, chunk });
      else if (!to.destroyed) to.write(chunk);
    }, delayMs);
    timers.add(timer);
  };
  const server = net.createServer((client) => {
    accepted++;
    const upstream = net.connect(db.port, db.host);
    const pipe: Pipe = { client, upstream, stalled: false, held: [] };
    pipes.add(pipe);
    const end = (): void => {
      pipes.delete(pipe);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', () => undefined);
      s.on('close', end);
    }
    client.on('data', (chunk: Buffer) => pass(pipe, upstream, chunk));
    upstream.on('data', (chunk: Buffer) => pass(pipe, client, chunk));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    accepted: () => accepted,
    stall() {
      for (const p of pipes) p.stalled = true;
    },
    unstall() {
      for (const p of pipes) {
        p.stalled = false;
        const held = p.held;
        p.held = [];
        for (const { to, chunk } of held) if (!to.destroyed) to.write(chunk);
      }
    },
    close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const p of pipes) {
        p.client.destroy();
        p.upstream.destroy();
      }
      pipes.clear();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
