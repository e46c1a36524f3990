/**
 * User-space stand-in for a middlebox that forgets idle TCP flows, for machines where the kernel
 * rig (test/support/rig.ts) cannot run. A TCP proxy on 127.0.0.1 forwards each connection to the
 * database and remembers when the flow last carried data. Like conntrack, it decides lazily: the
 * first byte of a flow idle longer than `idleTimeoutMs` finds it forgotten, and from then on
 *   - drop: nothing is forwarded in either direction any more (the client's writes vanish);
 *   - rst:  the client's connection is reset (a TCP RST, `ECONNRESET` on the client).
 *
 * What it cannot show: TCP keepalive. Keepalive probes carry no data and are answered by this
 * machine's own kernel on the proxy's socket, so a flow kept alive by keepalive alone still looks
 * idle here. Only the kernel rig can show keepalive; this proxy shows checkout validation.
 */
import net from 'node:net';

export type IdleProxyMode = 'drop' | 'rst';

/** Where the proxy forwards to: a TCP address or a unix socket. */
export type ProxyTarget = { host: string; port: number } | { socketPath: string };

export interface IdleProxyOptions {
  mode: IdleProxyMode;
  idleTimeoutMs: number;
  target: ProxyTarget;
}

export interface IdleProxy {
  /** Always 127.0.0.1. */
  readonly host: string;
  /** A free port chosen by the kernel. */
  readonly port: number;
  /** Stops listening and destroys every flow. Idempotent. */
  close(): Promise<void>;
}

interface Flow {
  client: net.Socket;
  upstream: net.Socket;
  lastActivity: number;
  forgotten: boolean;
}

export function startIdleProxy(opts: IdleProxyOptions): Promise<IdleProxy> {
  const flows = new Set<Flow>();

  const teardown = (flow: Flow): void => {
    flows.delete(flow);
    flow.client.destroy();
    flow.upstream.destroy();
  };

  /** True when the flow was idle past the timeout: from now on it is forgotten for good. */
  const expired = (flow: Flow): boolean => {
    if (!flow.forgotten && Date.now() - flow.lastActivity > opts.idleTimeoutMs) {
      flow.forgotten = true;
      // The server's side of a forgotten flow is of no further use; the client's side is what
      // the demo is about, and it stays open (drop) until the client gives up.
      flow.upstream.destroy();
    }
    return flow.forgotten;
  };

  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    const upstream = net.connect(opts.target as net.NetConnectOpts);
    const flow: Flow = { client, upstream, lastActivity: Date.now(), forgotten: false };
    flows.add(flow);
    client.on('data', (chunk) => {
      if (expired(flow)) {
        if (opts.mode === 'rst') {
          flows.delete(flow);
          client.resetAndDestroy();
        }
        return; // drop: the bytes vanish
      }
      flow.lastActivity = Date.now();
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (expired(flow)) return;
      flow.lastActivity = Date.now();
      client.write(chunk);
    });
    // The server closing, or the client going away, ends the flow, unless it is already
    // forgotten: then the client learns nothing from the server (that is the point).
    upstream.on('close', () => {
      if (!flow.forgotten) teardown(flow);
    });
    client.on('close', () => teardown(flow));
    upstream.on('error', () => {
      /* followed by 'close' */
    });
    client.on('error', () => {
      /* followed by 'close' */
    });
    upstream.once('connect', () => client.resume());
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      server.off('error', reject);
      const { port } = server.address() as net.AddressInfo;
      let closing: Promise<void> | null = null;
      resolve({
        host: '127.0.0.1',
        port,
        close() {
          closing ??= new Promise<void>((done) => {
            for (const flow of [...flows]) teardown(flow);
            server.close(() => done());
          });
          return closing;
        },
      });
    });
  });
}
