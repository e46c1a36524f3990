import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import * as mysql2 from 'mysql2';
import {
  FOREIGN_ENV,
  MYSQL2_OPTION_KEYS,
  OPTION_TABLE,
  PASSWORD_FILE_ENV,
  UNKNOWN_ENV_WARNING_CODE,
  URL_ENV,
  connectionOptions,
  describeConfig,
  envName,
  resolveConfig,
  type KeepalivePoolOptions,
  type ResolvedConfig,
} from '../../src/config.js';
import { ConfigError, PoolError } from '../../src/errors.js';

/** mysql2's ConnectionConfig class: exported at runtime, typed only as an interface. */
const ConnectionConfig = (
  mysql2 as unknown as { ConnectionConfig: new (options: unknown) => Record<string, unknown> }
).ConnectionConfig;

const SECRET = 'S3cr3t-Zebra-42';
/** A password that needs percent-encoding in a URL, to check both forms stay hidden. */
const URL_SECRET = 'p@ss/w:rd?#S3cr3t';
const URL_SECRET_ENCODED = encodeURIComponent(URL_SECRET);

type Env = Record<string, string>;

/** Options typed loosely, to pass the wrong types a JavaScript caller could pass. */
const loose = (o: Record<string, unknown>): KeepalivePoolOptions => o as KeepalivePoolOptions;

/** resolveConfig with warnings stubbed out, so stray warnings do not pollute the test output. */
function resolve(t: TestContext, options?: KeepalivePoolOptions | string, env: Env = {}) {
  const warn = t.mock.method(process, 'emitWarning', () => {});
  const cfg = resolveConfig(options, env);
  return { cfg, warnings: warn.mock.calls.map((c) => c.arguments) };
}

function catchError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${inspect(err)}`);
    return err;
  }
  assert.fail('expected resolveConfig to throw');
}

function rejects(
  t: TestContext,
  options: KeepalivePoolOptions | string | undefined,
  env: Env = {},
) {
  t.mock.method(process, 'emitWarning', () => {});
  const err = catchError(() => resolveConfig(options, env));
  assert.equal(err.code, 'INVALID_CONFIG');
  assert.ok(err instanceof PoolError);
  assert.ok(err instanceof Error);
  assert.match(err.message, /^mysql2-keepalive-pool: /);
  return err;
}

/** Every rendering of an error that could end up in a log. */
function everythingAbout(err: unknown): string {
  const e = err as Error & Record<string, unknown>;
  return [
    e.message,
    e.stack,
    inspect(e, { depth: 10, showHidden: true }),
    JSON.stringify(e),
    String(e.value),
  ].join('\n');
}

function assertNoSecret(text: string, ...secrets: string[]): void {
  for (const s of [SECRET, URL_SECRET, URL_SECRET_ENCODED, ...secrets]) {
    assert.equal(text.includes(s), false, `secret ${JSON.stringify(s)} leaked into:\n${text}`);
  }
}

/** Top-level keys of ResolvedConfig that come from OPTION_TABLE rows. */
const TOP_LEVEL = new Set([
  'name',
  'connectionLimit',
  'queueLimit',
  'waitForConnections',
  'maxIdle',
  'idleTimeout',
  'resetOnRelease',
  'acquireTimeout',
  'minIdle',
  'maxLifetime',
  'enableKeepAlive',
  'keepAliveInitialDelay',
  'keepAliveInterval',
  'keepAliveCount',
  'tcpUserTimeout',
  'idlePingInterval',
  'validationTimeout',
  'validationSkipWindow',
  'leakDetectionThreshold',
  'hedgeCheckout',
  'learnPathTimeout',
]);
/** mysql2 options that also go to each connection. */
const BOTH = new Set(['enableKeepAlive', 'keepAliveInitialDelay']);

/** A valid environment string for every non-boolean row, and the value it must resolve to. */
const SAMPLES: Record<string, [string, string | number]> = {
  name: ['orders', 'orders'],
  acquireTimeout: ['2500', 2500],
  minIdle: ['2', 2],
  maxLifetime: ['1800000', 1_800_000],
  keepAliveInterval: ['5000', 5000],
  keepAliveCount: ['5', 5],
  tcpUserTimeout: ['120000', 120_000],
  idlePingInterval: ['60000', 60_000],
  validationTimeout: ['250', 250],
  validationSkipWindow: ['0', 0],
  leakDetectionThreshold: ['5000', 5000],
  connectionLimit: ['7', 7],
  queueLimit: ['50', 50],
  maxIdle: [' 4 ', 4],
  idleTimeout: ['30000', 30_000],
  keepAliveInitialDelay: ['30000', 30_000],
  host: ['db.internal', 'db.internal'],
  port: ['3307', 3307],
  user: ['app', 'app'],
  password: ['pw', 'pw'],
  database: ['shop', 'shop'],
  socketPath: ['/run/mysqld/mysqld.sock', '/run/mysqld/mysqld.sock'],
  localAddress: ['10.1.2.3', '10.1.2.3'],
  charset: ['UTF8MB4_GENERAL_CI', 'UTF8MB4_GENERAL_CI'],
  connectTimeout: ['5000', 5000],
  timezone: ['+05:30', '+05:30'],
  maxPreparedStatements: ['100', 100],
  flags: ['-FOUND_ROWS,MULTI_STATEMENTS', '-FOUND_ROWS,MULTI_STATEMENTS'],
};

function valueAt(cfg: ResolvedConfig, option: string): { top?: unknown; conn?: unknown } {
  const out: { top?: unknown; conn?: unknown } = {};
  if (TOP_LEVEL.has(option)) out.top = (cfg as unknown as Record<string, unknown>)[option];
  if (!TOP_LEVEL.has(option) || BOTH.has(option)) {
    out.conn = (cfg.connection as Record<string, unknown>)[option];
  }
  return out;
}

function assertResolvedTo(cfg: ResolvedConfig, option: string, expected: unknown): void {
  const at = valueAt(cfg, option);
  if ('top' in at) assert.deepEqual(at.top, expected, `${option} (top level)`);
  if ('conn' in at) assert.deepEqual(at.conn, expected, `${option} (connection)`);
}

// ---------------------------------------------------------------------------

describe('envName', () => {
  it('maps camelCase options to MYSQL_ + UPPER_SNAKE', () => {
    assert.equal(envName('keepAliveInitialDelay'), 'MYSQL_KEEP_ALIVE_INITIAL_DELAY');
    assert.equal(envName('connectTimeout'), 'MYSQL_CONNECT_TIMEOUT');
    assert.equal(envName('socketPath'), 'MYSQL_SOCKET_PATH');
    assert.equal(envName('host'), 'MYSQL_HOST');
    assert.equal(envName('tcpUserTimeout'), 'MYSQL_TCP_USER_TIMEOUT');
    assert.equal(envName('passwordSha1'), 'MYSQL_PASSWORD_SHA1');
    assert.equal(envName('connectionLimit'), 'MYSQL_CONNECTION_LIMIT');
  });
});

describe('OPTION_TABLE', () => {
  it('has the variables the design requires', () => {
    const envs = new Set(OPTION_TABLE.map((r) => r.env));
    for (const required of [
      'MYSQL_HOST',
      'MYSQL_PORT',
      'MYSQL_USER',
      'MYSQL_PASSWORD',
      'MYSQL_DATABASE',
      'MYSQL_CONNECTION_LIMIT',
      'MYSQL_KEEP_ALIVE_INITIAL_DELAY',
      'MYSQL_IDLE_PING_INTERVAL',
      'MYSQL_VALIDATION_TIMEOUT',
    ]) {
      assert.ok(envs.has(required), required);
    }
  });

  it('covers our options and every scalar mysql2 option of the brief', () => {
    const options = new Set(OPTION_TABLE.map((r) => r.option));
    for (const o of [
      ...TOP_LEVEL,
      ...'host port user password database socketPath localAddress charset connectTimeout timezone multipleStatements namedPlaceholders dateStrings supportBigNumbers bigNumberStrings decimalNumbers insecureAuth compress trace rowsAsArray maxPreparedStatements jsonStrings gracefulEnd disableEval enableCleartextPlugin flags stringifyObjects'.split(
        ' ',
      ),
    ]) {
      assert.ok(options.has(o), o);
    }
  });

  it('derives every env name with envName, without duplicates', () => {
    const seen = new Set<string>();
    for (const row of OPTION_TABLE) {
      assert.equal(row.env, envName(row.option));
      assert.ok(!seen.has(row.env), `duplicate ${row.env}`);
      seen.add(row.env);
      assert.ok(['int', 'bool', 'string'].includes(row.type));
      assert.notEqual(row.default, '');
      assert.notEqual(row.meaning, '');
      assert.notEqual(row.accepted, '');
    }
    assert.ok(!seen.has(URL_ENV) && !seen.has(PASSWORD_FILE_ENV));
  });

  it('is frozen', () => {
    assert.ok(Object.isFrozen(OPTION_TABLE));
    assert.ok(OPTION_TABLE.every((r) => Object.isFrozen(r)));
  });

  it('has a test sample for every non-boolean row (add one when adding a row)', () => {
    for (const row of OPTION_TABLE) {
      if (row.type !== 'bool') assert.ok(row.option in SAMPLES, `no sample for ${row.option}`);
    }
  });
});

describe('every environment variable of OPTION_TABLE', () => {
  for (const row of OPTION_TABLE) {
    if (row.type === 'bool') {
      const cases: [string, boolean][] = [
        ['true', true],
        ['false', false],
        ['TRUE', true],
        ['False', false],
        ['1', true],
        ['0', false],
        ['yes', true],
        ['No', false],
        ['on', true],
        ['OFF', false],
        [' true ', true],
      ];
      it(`${row.env} parses true/false/1/0/yes/no/on/off`, (t) => {
        for (const [text, expected] of cases) {
          const { cfg } = resolve(t, undefined, { [row.env]: text });
          assertResolvedTo(cfg, row.option, expected);
          assert.equal(cfg.sources[row.option], 'env');
        }
      });
      it(`${row.env} rejects anything else`, (t) => {
        for (const bad of ['maybe', '', '2', 'enabled', 'y']) {
          const err = rejects(t, undefined, { [row.env]: bad });
          assert.equal(err.option, row.option);
          assert.equal(err.envVar, row.env);
          assert.equal(err.value, bad);
          assert.ok(err.message.includes(`${row.option} (${row.env}) must be `), err.message);
          assert.ok(err.message.includes(`got ${JSON.stringify(bad)}`), err.message);
          assert.ok(err.message.includes(row.accepted), err.message);
        }
      });
      continue;
    }
    const sample = SAMPLES[row.option];
    if (sample === undefined) continue; // reported by the OPTION_TABLE test above
    it(`${row.env} parses ${JSON.stringify(sample[0])}`, (t) => {
      const { cfg } = resolve(t, undefined, { [row.env]: sample[0] });
      assertResolvedTo(cfg, row.option, sample[1]);
      assert.equal(cfg.sources[row.option], 'env');
    });
    if (row.type === 'int') {
      it(`${row.env} rejects non-integers and negatives, naming option, variable, value and range`, (t) => {
        for (const bad of [
          '2m',
          '1.5',
          '',
          '   ',
          '1e3',
          '0x10',
          'abc',
          '-5',
          '99999999999999999999',
        ]) {
          const err = rejects(t, undefined, { [row.env]: bad });
          assert.equal(err.option, row.option);
          assert.equal(err.envVar, row.env);
          assert.equal(err.source, 'env');
          assert.equal(err.accepted, row.accepted);
          if (row.option !== 'password') assert.equal(err.value, bad);
          assert.ok(
            err.message.includes(`${row.option} (${row.env}) must be ${row.accepted}`),
            err.message,
          );
          assert.ok(err.message.includes(`got ${JSON.stringify(bad)}`), err.message);
        }
      });
    }
  }
});

describe('defaults', () => {
  it('resolves an empty configuration to the documented defaults', (t) => {
    const { cfg, warnings } = resolve(t, undefined, {});
    assert.equal(cfg.connectionLimit, 10);
    assert.equal(cfg.queueLimit, 0);
    assert.equal(cfg.waitForConnections, true);
    assert.equal(cfg.maxIdle, 10);
    assert.equal(cfg.idleTimeout, 60_000);
    assert.equal(cfg.resetOnRelease, false);
    assert.equal(cfg.acquireTimeout, 10_000);
    assert.equal(cfg.minIdle, 0);
    assert.equal(cfg.maxLifetime, 0);
    assert.equal(cfg.enableKeepAlive, true);
    assert.equal(cfg.keepAliveInitialDelay, 60_000);
    assert.equal(cfg.keepAliveInterval, 10_000);
    assert.equal(cfg.keepAliveCount, 3);
    assert.equal(cfg.tcpUserTimeout, 90_000);
    assert.equal(cfg.idlePingInterval, 120_000);
    assert.equal(cfg.validationTimeout, 1000);
    assert.equal(cfg.validationSkipWindow, 500);
    assert.equal(cfg.leakDetectionThreshold, 0);
    assert.equal(cfg.promiseImpl, undefined);
    assert.deepEqual(cfg.warnings, []);
    assert.deepEqual(warnings, []);
    // Only our keepalive values; host, port, … are left to mysql2's own defaults.
    assert.deepEqual(cfg.connection, { enableKeepAlive: true, keepAliveInitialDelay: 60_000 });
    for (const row of OPTION_TABLE) assert.equal(cfg.sources[row.option], 'default', row.option);
  });

  it('defaults maxIdle to the resolved connectionLimit', (t) => {
    assert.equal(resolve(t, { connectionLimit: 4 }).cfg.maxIdle, 4);
    assert.equal(resolve(t, undefined, { MYSQL_CONNECTION_LIMIT: '6' }).cfg.maxIdle, 6);
  });

  it('names unnamed pools pool-<n>, counting up', (t) => {
    const a = resolve(t, {}).cfg.name;
    const b = resolve(t, {}).cfg.name;
    assert.match(a, /^pool-\d+$/);
    assert.equal(Number(b.slice(5)), Number(a.slice(5)) + 1);
    assert.equal(resolve(t, { name: 'orders' }).cfg.name, 'orders');
  });

  it("gives mysql2's effective defaults when nothing is configured", (t) => {
    const { cfg } = resolve(t, undefined, {});
    const mc = new ConnectionConfig(connectionOptions(cfg));
    assert.equal(mc.host, 'localhost');
    assert.equal(mc.port, 3306);
    assert.equal(mc.keepAliveInitialDelay, 60_000);
    assert.equal(mc.enableKeepAlive, true);
  });
});

describe('precedence: option > uri > env > MYSQL_URL > default', () => {
  const url = 'mysql://u@url-host:4444/urldb?connectionLimit=4';
  const uri = 'mysql://u@uri-host:2222/uridb?connectionLimit=2';
  const env = {
    MYSQL_URL: url,
    MYSQL_CONNECTION_LIMIT: '3',
    MYSQL_HOST: 'env-host',
    MYSQL_PORT: '3333',
  };

  it('an explicit option wins over everything', (t) => {
    const { cfg } = resolve(t, { connectionLimit: 1, host: 'opt-host', port: 1111, uri }, env);
    assert.equal(cfg.connectionLimit, 1);
    assert.equal(cfg.connection.host, 'opt-host');
    assert.equal(cfg.connection.port, 1111);
    assert.equal(cfg.sources.connectionLimit, 'option');
    assert.equal(cfg.sources.host, 'option');
  });

  it('then the uri option', (t) => {
    const { cfg } = resolve(t, { uri }, env);
    assert.equal(cfg.connectionLimit, 2);
    assert.equal(cfg.connection.host, 'uri-host');
    assert.equal(cfg.connection.port, 2222);
    assert.equal(cfg.connection.database, 'uridb');
    assert.equal(cfg.sources.connectionLimit, 'uri');
    assert.equal(cfg.sources.host, 'uri');
  });

  it('a string argument is the same as { uri }', (t) => {
    const { cfg } = resolve(t, uri, env);
    assert.equal(cfg.connectionLimit, 2);
    assert.equal(cfg.connection.host, 'uri-host');
    assert.equal(cfg.sources.connectionLimit, 'uri');
  });

  it('then MYSQL_* variables', (t) => {
    const { cfg } = resolve(t, {}, env);
    assert.equal(cfg.connectionLimit, 3);
    assert.equal(cfg.connection.host, 'env-host');
    assert.equal(cfg.connection.port, 3333);
    assert.equal(cfg.connection.database, 'urldb'); // no MYSQL_DATABASE: falls to the URL
    assert.equal(cfg.sources.connectionLimit, 'env');
    assert.equal(cfg.sources.database, 'url');
  });

  it('then MYSQL_URL', (t) => {
    const { cfg } = resolve(t, {}, { MYSQL_URL: url });
    assert.equal(cfg.connectionLimit, 4);
    assert.equal(cfg.connection.host, 'url-host');
    assert.equal(cfg.connection.port, 4444);
    assert.equal(cfg.sources.connectionLimit, 'url');
  });

  it('then the default', (t) => {
    const { cfg } = resolve(t, {}, {});
    assert.equal(cfg.connectionLimit, 10);
    assert.equal(cfg.sources.connectionLimit, 'default');
  });

  it('counts undefined and null explicit values as not given', (t) => {
    const { cfg } = resolve(t, loose({ host: undefined, connectionLimit: null }), env);
    assert.equal(cfg.connection.host, 'env-host');
    assert.equal(cfg.connectionLimit, 3);
  });

  it('applies to passwords too: option > uri > MYSQL_PASSWORD > MYSQL_URL', (t) => {
    const e = { MYSQL_URL: 'mysql://u:url-pw@h/db', MYSQL_PASSWORD: 'env-pw' };
    assert.equal(
      resolve(t, { password: 'opt-pw', uri: 'mysql://u:uri-pw@h' }, e).cfg.connection.password,
      'opt-pw',
    );
    assert.equal(resolve(t, { uri: 'mysql://u:uri-pw@h' }, e).cfg.connection.password, 'uri-pw');
    assert.equal(resolve(t, {}, e).cfg.connection.password, 'env-pw');
    assert.equal(resolve(t, {}, { MYSQL_URL: e.MYSQL_URL }).cfg.connection.password, 'url-pw');
    assert.equal(resolve(t, {}, {}).cfg.connection.password, undefined);
  });
});

describe('explicit options', () => {
  it('accept numeric strings like mysql2 does', (t) => {
    const { cfg } = resolve(
      t,
      loose({ connectionLimit: '5', port: '3307', idlePingInterval: ' 0 ' }),
    );
    assert.equal(cfg.connectionLimit, 5);
    assert.equal(cfg.connection.port, 3307);
    assert.equal(cfg.idlePingInterval, 0);
  });

  it('reject NaN, fractions, infinities, non-numeric strings and other types', (t) => {
    for (const bad of [Number.NaN, 1.5, Number.POSITIVE_INFINITY, '2m', '1e3', '', true, {}, [5]]) {
      const err = rejects(t, loose({ idlePingInterval: bad }));
      assert.equal(err.option, 'idlePingInterval');
      assert.equal(err.envVar, undefined);
      assert.equal(err.source, 'option');
      assert.ok(
        err.message.startsWith(
          'mysql2-keepalive-pool: idlePingInterval must be 0 (off) or an integer number of milliseconds >= 1000, got ',
        ),
        err.message,
      );
    }
    assert.match(rejects(t, loose({ idlePingInterval: 1.5 })).message, /got "1\.5"$/);
    assert.match(rejects(t, loose({ idlePingInterval: Number.NaN })).message, /got "NaN"$/);
  });

  it('take booleans, and the same words as the environment', (t) => {
    assert.equal(resolve(t, { multipleStatements: true }).cfg.connection.multipleStatements, true);
    // mysql2 would treat the string 'false' as truthy; here it means false.
    assert.equal(
      resolve(t, loose({ multipleStatements: 'false' })).cfg.connection.multipleStatements,
      false,
    );
    assert.equal(resolve(t, loose({ waitForConnections: 'no' })).cfg.waitForConnections, false);
    // Numbers are mysql2 flags by truthiness, as mysql2 reads them.
    assert.equal(resolve(t, loose({ compress: 1 })).cfg.connection.compress, true);
    assert.equal(resolve(t, loose({ waitForConnections: 0 })).cfg.waitForConnections, false);
    for (const bad of ['maybe', {}]) {
      const err = rejects(t, loose({ multipleStatements: bad }));
      assert.equal(err.option, 'multipleStatements');
      assert.match(
        err.message,
        /multipleStatements must be true, false, 1, 0, yes, no, on or off, got /,
      );
    }
  });

  it('take strings for string options, and arrays where mysql2 does', (t) => {
    const err = rejects(t, loose({ host: 42 }));
    assert.equal(err.message, 'mysql2-keepalive-pool: host must be a string, got "42"');
    const { cfg } = resolve(t, loose({ flags: ['-FOUND_ROWS'], dateStrings: ['DATE'] }));
    assert.deepEqual(cfg.connection.flags, ['-FOUND_ROWS']);
    assert.deepEqual(cfg.connection.dateStrings, ['DATE']);
    rejects(t, loose({ flags: [1, 2] }));
  });

  it('refuse unknown keys, with a suggestion', (t) => {
    const err = rejects(t, loose({ connectionLimt: 5 }));
    assert.equal(
      err.message,
      'mysql2-keepalive-pool: unsupported option opt.connectionLimt (did you mean opt.connectionLimit?)',
    );
    assert.equal(err.option, 'connectionLimt');
    const err2 = rejects(t, loose({ frobnicate: 1 }));
    assert.equal(err2.message, 'mysql2-keepalive-pool: unsupported option opt.frobnicate');
  });

  it('accept every key mysql2 accepts', (t) => {
    for (const key of MYSQL2_OPTION_KEYS) {
      resolve(t, loose({ [key]: undefined }));
    }
  });

  it('refuse a non-object', (t) => {
    for (const bad of [42, null, [1]]) {
      const err = rejects(t, bad as unknown as KeepalivePoolOptions);
      assert.equal(err.option, 'options');
    }
  });

  it('keep the Promise option as promiseImpl, not in connection', (t) => {
    const { cfg } = resolve(t, loose({ Promise }));
    assert.equal(cfg.promiseImpl, Promise);
    assert.equal('Promise' in cfg.connection, false);
    rejects(t, loose({ Promise: 'bluebird' }));
  });
});

describe('bad values', () => {
  const cases: {
    what: string;
    env: Env;
    option: string;
    envVar: string;
    value: string;
    accepted: RegExp;
    why?: RegExp;
  }[] = [
    {
      what: 'not a number',
      env: { MYSQL_IDLE_PING_INTERVAL: '2m' },
      option: 'idlePingInterval',
      envVar: 'MYSQL_IDLE_PING_INTERVAL',
      value: '2m',
      accepted: /0 \(off\) or an integer number of milliseconds >= 1000/,
    },
    {
      what: 'negative',
      env: { MYSQL_QUEUE_LIMIT: '-1' },
      option: 'queueLimit',
      envVar: 'MYSQL_QUEUE_LIMIT',
      value: '-1',
      accepted: /0 \(unlimited\) or an integer >= 1/,
    },
    {
      what: 'fraction',
      env: { MYSQL_VALIDATION_TIMEOUT: '1.5' },
      option: 'validationTimeout',
      envVar: 'MYSQL_VALIDATION_TIMEOUT',
      value: '1.5',
      accepted: /between 100 and 60000/,
    },
    {
      what: 'below range',
      env: { MYSQL_VALIDATION_TIMEOUT: '99' },
      option: 'validationTimeout',
      envVar: 'MYSQL_VALIDATION_TIMEOUT',
      value: '99',
      accepted: /between 100 and 60000/,
    },
    {
      what: 'above range',
      env: { MYSQL_KEEP_ALIVE_COUNT: '128' },
      option: 'keepAliveCount',
      envVar: 'MYSQL_KEEP_ALIVE_COUNT',
      value: '128',
      accepted: /an integer between 1 and 127/,
    },
    {
      what: 'keepalive delay below 0',
      env: { MYSQL_KEEP_ALIVE_INITIAL_DELAY: '-1' },
      option: 'keepAliveInitialDelay',
      envVar: 'MYSQL_KEEP_ALIVE_INITIAL_DELAY',
      value: '-1',
      accepted: /an integer number of milliseconds >= 0/,
    },
    {
      what: 'connectionLimit 0',
      env: { MYSQL_CONNECTION_LIMIT: '0' },
      option: 'connectionLimit',
      envVar: 'MYSQL_CONNECTION_LIMIT',
      value: '0',
      accepted: /an integer >= 1/,
      why: /unbounded/,
    },
    {
      what: 'maxLifetime below 30 s',
      env: { MYSQL_MAX_LIFETIME: '10000' },
      option: 'maxLifetime',
      envVar: 'MYSQL_MAX_LIFETIME',
      value: '10000',
      accepted: /0 \(off\) or an integer number of milliseconds >= 30000/,
    },
    {
      what: 'tcpUserTimeout above an hour',
      env: { MYSQL_TCP_USER_TIMEOUT: '3600001' },
      option: 'tcpUserTimeout',
      envVar: 'MYSQL_TCP_USER_TIMEOUT',
      value: '3600001',
      accepted: /0 \(off\) or an integer number of milliseconds between 1000 and 3600000/,
    },
    {
      what: 'duration beyond a Node timer',
      env: { MYSQL_ACQUIRE_TIMEOUT: '2147483648' },
      option: 'acquireTimeout',
      envVar: 'MYSQL_ACQUIRE_TIMEOUT',
      value: '2147483648',
      accepted: /0 \(wait forever\)/,
      why: /longest timer Node supports/,
    },
    {
      what: 'port out of range',
      env: { MYSQL_PORT: '65536' },
      option: 'port',
      envVar: 'MYSQL_PORT',
      value: '65536',
      accepted: /a TCP port number between 1 and 65535/,
    },
    {
      what: 'bad boolean',
      env: { MYSQL_ENABLE_KEEP_ALIVE: 'maybe' },
      option: 'enableKeepAlive',
      envVar: 'MYSQL_ENABLE_KEEP_ALIVE',
      value: 'maybe',
      accepted: /true, false, 1, 0, yes, no, on or off/,
    },
    {
      what: 'bad timezone',
      env: { MYSQL_TIMEZONE: 'Europe/Paris' },
      option: 'timezone',
      envVar: 'MYSQL_TIMEZONE',
      value: 'Europe/Paris',
      accepted: /'local', 'Z' or an offset/,
    },
    {
      what: 'unknown charset',
      env: { MYSQL_CHARSET: 'utf9' },
      option: 'charset',
      envVar: 'MYSQL_CHARSET',
      value: 'utf9',
      accepted: /charset\/collation name known to mysql2/,
    },
    {
      what: 'empty name',
      env: { MYSQL_NAME: ' ' },
      option: 'name',
      envVar: 'MYSQL_NAME',
      value: ' ',
      accepted: /non-empty string/,
    },
  ];
  for (const c of cases) {
    it(`${c.what}: names option, variable, value and range`, (t) => {
      const err = rejects(t, undefined, c.env);
      assert.equal(err.option, c.option);
      assert.equal(err.envVar, c.envVar);
      assert.equal(err.value, c.value);
      assert.equal(err.source, 'env');
      assert.match(err.accepted, c.accepted);
      assert.ok(
        err.message.includes(`${c.option} (${c.envVar}) must be ${err.accepted}`),
        err.message,
      );
      assert.ok(err.message.includes(`got ${JSON.stringify(c.value)}`), err.message);
      if (c.why) assert.match(err.message, c.why);
    });
  }

  it('has the exact message of the design example', (t) => {
    const err = rejects(t, undefined, { MYSQL_IDLE_PING_INTERVAL: '2m' });
    assert.equal(
      err.message,
      'mysql2-keepalive-pool: idlePingInterval (MYSQL_IDLE_PING_INTERVAL) must be 0 (off) or an integer number of milliseconds >= 1000, got "2m"',
    );
  });

  it('accepts the boundaries of each range', (t) => {
    const ok: KeepalivePoolOptions[] = [
      { tcpUserTimeout: 0 },
      { tcpUserTimeout: 1000 },
      { tcpUserTimeout: 3_600_000 },
      { maxLifetime: 0 },
      { maxLifetime: 30_000 },
      { keepAliveInitialDelay: 1000 },
      { keepAliveInitialDelay: 7_200_000 },
      { keepAliveCount: 1 },
      { keepAliveCount: 127 },
      { keepAliveInterval: 1000 },
      { keepAliveInterval: 600_000 },
      { validationTimeout: 100 },
      { validationTimeout: 60_000 },
      { validationSkipWindow: 0 },
      { validationSkipWindow: 60_000 },
      { idlePingInterval: 0 },
      { idlePingInterval: 1000 },
      { acquireTimeout: 0 },
      { leakDetectionThreshold: 0 },
      { leakDetectionThreshold: 1000 },
      { idleTimeout: 1000 },
      { connectionLimit: 1 },
      { port: 1 },
      { port: 65_535 },
      { connectTimeout: 0 },
      { queueLimit: 0 },
    ];
    for (const o of ok) resolve(t, o);
  });

  it('rejects just outside each range', (t) => {
    const bad: [string, number][] = [
      ['tcpUserTimeout', 999],
      ['tcpUserTimeout', 3_600_001],
      ['maxLifetime', 29_999],
      ['keepAliveInitialDelay', -1],
      ['keepAliveCount', 0],
      ['keepAliveCount', 128],
      ['keepAliveInterval', 999],
      ['keepAliveInterval', 600_001],
      ['validationTimeout', 99],
      ['validationTimeout', 60_001],
      ['validationSkipWindow', -1],
      ['validationSkipWindow', 60_001],
      ['idlePingInterval', 999],
      ['leakDetectionThreshold', 999],
      ['idleTimeout', -1],
      ['acquireTimeout', -1],
      ['connectionLimit', 0],
      ['minIdle', -1],
      ['maxIdle', -1],
      ['port', 0],
      ['connectTimeout', -1],
      ['maxPreparedStatements', 0],
    ];
    for (const [option, value] of bad) {
      const err = rejects(t, loose({ [option]: value }));
      assert.equal(err.option, option);
      assert.equal(err.value, value);
      assert.ok(
        err.message.includes(`${option} must be ${err.accepted}, got "${value}"`),
        err.message,
      );
    }
  });

  it('checks minIdle against connectionLimit (no clamping); maxIdle above it is mysql2-legal', (t) => {
    const a = rejects(t, { minIdle: 11 });
    assert.equal(a.option, 'minIdle');
    assert.match(
      a.message,
      /minIdle must be an integer between 0 and connectionLimit \(10, the default\), got "11"/,
    );
    const b = resolve(t, { maxIdle: 6 }, { MYSQL_CONNECTION_LIMIT: '5' });
    assert.equal(b.cfg.maxIdle, 6);
    assert.deepEqual(b.cfg.warnings, []);
    const c = rejects(t, undefined, { MYSQL_MIN_IDLE: '3', MYSQL_CONNECTION_LIMIT: '2' });
    assert.equal(c.envVar, 'MYSQL_MIN_IDLE');
    assert.match(c.message, /^mysql2-keepalive-pool: minIdle \(MYSQL_MIN_IDLE\) must be/);
    assert.equal(resolve(t, { minIdle: 10, maxIdle: 10 }).cfg.minIdle, 10);
  });
});

describe('MYSQL_URL and uri', () => {
  it('splits and percent-decodes user, password, host, port and database', (t) => {
    const { cfg } = resolve(t, undefined, {
      MYSQL_URL: `mysql://us%40er:${URL_SECRET_ENCODED}@db.example:3307/my%20db`,
    });
    assert.equal(cfg.connection.user, 'us@er');
    assert.equal(cfg.connection.password, URL_SECRET);
    assert.equal(cfg.connection.host, 'db.example');
    assert.equal(cfg.connection.port, 3307);
    assert.equal(cfg.connection.database, 'my db');
    assert.equal(cfg.sources.password, 'url');
    assert.equal('uri' in cfg.connection, false);
  });

  it('takes IPv6 hosts without brackets and leaves missing parts unset', (t) => {
    const { cfg } = resolve(t, undefined, { MYSQL_URL: 'mysql://[::1]' });
    assert.equal(cfg.connection.host, '::1');
    assert.equal(cfg.connection.port, undefined);
    assert.equal(cfg.connection.user, undefined);
    assert.equal(cfg.connection.database, undefined);
  });

  it('parses query parameters with the typed parsing of the environment', (t) => {
    const { cfg } = resolve(t, undefined, {
      MYSQL_URL:
        'mysql://h/db?connectionLimit=5&idlePingInterval=0&multipleStatements=yes&timezone=+05:30&charset=utf8mb4_bin',
    });
    assert.equal(cfg.connectionLimit, 5);
    assert.equal(cfg.idlePingInterval, 0);
    assert.equal(cfg.connection.multipleStatements, true);
    assert.equal(cfg.connection.timezone, '+05:30'); // '+' decodes to a space in a query
    assert.equal(cfg.connection.charset, 'utf8mb4_bin');
    assert.equal(cfg.sources.connectionLimit, 'url');
  });

  it('names MYSQL_URL ?param in value errors', (t) => {
    const err = rejects(t, undefined, { MYSQL_URL: 'mysql://h/db?idlePingInterval=2m' });
    assert.equal(err.envVar, 'MYSQL_URL');
    assert.equal(err.source, 'url');
    assert.equal(
      err.message,
      'mysql2-keepalive-pool: idlePingInterval (MYSQL_URL ?idlePingInterval) must be 0 (off) or an integer number of milliseconds >= 1000, got "2m"',
    );
    const err2 = rejects(t, { uri: 'mysql://h/db?connectionLimit=0' });
    assert.equal(err2.envVar, undefined);
    assert.match(
      err2.message,
      /^mysql2-keepalive-pool: connectionLimit \(uri \?connectionLimit\) must be an integer >= 1, got "0"/,
    );
  });

  it('refuses unknown parameters, with a suggestion, without echoing the value', (t) => {
    const err = rejects(t, undefined, { MYSQL_URL: 'mysql://h/db?idlePingIntervall=5000' });
    assert.equal(err.option, 'idlePingIntervall');
    assert.equal(err.envVar, 'MYSQL_URL');
    assert.match(
      err.message,
      /unknown parameter \?idlePingIntervall in MYSQL_URL \(did you mean \?idlePingInterval\?\)/,
    );
    const err2 = rejects(t, undefined, { MYSQL_URL: `mysql://h/db?pasword=${SECRET}` });
    assertNoSecret(everythingAbout(err2));
  });

  it('refuses URL parts passed as parameters and options that cannot be strings', (t) => {
    const a = rejects(t, undefined, { MYSQL_URL: `mysql://h/db?password=${SECRET}` });
    assert.equal(a.option, 'password');
    assertNoSecret(everythingAbout(a));
    assert.match(a.message, /set in the URL itself/);
    const b = rejects(t, { uri: 'mysql://h/db?ssl={"rejectUnauthorized":true}' });
    assert.equal(
      b.message,
      'mysql2-keepalive-pool: ssl cannot be set in a URL (uri ?ssl): pass it as an explicit option',
    );
  });

  it('refuses non-mysql schemes', (t) => {
    for (const bad of [
      `postgres://u:${SECRET}@h/db`,
      `mysqlx://u:${SECRET}@h/db`,
      `http://u:${SECRET}@h/db`,
    ]) {
      const err = rejects(t, undefined, { MYSQL_URL: bad });
      assert.equal(err.option, 'uri');
      assert.equal(err.envVar, 'MYSQL_URL');
      assert.match(
        err.message,
        /^mysql2-keepalive-pool: uri \(MYSQL_URL\) must be a mysql:\/\/ URL/,
      );
      assert.match(err.message, /is not mysql\)$/);
      assert.match(err.message, /got ".*:\/\/\*\*\*@h\/db"/);
      assertNoSecret(everythingAbout(err));
    }
  });

  it('refuses unparseable URLs without leaking them', (t) => {
    for (const bad of [`mysql://u:${SECRET}@h:99999/db`, `not a url ${SECRET}@x`, '']) {
      const err = rejects(t, undefined, { MYSQL_URL: bad });
      assert.equal(err.option, 'uri');
      assert.match(err.message, /not a valid URL/);
      assert.equal(err.cause, undefined);
      assertNoSecret(everythingAbout(err));
    }
    const err = rejects(t, loose({ uri: 42 }));
    assert.match(err.message, /^mysql2-keepalive-pool: uri must be a mysql:\/\/ URL/);
  });

  it('refuses bad percent-encoding without leaking the URL', (t) => {
    const err = rejects(t, undefined, { MYSQL_URL: `mysql://u:${SECRET}%zz@h/db` });
    assert.match(err.message, /bad percent-encoding in the password/);
    assertNoSecret(everythingAbout(err));
  });
});

describe('MYSQL_PASSWORD_FILE', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mkp-config-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const file = (name: string, content: string): string => {
    const p = join(dir, name);
    writeFileSync(p, content);
    return p;
  };

  it('reads the file and strips one trailing newline', (t) => {
    const cases: [string, string][] = [
      [`${SECRET}\n`, SECRET],
      [`${SECRET}\r\n`, SECRET],
      [SECRET, SECRET],
      [`${SECRET}\n\n`, `${SECRET}\n`],
      [` ${SECRET} `, ` ${SECRET} `],
      ['', ''],
    ];
    cases.forEach(([content, expected], i) => {
      const { cfg } = resolve(t, undefined, { MYSQL_PASSWORD_FILE: file(`pw${i}`, content) });
      assert.equal(cfg.connection.password, expected);
      assert.equal(cfg.sources.password, 'env');
    });
  });

  it('wins over the MYSQL_URL password', (t) => {
    const { cfg } = resolve(t, undefined, {
      MYSQL_PASSWORD_FILE: file('pw-url', 'from-file\n'),
      MYSQL_URL: 'mysql://u:from-url@h/db',
    });
    assert.equal(cfg.connection.password, 'from-file');
  });

  it('an unreadable file names the variable, the path and the OS error code', (t) => {
    const missing = join(dir, 'missing');
    const err = rejects(t, undefined, { MYSQL_PASSWORD_FILE: missing });
    assert.equal(err.option, 'password');
    assert.equal(err.envVar, 'MYSQL_PASSWORD_FILE');
    assert.ok(err.message.includes('MYSQL_PASSWORD_FILE'), err.message);
    assert.ok(err.message.includes(JSON.stringify(missing)), err.message);
    assert.match(err.message, /ENOENT$/);
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'ENOENT');

    const isDir = rejects(t, undefined, { MYSQL_PASSWORD_FILE: dir });
    assert.match(isDir.message, /EISDIR$/);

    if (process.getuid?.() !== 0) {
      const locked = file('locked', SECRET);
      chmodSync(locked, 0o000);
      assert.match(rejects(t, undefined, { MYSQL_PASSWORD_FILE: locked }).message, /EACCES$/);
    }
  });

  it('refuses MYSQL_PASSWORD and MYSQL_PASSWORD_FILE together', (t) => {
    const err = rejects(t, undefined, {
      MYSQL_PASSWORD: SECRET,
      MYSQL_PASSWORD_FILE: file('pw-both', SECRET),
    });
    assert.equal(err.option, 'password');
    assert.match(err.message, /both MYSQL_PASSWORD and MYSQL_PASSWORD_FILE/);
    assertNoSecret(everythingAbout(err));
  });

  it('is not read when an explicit password or uri password wins', (t) => {
    const env = { MYSQL_PASSWORD: 'env', MYSQL_PASSWORD_FILE: join(dir, 'does-not-exist') };
    assert.equal(resolve(t, { password: 'explicit' }, env).cfg.connection.password, 'explicit');
    assert.equal(
      resolve(t, { uri: 'mysql://u:from-uri@h' }, env).cfg.connection.password,
      'from-uri',
    );
  });
});

describe('secrets', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mkp-secret-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('never appear in any error message', (t) => {
    const pwFile = join(dir, 'pw');
    writeFileSync(pwFile, `${SECRET}\n`);
    const failing: [KeepalivePoolOptions | string | undefined, Env][] = [
      [{ password: SECRET, idlePingInterval: 5 }, {}],
      [loose({ password: 12345 }), { MYSQL_PASSWORD: SECRET }],
      [undefined, { MYSQL_PASSWORD: SECRET, MYSQL_IDLE_PING_INTERVAL: 'x' }],
      [undefined, { MYSQL_PASSWORD_FILE: pwFile, MYSQL_PORT: 'x' }],
      [undefined, { MYSQL_PASSWORD_FILE: pwFile, MYSQL_PASSWORD: SECRET }],
      [undefined, { MYSQL_URL: `mysql://u:${SECRET}@h/db?connectionLimit=x` }],
      [undefined, { MYSQL_URL: `mysql://u:${URL_SECRET_ENCODED}@h/db?nope=1` }],
      [`mysql://u:${SECRET}@h/db?connectionLimit=0`, {}],
      [`mysql://u:${URL_SECRET_ENCODED}@h:70000/db`, {}],
      [{ uri: `mysql://u:${SECRET}@h/db`, connectionLimit: 0 }, {}],
      [loose({ password: SECRET, bogus: 1 }), {}],
    ];
    for (const [options, env] of failing) {
      const err = rejects(t, options, env);
      assertNoSecret(everythingAbout(err));
    }
    const typeErr = rejects(t, loose({ password: 12345 }));
    assert.equal(typeErr.message, 'mysql2-keepalive-pool: password must be a string, got (hidden)');
    assert.equal(typeErr.value, '***');
  });

  it('never appear in describeConfig, from any source', (t) => {
    const pwFile = join(dir, 'pw2');
    writeFileSync(pwFile, `${SECRET}\n`);
    const configs: ResolvedConfig[] = [
      resolve(t, { password: SECRET }).cfg,
      resolve(t, undefined, { MYSQL_PASSWORD: SECRET }).cfg,
      resolve(t, undefined, { MYSQL_PASSWORD_FILE: pwFile }).cfg,
      resolve(t, undefined, { MYSQL_URL: `mysql://u:${URL_SECRET_ENCODED}@h/db` }).cfg,
      resolve(t, `mysql://u:${SECRET}@h/db`).cfg,
      resolve(
        t,
        loose({ password2: SECRET, password3: SECRET, passwordSha1: SECRET, password1: SECRET }),
      ).cfg,
    ];
    for (const cfg of configs) {
      const d = describeConfig(cfg);
      assertNoSecret(JSON.stringify(d));
      assertNoSecret(inspect(d, { depth: 10 }));
      assert.ok(d.password === '***' || d.password2 === '***', inspect(d));
      assert.equal(JSON.stringify(d).includes('mysql://'), false);
    }
  });
});

describe('the unlikely empty-password case', () => {
  it('an empty URL password and an empty MYSQL_PASSWORD resolve to the empty string', (t) => {
    const { cfg } = resolve(t, undefined, { MYSQL_URL: 'mysql://u:@h/db', MYSQL_PASSWORD: '' });
    assert.equal(cfg.connection.password, '');
    assert.equal(describeConfig(cfg).password, '(none)');
  });
});

describe('Kubernetes and Docker service-link variables', () => {
  const k8s: Env = {
    MYSQL_PORT: 'tcp://10.0.0.5:3306',
    MYSQL_SERVICE_HOST: '10.0.0.5',
    MYSQL_SERVICE_PORT: '3306',
    MYSQL_SERVICE_PORT_MYSQL: '3306',
    MYSQL_PORT_3306_TCP: 'tcp://10.0.0.5:3306',
    MYSQL_PORT_3306_TCP_ADDR: '10.0.0.5',
    MYSQL_PORT_3306_TCP_PORT: '3306',
    MYSQL_PORT_3306_TCP_PROTO: 'tcp',
  };

  it('takes the port of MYSQL_PORT=tcp://HOST:PORT and ignores the rest silently', (t) => {
    const { cfg, warnings } = resolve(t, undefined, { ...k8s, MYSQL_PORT: 'tcp://10.0.0.5:3307' });
    assert.equal(cfg.connection.port, 3307);
    assert.equal(cfg.connection.host, undefined); // the port only, as designed
    assert.deepEqual(warnings, []);
  });

  it('works together with MYSQL_HOST', (t) => {
    const { cfg } = resolve(t, undefined, { ...k8s, MYSQL_HOST: 'mysql.db.svc' });
    assert.equal(cfg.connection.host, 'mysql.db.svc');
    assert.equal(cfg.connection.port, 3306);
  });

  it('ignores the links of Services named mysql-<something> too', (t) => {
    const { warnings } = resolve(t, undefined, {
      MYSQL_READ_PORT: 'tcp://10.0.0.6:3306',
      MYSQL_READ_SERVICE_HOST: '10.0.0.6',
      MYSQL_READ_SERVICE_PORT: '3306',
      MYSQL_READ_PORT_3306_TCP_ADDR: '10.0.0.6',
    });
    assert.deepEqual(warnings, []);
  });

  it('ignores legacy Docker link variables', (t) => {
    const { cfg, warnings } = resolve(t, undefined, {
      MYSQL_NAME: '/web/mysql',
      MYSQL_ENV_MYSQL_ROOT_PASSWORD: SECRET,
      MYSQL_PORT: 'tcp://172.17.0.5:3306',
    });
    assert.match(cfg.name, /^pool-\d+$/);
    assert.equal(cfg.connection.port, 3306);
    assert.deepEqual(warnings, []);
  });

  it('rejects a MYSQL_PORT URL without a usable port', (t) => {
    const err = rejects(t, undefined, { MYSQL_PORT: 'tcp://10.0.0.5' });
    assert.equal(err.option, 'port');
    assert.match(err.message, /got "tcp:\/\/10\.0\.0\.5"/);
  });
});

describe('unknown MYSQL_* variables', () => {
  it('emit one warning per call, listing them, with suggestions', (t) => {
    const { warnings } = resolve(t, undefined, {
      MYSQL_CONECTION_LIMIT: '5',
      MYSQL_KEEPALIVE_INITIAL_DELAY: '30000',
      MYSQL_PASS: SECRET,
      MYSQL_FROBNICATE: 'x',
      MYSQL_HOST: 'h',
    });
    assert.equal(warnings.length, 1);
    const [message, opts] = warnings[0] as [string, { code: string }];
    assert.equal(opts.code, UNKNOWN_ENV_WARNING_CODE);
    assert.equal(opts.code, 'MYSQL2_KEEPALIVE_POOL_UNKNOWN_ENV');
    assert.match(message, /^mysql2-keepalive-pool: ignoring unknown environment variables /);
    assert.match(message, /MYSQL_CONECTION_LIMIT \(did you mean MYSQL_CONNECTION_LIMIT\?\)/);
    assert.match(
      message,
      /MYSQL_KEEPALIVE_INITIAL_DELAY \(did you mean MYSQL_KEEP_ALIVE_INITIAL_DELAY\?\)/,
    );
    assert.match(message, /MYSQL_PASS \(did you mean MYSQL_PASSWORD\?\)/);
    assert.match(message, /MYSQL_FROBNICATE(?! \(did)/);
    assert.doesNotMatch(message, /MYSQL_HOST\b/);
    assertNoSecret(message);
  });

  it('suggest MYSQL_URL for MYSQL_URI', (t) => {
    const { warnings } = resolve(t, undefined, { MYSQL_URI: 'mysql://h' });
    assert.match(String(warnings[0]?.[0]), /MYSQL_URI \(did you mean MYSQL_URL\?\)/);
  });

  it('are never an error', (t) => {
    const { cfg } = resolve(t, undefined, { MYSQL_WHATEVER: '2m' });
    assert.equal(cfg.connectionLimit, 10);
  });

  it('is emitted even when a later value is rejected', (t) => {
    const warn = t.mock.method(process, 'emitWarning', () => {});
    assert.throws(
      () => resolveConfig(undefined, { MYSQL_CONNECTION_LIMT: '5', MYSQL_PORT: 'x' }),
      ConfigError,
    );
    assert.equal(warn.mock.callCount(), 1);
  });

  // MYSQL_SSL_* is ours now: see test/unit/config-tls.test.ts.
  it('leave other tools’ variables alone, silently', (t) => {
    const env: Env = {};
    for (const name of FOREIGN_ENV) env[name] = SECRET;
    for (const name of [
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
    ]) {
      assert.ok(FOREIGN_ENV.has(name), name);
    }
    const { cfg, warnings } = resolve(t, undefined, env);
    assert.deepEqual(warnings, []);
    assert.equal(cfg.connection.password, undefined); // MYSQL_ROOT_PASSWORD is not ours
  });

  it('ignore variables that do not start with MYSQL_', (t) => {
    const { warnings } = resolve(t, undefined, { PATH: '/bin', MYSQLX_HOST: 'x', mysql_host: 'x' });
    assert.deepEqual(warnings, []);
  });
});

describe('connection: what mysql2 gets', () => {
  const full = (): KeepalivePoolOptions => ({
    name: 'orders',
    acquireTimeout: 5000,
    minIdle: 1,
    maxLifetime: 1_800_000,
    keepAliveInterval: 5000,
    keepAliveCount: 4,
    tcpUserTimeout: 120_000,
    idlePingInterval: 60_000,
    validationTimeout: 500,
    validationSkipWindow: 250,
    leakDetectionThreshold: 30_000,
    connectionLimit: 5,
    queueLimit: 100,
    waitForConnections: true,
    maxIdle: 3,
    idleTimeout: 30_000,
    resetOnRelease: true,
    Promise,
    host: 'db',
    port: 3307,
    user: 'app',
    password: SECRET,
    database: 'shop',
    charset: 'utf8mb4_bin',
    timezone: 'Z',
    multipleStatements: true,
    dateStrings: ['DATE'],
    flags: ['-FOUND_ROWS'],
    connectAttributes: { program_name: 'orders' },
    typeCast: true,
    ssl: { rejectUnauthorized: false, ca: 'CA-PEM' },
    enableKeepAlive: true,
    keepAliveInitialDelay: 30_000,
  });

  it('holds mysql2 options only: ours, the pool-only ones, Promise and uri are removed', (t) => {
    const { cfg } = resolve(t, { ...full(), uri: 'mysql://u@h' });
    const keys = Object.keys(cfg.connection).sort();
    assert.deepEqual(keys, [
      'charset',
      'connectAttributes',
      // Derived from acquireTimeout 5000 (full()): a connect may not outlast the caller's wait.
      'connectTimeout',
      'database',
      'dateStrings',
      'enableKeepAlive',
      'flags',
      'host',
      'keepAliveInitialDelay',
      'multipleStatements',
      'password',
      'port',
      'ssl',
      'timezone',
      'typeCast',
      'user',
    ]);
    assert.equal(cfg.connection.keepAliveInitialDelay, 30_000);
    assert.equal(cfg.connection.enableKeepAlive, true);
  });

  it('makes mysql2 print nothing (no "Ignoring invalid configuration option")', (t) => {
    const errors = t.mock.method(console, 'error', () => {});
    // Control: the capture works.
    new ConnectionConfig({ idlePingInterval: 1 });
    assert.equal(errors.mock.callCount(), 1);
    assert.match(
      String(errors.mock.calls[0]?.arguments[0]),
      /Ignoring invalid configuration option/,
    );
    errors.mock.resetCalls();

    const { cfg } = resolve(t, full());
    const mc = new ConnectionConfig(connectionOptions(cfg));
    new ConnectionConfig({ ...cfg.connection }); // the pool's own shallow copy works as well
    const fromEnv = resolve(t, undefined, {
      MYSQL_HOST: 'h',
      MYSQL_TIMEZONE: '+01:00',
      MYSQL_IDLE_PING_INTERVAL: '0',
      MYSQL_CONNECTION_LIMIT: '3',
    }).cfg;
    new ConnectionConfig(connectionOptions(fromEnv));
    assert.equal(errors.mock.callCount(), 0, inspect(errors.mock.calls.map((c) => c.arguments)));
    assert.equal(mc.host, 'db');
    assert.equal(mc.port, 3307);
    assert.equal(mc.keepAliveInitialDelay, 30_000);
    assert.equal(mc.timezone, 'Z');
  });

  it('every key of MYSQL2_OPTION_KEYS is one mysql2 accepts', (t) => {
    const errors = t.mock.method(console, 'error', () => {});
    for (const key of MYSQL2_OPTION_KEYS) new ConnectionConfig({ [key]: undefined });
    assert.equal(errors.mock.callCount(), 0, inspect(errors.mock.calls.map((c) => c.arguments)));
  });
});

describe('freezing', () => {
  it('freezes the config, connection, warnings and sources', (t) => {
    const { cfg } = resolve(t, { keepAliveInitialDelay: 900_000 });
    assert.ok(Object.isFrozen(cfg));
    assert.ok(Object.isFrozen(cfg.connection));
    assert.ok(Object.isFrozen(cfg.warnings));
    assert.ok(Object.isFrozen(cfg.sources));
    assert.throws(() => {
      (cfg as { connectionLimit: number }).connectionLimit = 99;
    }, TypeError);
    assert.throws(() => {
      (cfg.connection as { host?: string }).host = 'x';
    }, TypeError);
  });

  it('freezes copies of plain objects and arrays, never the caller’s objects', (t) => {
    const attrs = { program_name: 'orders', nested: { a: 1 } };
    const flags = ['-FOUND_ROWS'];
    const typeCast = (): null => null;
    const { cfg } = resolve(t, loose({ connectAttributes: attrs, flags, typeCast }));
    const conn = cfg.connection as Record<string, unknown>;
    assert.notEqual(conn.connectAttributes, attrs);
    assert.deepEqual(conn.connectAttributes, attrs);
    assert.ok(Object.isFrozen(conn.connectAttributes));
    assert.ok(Object.isFrozen((conn.connectAttributes as { nested: object }).nested));
    assert.ok(Object.isFrozen(conn.flags));
    assert.equal(Object.isFrozen(attrs), false);
    assert.equal(Object.isFrozen(flags), false);
    assert.equal(conn.typeCast, typeCast);
    assert.equal(Object.isFrozen(typeCast), false);
  });

  it('copies ssl without freezing it, pre-setting rejectUnauthorized, so mysql2 can write it', (t) => {
    const ca = Buffer.from('CA-PEM');
    const ssl = { ca, minVersion: 'TLSv1.2' };
    const { cfg } = resolve(t, { ssl });
    const copy = cfg.connection.ssl as Record<string, unknown>;
    assert.notEqual(copy, ssl);
    assert.equal(copy.rejectUnauthorized, true);
    assert.equal(copy.ca, ca);
    assert.equal('rejectUnauthorized' in ssl, false, 'the caller’s ssl object is untouched');
    const errors = t.mock.method(console, 'error', () => {});
    const mc = new ConnectionConfig({ ...cfg.connection });
    assert.equal((mc.ssl as { rejectUnauthorized: boolean }).rejectUnauthorized, true);
    assert.equal(errors.mock.callCount(), 0);
    const off = resolve(t, { ssl: { rejectUnauthorized: false } }).cfg;
    assert.equal((off.connection.ssl as { rejectUnauthorized: boolean }).rejectUnauthorized, false);
  });

  it('connectionOptions gives a fresh mutable copy each time', (t) => {
    const { cfg } = resolve(t, { host: 'h', ssl: { ca: 'x' } });
    const a = connectionOptions(cfg);
    const b = connectionOptions(cfg);
    assert.notEqual(a, b);
    assert.notEqual(a.ssl, b.ssl);
    assert.equal(Object.isFrozen(a), false);
    a.host = 'changed';
    assert.equal(cfg.connection.host, 'h');
  });
});

describe('warnings', () => {
  it('keepAliveInitialDelay at or above 900 s', (t) => {
    const { cfg } = resolve(t, { keepAliveInitialDelay: 900_000, tcpUserTimeout: 0 });
    assert.equal(cfg.warnings.length, 1);
    assert.match(
      cfg.warnings[0] ?? '',
      /at or above the 900 s IPVS idle timeout: flows will be forgotten/,
    );
    assert.deepEqual(
      resolve(t, { keepAliveInitialDelay: 899_000, tcpUserTimeout: 0 }).cfg.warnings,
      [],
    );
  });

  it('enableKeepAlive false', (t) => {
    const { cfg } = resolve(t, { enableKeepAlive: false });
    assert.equal(cfg.warnings.length, 1);
    assert.match(cfg.warnings[0] ?? '', /enableKeepAlive is false/);
    assert.equal(cfg.connection.enableKeepAlive, false);
  });

  it('tcpUserTimeout below the first probe', (t) => {
    // Alone it shortens the keepalive defaults instead (see config-defaults.test.ts).
    assert.deepEqual(resolve(t, { tcpUserTimeout: 5000 }).cfg.warnings, []);
    const { cfg } = resolve(t, { tcpUserTimeout: 5000, keepAliveInitialDelay: 60_000 });
    assert.equal(cfg.warnings.length, 1);
    assert.match(
      cfg.warnings[0] ?? '',
      /a single lost keepalive probe would kill a healthy idle connection/,
    );
    assert.match(cfg.warnings[0] ?? '', /use at least 90000 ms/);
  });

  it('no idle pings and no keepalive within 900 s', (t) => {
    const { cfg } = resolve(t, {
      idlePingInterval: 0,
      keepAliveInitialDelay: 1_000_000,
      tcpUserTimeout: 0,
    });
    assert.equal(cfg.warnings.length, 2);
    assert.ok(cfg.warnings.some((w) => /idlePingInterval is 0/.test(w)));
    assert.deepEqual(resolve(t, { idlePingInterval: 0 }).cfg.warnings, []);
  });

  it('keepAliveInterval above keepAliveInitialDelay (Linux then probes every interval)', (t) => {
    const { cfg } = resolve(t, {
      keepAliveInitialDelay: 1000,
      keepAliveInterval: 10_000,
      tcpUserTimeout: 0,
    });
    assert.equal(cfg.warnings.length, 1);
    assert.match(cfg.warnings[0] ?? '', /probes an idle connection only every 10000 ms/);
    assert.deepEqual(
      resolve(t, { keepAliveInitialDelay: 1000, keepAliveInterval: 1000, tcpUserTimeout: 0 }).cfg
        .warnings,
      [],
    );
  });

  it('minIdle above maxIdle', (t) => {
    const { cfg } = resolve(t, { minIdle: 4, maxIdle: 2 });
    assert.equal(cfg.warnings.length, 1);
    assert.match(cfg.warnings[0] ?? '', /minIdle 4 is above maxIdle 2/);
  });

  it('acquireTimeout shorter than connectTimeout', (t) => {
    // Alone it becomes the default connectTimeout instead.
    assert.deepEqual(resolve(t, { acquireTimeout: 2000 }).cfg.warnings, []);
    const { cfg } = resolve(t, { acquireTimeout: 2000, connectTimeout: 10_000 });
    assert.equal(cfg.warnings.length, 1);
    assert.match(
      cfg.warnings[0] ?? '',
      /acquireTimeout 2000 ms is shorter than connectTimeout \(10000 ms\)/,
    );
    assert.deepEqual(resolve(t, { acquireTimeout: 2000, connectTimeout: 1000 }).cfg.warnings, []);
  });

  it('are sentences without the library prefix (the pool adds it)', (t) => {
    const { cfg } = resolve(t, {
      enableKeepAlive: false,
      tcpUserTimeout: 1000,
      minIdle: 3,
      maxIdle: 1,
    });
    assert.ok(cfg.warnings.length >= 2);
    for (const w of cfg.warnings) assert.doesNotMatch(w, /^mysql2-keepalive-pool/);
  });
});

describe('describeConfig', () => {
  it('is flat, masks secrets and shows effective host and port', (t) => {
    const { cfg } = resolve(
      t,
      loose({
        password: SECRET,
        passwordSha1: SECRET,
        ssl: {
          ca: 'CA',
          key: SECRET,
          cert: SECRET,
          pfx: Buffer.from(SECRET),
          passphrase: SECRET,
          servername: 'db.example',
          rejectUnauthorized: true,
        },
        typeCast: () => null,
        connectAttributes: { program_name: 'orders' },
        flags: ['-FOUND_ROWS', 'COMPRESS'],
      }),
    );
    const d = describeConfig(cfg);
    assert.equal(d.host, 'localhost');
    assert.equal(d.port, 3306);
    assert.equal(d.password, '***');
    assert.equal(d.passwordSha1, '***');
    assert.equal(d['ssl.key'], '***');
    assert.equal(d['ssl.cert'], '***');
    assert.equal(d['ssl.pfx'], '***');
    assert.equal(d['ssl.passphrase'], '***');
    assert.equal(d['ssl.ca'], '***');
    assert.equal(d['ssl.servername'], 'db.example');
    assert.equal(d['ssl.rejectUnauthorized'], true);
    assert.equal(d.typeCast, '[function]');
    assert.equal(d['connectAttributes.program_name'], 'orders');
    assert.equal(d.flags, '-FOUND_ROWS,COMPRESS');
    assert.equal(d.keepAliveInitialDelay, 60_000);
    assert.equal(d.connectionLimit, 10);
    for (const v of Object.values(d)) {
      assert.ok(v === undefined || ['string', 'number', 'boolean'].includes(typeof v), inspect(v));
    }
    assertNoSecret(JSON.stringify(d));
  });

  it('shows (none) without a password, and no host/port for a socket', (t) => {
    const { cfg } = resolve(t, { socketPath: '/run/mysqld/mysqld.sock', user: 'app' });
    const d = describeConfig(cfg);
    assert.equal(d.password, '(none)');
    assert.equal(d.user, 'app');
    assert.equal(d.socketPath, '/run/mysqld/mysqld.sock');
    assert.equal('host' in d, false);
  });
});

describe('hedgeCheckout and learnPathTimeout (issue 12)', () => {
  it('both default to true, and are ours: mysql2 never sees them', (t) => {
    const { cfg } = resolve(t, {});
    assert.equal(cfg.hedgeCheckout, true);
    assert.equal(cfg.learnPathTimeout, true);
    assert.equal('hedgeCheckout' in cfg.connection, false);
    assert.equal('learnPathTimeout' in cfg.connection, false);
    const d = describeConfig(cfg);
    assert.equal(d.hedgeCheckout, true);
    assert.equal(d.learnPathTimeout, true);
  });

  it('switched off by the option or by MYSQL_HEDGE_CHECKOUT / MYSQL_LEARN_PATH_TIMEOUT; the option wins', (t) => {
    assert.equal(resolve(t, { hedgeCheckout: false }).cfg.hedgeCheckout, false);
    assert.equal(resolve(t, { learnPathTimeout: false }).cfg.learnPathTimeout, false);
    const fromEnv = resolve(t, undefined, {
      MYSQL_HEDGE_CHECKOUT: 'off',
      MYSQL_LEARN_PATH_TIMEOUT: '0',
    }).cfg;
    assert.equal(fromEnv.hedgeCheckout, false);
    assert.equal(fromEnv.learnPathTimeout, false);
    assert.equal(fromEnv.sources.hedgeCheckout, 'env');
    const both = resolve(t, { hedgeCheckout: true }, { MYSQL_HEDGE_CHECKOUT: 'false' }).cfg;
    assert.equal(both.hedgeCheckout, true);
    assert.equal(both.sources.hedgeCheckout, 'option');
    assert.ok(Object.isFrozen(both));
  });

  it('a bad value is refused at createPool, naming the option and the variable', (t) => {
    const opt = rejects(t, { hedgeCheckout: 'maybe' as unknown as boolean });
    assert.equal(opt.option, 'hedgeCheckout');
    assert.match(opt.message, /hedgeCheckout/);
    const env = rejects(t, undefined, { MYSQL_LEARN_PATH_TIMEOUT: 'sometimes' });
    assert.equal(env.option, 'learnPathTimeout');
    assert.match(env.message, /learnPathTimeout \(MYSQL_LEARN_PATH_TIMEOUT\) must be true, false/);
  });
});
