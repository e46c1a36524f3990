import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import {
  ConfigError,
  LIBRARY,
  POOL_ERROR_CODES,
  PoolError,
  SECRET_OPTIONS,
  type PoolErrorCode,
} from '../../src/errors.js';
import { resolveConfig } from '../../src/config.js';

/** The ConfigError `fn` throws (fails the test when it throws nothing else). */
function caught(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  assert.fail('expected a ConfigError');
}

describe('PoolError', () => {
  it('is an Error with a stable code and the library prefix', () => {
    const err = new PoolError('POOL_CLOSED', 'pool is closed');
    assert.ok(err instanceof Error);
    assert.ok(err instanceof PoolError);
    assert.equal(err.code, 'POOL_CLOSED');
    assert.equal(err.name, 'PoolError');
    assert.equal(err.message, 'mysql2-keepalive-pool: pool is closed');
  });

  it('does not double the prefix', () => {
    const err = new PoolError('POOL_CLOSED', `${LIBRARY}: pool is closed`);
    assert.equal(err.message, 'mysql2-keepalive-pool: pool is closed');
  });

  it('names itself in the stack header', () => {
    const err = new PoolError('POOL_ACQUIRE_TIMEOUT', 'timed out');
    assert.match(String(err.stack), /^PoolError: mysql2-keepalive-pool: timed out\n/);
    assert.equal(String(err), 'PoolError: mysql2-keepalive-pool: timed out');
  });

  it('keeps { cause } as the standard Error.cause', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const err = new PoolError('POOL_ACQUIRE_TIMEOUT', 'timed out', { cause });
    assert.equal(err.cause, cause);
    assert.match(inspect(err), /\[cause\]: Error: connect ECONNREFUSED/);
  });

  it('has no cause property when none was given, but keeps an explicit undefined', () => {
    assert.equal(Object.hasOwn(new PoolError('POOL_CLOSED', 'x'), 'cause'), false);
    assert.equal(
      Object.hasOwn(new PoolError('POOL_CLOSED', 'x', { cause: undefined }), 'cause'),
      true,
    );
  });

  it('copies details onto the error as own enumerable properties', () => {
    const poolState = { total: 3, active: 3, idle: 0, waiting: 2 };
    const err = new PoolError('POOL_ACQUIRE_TIMEOUT', 'timed out', {
      details: { poolState, waitedMs: 10_000 },
    });
    assert.deepEqual((err as unknown as { poolState: unknown }).poolState, poolState);
    assert.deepEqual(Object.keys(err).sort(), ['code', 'poolState', 'waitedMs']);
    assert.match(inspect(err), /poolState: \{ total: 3/);
  });

  it('ignores details that would shadow name, message, stack, cause or code', () => {
    const err = new PoolError('POOL_CLOSED', 'closed', {
      details: { code: 'X', name: 'Y', message: 'Z', stack: 'S', cause: 'C', extra: 1 },
    });
    assert.equal(err.code, 'POOL_CLOSED');
    assert.equal(err.name, 'PoolError');
    assert.equal(err.message, 'mysql2-keepalive-pool: closed');
    assert.match(String(err.stack), /^PoolError/);
    assert.equal(Object.hasOwn(err, 'cause'), false);
    assert.equal((err as unknown as { extra: number }).extra, 1);
  });

  it('does not expose name as an own enumerable property', () => {
    const err = new PoolError('POOL_CLOSED', 'closed');
    assert.equal(Object.keys(err).includes('name'), false);
    assert.equal(JSON.stringify(err), '{"code":"POOL_CLOSED"}');
  });

  it('lists exactly the codes of the design', () => {
    const expected: PoolErrorCode[] = [
      'INVALID_CONFIG',
      'POOL_CLOSED',
      'POOL_ACQUIRE_TIMEOUT',
      'POOL_QUEUE_LIMIT',
      'POOL_NO_CONNECTIONS',
      'VALIDATION_FAILED',
      'HEALTH_CHECK_FAILED',
      'CONNECTION_RELEASED',
    ];
    assert.deepEqual([...POOL_ERROR_CODES].sort(), expected.sort());
    assert.equal(LIBRARY, 'mysql2-keepalive-pool');
  });
});

describe('ConfigError', () => {
  const make = (extra: Partial<ConstructorParameters<typeof ConfigError>[1]> = {}): ConfigError =>
    new ConfigError(
      'idlePingInterval (MYSQL_IDLE_PING_INTERVAL) must be 0 (off) or an integer number of milliseconds >= 1000, got "2m"',
      {
        option: 'idlePingInterval',
        envVar: 'MYSQL_IDLE_PING_INTERVAL',
        value: '2m',
        accepted: '0 (off) or an integer number of milliseconds >= 1000',
        source: 'env',
        ...extra,
      },
    );

  it('is a PoolError with code INVALID_CONFIG and its own name', () => {
    const err = make();
    assert.ok(err instanceof Error);
    assert.ok(err instanceof PoolError);
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, 'INVALID_CONFIG');
    assert.equal(err.name, 'ConfigError');
    assert.match(String(err.stack), /^ConfigError: mysql2-keepalive-pool: idlePingInterval/);
  });

  it('carries option, envVar, value, accepted and source', () => {
    const err = make();
    assert.equal(err.option, 'idlePingInterval');
    assert.equal(err.envVar, 'MYSQL_IDLE_PING_INTERVAL');
    assert.equal(err.value, '2m');
    assert.equal(err.accepted, '0 (off) or an integer number of milliseconds >= 1000');
    assert.equal(err.source, 'env');
    assert.deepEqual(Object.keys(err).sort(), [
      'accepted',
      'code',
      'envVar',
      'option',
      'source',
      'value',
    ]);
  });

  it('has envVar undefined for explicit options, set for environment variables', () => {
    const fromOption = caught(() => resolveConfig({ idlePingInterval: 'soon' as never }, {}));
    assert.equal(fromOption.option, 'idlePingInterval');
    assert.equal(fromOption.source, 'option');
    assert.equal(fromOption.envVar, undefined);
    assert.doesNotMatch(fromOption.message, /MYSQL_/, 'an option error names no variable');
    const fromEnv = caught(() => resolveConfig({}, { MYSQL_IDLE_PING_INTERVAL: 'soon' }));
    assert.equal(fromEnv.option, 'idlePingInterval');
    assert.equal(fromEnv.source, 'env');
    assert.equal(fromEnv.envVar, 'MYSQL_IDLE_PING_INTERVAL');
    assert.match(fromEnv.message, /MYSQL_IDLE_PING_INTERVAL/);
  });

  it('never carries a password value, whatever the caller passes', () => {
    for (const option of SECRET_OPTIONS) {
      const err = new ConfigError(`${option} must be a string`, {
        option,
        value: 'S3cr3t-Zebra-42',
        accepted: 'a string',
      });
      assert.equal(err.value, '***');
      assert.doesNotMatch(inspect(err), /S3cr3t-Zebra-42/);
    }
  });

  it('keeps { cause }', () => {
    const cause = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
    const err = make({ cause });
    assert.equal(err.cause, cause);
  });
});
