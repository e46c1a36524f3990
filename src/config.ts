/**
 * One path for every setting: {@link resolveConfig} turns (options, environment)
 * into one frozen, fully resolved {@link ResolvedConfig}. All defaults, all
 * checks and all environment parsing live here; nothing else in the library
 * reads `process.env`.
 *
 * Precedence, per key (first wins):
 *   explicit option > explicit `uri` (or a string argument) > `MYSQL_*` env > `MYSQL_URL` > default.
 *
 * @packageDocumentation
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { inspect } from 'node:util';
import createDebug from 'debug';
// Default import: mysql2 defines `Charsets` with a getter, which Node's ESM loader cannot see as
// a named export of a CommonJS module, so `import { Charsets }` breaks the published .mjs build.
import mysql from 'mysql2';
import type { ConnectionOptions, PoolOptions } from 'mysql2';
import { ConfigError, LIBRARY, SECRET_OPTIONS } from './errors.js';
import type { ConfigSource } from './errors.js';

const debug = createDebug('mysql2-keepalive-pool:config');

export type { ConfigSource } from './errors.js';

/**
 * Options of `createPool`: every mysql2 pool option, plus ours. All durations
 * are milliseconds, like mysql2's. Each scalar option can also come from the
 * environment as `MYSQL_` + UPPER_SNAKE name (see {@link OPTION_TABLE}).
 */
export interface KeepalivePoolOptions extends PoolOptions {
  /** Name prefixed to debug lines and warnings. Default `pool-<n>` (n counts unnamed pools of this process). */
  name?: string;
  /** Longest time `getConnection` waits for a connection, ms. Default 10000; 0 = wait forever. */
  acquireTimeout?: number;
  /** Connections kept open and created eagerly. Default 0; at most `connectionLimit`. */
  minIdle?: number;
  /** Retire connections after this long, ms (jittered by the pool). Default 0 = off; else >= 30000. */
  maxLifetime?: number;
  /** TCP_KEEPINTVL: gap between keepalive probes, ms. Default 10000; 1000..600000. */
  keepAliveInterval?: number;
  /** TCP_KEEPCNT: unanswered probes before the kernel drops the connection. Default 3; 1..127. */
  keepAliveCount?: number;
  /** TCP_USER_TIMEOUT: longest time written data may stay unacknowledged, ms. Default 90000; 0 = off; else 1000..3600000. */
  tcpUserTimeout?: number;
  /** COM_PING connections idle this long, ms. Default 120000; 0 = off; else >= 1000. */
  idlePingInterval?: number;
  /** Time limit of a checkout or idle ping, ms. Default 1000; 100..60000. */
  validationTimeout?: number;
  /** A connection used within this window is handed out without a ping, ms. Default 500; 0..60000. */
  validationSkipWindow?: number;
  /** Report a connection held longer than this, ms. Default 0 = off; else >= 1000. */
  leakDetectionThreshold?: number;
  /**
   * Hedged checkout: when a checkout ping is still unanswered after a delay derived from the
   * round trips the pool has seen on this path (at least 20 ms), open a fresh connection in
   * parallel and give the caller whichever is ready first. Hedges may take the pool above
   * `connectionLimit` by one connection per such ping, only while that ping is outstanding.
   * Default true (`MYSQL_HEDGE_CHECKOUT`).
   */
  hedgeCheckout?: boolean;
  /**
   * Learn the path's idle timeout from connections found dead after idling, and keep later flows
   * alive below it (lower keepalive idle time and interval, shorter idle-ping period; never above
   * the configured values, never below 1 s). Reported once by the `pathTimeout` event and a
   * process warning, and in `stats().pathTimeout`. Default true (`MYSQL_LEARN_PATH_TIMEOUT`).
   */
  learnPathTimeout?: boolean;
}

/**
 * The resolved configuration: every value decided, checked and frozen.
 * Produced only by {@link resolveConfig}.
 */
export interface ResolvedConfig {
  /** Pool name for debug lines and warnings. */
  readonly name: string;
  /** Maximum number of connections, >= 1 (mysql2's 0 = unlimited is refused). */
  readonly connectionLimit: number;
  /** Maximum number of waiting `getConnection` calls; 0 = unlimited. */
  readonly queueLimit: number;
  /** Queue callers when no connection is free (true) or fail them at once (false). */
  readonly waitForConnections: boolean;
  /** Idle connections above this count are closed after `idleTimeout` (mysql2 semantics). */
  readonly maxIdle: number;
  /** See `maxIdle`, ms. */
  readonly idleTimeout: number;
  /** Reset session state (COM_RESET_CONNECTION) on release. */
  readonly resetOnRelease: boolean;
  /** See {@link KeepalivePoolOptions.acquireTimeout}. */
  readonly acquireTimeout: number;
  /** See {@link KeepalivePoolOptions.minIdle}. */
  readonly minIdle: number;
  /** See {@link KeepalivePoolOptions.maxLifetime}. */
  readonly maxLifetime: number;
  /** TCP keepalive on (mysql2 option; ours defaults to true as well). */
  readonly enableKeepAlive: boolean;
  /** TCP_KEEPIDLE, ms: 60000 by default where mysql2 leaves the kernel's 7200 s. */
  readonly keepAliveInitialDelay: number;
  /** See {@link KeepalivePoolOptions.keepAliveInterval}. */
  readonly keepAliveInterval: number;
  /** See {@link KeepalivePoolOptions.keepAliveCount}. */
  readonly keepAliveCount: number;
  /** See {@link KeepalivePoolOptions.tcpUserTimeout}. */
  readonly tcpUserTimeout: number;
  /** See {@link KeepalivePoolOptions.idlePingInterval}. */
  readonly idlePingInterval: number;
  /** See {@link KeepalivePoolOptions.validationTimeout}. */
  readonly validationTimeout: number;
  /** See {@link KeepalivePoolOptions.validationSkipWindow}. */
  readonly validationSkipWindow: number;
  /** See {@link KeepalivePoolOptions.leakDetectionThreshold}. */
  readonly leakDetectionThreshold: number;
  /** See {@link KeepalivePoolOptions.hedgeCheckout}. */
  readonly hedgeCheckout: boolean;
  /** See {@link KeepalivePoolOptions.learnPathTimeout}. */
  readonly learnPathTimeout: boolean;
  /** mysql2's `Promise` option (the promise constructor for `.promise()`), if given. */
  readonly promiseImpl: PromiseConstructor | undefined;
  /**
   * The TLS mode from `MYSQL_SSL_MODE` (or implied by the TLS file variables); undefined when
   * TLS comes from an explicit `ssl` option or is not configured. With `PREFERRED`,
   * `connection.ssl` is REQUIRED's, and each connection drops it if its server offers no TLS.
   */
  readonly sslMode: SslMode | undefined;
  /**
   * Exactly what to hand to mysql2 for each connection: every mysql2
   * connection option that was configured (option, uri, env or URL), with
   * `enableKeepAlive` and `keepAliveInitialDelay` set to the resolved values,
   * and without our options, the pool-only options and `uri` (mysql2 would
   * print "Ignoring invalid configuration option", or, for `uri`, write into
   * the object). Unset keys are left to mysql2's defaults (host `localhost`,
   * port 3306, …).
   *
   * Frozen. The pool must pass a copy per connection, see
   * {@link connectionOptions}: mysql2 mutates connection configs in place
   * (`changeUser`). Plain objects and arrays inside (`connectAttributes`,
   * `flags`, …) are frozen copies; functions, streams and Buffers are the
   * caller's and are passed by reference. Exception: `ssl`, when an object, is
   * a copy that is NOT frozen, because mysql2 assigns
   * `ssl.rejectUnauthorized` on the object it gets and a frozen one makes it
   * throw; that key is pre-set here so mysql2's write never changes anything.
   */
  readonly connection: Readonly<ConnectionOptions>;
  /** Unwise but legal settings, as sentences without the library prefix. */
  readonly warnings: readonly string[];
  /** Where each option came from (every {@link OPTION_TABLE} option, plus explicit pass-through keys). */
  readonly sources: Readonly<Record<string, ConfigSource>>;
}

/** One row of {@link OPTION_TABLE}. */
export interface OptionRow {
  /** Option name, camelCase. */
  readonly option: string;
  /** Environment variable: `MYSQL_` + UPPER_SNAKE of the option. */
  readonly env: string;
  /** How the environment string is parsed. */
  readonly type: 'int' | 'bool' | 'string';
  /** Default, for display (`"(mysql2: localhost)"` when left to mysql2). */
  readonly default: string;
  /** One-line meaning. */
  readonly meaning: string;
  /** What is accepted, as in error messages. */
  readonly accepted: string;
}

/** Environment variable holding a `mysql://` URL, lowest-precedence layer above defaults. */
export const URL_ENV = 'MYSQL_URL';
/** Environment variable naming a file that holds the password (Kubernetes/Docker secrets). */
export const PASSWORD_FILE_ENV = 'MYSQL_PASSWORD_FILE';
/** Code of the one warning emitted per {@link resolveConfig} call for unknown `MYSQL_*` variables. */
export const UNKNOWN_ENV_WARNING_CODE = 'MYSQL2_KEEPALIVE_POOL_UNKNOWN_ENV';

/** Environment variable: TLS mode, spelt as MySQL clients spell `--ssl-mode` (any case). */
export const SSL_MODE_ENV = 'MYSQL_SSL_MODE';
/** Environment variable: PEM file of the CA certificate(s) the server's certificate must chain to. */
export const SSL_CA_FILE_ENV = 'MYSQL_SSL_CA_FILE';
/** Environment variable: PEM file of the client certificate (needs {@link SSL_KEY_FILE_ENV}). */
export const SSL_CERT_FILE_ENV = 'MYSQL_SSL_CERT_FILE';
/** Environment variable: PEM file of the client certificate's private key (not encrypted). */
export const SSL_KEY_FILE_ENV = 'MYSQL_SSL_KEY_FILE';
/** The TLS variables. They are read only when no explicit `ssl` option is given. */
export const SSL_ENV: readonly string[] = [
  SSL_MODE_ENV,
  SSL_CA_FILE_ENV,
  SSL_CERT_FILE_ENV,
  SSL_KEY_FILE_ENV,
];
/** Accepted values of `MYSQL_SSL_MODE`, with the meaning MySQL clients give them. */
export const SSL_MODES = [
  'DISABLED',
  'PREFERRED',
  'REQUIRED',
  'VERIFY_CA',
  'VERIFY_IDENTITY',
] as const;
/** One of {@link SSL_MODES}. */
export type SslMode = (typeof SSL_MODES)[number];

/**
 * `MYSQL_*` variables that belong to other tools (the official mysql image,
 * the mysql CLI, MySQL's test suite). They are ignored silently: an app
 * container often shares its environment with them.
 */
export const FOREIGN_ENV: ReadonlySet<string> = new Set([
  'MYSQL_ROOT_PASSWORD',
  'MYSQL_ROOT_PASSWORD_FILE',
  'MYSQL_ALLOW_EMPTY_PASSWORD',
  'MYSQL_RANDOM_ROOT_PASSWORD',
  'MYSQL_ROOT_HOST',
  'MYSQL_ONETIME_PASSWORD',
  'MYSQL_INITDB_SKIP_TZINFO',
  'MYSQL_PWD',
  'MYSQL_TCP_PORT',
  'MYSQL_UNIX_PORT',
  'MYSQL_HOME',
  'MYSQL_HISTFILE',
  'MYSQL_HISTIGNORE',
  'MYSQL_PS1',
  'MYSQL_TEST_LOGIN_FILE',
  'MYSQL_USER_FILE',
  'MYSQL_DATABASE_FILE',
]);

/**
 * Prefixes reserved for later work and ignored silently until then. None at
 * the moment: `MYSQL_SSL_*` is read by {@link resolveSslEnv} (see {@link SSL_ENV}),
 * and its other names are reported as unknown like any `MYSQL_*` typo.
 */
export const RESERVED_ENV_PREFIXES: readonly string[] = [];

// ---------------------------------------------------------------------------
// Option specifications: the single table behind parsing, checks, defaults,
// OPTION_TABLE and the README.

/** setTimeout fires at once (with a TimeoutOverflowWarning) above 2^31-1 ms: refuse such durations. */
const MAX_TIMER_MS = 2_147_483_647;

type Target = 'ours' | 'pool' | 'both' | 'connection';

interface IntRange {
  readonly min: number;
  readonly max: number;
  /** When set, 0 is also accepted and means this (e.g. `off`). */
  readonly zero?: string;
  readonly unit: 'ms' | 'count' | 'port';
}

interface Spec {
  readonly option: string;
  readonly kind: 'int' | 'bool' | 'string';
  readonly target: Target;
  /** Resolved default for ours/pool/both; undefined when left to mysql2. */
  readonly def?: number | boolean | string;
  readonly defText: string;
  readonly meaning: string;
  readonly range?: IntRange;
  /** Extra validation of string values: true when valid; `acceptedText` says what passes. */
  readonly check?: (value: string) => boolean;
  readonly acceptedText?: string;
  /** Appended to a range error: why the range is what it is. */
  readonly why?: string;
  /** Explicit options may also pass an array (flags, dateStrings). */
  readonly arrayOk?: boolean;
}

const ms = (min: number, max: number, zero?: string): IntRange =>
  zero === undefined ? { min, max, unit: 'ms' } : { min, max, zero, unit: 'ms' };
const count = (min: number, max: number, zero?: string): IntRange =>
  zero === undefined ? { min, max, unit: 'count' } : { min, max, zero, unit: 'count' };

const TIMEZONE_RE = /^(?:local|Z|[ +-]\d\d:\d\d)$/;

function isCharset(value: string): boolean {
  // mysql2 throws "Unknown charset" only when the first connection is made;
  // check here so a typo fails at createPool with the variable's name.
  const charsets = mysql.Charsets as unknown as Record<string, number | undefined>;
  return charsets[value.toUpperCase()] !== undefined;
}

const SPECS: readonly Spec[] = [
  // -- ours
  {
    option: 'name',
    kind: 'string',
    target: 'ours',
    defText: 'pool-<n>',
    meaning: 'Pool name prefixed to debug lines and warnings',
    check: (v) => v.trim() !== '',
    acceptedText: 'a non-empty string',
  },
  {
    option: 'acquireTimeout',
    kind: 'int',
    target: 'ours',
    def: 10_000,
    defText: '10000 (at least connectTimeout)',
    meaning: 'Longest wait of getConnection for a connection',
    range: ms(1, MAX_TIMER_MS, 'wait forever'),
  },
  {
    option: 'minIdle',
    kind: 'int',
    target: 'ours',
    def: 0,
    defText: '0',
    meaning: 'Connections kept open and created eagerly (<= connectionLimit)',
    range: count(0, Number.MAX_SAFE_INTEGER),
  },
  {
    option: 'maxLifetime',
    kind: 'int',
    target: 'ours',
    def: 0,
    defText: '0 (off)',
    meaning: 'Retire connections after this age (jittered)',
    range: ms(30_000, MAX_TIMER_MS, 'off'),
  },
  {
    option: 'keepAliveInterval',
    kind: 'int',
    target: 'ours',
    def: 10_000,
    defText: '10000 (at most keepAliveInitialDelay)',
    meaning: 'TCP_KEEPINTVL: gap between keepalive probes',
    range: ms(1_000, 600_000),
  },
  {
    option: 'keepAliveCount',
    kind: 'int',
    target: 'ours',
    def: 3,
    defText: '3',
    meaning: 'TCP_KEEPCNT: unanswered probes before the connection is dropped',
    range: count(1, 127),
  },
  {
    option: 'tcpUserTimeout',
    kind: 'int',
    target: 'ours',
    def: 90_000,
    defText: '90000 (above the keepalive probes)',
    meaning: 'TCP_USER_TIMEOUT: bound on unacknowledged writes (dead network)',
    range: ms(1_000, 3_600_000, 'off'),
  },
  {
    option: 'idlePingInterval',
    kind: 'int',
    target: 'ours',
    def: 120_000,
    defText: '120000',
    meaning: 'COM_PING connections idle this long',
    range: ms(1_000, MAX_TIMER_MS, 'off'),
  },
  {
    option: 'validationTimeout',
    kind: 'int',
    target: 'ours',
    def: 1_000,
    defText: '1000',
    meaning: 'Time limit of a checkout or idle ping',
    range: ms(100, 60_000),
  },
  {
    option: 'validationSkipWindow',
    kind: 'int',
    target: 'ours',
    def: 500,
    defText: '500',
    meaning: 'A connection used this recently is handed out without a ping',
    range: ms(0, 60_000),
  },
  {
    option: 'leakDetectionThreshold',
    kind: 'int',
    target: 'ours',
    def: 0,
    defText: '0 (off)',
    meaning: 'Report a connection held longer than this',
    range: ms(1_000, MAX_TIMER_MS, 'off'),
  },
  {
    option: 'hedgeCheckout',
    kind: 'bool',
    target: 'ours',
    def: true,
    defText: 'true',
    meaning: 'Open a fresh connection in parallel when a checkout ping is slow (RTT-based delay)',
  },
  {
    option: 'learnPathTimeout',
    kind: 'bool',
    target: 'ours',
    def: true,
    defText: 'true',
    meaning: "Learn the path's idle timeout from dead connections and keep flows alive below it",
  },
  // -- mysql2 pool options (resolved here, never passed to a connection)
  {
    option: 'connectionLimit',
    kind: 'int',
    target: 'pool',
    def: 10,
    defText: '10',
    meaning: 'Maximum number of connections',
    range: count(1, Number.MAX_SAFE_INTEGER),
    why: 'mysql2 treats 0 as unlimited; this pool refuses to be unbounded',
  },
  {
    option: 'queueLimit',
    kind: 'int',
    target: 'pool',
    def: 0,
    defText: '0 (unlimited)',
    meaning: 'Maximum number of waiting getConnection calls',
    range: count(1, Number.MAX_SAFE_INTEGER, 'unlimited'),
  },
  {
    option: 'waitForConnections',
    kind: 'bool',
    target: 'pool',
    def: true,
    defText: 'true',
    meaning: 'Queue callers when no connection is free',
  },
  {
    option: 'maxIdle',
    kind: 'int',
    target: 'pool',
    defText: 'connectionLimit',
    meaning: 'Idle connections above this count are closed after idleTimeout',
    range: count(0, Number.MAX_SAFE_INTEGER),
  },
  {
    option: 'idleTimeout',
    kind: 'int',
    target: 'pool',
    def: 60_000,
    defText: '60000',
    meaning: 'Idle time after which connections above maxIdle are closed',
    range: ms(0, MAX_TIMER_MS),
  },
  {
    option: 'resetOnRelease',
    kind: 'bool',
    target: 'pool',
    def: false,
    defText: 'false',
    meaning: 'Reset session state when a connection is released',
  },
  // -- mysql2 options we resolve ourselves and also pass to each connection
  {
    option: 'enableKeepAlive',
    kind: 'bool',
    target: 'both',
    def: true,
    defText: 'true',
    meaning: 'TCP keepalive on idle connections',
  },
  {
    option: 'keepAliveInitialDelay',
    kind: 'int',
    target: 'both',
    def: 60_000,
    defText: '60000 (mysql2: kernel 7200 s)',
    meaning: 'TCP_KEEPIDLE: idle time before the first keepalive probe (< 1000: kernel default)',
    range: ms(0, MAX_TIMER_MS),
  },
  // -- scalar mysql2 connection options, defaults left to mysql2
  {
    option: 'host',
    kind: 'string',
    target: 'connection',
    defText: '(mysql2: localhost)',
    meaning: 'Server host name or address',
  },
  {
    option: 'port',
    kind: 'int',
    target: 'connection',
    defText: '(mysql2: 3306)',
    meaning: 'Server TCP port (a Kubernetes tcp://host:port value is accepted)',
    range: { min: 1, max: 65_535, unit: 'port' },
  },
  { option: 'user', kind: 'string', target: 'connection', defText: '(none)', meaning: 'User name' },
  {
    option: 'password',
    kind: 'string',
    target: 'connection',
    defText: '(none)',
    meaning: 'Password (or MYSQL_PASSWORD_FILE)',
  },
  {
    option: 'database',
    kind: 'string',
    target: 'connection',
    defText: '(none)',
    meaning: 'Default database',
  },
  {
    option: 'socketPath',
    kind: 'string',
    target: 'connection',
    defText: '(none)',
    meaning: 'Unix socket path (instead of host and port)',
  },
  {
    option: 'localAddress',
    kind: 'string',
    target: 'connection',
    defText: '(none)',
    meaning: 'Local address to bind the socket to',
  },
  {
    option: 'charset',
    kind: 'string',
    target: 'connection',
    defText: '(mysql2: UTF8MB4_UNICODE_CI)',
    meaning: 'Connection collation',
    check: isCharset,
    acceptedText: 'a charset/collation name known to mysql2, such as UTF8MB4_UNICODE_CI',
  },
  {
    option: 'connectTimeout',
    kind: 'int',
    target: 'connection',
    defText: '(mysql2: 10000; at most acquireTimeout)',
    meaning: 'Time limit of the initial connect and handshake',
    range: ms(1, MAX_TIMER_MS, 'no timeout'),
  },
  {
    option: 'timezone',
    kind: 'string',
    target: 'connection',
    defText: '(mysql2: local)',
    meaning: 'Time zone of DATE/DATETIME values',
    check: (v) => TIMEZONE_RE.test(v),
    acceptedText: "'local', 'Z' or an offset such as '+05:30'",
  },
  {
    option: 'multipleStatements',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: false)',
    meaning: 'Allow several statements per query',
  },
  {
    option: 'namedPlaceholders',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: false)',
    meaning: 'Use :name placeholders',
  },
  {
    option: 'dateStrings',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: false)',
    meaning: 'Return dates as strings',
    arrayOk: true,
  },
  {
    option: 'supportBigNumbers',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: false)',
    meaning: 'Support BIGINT and DECIMAL beyond 2^53',
  },
  {
    option: 'bigNumberStrings',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: false)',
    meaning: 'Always return BIGINT and DECIMAL as strings',
  },
  {
    option: 'decimalNumbers',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: false)',
    meaning: 'Return DECIMAL as numbers',
  },
  {
    option: 'insecureAuth',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: false)',
    meaning: 'Allow the old (insecure) authentication method',
  },
  {
    option: 'compress',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: false)',
    meaning: 'Use the compressed protocol',
  },
  {
    option: 'trace',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: true)',
    meaning: 'Capture call-site stack traces for errors',
  },
  {
    option: 'rowsAsArray',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: false)',
    meaning: 'Return rows as arrays',
  },
  {
    option: 'maxPreparedStatements',
    kind: 'int',
    target: 'connection',
    defText: '(mysql2: 16000)',
    meaning: 'Size of the prepared-statement cache',
    range: count(1, Number.MAX_SAFE_INTEGER),
  },
  {
    option: 'jsonStrings',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: false)',
    meaning: 'Return JSON columns as strings',
  },
  {
    option: 'gracefulEnd',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: false)',
    meaning: 'end() of a pooled connection closes it instead of warning',
  },
  {
    option: 'disableEval',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: false)',
    meaning: 'Row parsers without eval/new Function',
  },
  {
    option: 'enableCleartextPlugin',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: false)',
    meaning: 'Allow the mysql_clear_password plugin',
  },
  {
    option: 'flags',
    kind: 'string',
    target: 'connection',
    defText: '(none)',
    meaning: 'Client flags, comma-separated (-FLAG removes a default)',
    arrayOk: true,
  },
  {
    option: 'stringifyObjects',
    kind: 'bool',
    target: 'connection',
    defText: '(mysql2: false)',
    meaning: 'Stringify objects instead of expanding them in queries',
  },
];

const SPEC_BY_OPTION: ReadonlyMap<string, Spec> = new Map(SPECS.map((s) => [s.option, s]));

/**
 * Options of mysql2 that cannot come from the environment or a URL (objects
 * and functions, plus mysql2 internals), accepted as explicit options and
 * passed to each connection untouched. `ssl` from the environment is the TLS
 * issue's (see {@link RESERVED_ENV_PREFIXES}).
 */
const PASS_THROUGH: ReadonlySet<string> = new Set([
  'ssl',
  'typeCast',
  'stream',
  'authPlugins',
  'authSwitchHandler',
  'queryFormat',
  'connectAttributes',
  'infileStreamFactory',
  'debug',
  'nestTables',
  'charsetNumber',
  'password1',
  'password2',
  'password3',
  'passwordSha1',
  'isServer',
  'pool',
]);

/**
 * Every key mysql2 3.x accepts without printing "Ignoring invalid
 * configuration option" (its `validOptions` in lib/connection_config.js,
 * which it does not export). A test constructs mysql2's ConnectionConfig with
 * each of them to catch drift.
 */
export const MYSQL2_OPTION_KEYS: readonly string[] = [
  ...SPECS.filter((s) => s.target !== 'ours').map((s) => s.option),
  ...PASS_THROUGH,
  'uri',
  'Promise',
].sort();

/** Not ours, not passed to connections: the URL is resolved here, `Promise` becomes `promiseImpl`. */
const CONSUMED = new Set(['uri', 'Promise']);

/** URL parts that must be written in the URL itself, not as `?param=`. */
const URL_IDENTITY = new Set(['host', 'port', 'user', 'password', 'database']);

/**
 * Environment variable for an option: `MYSQL_` + UPPER_SNAKE_CASE.
 *
 * @example envName('keepAliveInitialDelay') === 'MYSQL_KEEP_ALIVE_INITIAL_DELAY'
 * @example envName('socketPath') === 'MYSQL_SOCKET_PATH'
 */
export function envName(option: string): string {
  const snake = option
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toUpperCase();
  return `MYSQL_${snake}`;
}

function acceptedOf(spec: Spec): string {
  if (spec.kind === 'bool') return 'true, false, 1, 0, yes, no, on or off';
  if (spec.kind === 'string') return spec.acceptedText ?? 'a string';
  const r = spec.range;
  if (r === undefined) return 'an integer';
  const noun =
    r.unit === 'ms'
      ? 'an integer number of milliseconds'
      : r.unit === 'port'
        ? 'a TCP port number'
        : 'an integer';
  const bounded = r.max !== Number.MAX_SAFE_INTEGER && !(r.unit === 'ms' && r.max === MAX_TIMER_MS);
  const span = bounded ? `between ${r.min} and ${r.max}` : `>= ${r.min}`;
  const text = `${noun} ${span}`;
  return r.zero === undefined ? text : `0 (${r.zero}) or ${text}`;
}

/**
 * One row per option that can come from the environment, in a stable order:
 * the source of the README's table (a test checks the two agree).
 * `MYSQL_URL` and `MYSQL_PASSWORD_FILE` are not options; see {@link URL_ENV}
 * and {@link PASSWORD_FILE_ENV}.
 */
export const OPTION_TABLE: readonly OptionRow[] = Object.freeze(
  SPECS.map((s) =>
    Object.freeze({
      option: s.option,
      env: envName(s.option),
      type: s.kind,
      default: s.defText,
      meaning: s.meaning,
      accepted: acceptedOf(s),
    }),
  ),
);

const ENV_TO_OPTION: ReadonlyMap<string, string> = new Map(
  OPTION_TABLE.map((r) => [r.env, r.option]),
);
const KNOWN_ENV: readonly string[] = [
  ...ENV_TO_OPTION.keys(),
  URL_ENV,
  PASSWORD_FILE_ENV,
  ...SSL_ENV,
];

/** Names people reach for that are too far from ours for the edit distance to catch. */
const ENV_ALIASES: ReadonlyMap<string, string> = new Map([
  ['MYSQL_PASS', 'MYSQL_PASSWORD'],
  ['MYSQL_DB', 'MYSQL_DATABASE'],
  ['MYSQL_DBNAME', 'MYSQL_DATABASE'],
  ['MYSQL_DB_NAME', 'MYSQL_DATABASE'],
  ['MYSQL_USERNAME', 'MYSQL_USER'],
  ['MYSQL_HOSTNAME', 'MYSQL_HOST'],
  ['MYSQL_SOCKET', 'MYSQL_SOCKET_PATH'],
  ['MYSQL_POOL_SIZE', 'MYSQL_CONNECTION_LIMIT'],
  ['MYSQL_CONNECTION_STRING', 'MYSQL_URL'],
  ['MYSQL_DATABASE_URL', 'MYSQL_URL'],
  // The mysql CLI's option names (--ssl-ca=FILE …): ours name the file explicitly.
  ['MYSQL_SSL_CA', SSL_CA_FILE_ENV],
  ['MYSQL_SSL_CERT', SSL_CERT_FILE_ENV],
  ['MYSQL_SSL_KEY', SSL_KEY_FILE_ENV],
  ['MYSQL_SSL', SSL_MODE_ENV],
  ['MYSQL_TLS_MODE', SSL_MODE_ENV],
]);

// ---------------------------------------------------------------------------
// Raw values and their provenance

interface Raw {
  readonly value: unknown;
  readonly source: Exclude<ConfigSource, 'default'>;
  /** Environment variable for ConfigError.envVar (`MYSQL_URL` for URL values). */
  readonly envVar: string | undefined;
  /** Shown in parentheses after the option name in messages; '' for explicit options. */
  readonly label: string;
}

function fail(option: string, raw: Raw | undefined, accepted: string, extra?: string): never {
  const secret = SECRET_OPTIONS.has(option);
  const shown =
    raw === undefined || raw.value === undefined
      ? ''
      : `, got ${secret ? '(hidden)' : showValue(raw.value)}`;
  const label = raw === undefined || raw.label === '' ? '' : ` (${raw.label})`;
  throw new ConfigError(
    `${option}${label} must be ${accepted}${shown}${extra === undefined ? '' : ` (${extra})`}`,
    {
      option,
      envVar: raw?.envVar,
      value: raw === undefined ? undefined : secret ? '***' : raw.value,
      accepted,
      source: raw?.source,
    },
  );
}

function showValue(value: unknown): string {
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
  }
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return `"${String(value)}"`;
  }
  if (value === null) return 'null';
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  return `a value of type ${typeof value}`;
}

const INT_RE = /^-?\d+$/;
const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);

function parseIntValue(spec: Spec, raw: Raw): number {
  let n: number | undefined;
  if (typeof raw.value === 'number') {
    n = Number.isSafeInteger(raw.value) ? raw.value : undefined;
  } else if (typeof raw.value === 'string') {
    // Only plain decimal integers: Number() would take '', '1e3', '0x10' and
    // parseInt() would take '2m' as 2. A unit typo must fail, not shrink.
    const t = raw.value.trim();
    if (INT_RE.test(t)) {
      const v = Number(t);
      n = Number.isSafeInteger(v) ? v : undefined;
    }
  }
  const r = spec.range;
  if (r === undefined) throw new Error(`${LIBRARY}: internal: ${spec.option} has no range`);
  const ok = n !== undefined && ((r.zero !== undefined && n === 0) || (n >= r.min && n <= r.max));
  if (!ok || n === undefined) {
    const overTimer = n !== undefined && r.unit === 'ms' && r.max === MAX_TIMER_MS && n > r.max;
    fail(
      spec.option,
      raw,
      acceptedOf(spec),
      overTimer ? `at most ${MAX_TIMER_MS}, the longest timer Node supports` : spec.why,
    );
  }
  return n;
}

function parseBoolValue(spec: Spec, raw: Raw): boolean {
  if (typeof raw.value === 'boolean') return raw.value;
  // mysql2 takes any value for its flags and uses its truthiness: `compress: 1` is on.
  if (typeof raw.value === 'number' && raw.source === 'option') return raw.value !== 0;
  if (typeof raw.value === 'string') {
    // mysql2 takes any truthy value, so the string 'false' would turn a flag
    // ON there; here it means false.
    const t = raw.value.trim().toLowerCase();
    if (TRUE_WORDS.has(t)) return true;
    if (FALSE_WORDS.has(t)) return false;
  }
  return fail(spec.option, raw, acceptedOf(spec));
}

function parseStringValue(spec: Spec, raw: Raw): string {
  if (typeof raw.value !== 'string') return fail(spec.option, raw, acceptedOf(spec));
  let v = raw.value;
  // URLSearchParams decodes '+' to a space: `?timezone=+05:30` arrives as ' 05:30'.
  if (spec.option === 'timezone' && v.startsWith(' ')) v = `+${v.slice(1)}`;
  if (spec.check !== undefined && !spec.check(v)) fail(spec.option, raw, acceptedOf(spec));
  return v;
}

function parseValue(spec: Spec, raw: Raw): unknown {
  if (spec.arrayOk === true && raw.source === 'option' && Array.isArray(raw.value)) {
    if (!raw.value.every((x) => typeof x === 'string')) {
      fail(spec.option, raw, `${acceptedOf(spec)}, or an array of strings`);
    }
    return Object.freeze([...(raw.value as string[])]);
  }
  switch (spec.kind) {
    case 'int':
      return parseIntValue(spec, raw);
    case 'bool':
      return parseBoolValue(spec, raw);
    case 'string':
      return parseStringValue(spec, raw);
  }
}

// ---------------------------------------------------------------------------
// Edit distance for "did you mean" (optimal string alignment distance)

function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array<number>(rows * cols).fill(0);
  const at = (i: number, j: number): number => d[i * cols + j] ?? 0;
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, at(i - 2, j - 2) + 1);
      }
      d[i * cols + j] = v;
    }
  }
  return at(rows - 1, cols - 1);
}

/** Closest candidate within distance 2 (also comparing without underscores), or undefined. */
function suggest(
  name: string,
  candidates: Iterable<string>,
  aliases?: ReadonlyMap<string, string>,
): string | undefined {
  const alias = aliases?.get(name);
  if (alias !== undefined) return alias;
  const squash = (s: string): string => s.replace(/_/g, '').toLowerCase();
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    const dist = Math.min(
      editDistance(name.toLowerCase(), c.toLowerCase()),
      editDistance(squash(name), squash(c)),
    );
    if (dist < bestD) {
      best = c;
      bestD = dist;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------
// URLs

const URL_ACCEPTED =
  'a mysql:// URL such as mysql://user:password@host:3306/database?connectionLimit=5';

/**
 * The URL with everything up to its last '@' hidden. The credentials of a URL
 * always sit before an '@', so this hides them even in a string the URL
 * parser refused.
 */
function redactUrl(url: string): string {
  const at = url.lastIndexOf('@');
  if (at < 0) return url;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(url)?.[0] ?? '';
  return `${scheme}***@${url.slice(at + 1)}`;
}

function decode(part: string, what: string, base: Raw): string {
  try {
    return decodeURIComponent(part);
  } catch {
    // No cause: the URIError would carry nothing useful and the part may be a password.
    return fail(
      'uri',
      { ...base, value: redactUrl(String(base.value)) },
      URL_ACCEPTED,
      `bad percent-encoding in the ${what}`,
    );
  }
}

/**
 * Splits a `mysql://` URL into raw option values: URL parts for host, port,
 * user, password and database; `?name=value` for any other option that can
 * come from the environment, parsed later with the same typed parsing.
 */
function parseMysqlUrl(url: unknown, source: 'uri' | 'url'): Map<string, Raw> {
  const envVar = source === 'url' ? URL_ENV : undefined;
  const where = source === 'url' ? URL_ENV : 'uri';
  // Errors about the URL as a whole: `uri must be …` for the option, `uri (MYSQL_URL) must be …` for the variable.
  const whole: Raw = { value: url, source, envVar, label: source === 'url' ? URL_ENV : '' };
  if (typeof url !== 'string') return fail('uri', whole, URL_ACCEPTED);
  const shown: Raw = { ...whole, value: redactUrl(url) };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // The TypeError's `input` property holds the whole URL, password included: not chained.
    return fail('uri', shown, URL_ACCEPTED, 'not a valid URL');
  }
  if (parsed.protocol !== 'mysql:') {
    fail(
      'uri',
      shown,
      URL_ACCEPTED,
      `scheme ${JSON.stringify(parsed.protocol.replace(/:$/, ''))} is not mysql`,
    );
  }
  const out = new Map<string, Raw>();
  const put = (option: string, value: string, label = where): void => {
    out.set(option, { value, source, envVar, label });
  };
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  if (host !== '') put('host', decode(host, 'host', shown));
  if (parsed.port !== '') put('port', parsed.port);
  if (parsed.username !== '') put('user', decode(parsed.username, 'user name', shown));
  if (parsed.password !== '') put('password', decode(parsed.password, 'password', shown));
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '') put('database', decode(db, 'database', shown));
  for (const [key, value] of parsed.searchParams) {
    const param: Raw = { value, source, envVar, label: `${where} ?${key}` };
    if (URL_IDENTITY.has(key)) {
      fail(
        key,
        param,
        `set in the URL itself (mysql://user:password@host:port/database), not as ?${key}=`,
      );
    }
    if (SPEC_BY_OPTION.has(key)) {
      put(key, value, `${where} ?${key}`);
      continue;
    }
    // Never echo the value of an unknown parameter: it may be a misspelt password.
    const hidden: Raw = { ...param, value: undefined };
    if (PASS_THROUGH.has(key) || CONSUMED.has(key)) {
      throw new ConfigError(
        `${key} cannot be set in a URL (${hidden.label}): pass it as an explicit option`,
        { option: key, envVar, value: undefined, accepted: 'an explicit option', source },
      );
    }
    const hint = suggest(key, SPEC_BY_OPTION.keys());
    throw new ConfigError(
      `unknown parameter ?${key} in ${where}${hint === undefined ? '' : ` (did you mean ?${hint}?)`}; accepted: the options of OPTION_TABLE, e.g. ?connectionLimit=5`,
      { option: key, envVar, value: undefined, accepted: 'an option name of OPTION_TABLE', source },
    );
  }
  return out;
}

// ---------------------------------------------------------------------------
// Environment

/** Kubernetes service links (`<SVC>_SERVICE_HOST`, `<SVC>_PORT_3306_TCP_ADDR`, …) for Services named mysql or mysql-*. */
const K8S_SERVICE_RE = /^MYSQL_(?:[A-Z0-9_]+_)?SERVICE_(?:HOST|PORT)(?:_[A-Z0-9_]+)?$/;
const K8S_PORT_RE = /^MYSQL_(?:[A-Z0-9_]+_)?PORT_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?$/;
const LINK_URL_RE = /^(?:tcp|udp|sctp):\/\//;
const TCP_PORT_RE = /^tcp:\/\/(?:\[[^\]]*\]|[^:/]*):(\d+)$/;

function isForeignEnv(key: string, value: string | undefined): boolean {
  if (FOREIGN_ENV.has(key)) return true;
  if (RESERVED_ENV_PREFIXES.some((p) => key.startsWith(p))) return true;
  if (K8S_SERVICE_RE.test(key) || K8S_PORT_RE.test(key)) return true;
  // `<SVC>_PORT=tcp://10.0.0.5:3306` of a Service named mysql-<something>.
  if (/^MYSQL_[A-Z0-9_]+_PORT$/.test(key) && value !== undefined && LINK_URL_RE.test(value))
    return true;
  // Legacy Docker links (`--link db:mysql`) inject MYSQL_ENV_<var of the other container>.
  if (key.startsWith('MYSQL_ENV_')) return true;
  return false;
}

interface EnvLayer {
  readonly values: Map<string, Raw>;
  readonly unknown: string[];
}

function readEnv(env: NodeJS.ProcessEnv): EnvLayer {
  const values = new Map<string, Raw>();
  const unknown: string[] = [];
  for (const key of Object.keys(env).sort()) {
    if (!key.startsWith('MYSQL_')) continue;
    const value = env[key];
    if (value === undefined) continue;
    const option = ENV_TO_OPTION.get(key);
    if (option !== undefined) {
      if (option === 'name' && value.startsWith('/')) continue; // Docker link: MYSQL_NAME=/app/mysql
      let v = value;
      if (option === 'port' && LINK_URL_RE.test(value.trim())) {
        // A Kubernetes Service named `mysql` injects MYSQL_PORT=tcp://10.0.0.5:3306: take the port.
        const m = TCP_PORT_RE.exec(value.trim());
        v = m?.[1] ?? value;
      }
      values.set(option, { value: v, source: 'env', envVar: key, label: key });
      continue;
    }
    if (key === URL_ENV || key === PASSWORD_FILE_ENV || SSL_ENV.includes(key)) continue;
    if (isForeignEnv(key, value)) continue;
    unknown.push(key);
  }
  return { values, unknown };
}

function warnUnknownEnv(unknown: readonly string[]): void {
  if (unknown.length === 0) return;
  const items = unknown.map((key) => {
    const hint = suggest(key, KNOWN_ENV, ENV_ALIASES);
    return hint === undefined ? key : `${key} (did you mean ${hint}?)`;
  });
  // Names only, never values: they may be secrets.
  process.emitWarning(
    `${LIBRARY}: ignoring unknown environment variable${unknown.length > 1 ? 's' : ''} ${items.join(', ')}`,
    {
      code: UNKNOWN_ENV_WARNING_CODE,
    },
  );
}

/** Reads MYSQL_PASSWORD_FILE once, dropping one trailing newline (as `echo` and editors leave). */
function readPasswordFile(path: string): Raw {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ConfigError(
      `password (${PASSWORD_FILE_ENV}) must name a readable file, got ${JSON.stringify(path)}: ${code}`,
      {
        option: 'password',
        envVar: PASSWORD_FILE_ENV,
        value: '***',
        accepted: 'the path of a readable file',
        source: 'env',
        cause: err,
      },
    );
  }
  return {
    value: text.replace(/\r?\n$/, ''),
    source: 'env',
    envVar: PASSWORD_FILE_ENV,
    label: PASSWORD_FILE_ENV,
  };
}

// ---------------------------------------------------------------------------
// Freezing

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Frozen copy of plain objects and arrays, recursively; anything else
 * (functions, streams, Buffers, class instances) is the caller's and is
 * returned as is: freezing someone else's object would be a side effect, and
 * Buffers cannot be frozen.
 */
function frozenCopy(value: unknown, seen = new WeakMap<object, unknown>()): unknown {
  if (Array.isArray(value)) {
    const hit = seen.get(value);
    if (hit !== undefined) return hit;
    const out: unknown[] = [];
    seen.set(value, out);
    for (const x of value) out.push(frozenCopy(x, seen));
    return Object.freeze(out);
  }
  if (isPlainObject(value)) {
    const hit = seen.get(value);
    if (hit !== undefined) return hit;
    const out: Record<string, unknown> = {};
    seen.set(value, out);
    for (const [k, v] of Object.entries(value)) out[k] = frozenCopy(v, seen);
    return Object.freeze(out);
  }
  return value;
}

/**
 * `ssl` for the connection from an explicit `ssl` option (which wins over
 * `MYSQL_SSL_*`; see {@link resolveSslEnv} for the environment).
 *
 * An object is copied, NOT frozen: mysql2's ConnectionConfig assigns
 * `ssl.rejectUnauthorized` on the object it is given, which throws on a
 * frozen object in strict mode. The key is pre-set to mysql2's own
 * normalisation, so that write is a no-op.
 */
function resolveSsl(explicit: unknown): unknown {
  if (!isPlainObject(explicit)) return explicit; // undefined, false, a profile name
  const copy: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(explicit)) copy[k] = frozenCopy(v);
  copy.rejectUnauthorized = explicit.rejectUnauthorized !== false;
  return maskSslOnInspect(copy);
}

/**
 * mysql2 keeps the `ssl` object it is given as `connection.config.ssl`, so the pool's
 * `config.connectionConfig.ssl` holds the private key. `util.inspect` and `JSON.stringify` of it
 * show key material as `'***'`; mysql2 reads the real properties. Both hooks are non-enumerable,
 * so they never reach TLS options or per-connection copies.
 */
function maskSslOnInspect(ssl: Record<string, unknown>): Record<string, unknown> {
  const masked = (): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(ssl)) {
      out[k] = typeof v === 'boolean' || typeof v === 'number' || SSL_SHOWN.has(k) ? v : '***';
    }
    return out;
  };
  Object.defineProperty(ssl, inspect.custom, {
    value: (_depth: number, options: object) => inspect(masked(), options),
  });
  Object.defineProperty(ssl, 'toJSON', { value: masked });
  return ssl;
}

// ---------------------------------------------------------------------------
// TLS from the environment (MYSQL_SSL_MODE and the MYSQL_SSL_*_FILE variables)

const SSL_MODE_ACCEPTED = 'DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY';
const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** What {@link resolveSslEnv} decided. */
interface SslFromEnv {
  /** What mysql2 gets as `ssl`; undefined for DISABLED (mysql2's default: no TLS). */
  readonly ssl: Record<string, unknown> | undefined;
  readonly mode: SslMode;
  readonly warnings: readonly string[];
}

function sslFail(
  envVar: string,
  value: unknown,
  accepted: string,
  detail: string,
  cause?: unknown,
): never {
  throw new ConfigError(
    `ssl (${envVar}) must be ${accepted}, got ${showValue(value)}${detail === '' ? '' : `: ${detail}`}`,
    {
      option: 'ssl',
      envVar,
      value,
      accepted,
      source: 'env',
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

/** Reads one `MYSQL_SSL_*_FILE` once. The message names the path and the errno, never content. */
function readSslFile(envVar: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    return sslFail(envVar, path, 'the path of a readable file', code, err);
  }
}

/** PEM certificates of a file, each parsed, so a wrong file fails here and not at the first connect. */
function parseCertificates(envVar: string, path: string, text: string): X509Certificate[] {
  const accepted =
    envVar === SSL_CA_FILE_ENV
      ? 'a PEM file of CA certificates'
      : 'a PEM file holding the client certificate';
  const blocks = text.match(PEM_CERT_RE) ?? [];
  if (blocks.length === 0) return sslFail(envVar, path, accepted, 'no PEM certificate in it');
  return blocks.map((pem) => {
    try {
      return new X509Certificate(pem);
    } catch (err) {
      return sslFail(envVar, path, accepted, (err as Error).message, err);
    }
  });
}

/**
 * `ssl` from `MYSQL_SSL_MODE`, `MYSQL_SSL_CA_FILE`, `MYSQL_SSL_CERT_FILE` and
 * `MYSQL_SSL_KEY_FILE`, mapped as MySQL clients map `--ssl-mode`:
 *
 * | mode            | mysql2 `ssl`                                            |
 * | --------------- | ------------------------------------------------------- |
 * | DISABLED        | none: plain TCP                                         |
 * | PREFERRED       | as REQUIRED; plain TCP if the server offers no TLS (1) |
 * | REQUIRED        | `{ rejectUnauthorized: false }`: encrypted, unverified  |
 * | VERIFY_CA       | `{ rejectUnauthorized: true, ca }`                      |
 * | VERIFY_IDENTITY | `{ rejectUnauthorized: true, verifyIdentity: true, ca }`|
 *
 * (1) decided per connection at the handshake by tls-preferred.ts.
 *
 * Without `MYSQL_SSL_MODE`, a CA file implies VERIFY_CA (as in MySQL's
 * clients), a client certificate alone implies REQUIRED, and nothing at all
 * leaves mysql2's default (no TLS). VERIFY_* without a CA file verify against
 * Node's CA store (and `NODE_EXTRA_CA_CERTS`). Every file is read once, here,
 * and parsed, so a wrong path or a wrong file fails at `createPool`. Returns
 * undefined when no TLS variable is set.
 */
function resolveSslEnv(env: NodeJS.ProcessEnv, host: unknown): SslFromEnv | undefined {
  const modeText = env[SSL_MODE_ENV];
  const caPath = env[SSL_CA_FILE_ENV];
  const certPath = env[SSL_CERT_FILE_ENV];
  const keyPath = env[SSL_KEY_FILE_ENV];
  if (
    modeText === undefined &&
    caPath === undefined &&
    certPath === undefined &&
    keyPath === undefined
  ) {
    return undefined;
  }
  let mode: SslMode;
  if (modeText !== undefined) {
    const m = modeText.trim().toUpperCase();
    if (!(SSL_MODES as readonly string[]).includes(m)) {
      sslFail(SSL_MODE_ENV, modeText, `${SSL_MODE_ACCEPTED} (any case)`, '');
    }
    mode = m as SslMode;
  } else {
    mode = caPath !== undefined ? 'VERIFY_CA' : 'REQUIRED';
  }
  if (mode === 'DISABLED') {
    const set = [
      [SSL_CA_FILE_ENV, caPath],
      [SSL_CERT_FILE_ENV, certPath],
      [SSL_KEY_FILE_ENV, keyPath],
    ].find(([, v]) => v !== undefined)?.[0];
    if (set !== undefined) {
      sslFail(
        SSL_MODE_ENV,
        modeText,
        `a mode that uses TLS when ${set} is set`,
        `DISABLED turns TLS off, so ${set} would be ignored; unset one of them`,
      );
    }
    return { ssl: undefined, mode, warnings: [] };
  }
  if ((certPath === undefined) !== (keyPath === undefined)) {
    const [given, missing] =
      certPath === undefined
        ? [SSL_KEY_FILE_ENV, SSL_CERT_FILE_ENV]
        : [SSL_CERT_FILE_ENV, SSL_KEY_FILE_ENV];
    sslFail(
      given,
      given === SSL_CERT_FILE_ENV ? certPath : keyPath,
      `set together with ${missing}`,
      'a client certificate is sent with its private key',
    );
  }
  if (mode === 'VERIFY_IDENTITY' && typeof host === 'string' && isIP(host) !== 0) {
    // mysql2 gives TLS no server name for an IP host, so Node checks the certificate against
    // "localhost" instead of the address: the check would be wrong either way.
    sslFail(
      SSL_MODE_ENV,
      modeText,
      'VERIFY_CA when host is an IP address',
      `VERIFY_IDENTITY needs host to be the DNS name in the server certificate, and host is the IP address ${JSON.stringify(host)}`,
    );
  }
  const verify = mode === 'VERIFY_CA' || mode === 'VERIFY_IDENTITY';
  const ssl: Record<string, unknown> = { rejectUnauthorized: verify };
  if (mode === 'VERIFY_IDENTITY') ssl.verifyIdentity = true;
  const warnings: string[] = [];
  if (caPath !== undefined) {
    const ca = readSslFile(SSL_CA_FILE_ENV, caPath);
    parseCertificates(SSL_CA_FILE_ENV, caPath, ca);
    if (verify) {
      ssl.ca = ca;
    } else {
      warnings.push(
        `${SSL_MODE_ENV}=${mode} encrypts without verifying the server certificate, so ${SSL_CA_FILE_ENV} is not used; set ${SSL_MODE_ENV}=VERIFY_CA (or leave it unset) to verify against it`,
      );
    }
  }
  if (certPath !== undefined && keyPath !== undefined) {
    const cert = readSslFile(SSL_CERT_FILE_ENV, certPath);
    const [leaf] = parseCertificates(SSL_CERT_FILE_ENV, certPath, cert);
    const key = readSslFile(SSL_KEY_FILE_ENV, keyPath);
    const keyAccepted = `an unencrypted PEM private key matching ${SSL_CERT_FILE_ENV}`;
    if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(key)) {
      sslFail(
        SSL_KEY_FILE_ENV,
        keyPath,
        keyAccepted,
        'the key is encrypted; pass ssl: { key, passphrase, … } as an explicit option instead',
      );
    }
    let matches = false;
    try {
      // Errors here name the OpenSSL reason only, never the key material.
      matches = leaf?.checkPrivateKey(createPrivateKey(key)) === true;
    } catch (err) {
      sslFail(SSL_KEY_FILE_ENV, keyPath, keyAccepted, (err as Error).message, err);
    }
    if (!matches) {
      sslFail(SSL_KEY_FILE_ENV, keyPath, keyAccepted, `it is not the key of ${certPath}`);
    }
    ssl.cert = cert;
    ssl.key = key;
  }
  return { ssl: maskSslOnInspect(ssl), mode, warnings };
}

// ---------------------------------------------------------------------------
// resolveConfig

let unnamedPools = 0;

/**
 * Resolves pool options and the environment into one frozen configuration.
 * Throws a {@link ConfigError} (code `INVALID_CONFIG`) for any bad value,
 * naming the option, its environment variable, the value and the accepted
 * range. Emits at most one process warning (code
 * {@link UNKNOWN_ENV_WARNING_CODE}) listing unknown `MYSQL_*` variables.
 *
 * @param options - mysql2 pool options plus {@link KeepalivePoolOptions}, or a `mysql://` URL
 *   (same as `{ uri }`). `undefined`/`null` values count as not given.
 * @param env - the environment; defaults to `process.env`. Tests pass their own.
 */
export function resolveConfig(
  options?: KeepalivePoolOptions | string,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedConfig {
  const opts: Record<string, unknown> =
    options === undefined
      ? {}
      : typeof options === 'string'
        ? { uri: options }
        : (options as unknown as Record<string, unknown>);
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw new ConfigError(
      `options must be an object or a mysql:// URL string, got ${showValue(options)}`,
      {
        option: 'options',
        value: options,
        accepted: 'an object or a mysql:// URL string',
      },
    );
  }

  // Layer 1: explicit options. Unknown keys are refused: mysql2 would only
  // print a warning and go on without the setting the caller meant.
  const explicit = new Map<string, Raw>();
  for (const key of Object.keys(opts)) {
    const value = opts[key];
    if (!SPEC_BY_OPTION.has(key) && !PASS_THROUGH.has(key) && !CONSUMED.has(key)) {
      const hint = suggest(key, [...SPEC_BY_OPTION.keys(), ...PASS_THROUGH, ...CONSUMED]);
      throw new ConfigError(
        `unsupported option opt.${key}${hint === undefined ? '' : ` (did you mean opt.${hint}?)`}`,
        {
          option: key,
          value: undefined,
          accepted: 'a mysql2 pool option or an option of this library',
          source: 'option',
        },
      );
    }
    if (value === undefined || value === null) continue;
    explicit.set(key, { value, source: 'option', envVar: undefined, label: '' });
  }
  const promiseRaw = explicit.get('Promise');
  if (promiseRaw !== undefined && typeof promiseRaw.value !== 'function') {
    fail('Promise', promiseRaw, 'a Promise constructor');
  }

  // Layer 2: explicit uri (or the string argument).
  const uriRaw = explicit.get('uri');
  const fromUri =
    uriRaw === undefined ? new Map<string, Raw>() : parseMysqlUrl(uriRaw.value, 'uri');

  // Layers 3 and 4: MYSQL_* and MYSQL_URL.
  const envLayer = readEnv(env);
  // Before any env/URL check can throw: a misspelt name is often why a value is missing.
  warnUnknownEnv(envLayer.unknown);
  const urlText = env[URL_ENV];
  const fromUrl = urlText === undefined ? new Map<string, Raw>() : parseMysqlUrl(urlText, 'url');

  const pick = (option: string): Raw | undefined => {
    const fromOptionOrUri = explicit.get(option) ?? fromUri.get(option);
    if (fromOptionOrUri !== undefined) return fromOptionOrUri;
    if (option === 'password') {
      // Read the file only when no explicit password or uri password wins.
      const direct = envLayer.values.get('password');
      const file = env[PASSWORD_FILE_ENV];
      if (direct !== undefined && file !== undefined) {
        throw new ConfigError(
          `password is set by both MYSQL_PASSWORD and ${PASSWORD_FILE_ENV}; set only one`,
          {
            option: 'password',
            envVar: PASSWORD_FILE_ENV,
            value: '***',
            accepted: 'one of MYSQL_PASSWORD or MYSQL_PASSWORD_FILE',
            source: 'env',
          },
        );
      }
      if (file !== undefined) return readPasswordFile(file);
    }
    return envLayer.values.get(option) ?? fromUrl.get(option);
  };

  const values = new Map<string, unknown>();
  const sources: Record<string, ConfigSource> = {};
  const raws = new Map<string, Raw>();
  for (const spec of SPECS) {
    const raw = pick(spec.option);
    if (raw === undefined) {
      sources[spec.option] = 'default';
      continue;
    }
    values.set(spec.option, parseValue(spec, raw));
    sources[spec.option] = raw.source;
    raws.set(spec.option, raw);
  }

  const num = (option: string): number => {
    const v = values.get(option) ?? SPEC_BY_OPTION.get(option)?.def;
    return typeof v === 'number' ? v : 0;
  };
  const bool = (option: string): boolean => {
    const v = values.get(option) ?? SPEC_BY_OPTION.get(option)?.def;
    return v === true;
  };

  // Cross-field checks.
  const connectionLimit = num('connectionLimit');
  const limitText = `connectionLimit (${connectionLimit}${raws.get('connectionLimit') === undefined ? ', the default' : `, from ${describeRaw(raws.get('connectionLimit'))}`})`;
  // Above connectionLimit is legal in mysql2 and means what it says there: no idle connection is
  // ever excess, so idleTimeout never closes one.
  const maxIdle = values.has('maxIdle') ? num('maxIdle') : connectionLimit;
  const minIdle = num('minIdle');
  if (minIdle > connectionLimit) {
    fail('minIdle', raws.get('minIdle'), `an integer between 0 and ${limitText}`);
  }

  let name = values.get('name') as string | undefined;
  if (name === undefined) name = `pool-${++unnamedPools}`;

  // The per-connection options mysql2 gets.
  const connection: Record<string, unknown> = {};
  for (const spec of SPECS) {
    if (spec.target === 'connection' && values.has(spec.option)) {
      connection[spec.option] = values.get(spec.option);
    }
  }
  const derived = deriveDefaults(values);
  if (derived.connectTimeout !== undefined) connection.connectTimeout = derived.connectTimeout;
  connection.enableKeepAlive = bool('enableKeepAlive');
  connection.keepAliveInitialDelay = derived.keepAliveInitialDelay;
  for (const key of PASS_THROUGH) {
    const raw = explicit.get(key);
    if (raw === undefined) continue;
    connection[key] = key === 'ssl' ? resolveSsl(raw.value) : frozenCopy(raw.value);
    sources[key] = 'option';
  }
  // An explicit `ssl` (even `false`) wins: MYSQL_SSL_* are then not read at all.
  const sslEnv = explicit.has('ssl') ? undefined : resolveSslEnv(env, connection.host);
  if (sslEnv !== undefined) {
    if (sslEnv.ssl !== undefined) connection.ssl = sslEnv.ssl;
    sources.ssl = 'env';
  }

  const resolved: Omit<ResolvedConfig, 'warnings'> = {
    name,
    connectionLimit,
    queueLimit: num('queueLimit'),
    waitForConnections: bool('waitForConnections'),
    maxIdle,
    idleTimeout: num('idleTimeout'),
    resetOnRelease: bool('resetOnRelease'),
    acquireTimeout: derived.acquireTimeout,
    minIdle,
    maxLifetime: num('maxLifetime'),
    enableKeepAlive: bool('enableKeepAlive'),
    keepAliveInitialDelay: derived.keepAliveInitialDelay,
    keepAliveInterval: derived.keepAliveInterval,
    keepAliveCount: derived.keepAliveCount,
    tcpUserTimeout: derived.tcpUserTimeout,
    idlePingInterval: num('idlePingInterval'),
    validationTimeout: num('validationTimeout'),
    validationSkipWindow: num('validationSkipWindow'),
    leakDetectionThreshold: num('leakDetectionThreshold'),
    hedgeCheckout: bool('hedgeCheckout'),
    learnPathTimeout: bool('learnPathTimeout'),
    promiseImpl: promiseRaw?.value as PromiseConstructor | undefined,
    sslMode: sslEnv?.mode,
    connection: Object.freeze(maskOnInspect(connection)) as Readonly<ConnectionOptions>,
    sources: Object.freeze(sources),
  };

  const cfg = Object.freeze({
    ...resolved,
    warnings: Object.freeze([
      ...collectWarnings(resolved, new Set(values.keys())),
      ...(sslEnv?.warnings ?? []),
    ]),
  });
  // Once per resolution, i.e. once per pool: the only place the whole configuration is logged.
  debug('%s: resolved config %o', name, describeConfig(cfg));
  return cfg;
}

/**
 * `cfg.connection` must hold the password for mysql2, yet `util.inspect(pool.options)` and
 * `JSON.stringify` must not show it. The two hooks are non-enumerable, so the spread copies
 * handed to mysql2 ({@link connectionOptions}) do not carry them.
 */
function maskOnInspect(connection: Record<string, unknown>): Record<string, unknown> {
  const masked = (): Record<string, unknown> => {
    const out: Record<string, unknown> = { ...connection };
    for (const key of SECRET_OPTIONS) {
      if (typeof out[key] === 'string' && out[key] !== '') out[key] = '***';
    }
    if (isPlainObject(out.ssl)) {
      const ssl: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(out.ssl)) {
        ssl[k] = typeof v === 'boolean' || typeof v === 'number' || SSL_SHOWN.has(k) ? v : '***';
      }
      out.ssl = ssl;
    }
    return out;
  };
  Object.defineProperty(connection, inspect.custom, {
    value: (_depth: number, options: object) => inspect(masked(), options),
  });
  Object.defineProperty(connection, 'toJSON', { value: masked });
  return connection;
}

function describeRaw(raw: Raw | undefined): string {
  if (raw === undefined) return 'default';
  return raw.label === '' ? 'option' : raw.label;
}

/** Linux's default TCP_KEEPIDLE, which Node leaves in place for a delay below 1 s. */
const KERNEL_KEEPIDLE_MS = 7_200_000;
/** The largest TCP_KEEPIDLE Linux accepts (32767 s); above it setsockopt fails and the kernel's stays. */
const MAX_KEEPIDLE_MS = 32_767_000;
/** kube-proxy's IPVS idle timeout for TCP, the shortest common middlebox timeout. */
const IPVS_MS = 900_000;
const DEFAULT_DELAY_MS = 60_000;
const DEFAULT_INTERVAL_MS = 10_000;
const DEFAULT_USER_TIMEOUT_MS = 90_000;
const DEFAULT_ACQUIRE_MS = 10_000;
/** mysql2's own connectTimeout default. */
const MYSQL2_CONNECT_TIMEOUT_MS = 10_000;

/**
 * The keepalive idle time the kernel really uses for a `keepAliveInitialDelay`: Node sets whole
 * seconds, and leaves the kernel's 7200 s for 0 … 999 ms (mysql2's meaning of those values), as
 * Linux does for more than 32767 s.
 */
export function effectiveKeepAliveDelay(ms: number): number {
  if (ms < 1_000 || ms > MAX_KEEPIDLE_MS) return KERNEL_KEEPIDLE_MS;
  return Math.floor(ms / 1_000) * 1_000;
}

/** The values {@link deriveDefaults} decides. */
export interface DerivedDefaults {
  readonly acquireTimeout: number;
  /** Only when derived from `acquireTimeout`; otherwise mysql2's (or the user's) applies. */
  readonly connectTimeout: number | undefined;
  readonly keepAliveInitialDelay: number;
  readonly keepAliveInterval: number;
  readonly keepAliveCount: number;
  readonly tcpUserTimeout: number;
}

const clampMs = (v: number, min: number, max: number): number =>
  Math.min(max, Math.max(min, Math.floor(v)));

/**
 * Defaults the user did not set, derived from the ones they did, so that no default undermines a
 * set value (the table of cases is in test/unit/config-defaults.test.ts):
 *
 * - `keepAliveInterval` is at most `keepAliveInitialDelay` (10 s by default): Linux probes an idle
 *   connection every max(delay, interval), so setting only the delay sets the probe spacing.
 * - `tcpUserTimeout` is at least delay + count × interval (90 s by default): one lost probe
 *   cannot trip it. A `tcpUserTimeout` that is set instead shortens the default interval and
 *   delay until count probes fit inside it.
 * - `acquireTimeout` is at least a `connectTimeout` that is set, so a slow connect reports its
 *   own error; a shorter `acquireTimeout` that is set becomes the default `connectTimeout`.
 *
 * @param set - the values given by the user (option, uri, env or URL), by option name.
 */
export function deriveDefaults(set: ReadonlyMap<string, unknown>): DerivedDefaults {
  const given = (option: string): number | undefined => {
    const v = set.get(option);
    return typeof v === 'number' ? v : undefined;
  };
  const userDelay = given('keepAliveInitialDelay');
  const userInterval = given('keepAliveInterval');
  const userTimeout = given('tcpUserTimeout');
  const count = given('keepAliveCount') ?? 3;
  const keepAlive = set.get('enableKeepAlive') !== false;
  // A tcpUserTimeout of 0 is off: nothing to fit inside.
  const budget =
    keepAlive && userTimeout !== undefined && userTimeout > 0 ? userTimeout : undefined;

  let delay: number;
  let interval: number;
  if (userDelay !== undefined) {
    delay = userDelay;
    const eff = effectiveKeepAliveDelay(delay);
    // Count probes that fit inside a tcpUserTimeout that is set; none fit when it is below the
    // delay itself, which collectWarnings reports.
    const room = budget === undefined ? Infinity : (budget - eff) / count;
    const fit = room >= 1_000 ? room : Infinity;
    interval = userInterval ?? clampMs(Math.min(DEFAULT_INTERVAL_MS, eff, fit), 1_000, 600_000);
  } else if (budget !== undefined) {
    // Half of the budget for the count probes, the rest for the idle time before the first.
    interval =
      userInterval ?? clampMs(Math.min(DEFAULT_INTERVAL_MS, budget / (2 * count)), 1_000, 600_000);
    delay = clampMs(budget - count * interval, 1_000, DEFAULT_DELAY_MS);
  } else {
    delay = DEFAULT_DELAY_MS;
    interval = userInterval ?? DEFAULT_INTERVAL_MS;
  }
  const tcpUserTimeout =
    userTimeout ??
    (keepAlive
      ? Math.max(DEFAULT_USER_TIMEOUT_MS, effectiveKeepAliveDelay(delay) + count * interval)
      : DEFAULT_USER_TIMEOUT_MS);

  const userAcquire = given('acquireTimeout');
  const userConnect = given('connectTimeout');
  const acquireTimeout =
    userAcquire ??
    (userConnect !== undefined && userConnect > DEFAULT_ACQUIRE_MS
      ? userConnect
      : DEFAULT_ACQUIRE_MS);
  const connectTimeout =
    userConnect === undefined &&
    userAcquire !== undefined &&
    userAcquire !== 0 &&
    userAcquire < MYSQL2_CONNECT_TIMEOUT_MS
      ? userAcquire
      : undefined;
  return {
    acquireTimeout,
    connectTimeout,
    keepAliveInitialDelay: delay,
    keepAliveInterval: interval,
    keepAliveCount: count,
    tcpUserTimeout,
  };
}

/**
 * Unwise but legal combinations, as sentences without the library prefix (the pool adds it).
 * Each names only options in `set` (the ones the user gave): a default is never blamed, because
 * {@link deriveDefaults} derived it from them.
 */
function collectWarnings(c: Omit<ResolvedConfig, 'warnings'>, set: ReadonlySet<string>): string[] {
  const w: string[] = [];
  const delay = effectiveKeepAliveDelay(c.keepAliveInitialDelay);
  if (!c.enableKeepAlive) {
    w.push(
      'enableKeepAlive is false: idle connections send nothing below the database protocol, so IPVS, NAT gateways and load balancers forget their flows' +
        (c.idlePingInterval === 0
          ? ', and idle pings are off too'
          : '; only idle pings keep them alive'),
    );
  } else if (set.has('keepAliveInitialDelay') && c.keepAliveInitialDelay < 1_000) {
    w.push(
      `keepAliveInitialDelay ${c.keepAliveInitialDelay} ms is below 1000 ms: Node (and so mysql2) then leaves the kernel's keepalive idle time in place (7200 s on Linux), far above the 900 s IPVS idle timeout`,
    );
  } else if (set.has('keepAliveInitialDelay') && c.keepAliveInitialDelay > MAX_KEEPIDLE_MS) {
    w.push(
      `keepAliveInitialDelay ${c.keepAliveInitialDelay} ms is above the 32767 s Linux accepts: the kernel keeps its own keepalive idle time (7200 s), far above the 900 s IPVS idle timeout`,
    );
  } else if (set.has('keepAliveInitialDelay') && delay >= IPVS_MS) {
    w.push(
      `keepAliveInitialDelay ${c.keepAliveInitialDelay} ms is at or above the 900 s IPVS idle timeout: flows will be forgotten before the first keepalive probe`,
    );
  }
  if (
    c.enableKeepAlive &&
    set.has('keepAliveInterval') &&
    set.has('keepAliveInitialDelay') &&
    c.keepAliveInterval > delay
  ) {
    // After an answered probe Linux waits TCP_KEEPINTVL before it looks again, so on an idle
    // connection probes go out every max(keepAliveInitialDelay, keepAliveInterval).
    w.push(
      `keepAliveInterval ${c.keepAliveInterval} ms is above keepAliveInitialDelay ${c.keepAliveInitialDelay} ms: after the first probe the kernel probes an idle connection only every ${c.keepAliveInterval} ms, so both must be below the middlebox's idle timeout`,
    );
  }
  if (c.idlePingInterval === 0 && (delay >= IPVS_MS || !c.enableKeepAlive)) {
    w.push(
      'idlePingInterval is 0 and TCP keepalive does not fire within 900 s: nothing keeps idle connections alive through IPVS',
    );
  }
  // Linux ends an idle connection at the first probe tick at which nothing has been heard for
  // tcpUserTimeout and a probe is unanswered; at delay + interval that is the very first probe.
  const named = ['tcpUserTimeout', 'keepAliveInitialDelay', 'keepAliveInterval'].filter((o) =>
    set.has(o),
  );
  if (
    c.enableKeepAlive &&
    c.tcpUserTimeout !== 0 &&
    c.tcpUserTimeout <= delay + c.keepAliveInterval &&
    // keepAliveCount 1 asks for exactly that; with none of them set the defaults leave room.
    c.keepAliveCount > 1 &&
    named.length > 0
  ) {
    w.push(
      `${named.map((o) => `${o} ${String(c[o as keyof typeof c])} ms`).join(' and ')} ${named.length > 1 ? 'leave' : 'leaves'} tcpUserTimeout (${c.tcpUserTimeout} ms) not above the first keepalive probe plus one interval (${delay + c.keepAliveInterval} ms): a single lost keepalive probe would kill a healthy idle connection; use at least ${delay + c.keepAliveCount * c.keepAliveInterval} ms (the delay plus all probes)`,
    );
  }
  if (c.minIdle > c.maxIdle && set.has('maxIdle')) {
    w.push(
      `minIdle ${c.minIdle} is above maxIdle ${c.maxIdle}: connections kept open for minIdle would be closed as excess idle ones`,
    );
  }
  const connectTimeout =
    typeof c.connection.connectTimeout === 'number'
      ? c.connection.connectTimeout
      : MYSQL2_CONNECT_TIMEOUT_MS;
  if (
    set.has('acquireTimeout') &&
    set.has('connectTimeout') &&
    c.acquireTimeout !== 0 &&
    (connectTimeout === 0 || c.acquireTimeout < connectTimeout)
  ) {
    w.push(
      `acquireTimeout ${c.acquireTimeout} ms is shorter than connectTimeout (${connectTimeout === 0 ? 'none' : `${connectTimeout} ms`}): getConnection may time out before a failing connection attempt reports its real cause`,
    );
  }
  return w;
}

/**
 * A fresh, mutable copy of `cfg.connection` for one mysql2 connection.
 * mysql2 writes into the options and config objects it is given
 * (`ssl.rejectUnauthorized`, `changeUser`), so each connection gets its own;
 * `ssl` is copied as well.
 */
export function connectionOptions(cfg: ResolvedConfig): ConnectionOptions {
  const copy: Record<string, unknown> = { ...cfg.connection };
  if (isPlainObject(copy.ssl)) copy.ssl = { ...copy.ssl };
  return copy as ConnectionOptions;
}

// ---------------------------------------------------------------------------
// describeConfig

const SSL_SHOWN = new Set([
  'servername',
  'minVersion',
  'maxVersion',
  'ciphers',
  'ecdhCurve',
  'rejectUnauthorized',
  'verifyIdentity',
]);
const SECRETISH_KEY = /pass|secret|token|key|cert|pfx/i;

/**
 * A flat object safe to log or print (`doctor`): every resolved value, with
 * passwords shown as `'***'` (or `'(none)'`), ssl key material masked,
 * functions as `'[function]'`, and the effective host/port when left to
 * mysql2. URLs are never present: they were split into their parts.
 */
export function describeConfig(cfg: ResolvedConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    name: cfg.name,
    connectionLimit: cfg.connectionLimit,
    queueLimit: cfg.queueLimit,
    waitForConnections: cfg.waitForConnections,
    maxIdle: cfg.maxIdle,
    idleTimeout: cfg.idleTimeout,
    resetOnRelease: cfg.resetOnRelease,
    acquireTimeout: cfg.acquireTimeout,
    minIdle: cfg.minIdle,
    maxLifetime: cfg.maxLifetime,
    enableKeepAlive: cfg.enableKeepAlive,
    keepAliveInitialDelay: cfg.keepAliveInitialDelay,
    keepAliveInterval: cfg.keepAliveInterval,
    keepAliveCount: cfg.keepAliveCount,
    tcpUserTimeout: cfg.tcpUserTimeout,
    idlePingInterval: cfg.idlePingInterval,
    validationTimeout: cfg.validationTimeout,
    validationSkipWindow: cfg.validationSkipWindow,
    leakDetectionThreshold: cfg.leakDetectionThreshold,
  };
  const conn = cfg.connection as Record<string, unknown>;
  const viaNetwork = conn.socketPath === undefined && conn.stream === undefined;
  if (viaNetwork) {
    out.host = conn.host ?? 'localhost';
    out.port = conn.port ?? 3306;
  }
  if (conn.user !== undefined) out.user = conn.user;
  out.password = typeof conn.password === 'string' && conn.password !== '' ? '***' : '(none)';
  for (const [key, value] of Object.entries(conn)) {
    if (
      key === 'enableKeepAlive' ||
      key === 'keepAliveInitialDelay' ||
      key === 'host' ||
      key === 'port' ||
      key === 'user' ||
      key === 'password'
    )
      continue;
    if (SECRET_OPTIONS.has(key)) {
      out[key] = typeof value === 'string' && value !== '' ? '***' : '(none)';
    } else if (key === 'ssl') {
      flattenSsl(out, value);
    } else {
      flatten(out, key, value);
    }
  }
  // Last, so that the lines doctor wraps the connection settings into stay as they were.
  out.hedgeCheckout = cfg.hedgeCheckout;
  out.learnPathTimeout = cfg.learnPathTimeout;
  return out;
}

function flatten(out: Record<string, unknown>, path: string, value: unknown): void {
  if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) flatten(out, `${path}.${k}`, v);
  } else if (Array.isArray(value)) {
    out[path] = value.every((x) => typeof x === 'string' || typeof x === 'number')
      ? value.join(',')
      : '[array]';
  } else if (typeof value === 'function') {
    out[path] = '[function]';
  } else if (value !== null && typeof value === 'object') {
    out[path] = `[${(value as object).constructor?.name ?? 'object'}]`;
  } else if (typeof value === 'string' && SECRETISH_KEY.test(path.split('.').pop() ?? '')) {
    out[path] = '***';
  } else {
    out[path] = value;
  }
}

function flattenSsl(out: Record<string, unknown>, ssl: unknown): void {
  if (!isPlainObject(ssl)) {
    out.ssl =
      typeof ssl === 'string' ? ssl : ssl === undefined || ssl === false ? undefined : String(ssl);
    return;
  }
  out.ssl = '(options)';
  for (const [k, v] of Object.entries(ssl)) {
    if (typeof v === 'boolean' || typeof v === 'number') out[`ssl.${k}`] = v;
    else if (SSL_SHOWN.has(k) && typeof v === 'string') out[`ssl.${k}`] = v;
    else if (typeof v === 'function') out[`ssl.${k}`] = '[function]';
    else if (v !== undefined) out[`ssl.${k}`] = '***';
  }
}
