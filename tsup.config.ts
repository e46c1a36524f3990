import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', promise: 'src/promise.ts', cli: 'src/cli.ts' },
  format: ['cjs', 'esm'],
  dts: { entry: { index: 'src/index.ts', promise: 'src/promise.ts' } },
  outExtension: ({ format }) => ({ js: format === 'cjs' ? '.cjs' : '.mjs' }),
  target: 'node20',
  platform: 'node',
  sourcemap: false,
  clean: true,
  splitting: false,
  shims: true,
});
