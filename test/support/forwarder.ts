/**
 * Tiny TCP -> unix-socket forwarder used by the conntrack rig (test/support/rig.ts).
 *
 * It runs inside the rig's "db" network namespace, listens on the db-side veth address and pipes
 * every accepted TCP connection to a unix socket (MariaDB's by default). Unix sockets are not
 * scoped to a network namespace, so this is how the private namespaces reach the real server
 * without any address in the root namespace.
 *
 *   node --import tsx test/support/forwarder.ts --listen 10.231.0.2 --port 3306 \
 *        --socket /run/mysqld/mysqld.sock [--exit-on-stdin-eof]
 *
 * Prints exactly one ready line on stdout once listening:
 *   FORWARDER READY {"address":"10.231.0.2","port":3306,"socket":"/run/mysqld/mysqld.sock","pid":123}
 * Anything else (diagnostics) goes to stderr. Exits 0 on SIGTERM/SIGINT (and, with
 * --exit-on-stdin-eof, when its stdin reaches EOF, i.e. when the parent that holds the pipe dies).
 */
import net from 'node:net';

export const FORWARDER_READY_PREFIX = 'FORWARDER READY ';

interface ForwarderArgs {
  listen: string;
  port: number;
  socket: string;
  exitOnStdinEof: boolean;
  verbose: boolean;
}

function parseArgs(argv: string[]): ForwarderArgs {
  const out: ForwarderArgs = {
    listen: '127.0.0.1',
    port: 3306,
    socket: '/run/mysqld/mysqld.sock',
    exitOnStdinEof: false,
    verbose: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`missing value for ${a}`);
      return v;
    };
    switch (a) {
      case '--listen':
        out.listen = next();
        break;
      case '--port':
        out.port = Number(next());
        break;
      case '--socket':
        out.socket = next();
        break;
      case '--exit-on-stdin-eof':
        out.exitOnStdinEof = true;
        break;
      case '--verbose':
        out.verbose = true;
        break;
      default:
        throw new Error(`unknown argument ${a}`);
    }
  }
  if (!Number.isInteger(out.port) || out.port <= 0 || out.port > 65535) {
    throw new Error(`bad --port ${out.port}`);
  }
  return out;
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const log = (msg: string): void => {
    if (args.verbose) process.stderr.write(`[forwarder ${process.pid}] ${msg}\n`);
  };
  const pairs = new Set<{ tcp: net.Socket; unix: net.Socket }>();
  let seq = 0;

  const server = net.createServer({ pauseOnConnect: true }, (tcp) => {
    const id = ++seq;
    const unix = net.createConnection({ path: args.socket });
    const pair = { tcp, unix };
    pairs.add(pair);
    log(`#${id} accepted ${tcp.remoteAddress}:${tcp.remotePort}`);
    let closed = false;
    // Either side closing or failing tears down both sides: a half-open pair would hide
    // exactly the failures the rig is meant to produce.
    const teardown = (why: string): void => {
      if (closed) return;
      closed = true;
      pairs.delete(pair);
      log(`#${id} teardown: ${why}`);
      tcp.destroy();
      unix.destroy();
    };
    tcp.on('error', (e) => teardown(`tcp error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    unix.on('error', (e) =>
      teardown(`unix error ${(e as NodeJS.ErrnoException).code ?? e.message}`),
    );
    tcp.on('close', () => teardown('tcp close'));
    unix.on('close', () => teardown('unix close'));
    tcp.on('end', () => teardown('tcp end'));
    unix.on('end', () => teardown('unix end'));
    unix.once('connect', () => {
      if (closed) return;
      tcp.pipe(unix);
      unix.pipe(tcp);
      tcp.resume();
    });
  });

  const shutdown = (why: string): void => {
    log(`shutdown: ${why}`);
    server.close();
    for (const p of pairs) {
      p.tcp.destroy();
      p.unix.destroy();
    }
    pairs.clear();
    process.exit(0);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  if (args.exitOnStdinEof) {
    process.stdin.on('data', () => {});
    process.stdin.on('end', () => shutdown('stdin EOF'));
    process.stdin.on('error', () => shutdown('stdin error'));
  }

  server.on('error', (e) => {
    process.stderr.write(`forwarder: listen error: ${e.message}\n`);
    process.exit(1);
  });
  server.listen({ host: args.listen, port: args.port }, () => {
    process.stdout.write(
      FORWARDER_READY_PREFIX +
        JSON.stringify({
          address: args.listen,
          port: args.port,
          socket: args.socket,
          pid: process.pid,
        }) +
        '\n',
    );
  });
}

if (require.main === module) {
  try {
    main();
  } catch (e) {
    process.stderr.write(`forwarder: ${(e as Error).message}\n`);
    process.exit(2);
  }
}
