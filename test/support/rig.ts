/**
 * Conntrack rig: reproduces an IPVS-style middlebox that forgets idle TCP flows, with the real
 * kernel, inside two private network namespaces (see /work/shared/DESIGN.md section 6 and
 * test/support/RIG.md).
 *
 *   client ns  [kapc 10.231.0.1/30] ==veth== [kapd 10.231.0.2/30]  db ns
 *     client code connects to VIP 10.96.231.10:3306, DNATed to 10.231.0.2:3306 where
 *     test/support/forwarder.ts pipes each connection to MariaDB's unix socket.
 *
 * Nothing is ever put in the root namespace: the veth pair is created directly inside the two
 * namespaces, and unix sockets (not netns-scoped) are how the db namespace reaches the server.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export type RigMode = 'drop' | 'rst';
export interface RigOptions {
  mode: RigMode;
  /** conntrack established timeout (s), e.g. 3..5 */
  idleTimeoutSec: number;
  /** default: MariaDB's socket */
  socketPath?: string;
  /**
   * `'blackhole'`: the client namespace's resolver (`/etc/resolv.conf`, as `ip netns exec` shows
   * it) is {@link RIG_DNS}, routed into a TUN device nobody reads, so every query vanishes without
   * an answer or an error, as when a cluster's DNS is down. Default: the host's resolver.
   */
  dns?: 'blackhole';
}
export interface Rig {
  /** namespace to run client code in */
  readonly clientNs: string;
  /** the VIP the client connects to */
  readonly host: string;
  /** VIP port (3306) */
  readonly port: number;
  /** drop every packet both ways (in addition to the rules above), for mid-query failure tests */
  partition(): Promise<void>;
  /** undo partition() */
  heal(): Promise<void>;
  /** number of conntrack entries for the VIP flow in the client ns (for assertions/debug) */
  conntrackEntries(): Promise<number>;
  /** kill forwarder, delete namespaces; idempotent; also runs on process exit */
  close(): Promise<void>;

  // ---- extras (informational; not part of the contract above) ----
  readonly dbNs: string;
  readonly mode: RigMode;
  readonly idleTimeoutSec: number;
  readonly socketPath: string;
  /** The resolver the client namespace uses when `dns: 'blackhole'`, else null. */
  readonly dnsServer: string | null;
}

/** The fake service VIP. Only ever DNATed inside the client namespace. */
export const RIG_VIP = '10.96.231.10';
export const RIG_PORT = 3306;
/** Client-side and db-side veth addresses (a /30 that exists only inside our namespaces). */
export const RIG_CLIENT_ADDR = '10.231.0.1';
export const RIG_DB_ADDR = '10.231.0.2';
/** The black-holed resolver of `dns: 'blackhole'` (kube-dns's usual ClusterIP). */
export const RIG_DNS = '10.96.0.10';
/**
 * The client namespace's resolver configuration for `dns: 'blackhole'`: a pod's, with one try
 * of 1 s per query (glibc's default is 5 s × 2) so a lookup that should not happen costs seconds,
 * not minutes, when a test catches it.
 */
export const RIG_BLACKHOLE_RESOLV_CONF = `nameserver ${RIG_DNS}
search default.svc.cluster.local svc.cluster.local cluster.local
options ndots:5 timeout:1 attempts:1
`;
const PREFIX_LEN = 30;
/** veth names; they live only inside the rig's own namespaces, so they never collide. */
const CLIENT_IF = 'kapc';
const DB_IF = 'kapd';
/** TUN device of `dns: 'blackhole'`: no process has it open, so the kernel drops all it is sent. */
const DNS_IF = 'kapdns';
/** `ip netns exec NS` bind-mounts each file of /etc/netns/NS over the one of the same name in
 * /etc (iproute2's per-namespace configuration). */
const NETNS_ETC = '/etc/netns';
/** Namespace names: kapool-<pid>-<counter>-c / -d (and kapool-probe-<pid>-<n> for the probe). */
const NS_PREFIX = 'kapool-';
const NS_RE = /^kapool-(?:probe-)?(\d+)-(\d+)(?:-[cd])?$/;

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
const FORWARDER_SCRIPT = path.join(__dirname, 'forwarder.ts');
const FORWARDER_READY_PREFIX = 'FORWARDER READY ';
const FORWARDER_READY_TIMEOUT_MS = 20_000;
const CMD_TIMEOUT_MS = 15_000;

const DEFAULT_SOCKETS = [
  '/run/mysqld/mysqld.sock',
  '/var/run/mysqld/mysqld.sock',
  '/tmp/mysql.sock',
  '/var/lib/mysql/mysql.sock',
];

// ---------------------------------------------------------------------------------------------
// command helpers

class CommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly stderr: string,
    readonly code: number | string | null,
  ) {
    super(
      `command failed (${String(code)}): ${argv.join(' ')}${stderr ? `\n${stderr.trim()}` : ''}`,
    );
  }
}

function run(cmd: string, args: string[], opts: { input?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: CMD_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException & { code?: number | string }).code ?? null;
          reject(new CommandError([cmd, ...args], String(stderr ?? '') || err.message, code));
        } else {
          resolve(String(stdout));
        }
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

function runSync(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, {
    timeout: CMD_TIMEOUT_MS,
    killSignal: 'SIGKILL',
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
  });
}

function nsExec(ns: string, cmd: string, args: string[]): Promise<string> {
  return run('ip', ['netns', 'exec', ns, cmd, ...args]);
}

function ipt(ns: string, args: string[]): Promise<string> {
  // -w: wait for the xtables lock instead of failing when several rigs are set up at once
  // (irrelevant for the nft backend, harmless there).
  return nsExec(ns, 'iptables', ['-w', ...args]);
}

function hasCommand(cmd: string, versionArgs: string[]): boolean {
  try {
    runSync(cmd, versionArgs);
    return true;
  } catch {
    return false;
  }
}

let setprivChecked: boolean | undefined;
/** setpriv --pdeathsig lets a child die with us even if we are SIGKILLed. Optional. */
export function hasSetpriv(): boolean {
  if (setprivChecked === undefined) {
    try {
      runSync('setpriv', ['--pdeathsig', 'KILL', 'true']);
      setprivChecked = true;
    } catch {
      setprivChecked = false;
    }
  }
  return setprivChecked;
}

/** Command prefix to run `argv` inside `ns`, dying with the parent if setpriv is available. */
export function nsCommand(ns: string | null, argv: string[]): { cmd: string; args: string[] } {
  const tail = hasSetpriv() ? ['setpriv', '--pdeathsig', 'KILL', ...argv] : argv;
  if (ns === null) return { cmd: tail[0]!, args: tail.slice(1) };
  return { cmd: 'ip', args: ['netns', 'exec', ns, ...tail] };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function nsPidsSync(ns: string): number[] {
  try {
    return runSync('ip', ['netns', 'pids', ns])
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
      .filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}

async function nsPids(ns: string): Promise<number[]> {
  try {
    return (await run('ip', ['netns', 'pids', ns]))
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
      .filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}

function listNamespacesSync(): string[] {
  try {
    return runSync('ip', ['netns', 'list'])
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter(Boolean);
  } catch {
    return [];
  }
}

/** Kill every process inside one of OUR namespaces (by pid) and delete the namespace. */
function destroyNamespaceSync(ns: string): void {
  for (const pid of nsPidsSync(ns)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  try {
    runSync('ip', ['netns', 'del', ns]);
  } catch {
    /* already gone */
  }
  removeNetnsEtc(ns);
}

async function destroyNamespace(ns: string): Promise<void> {
  for (const pid of await nsPids(ns)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  try {
    await run('ip', ['netns', 'del', ns]);
  } catch (e) {
    if (fs.existsSync(`/run/netns/${ns}`)) throw e;
  }
  removeNetnsEtc(ns);
}

/** The host's /etc/nsswitch.conf with `hosts: files dns` (as in a glibc-based container image),
 * so that addresses not in /etc/hosts go to the black-holed DNS whatever the host says. */
function podNsswitch(): string {
  let text = '';
  try {
    text = fs.readFileSync('/etc/nsswitch.conf', 'utf8');
  } catch {
    /* none: glibc's defaults for everything else */
  }
  const hosts = 'hosts: files dns';
  return /^hosts:.*$/m.test(text) ? text.replace(/^hosts:.*$/m, hosts) : `${text}${hosts}\n`;
}

/** Writes /etc/netns/<ns>/<file> for each entry (the directory is created as needed). */
function writeNetnsEtc(ns: string, files: Record<string, string>): void {
  const dir = path.join(NETNS_ETC, ns);
  for (let attempt = 0; ; attempt++) {
    try {
      fs.mkdirSync(dir, { recursive: true });
      for (const [name, text] of Object.entries(files)) {
        fs.writeFileSync(path.join(dir, name), text);
      }
      return;
    } catch (e) {
      // A concurrent run's removeNetnsEtc may rmdir /etc/netns between our mkdir and write.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw e;
    }
  }
}

/** Removes /etc/netns/<ns>, and /etc/netns itself once no namespace has files there. */
function removeNetnsEtc(ns: string): void {
  fs.rmSync(path.join(NETNS_ETC, ns), { recursive: true, force: true });
  try {
    fs.rmdirSync(NETNS_ETC);
  } catch {
    /* not empty (another namespace's files), or absent */
  }
}

/**
 * Best effort: delete namespaces left behind by crashed runs (our name pattern, created by a pid
 * that no longer exists). Namespaces of live processes (concurrent runs) are never touched.
 */
export function cleanupStaleNamespaces(): string[] {
  const removed: string[] = [];
  for (const ns of listNamespacesSync()) {
    if (!ns.startsWith(NS_PREFIX)) continue;
    const m = NS_RE.exec(ns);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    destroyNamespaceSync(ns);
    removed.push(ns);
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// availability

let availability: { ok: true } | { ok: false; reason: string } | undefined;
let nsCounter = 0;

/**
 * Can this machine run the rig? Checks root, Linux, ip/iptables/conntrack binaries, netns support,
 * and actually probes a throwaway namespace (nat DNAT, conntrack match, REJECT tcp-reset, the
 * conntrack sysctls). Cached.
 */
export function rigAvailable(): { ok: true } | { ok: false; reason: string } {
  if (availability) return availability;
  availability = probeAvailability();
  return availability;
}

function probeAvailability(): { ok: true } | { ok: false; reason: string } {
  if (process.platform !== 'linux')
    return { ok: false, reason: `platform is ${process.platform}, needs linux` };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { ok: false, reason: 'not running as root (uid 0 needed for netns/iptables)' };
  }
  if (!fs.existsSync('/proc/self/ns/net'))
    return { ok: false, reason: 'no network namespace support (/proc/self/ns/net)' };
  if (!hasCommand('ip', ['-V'])) return { ok: false, reason: '`ip` (iproute2) not found' };
  if (!hasCommand('iptables', ['-V'])) return { ok: false, reason: '`iptables` not found' };
  if (!hasCommand('conntrack', ['--version']))
    return { ok: false, reason: '`conntrack` (conntrack-tools) not found' };

  const ns = `${NS_PREFIX}probe-${process.pid}-${++nsCounter}`;
  const step = (what: string, cmd: string, args: string[]): void => {
    try {
      runSync(cmd, args);
    } catch (e) {
      const err = e as { stderr?: string | Buffer; message: string };
      throw new Error(`${what}: ${String(err.stderr ?? '').trim() || err.message}`, { cause: e });
    }
  };
  try {
    step('ip netns add', 'ip', ['netns', 'add', ns]);
    const x = (args: string[]): string[] => ['netns', 'exec', ns, ...args];
    // every rule either mode (and partition()) will need: missing xt modules show up here
    const rules = [...new Set([...rigRules('drop'), ...rigRules('rst')])];
    for (const r of PARTITION_RULES) rules.push(`-t ${r.table} -A ${r.chain} ${r.spec}`);
    for (const rule of rules) step(`iptables ${rule}`, 'ip', x(['iptables', '-w', ...w(rule)]));
    step(
      'conntrack sysctls',
      'ip',
      x(['sysctl', '-q', '-w', `${SYSCTL_LOOSE}=0`, `${SYSCTL_EST}=5`]),
    );
    step('conntrack -L', 'ip', x(['conntrack', '-L']));
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: `netns/iptables probe failed: ${(e as Error).message}` };
  } finally {
    destroyNamespaceSync(ns);
  }
}

// ---------------------------------------------------------------------------------------------
// process-exit cleanup

interface Live {
  clientNs: string;
  dbNs: string;
  forwarder: ChildProcess | null;
}
const live = new Set<Live>();
let exitHooksInstalled = false;

function cleanupLiveSync(): void {
  for (const l of live) {
    if (
      l.forwarder?.pid !== undefined &&
      l.forwarder.exitCode === null &&
      l.forwarder.signalCode === null
    ) {
      try {
        process.kill(l.forwarder.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    destroyNamespaceSync(l.clientNs);
    destroyNamespaceSync(l.dbNs);
  }
  live.clear();
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', cleanupLiveSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      cleanupLiveSync();
      // If we are the only listener, restore the default behaviour (die by that signal).
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, handler);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, handler);
  }
}

// ---------------------------------------------------------------------------------------------
// sysctl helpers

const SYSCTL_LOOSE = 'net.netfilter.nf_conntrack_tcp_loose';
const SYSCTL_EST = 'net.netfilter.nf_conntrack_tcp_timeout_established';

function writeOwnSysctl(name: string, value: string): void {
  fs.writeFileSync(`/proc/sys/${name.replace(/\./g, '/')}`, value);
}

function readOwnSysctl(name: string): string | null {
  try {
    return fs.readFileSync(`/proc/sys/${name.replace(/\./g, '/')}`, 'utf8').trim();
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// socket

export function defaultSocketPath(): string {
  const env = process.env.RIG_MYSQL_SOCKET ?? process.env.MYSQL_UNIX_PORT;
  if (env) return env;
  for (const p of DEFAULT_SOCKETS) {
    try {
      if (fs.statSync(p).isSocket()) return p;
    } catch {
      /* next */
    }
  }
  return DEFAULT_SOCKETS[0]!;
}

// ---------------------------------------------------------------------------------------------
// forwarder

function startForwarder(dbNs: string, socketPath: string): Promise<ChildProcess> {
  const { cmd, args } = nsCommand(dbNs, [
    process.execPath,
    '--import',
    'tsx',
    FORWARDER_SCRIPT,
    '--listen',
    RIG_DB_ADDR,
    '--port',
    String(RIG_PORT),
    '--socket',
    socketPath,
    '--exit-on-stdin-eof',
    ...(process.env.RIG_VERBOSE ? ['--verbose'] : []),
  ]);
  const child = spawn(cmd, args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      reject(
        new Error(
          `forwarder in ${dbNs} did not become ready: ${why}\nstdout: ${out}\nstderr: ${err}`,
        ),
      );
    };
    const timer = setTimeout(
      () => fail(`no ready line after ${FORWARDER_READY_TIMEOUT_MS} ms`),
      FORWARDER_READY_TIMEOUT_MS,
    );
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (process.env.RIG_VERBOSE) process.stderr.write(d);
    });
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (!settled && out.split('\n').some((l) => l.startsWith(FORWARDER_READY_PREFIX))) {
        settled = true;
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on('error', (e) => fail(`spawn error: ${e.message}`));
    child.on('exit', (code, sig) => fail(`exited early (code ${code}, signal ${sig})`));
  });
}

function stopForwarder(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined)
    return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      try {
        child.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }, 2000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

// ---------------------------------------------------------------------------------------------
// rig

/** Split a command line on whitespace (no argument of ours contains spaces). */
function w(line: string): string[] {
  return line.trim().split(/\s+/);
}

/**
 * The iptables rules (arguments after `iptables -w`) installed in the client namespace, in order.
 * INPUT drops INVALID except on lo: in rst mode the tcp-reset REJECT generates is delivered to the
 * local socket through lo and is itself INVALID (a RST cannot create a conntrack entry), so a plain
 * `-A INPUT -m conntrack --ctstate INVALID -j DROP` would eat it and rst mode would behave like drop.
 */
export function rigRules(mode: RigMode): string[] {
  return [
    `-t nat -A OUTPUT -d ${RIG_VIP} -p tcp --dport ${RIG_PORT} -j DNAT --to-destination ${RIG_DB_ADDR}:${RIG_PORT}`,
    `-A INPUT ! -i lo -m conntrack --ctstate INVALID -j DROP`,
    mode === 'drop'
      ? `-A OUTPUT -m conntrack --ctstate INVALID -j DROP`
      : `-A OUTPUT -p tcp ! --tcp-flags RST RST -m conntrack --ctstate INVALID -j REJECT --reject-with tcp-reset`,
    `-A OUTPUT -d ${RIG_VIP} -j DROP`,
  ];
}

/**
 * partition(): inserted at the top of the raw table, i.e. before conntrack sees the packet, so
 * partitioned packets do not refresh conntrack entries either (like an IPVS node that stops
 * seeing the flow: a partition longer than idleTimeoutSec also makes conntrack forget the flow).
 */
const PARTITION_RULES = [
  { table: 'raw', chain: 'PREROUTING', spec: `-i ${CLIENT_IF} -j DROP` },
  { table: 'raw', chain: 'OUTPUT', spec: `-o ${CLIENT_IF} -j DROP` },
];

export async function createRig(opts: RigOptions): Promise<Rig> {
  const avail = rigAvailable();
  if (!avail.ok) throw new Error(`conntrack rig unavailable: ${avail.reason}`);
  if (opts.mode !== 'drop' && opts.mode !== 'rst')
    throw new Error(`bad rig mode ${String(opts.mode)}`);
  if (!Number.isInteger(opts.idleTimeoutSec) || opts.idleTimeoutSec < 1) {
    throw new Error(`idleTimeoutSec must be a positive integer, got ${opts.idleTimeoutSec}`);
  }
  const socketPath = opts.socketPath ?? defaultSocketPath();
  let st: fs.Stats;
  try {
    st = fs.statSync(socketPath);
  } catch {
    throw new Error(
      `MySQL unix socket not found at ${socketPath} (set RIG_MYSQL_SOCKET or pass socketPath)`,
    );
  }
  if (!st.isSocket()) throw new Error(`${socketPath} is not a unix socket`);

  cleanupStaleNamespaces();
  installExitHooks();

  const n = ++nsCounter;
  const clientNs = `${NS_PREFIX}${process.pid}-${n}-c`;
  const dbNs = `${NS_PREFIX}${process.pid}-${n}-d`;
  const l: Live = { clientNs, dbNs, forwarder: null };
  live.add(l);

  let closing: Promise<void> | null = null;
  let partitioned = false;
  const close = (): Promise<void> => {
    if (!closing) {
      closing = (async () => {
        if (l.forwarder) await stopForwarder(l.forwarder);
        await destroyNamespace(clientNs);
        await destroyNamespace(dbNs);
        live.delete(l);
      })();
    }
    return closing;
  };

  try {
    // --- namespaces and the veth pair (created directly inside them: nothing in the root ns)
    await run('ip', w(`netns add ${clientNs}`));
    await run('ip', w(`netns add ${dbNs}`));
    await run(
      'ip',
      w(`link add ${CLIENT_IF} netns ${clientNs} type veth peer name ${DB_IF} netns ${dbNs}`),
    );
    await run('ip', w(`-n ${clientNs} addr add ${RIG_CLIENT_ADDR}/${PREFIX_LEN} dev ${CLIENT_IF}`));
    await run('ip', w(`-n ${dbNs} addr add ${RIG_DB_ADDR}/${PREFIX_LEN} dev ${DB_IF}`));
    await run('ip', w(`-n ${clientNs} link set ${CLIENT_IF} up`));
    await run('ip', w(`-n ${dbNs} link set ${DB_IF} up`));
    await run('ip', w(`-n ${clientNs} link set lo up`));
    await run('ip', w(`-n ${dbNs} link set lo up`));
    // The VIP must be routable for connect() to get as far as nat/OUTPUT.
    await run(
      'ip',
      w(`-n ${clientNs} route add ${RIG_VIP}/32 via ${RIG_DB_ADDR} dev ${CLIENT_IF}`),
    );
    if (opts.dns === 'blackhole') {
      // A TUN device without a reader accepts every packet and drops it: sendto() succeeds and
      // no answer or ICMP error ever comes back. (A blackhole route, or a DROP in OUTPUT, would
      // fail the send at once, which a resolver survives without waiting.)
      await run('ip', w(`-n ${clientNs} tuntap add dev ${DNS_IF} mode tun`));
      await run('ip', w(`-n ${clientNs} link set ${DNS_IF} up`));
      await run('ip', w(`-n ${clientNs} route add ${RIG_DNS}/32 dev ${DNS_IF}`));
      writeNetnsEtc(clientNs, {
        'resolv.conf': RIG_BLACKHOLE_RESOLV_CONF,
        'nsswitch.conf': podNsswitch(),
      });
    }

    // --- conntrack sysctls, client ns only. They are per-netns on modern kernels; guard anyway:
    // if setting them inside the namespace changed OUR namespace's values, restore and refuse.
    const before = { loose: readOwnSysctl(SYSCTL_LOOSE), est: readOwnSysctl(SYSCTL_EST) };
    await nsExec(
      clientNs,
      'sysctl',
      w(`-q -w ${SYSCTL_LOOSE}=0 ${SYSCTL_EST}=${opts.idleTimeoutSec}`),
    );
    const after = { loose: readOwnSysctl(SYSCTL_LOOSE), est: readOwnSysctl(SYSCTL_EST) };
    if (before.loose !== after.loose || before.est !== after.est) {
      if (before.loose !== null) writeOwnSysctl(SYSCTL_LOOSE, before.loose);
      if (before.est !== null) writeOwnSysctl(SYSCTL_EST, before.est);
      throw new Error(
        'conntrack sysctls are not per-network-namespace on this kernel; refusing to change the host',
      );
    }
    const got = (await nsExec(clientNs, 'sysctl', w(`-n ${SYSCTL_LOOSE} ${SYSCTL_EST}`)))
      .trim()
      .split(/\s+/);
    if (got[0] !== '0' || got[1] !== String(opts.idleTimeoutSec)) {
      throw new Error(`client ns sysctls did not stick: ${got.join(' ')}`);
    }

    // --- iptables in the client ns (the exact rule set is documented in RIG.md)
    for (const rule of rigRules(opts.mode)) await ipt(clientNs, w(rule));

    // --- forwarder in the db ns; ready = its ready line on stdout
    l.forwarder = await startForwarder(dbNs, socketPath);
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }

  const rig: Rig = {
    clientNs,
    dbNs,
    host: RIG_VIP,
    port: RIG_PORT,
    mode: opts.mode,
    idleTimeoutSec: opts.idleTimeoutSec,
    socketPath,
    dnsServer: opts.dns === 'blackhole' ? RIG_DNS : null,
    async partition() {
      if (closing) throw new Error('rig is closed');
      if (partitioned) return;
      for (const r of PARTITION_RULES) {
        await ipt(clientNs, w(`-t ${r.table} -I ${r.chain} 1 ${r.spec}`));
      }
      partitioned = true;
    },
    async heal() {
      if (closing) throw new Error('rig is closed');
      if (!partitioned) return;
      for (const r of PARTITION_RULES) {
        await ipt(clientNs, w(`-t ${r.table} -D ${r.chain} ${r.spec}`));
      }
      partitioned = false;
    },
    async conntrackEntries() {
      if (closing) throw new Error('rig is closed');
      const out = await nsExec(
        clientNs,
        'conntrack',
        w(`-L -p tcp --orig-dst ${RIG_VIP} --orig-port-dst ${RIG_PORT}`),
      );
      return out.split('\n').filter((line) => line.trim().length > 0).length;
    },
    close,
  };
  return rig;
}
