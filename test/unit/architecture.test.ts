/**
 * The layout the README's "Architecture" section describes: no import cycle between the files of
 * src/ (metrics.ts reads stats.ts, never the pool), and no dependency's internals: mysql2's
 * undocumented parts are reached only through mysql2-parts.ts and health.ts (generic-pool's use
 * is checked in generic-pool-use.test.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const SRC = path.resolve(__dirname, '..', '..', 'src');
const files = fs.readdirSync(SRC).filter((f) => f.endsWith('.ts'));
const source = (f: string): string => fs.readFileSync(path.join(SRC, f), 'utf8');

/** Local imports of a file, type-only ones included (a cycle of types is still a tangle). */
function imports(f: string): string[] {
  const out: string[] = [];
  for (const m of source(f).matchAll(/^(?:import|export)[^;]*?from '\.\/([\w-]+)\.js';/gms)) {
    out.push(`${m[1]}.ts`);
  }
  return out;
}

test('src/ has no import cycle', () => {
  const graph = new Map(files.map((f) => [f, imports(f)]));
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (f: string, trail: string[]): void => {
    if (state.get(f) === 'done') return;
    assert.notEqual(state.get(f), 'visiting', `import cycle: ${[...trail, f].join(' -> ')}`);
    state.set(f, 'visiting');
    for (const next of graph.get(f) ?? []) visit(next, [...trail, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  assert.ok(graph.get('metrics.ts')!.includes('stats.ts'), 'metrics.ts reads stats.ts');
  assert.ok(!graph.get('metrics.ts')!.includes('pool.ts'));
});

test("mysql2's undocumented classes are reached from mysql2-parts.ts (and health.ts) only", () => {
  for (const f of files) {
    // health.ts reads the session's wait_timeout with a raw command (createQuery).
    if (f === 'mysql2-parts.ts' || f === 'health.ts') continue;
    assert.doesNotMatch(source(f), /\.(PoolConnection|ConnectionConfig|createQuery)\b(?!\w)/, f);
  }
});
