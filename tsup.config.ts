import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', promise: 'src/promise.ts', cli: 'src/cli.ts' },
  format: ['cjs', 'esm'],
  dts: {
    entry: { index: 'src/index.ts', promise: 'src/promise.ts' },
    // tsup's declaration build sets `baseUrl`, which TypeScript 6 rejects as deprecated.
    compilerOptions: { ignoreDeprecations: '6.0' },
  },
  outExtension: ({ format }) => ({ js: format === 'cjs' ? '.cjs' : '.mjs' }),
  target: 'node20',
  platform: 'node',
  sourcemap: false,
  clean: true,
  // One shared chunk per format: the entries (index, promise, cli) must share one copy of the
  // code, or `PoolError` from 'mysql2-keepalive-pool/promise' would not be the class exported by
  // 'mysql2-keepalive-pool' and `instanceof` would fail across them.
  splitting: true,
  // Rollup splits the CommonJS chunks. Without it tsup converts the ESM chunks to CommonJS with
  // sucrase, which turns every `?.` and `??` into `_optionalChain`/`_nullishCoalesce` calls
  // (an array and closures per use): the hot path of `require()` users ran twice as slow.
  treeshake: true,
  shims: true,
});
