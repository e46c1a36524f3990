/**
 * The bench measures what users run: the bundles tsup builds from src/ with the package's own
 * settings (tsup.config.ts: CommonJS and ESM, `index` and `promise` entries sharing one chunk,
 * target node20), not the sources as tsx compiles them. tsx keeps function names by wrapping
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

/** The entry files of a private build, by entry and module format. */
export interface PackageBuild {
  dir: string;
  index: { cjs: string; esm: string };
  promise: { cjs: string; esm: string };
}

let built: Promise<PackageBuild> | null = null;

/** Builds the package (both formats, both entries) into a directory of this process, removed at
 * exit; once per process. */
export function buildPackage(): Promise<PackageBuild> {
  built ??= (async () => {
    const dir = path.join(__dirname, 'results', `build-${process.pid}`);
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    await build({
      config: false,
      entry: {
        index: path.join(ROOT, 'src', 'index.ts'),
        promise: path.join(ROOT, 'src', 'promise.ts'),
      },
      format: ['cjs', 'esm'],
      outDir: dir,
      outExtension: ({ format }) => ({ js: format === 'cjs' ? '.cjs' : '.mjs' }),
      target: 'node20',
      platform: 'node',
      dts: false,
      sourcemap: false,
      clean: true,
      splitting: true,
      // As tsup.config.ts: rollup splits the CommonJS chunks (tsup's own CommonJS splitting runs
      // sucrase, which turns every ?. and ?? into helper calls).
      treeshake: true,
      shims: true,
      silent: true,
    });
    const entry = (name: string) => ({
      cjs: path.join(dir, `${name}.cjs`),
      esm: path.join(dir, `${name}.mjs`),
    });
    return { dir, index: entry('index'), promise: entry('promise') };
  })();
  return built;
}

/** The CommonJS entry of a private build (what `require('mysql2-keepalive-pool')` loads). */
export async function buildPool(): Promise<string> {
  return (await buildPackage()).index.cjs;
}
