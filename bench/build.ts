/**
 * The bench measures what users run: the CommonJS bundle tsup builds from src/ (the same settings
 * as tsup.config.ts), not the sources as tsx compiles them. tsx keeps function names by wrapping
 * every closure creation in a `__name()` call (an Object.defineProperty each time), which would
 * charge this pool, and not the plain-JavaScript peers, for each closure in its hot path.
 *
 * Built privately into bench/results/build-<pid>/ (gitignored) so that a bench never races a
 * `npm run build` writing dist/, nor another bench.
 */
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'tsup';

const ROOT = path.resolve(__dirname, '..');

/** Builds src/index.ts into a directory of this process (removed at exit) and returns the path
 * of the CommonJS entry. */
export async function buildPool(): Promise<string> {
  const dir = path.join(__dirname, 'results', `build-${process.pid}`);
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  await build({
    config: false,
    entry: { index: path.join(ROOT, 'src', 'index.ts') },
    format: ['cjs'],
    outDir: dir,
    outExtension: () => ({ js: '.cjs' }),
    target: 'node20',
    platform: 'node',
    dts: false,
    sourcemap: false,
    clean: true,
    splitting: false,
    shims: true,
    silent: true,
  });
  return path.join(dir, 'index.cjs');
}
