/**
 * generic-pool is used through its documented API only, from one file (src/connections.ts): the
 * source under src/ names none of its private fields or internal classes. Its behaviour as we use
 * it is shown in test/integration/connection-slots.test.ts.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const SRC = path.resolve(__dirname, '..', '..', 'src');
const sources = readdirSync(SRC)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => ({ file: f, text: readFileSync(path.join(SRC, f), 'utf8') }));

test('only connections.ts imports generic-pool', () => {
  const importers = sources
    .filter((s) => /from 'generic-pool'|require\('generic-pool'\)/.test(s.text))
    .map((s) => s.file);
  assert.deepEqual(importers, ['connections.ts']);
});

test('no file under src/ names a private field or internal class of generic-pool', () => {
  // generic-pool 3.9.0's underscore fields and methods (lib/Pool.js) and the classes it exports
  // or uses internally besides Pool and createPool.
  const internals =
    /\b(_availableObjects|_resourceLoans|_allObjects|_waitingClientsQueue|_factoryCreateOperations|_factoryDestroyOperations|_testOnBorrowResources|_dispense|_createResource|_destroy\b|_config|_draining|_evictor|PriorityQueue|Deque|ResourceLoan|ResourceRequest|PooledResource|DefaultEvictor)\b/;
  const connections = sources.find((s) => s.file === 'connections.ts');
  assert.ok(connections, 'src/connections.ts exists');
  for (const s of sources) {
    const hit = internals.exec(s.text);
    assert.equal(hit, null, `${s.file} names ${hit?.[0]}`);
  }
  // The import names only the documented entry point and type.
  const imports = connections.text.match(/^import .* from 'generic-pool';$/gm) ?? [];
  assert.deepEqual(imports, [
    "import { createPool as createGenericPool } from 'generic-pool';",
    "import type { Pool as GenericPool } from 'generic-pool';",
  ]);
});
