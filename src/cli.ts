#!/usr/bin/env node
/**
 * The `mysql2-keepalive-pool` command. Configured like the library: `MYSQL_*` variables,
 * `MYSQL_URL`, `MYSQL_PASSWORD_FILE` (config.ts reads them; this file never touches the
 * environment itself).
 *
 *   mysql2-keepalive-pool doctor [--json]
 *   mysql2-keepalive-pool probe [--json] [--durations 60,300,900 | --min S --max S --steps N]
 *                               [--timeout MS] [--no-control]
 *
 * Exit status: doctor 0 healthy, 1 risky configuration, 2 cannot connect; probe 0 measured and
 * the configured keepalive is short enough, 1 it is not, 2 cannot connect; 64 usage error.
 */
import { parseArgs } from 'node:util';
import createDebug from 'debug';
import { resolveConfig, UNKNOWN_ENV_WARNING_CODE } from './config.js';
import { formatDoctor, runDoctor } from './doctor.js';
import { DEFAULT_PROBE_DURATIONS_SEC, geometricDurations, runProbe } from './probe.js';
import type { ProbeReport } from './probe.js';

const debug = createDebug('mysql2-keepalive-pool:cli');

const EXIT_USAGE = 64;

const USAGE = `Usage: mysql2-keepalive-pool <command> [options]

Commands
  doctor    connect once and report configuration, server timeouts, the keepalive timers of a
            live socket, the kernel's TCP settings and one line of advice per risk.
            Exit 0 healthy, 1 risky configuration, 2 cannot connect.
  probe     measure the idle timeout of the network path: connections with keepalive off sit
            idle for increasing durations at once, then each is pinged.
            Exit 0 measured (configured keepalive is short enough), 1 it is not, 2 cannot connect.

Options
  --json                one line of JSON on stdout instead of text
  --durations a,b,c     probe: idle durations in seconds (default 60 s to 30 min)
  --min S --max S --steps N
                        probe: N durations from S to S seconds, geometric
  --timeout MS          probe: ping deadline after the idle period (default validationTimeout)
  --no-control          probe: skip the control connection with the configured keepalive

Configuration comes from the same environment as the library: MYSQL_HOST, MYSQL_PORT,
MYSQL_USER, MYSQL_PASSWORD or MYSQL_PASSWORD_FILE, MYSQL_DATABASE, MYSQL_URL, and MYSQL_<OPTION>
for every pool option (e.g. MYSQL_KEEP_ALIVE_INITIAL_DELAY=60000).
`;

class UsageError extends Error {}

/** Runs one command; resolves with the exit status. Output goes through `out`/`err`. */
async function main(
  argv: readonly string[],
  out: (text: string) => void = (t) => void process.stdout.write(t),
  err: (text: string) => void = (t) => void process.stderr.write(t),
): Promise<number> {
  // Warnings are reported inside the output (doctor's advice), not as stray stderr lines.
  const unknownEnv = new Set<string>();
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string }) => {
    if (w.code === UNKNOWN_ENV_WARNING_CODE) unknownEnv.add(w.message);
    debug('(cli): process warning %s: %s', w.code ?? w.name, w.message);
  });

  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: 'boolean', default: false },
        durations: { type: 'string' },
        min: { type: 'string' },
        max: { type: 'string' },
        steps: { type: 'string' },
        timeout: { type: 'string' },
        'no-control': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    err(`${(e as Error).message}\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || command === 'help') {
    out(USAGE);
    return 0;
  }
  try {
    if (command === 'doctor' && positionals.length === 1) {
      // Let the warnings of config resolution arrive (emitWarning delivers on the next tick).
      const report = await runDoctor({ processWarnings: () => [...unknownEnv] });
      out(values.json ? `${JSON.stringify(report)}\n` : formatDoctor(report));
      return report.exitCode;
    }
    if (command === 'probe' && positionals.length === 1) {
      return await probe(values, out, err);
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err(`${e.message}\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  err(
    `${command === undefined ? 'missing command' : `unknown command "${positionals.join(' ')}"`}\n\n${USAGE}`,
  );
  return EXIT_USAGE;
}

async function probe(
  values: {
    json?: boolean;
    durations?: string;
    min?: string;
    max?: string;
    steps?: string;
    timeout?: string;
    'no-control'?: boolean;
  },
  out: (text: string) => void,
  err: (text: string) => void,
): Promise<number> {
  const durationsSec = probeDurations(values);
  const timeout = values.timeout === undefined ? undefined : positive('--timeout', values.timeout);
  let cfg;
  try {
    cfg = resolveConfig();
  } catch (e) {
    const message = (e as Error).message;
    if (values.json)
      out(
        `${JSON.stringify({ exitCode: 2, error: { code: (e as { code?: string }).code ?? null, message } })}\n`,
      );
    else err(`${message}\n`);
    return 2;
  }
  const report = await runProbe(cfg, {
    durationsSec,
    pingTimeoutMs: timeout ?? cfg.validationTimeout,
    control: !values['no-control'],
    onProgress: (line) => err(`${line}\n`),
  });
  out(values.json ? `${JSON.stringify(report)}\n` : formatProbe(report));
  return report.exitCode;
}

function probeDurations(values: {
  durations?: string;
  min?: string;
  max?: string;
  steps?: string;
}): number[] {
  const range = values.min !== undefined || values.max !== undefined || values.steps !== undefined;
  if (values.durations !== undefined && range) {
    throw new UsageError('give either --durations or --min/--max/--steps, not both');
  }
  if (values.durations !== undefined) {
    const list = values.durations.split(',').map((d) => positive('--durations', d.trim()));
    return [...new Set(list)].sort((a, b) => a - b);
  }
  if (range) {
    const min = positive('--min', values.min ?? '60');
    const max = positive('--max', values.max ?? '1800');
    const steps = positive('--steps', values.steps ?? '8');
    if (!Number.isInteger(steps) || max < min) {
      throw new UsageError('--steps must be an integer and --max at least --min');
    }
    return geometricDurations(min, max, steps);
  }
  return [...DEFAULT_PROBE_DURATIONS_SEC];
}

function positive(flag: string, text: string): number {
  const n = Number(text);
  if (text === '' || !Number.isFinite(n) || n <= 0) {
    throw new UsageError(`${flag} must be a positive number, got "${text}"`);
  }
  return n;
}

/** The probe report as text. */
export function formatProbe(r: ProbeReport): string {
  const lines = [`mysql2-keepalive-pool probe: pool "${r.pool}" → ${r.target}`, ''];
  for (const o of r.outcomes) {
    lines.push(
      `  idle ${String(o.idleSec).padStart(6)} s  ${o.alive ? 'alive' : `dead   ${o.how}${o.error ? ` ${o.error}` : ''}`}`,
    );
  }
  if (r.control) {
    lines.push(
      `  control: keepalive ${r.control.keepAliveInitialDelayMs} ms, idle ${r.control.idleSec} s  ${r.control.alive ? 'alive' : `dead   ${r.control.how}`}`,
    );
  }
  lines.push(
    '',
    `longest idle that survived: ${r.longestSurvivedSec === null ? 'none' : `${r.longestSurvivedSec} s`}`,
    `shortest idle that died:    ${r.shortestDiedSec === null ? 'none' : `${r.shortestDiedSec} s`}`,
    `keepalive delay to use:     ${r.recommendedKeepAliveInitialDelayMs} ms (configured: ${r.enableKeepAlive ? `${r.configuredKeepAliveInitialDelayMs} ms` : 'keepalive off'})`,
    `event loop blocked at most: ${r.eventLoop.maxBlockMs} ms`,
    '',
    r.verdict,
  );
  return `${lines.join('\n')}\n`;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`mysql2-keepalive-pool: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 70;
  },
);
