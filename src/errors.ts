/**
 * Errors raised by the pool itself. Errors that come from mysql2 or from the
 * network (`ECONNREFUSED`, `ER_ACCESS_DENIED_ERROR`, …) are passed through
 * untouched, or chained as `cause`, so callers can keep branching on mysql2's
 * own codes.
 *
 * Callers branch on {@link PoolError.code}, never on message text: messages
 * are written for humans and may be reworded.
 *
 * @packageDocumentation
 */

/** The package name. Every message of a {@link PoolError} starts with `mysql2-keepalive-pool: `. */
export const LIBRARY = 'mysql2-keepalive-pool';

const PREFIX = `${LIBRARY}: `;

/**
 * Every {@link PoolErrorCode}, in one list so that tests and docs can enumerate
 * them. The codes are part of the public API: never rename one.
 */
export const POOL_ERROR_CODES = [
  /** A configuration value (option, environment variable or URL) was rejected at `createPool`. */
  'INVALID_CONFIG',
  /** The pool was ended; no further connection can be acquired. */
  'POOL_CLOSED',
  /** `getConnection` waited `acquireTimeout` ms without getting a connection. */
  'POOL_ACQUIRE_TIMEOUT',
  /** The wait queue already holds `queueLimit` callers. */
  'POOL_QUEUE_LIMIT',
  /** `waitForConnections` is false and no connection is free. */
  'POOL_NO_CONNECTIONS',
  /** A connection failed its checkout validation (ping under `validationTimeout`). */
  'VALIDATION_FAILED',
  /** An idle-ping health check failed. */
  'HEALTH_CHECK_FAILED',
  /** A connection was used or released after it had been released. */
  'CONNECTION_RELEASED',
] as const;

/** Stable machine-readable code carried by every {@link PoolError}. */
export type PoolErrorCode = (typeof POOL_ERROR_CODES)[number];

/** Options accepted by the {@link PoolError} constructor. */
export interface PoolErrorOptions {
  /** The underlying error (mysql2's, a socket's, the file system's); kept as standard `Error.cause`. */
  cause?: unknown;
  /**
   * Extra facts copied onto the error as own enumerable properties, so they
   * show in `util.inspect` and structured loggers (e.g. `option`, `envVar`,
   * `value`, `poolState`). Keys that would shadow `name`, `message`, `stack`,
   * `cause` or `code` are ignored.
   */
  details?: Record<string, unknown>;
}

/**
 * Option names whose values are secrets. An error never carries their value:
 * {@link ConfigError} replaces it with `'***'` whatever the caller passed, as a
 * second line of defence behind config.ts.
 */
export const SECRET_OPTIONS: ReadonlySet<string> = new Set([
  'password',
  'password1',
  'password2',
  'password3',
  'passwordSha1',
]);

const RESERVED_PROPS = new Set(['name', 'message', 'stack', 'cause', 'code']);

/** mysql2's own pool messages, kept verbatim so that code which matched them keeps working. */
const MYSQL2_MESSAGES: ReadonlySet<string> = new Set([
  'Pool is closed.',
  'Queue limit reached.',
  'No connections available.',
]);

/**
 * Base class of every error raised by this library.
 *
 * - `instanceof Error` and `instanceof PoolError` both hold.
 * - {@link PoolError.code} is stable; branch on it.
 * - The message always starts with `mysql2-keepalive-pool: ` (added when missing).
 * - `{ cause }` is kept as the standard `Error.cause`.
 */
export class PoolError extends Error {
  /** Stable machine-readable code; see {@link POOL_ERROR_CODES}. */
  readonly code: PoolErrorCode;

  // `name` lives on the prototype (set below), not as an instance field:
  // class fields are assigned after `super()` returns, too late for V8, which
  // reads `name` when it captures the stack header ("PoolError: …").
  declare readonly name: string;

  /**
   * @param code - stable code, see {@link PoolErrorCode}
   * @param message - human-readable text; the library prefix is added when missing
   * @param options - optional `cause` and `details` (copied onto the error)
   */
  constructor(code: PoolErrorCode, message: string, options: PoolErrorOptions = {}) {
    super(
      message.startsWith(PREFIX) || MYSQL2_MESSAGES.has(message) ? message : PREFIX + message,
      'cause' in options ? { cause: options.cause } : undefined,
    );
    this.code = code;
    if (options.details !== undefined) {
      for (const [key, value] of Object.entries(options.details)) {
        if (!RESERVED_PROPS.has(key)) (this as Record<string, unknown>)[key] = value;
      }
    }
  }
}

Object.defineProperty(PoolError.prototype, 'name', {
  value: 'PoolError',
  writable: true,
  enumerable: false,
  configurable: true,
});

/** Where a configuration value came from, in precedence order (first wins). */
export type ConfigSource = 'option' | 'uri' | 'env' | 'url' | 'default';

/** Fields of a {@link ConfigError}. */
export interface ConfigErrorInit {
  /** The option the bad value was meant for, in camelCase (`idlePingInterval`). */
  option: string;
  /** The environment variable that supplied it (`MYSQL_IDLE_PING_INTERVAL`, `MYSQL_URL`, `MYSQL_PASSWORD_FILE`), if any. */
  envVar?: string | undefined;
  /** The offending value; forced to `'***'` for password options. */
  value?: unknown;
  /** What would have been accepted, e.g. `0 (off) or an integer number of milliseconds >= 1000`. */
  accepted: string;
  /** Which layer supplied the value. */
  source?: ConfigSource | undefined;
  /** Underlying error (e.g. the `ENOENT` of a password file). */
  cause?: unknown;
}

/**
 * A configuration value was rejected. Always `code === 'INVALID_CONFIG'`,
 * thrown synchronously by `createPool` (through `resolveConfig`).
 *
 * The message names the option, the environment variable when there is one,
 * the offending value in quotes (never a password) and what is accepted, e.g.
 * `mysql2-keepalive-pool: idlePingInterval (MYSQL_IDLE_PING_INTERVAL) must be 0 (off) or an integer number of milliseconds >= 1000, got "2m"`.
 */
export class ConfigError extends PoolError {
  declare readonly code: 'INVALID_CONFIG';
  // Declared, not initialised: a class-field initialiser would run after
  // super() and is not needed; the constructor assigns each one.
  /** The option concerned, in camelCase. */
  declare readonly option: string;
  /** The environment variable that supplied the value, if any. */
  declare readonly envVar: string | undefined;
  /** The offending value (`'***'` for passwords). */
  declare readonly value: unknown;
  /** Human-readable description of the accepted values. */
  declare readonly accepted: string;
  /** Which layer supplied the value, when known. */
  declare readonly source: ConfigSource | undefined;

  /**
   * @param message - full human-readable message (prefix added when missing)
   * @param init - the structured fields; see {@link ConfigErrorInit}
   */
  constructor(message: string, init: ConfigErrorInit) {
    super('INVALID_CONFIG', message, 'cause' in init ? { cause: init.cause } : {});
    const self = this as { -readonly [K in keyof ConfigError]: ConfigError[K] };
    self.option = init.option;
    self.envVar = init.envVar;
    self.value = SECRET_OPTIONS.has(init.option) && init.value !== undefined ? '***' : init.value;
    self.accepted = init.accepted;
    self.source = init.source;
  }
}

Object.defineProperty(ConfigError.prototype, 'name', {
  value: 'ConfigError',
  writable: true,
  enumerable: false,
  configurable: true,
});
