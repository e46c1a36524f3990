/**
 * Run a Node/TS scenario script inside a network namespace and collect the JSON result it prints
 * on its LAST stdout line.
 *
 *   ip netns exec NS [setpriv --pdeathsig KILL] node --import tsx script.ts args...
 *
 * - Hard timeout: the child (spawned in its own process group) is SIGKILLed, by pid/pgid, and the
 *   promise rejects with an NsRunError (timedOut = true).
 * - With setpriv available the child also dies if this process dies (parent-death signal).
 * - Progress events: a scenario may print lines `RIG-EVENT {json}`; each is passed to onEvent,
 *   whose `reply(line)` writes a line to the child's stdin (used e.g. to let the test inspect
 *   conntrack at a precise point and then tell the scenario to continue).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT, nsCommand } from './rig.js';

export const EVENT_PREFIX = 'RIG-EVENT ';

export interface NsRunOptions {
  /** Hard timeout; the child is killed when it expires. */
  timeoutMs: number;
  /** Extra environment (merged over process.env). */
  env?: NodeJS.ProcessEnv;
  /** Working directory (default: repo root, so `--import tsx` and node_modules resolve). */
  cwd?: string;
  /** Node flags before the script (default: ['--import', 'tsx']). */
  nodeArgs?: string[];
  /** Called for every `RIG-EVENT {json}` line; reply() writes a line to the child's stdin. */
  onEvent?: (event: Record<string, unknown>, reply: (line: string) => void) => void | Promise<void>;
  /** Mirror the child's stderr to ours as it arrives (default: env RIG_VERBOSE set). */
  echoStderr?: boolean;
}

export interface NsRunResult<T> {
  result: T;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  events: Record<string, unknown>[];
}

export class NsRunError extends Error {
  constructor(
    message: string,
    readonly details: {
      timedOut: boolean;
      exitCode: number | null;
      signal: NodeJS.Signals | null;
      stdout: string;
      stderr: string;
      durationMs: number;
    },
  ) {
    super(
      `${message}\n--- stdout (tail) ---\n${details.stdout.slice(-4000)}\n--- stderr (tail) ---\n${details.stderr.slice(-4000)}`,
    );
    this.name = 'NsRunError';
  }
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function killTree(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL'); // its own process group (spawned detached)
  } catch {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of running) killTree(c);
  });
}

/**
 * Run `script` (absolute, or relative to the repo root) with `args` inside network namespace `ns`
 * (or in the current namespace when ns is null). Resolves with the parsed JSON of the last
 * non-empty stdout line when the child exits 0; rejects with NsRunError otherwise.
 */
export function runInNs<T = unknown>(
  ns: string | null,
  script: string,
  args: string[],
  opts: NsRunOptions,
): Promise<NsRunResult<T>> {
  installExitHook();
  const cwd = opts.cwd ?? REPO_ROOT;
  const scriptPath = path.resolve(REPO_ROOT, script);
  const nodeArgs = opts.nodeArgs ?? ['--import', 'tsx'];
  const { cmd, args: argv } = nsCommand(ns, [process.execPath, ...nodeArgs, scriptPath, ...args]);
  const echo = opts.echoStderr ?? Boolean(process.env.RIG_VERBOSE);
  const started = Date.now();

  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, {
      cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // own process group, so the timeout can kill everything it started
    });
    running.add(child);
    let stdout = '';
    let stderr = '';
    let lineBuf = '';
    let timedOut = false;
    const events: Record<string, unknown>[] = [];
    const eventErrors: unknown[] = [];
    const pending: Promise<void>[] = [];

    const timer = setTimeout(() => {
      timedOut = true;
      killTree(child);
    }, opts.timeoutMs);

    const reply = (line: string): void => {
      if (child.stdin && !child.stdin.destroyed)
        child.stdin.write(line.endsWith('\n') ? line : `${line}\n`);
    };
    child.stdin!.on('error', () => {
      /* child gone: EPIPE */
    });

    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      lineBuf += d;
      let nl: number;
      while ((nl = lineBuf.indexOf('\n')) >= 0) {
        const line = lineBuf.slice(0, nl);
        lineBuf = lineBuf.slice(nl + 1);
        if (!line.startsWith(EVENT_PREFIX)) continue;
        let evt: Record<string, unknown>;
        try {
          evt = JSON.parse(line.slice(EVENT_PREFIX.length)) as Record<string, unknown>;
        } catch {
          continue;
        }
        events.push(evt);
        if (opts.onEvent) {
          pending.push(
            Promise.resolve()
              .then(() => opts.onEvent!(evt, reply))
              .catch((e: unknown) => {
                eventErrors.push(e);
                killTree(child);
              }),
          );
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (echo) process.stderr.write(d);
    });

    child.on('error', (e) => {
      clearTimeout(timer);
      running.delete(child);
      reject(
        new NsRunError(`failed to spawn ${cmd}: ${e.message}`, {
          timedOut: false,
          exitCode: null,
          signal: null,
          stdout,
          stderr,
          durationMs: Date.now() - started,
        }),
      );
    });

    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      running.delete(child);
      void Promise.all(pending).then(() => {
        const durationMs = Date.now() - started;
        const details = { timedOut, exitCode, signal, stdout, stderr, durationMs };
        if (eventErrors.length > 0) {
          const e = eventErrors[0];
          reject(
            new NsRunError(
              `onEvent handler failed: ${e instanceof Error ? e.stack : String(e)}`,
              details,
            ),
          );
          return;
        }
        if (timedOut) {
          reject(
            new NsRunError(
              `scenario ${script} killed after hard timeout ${opts.timeoutMs} ms`,
              details,
            ),
          );
          return;
        }
        if (exitCode !== 0) {
          reject(
            new NsRunError(
              `scenario ${script} exited with code ${exitCode}, signal ${signal}`,
              details,
            ),
          );
          return;
        }
        const last = stdout
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l.length > 0)
          .pop();
        if (last === undefined) {
          reject(new NsRunError(`scenario ${script} printed nothing on stdout`, details));
          return;
        }
        try {
          resolve({
            result: JSON.parse(last) as T,
            exitCode,
            signal,
            stdout,
            stderr,
            durationMs,
            events,
          });
        } catch {
          reject(
            new NsRunError(
              `scenario ${script}: last stdout line is not JSON: ${last.slice(0, 500)}`,
              details,
            ),
          );
        }
      });
    });
  });
}
