import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { configTable, END, START, tableCells } from '../../scripts/config-table.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

test('the README configuration table matches the code (regenerate: tsx scripts/config-table.ts --write)', () => {
  const block = readme.slice(readme.indexOf(START) + START.length, readme.indexOf(END)).trim();
  assert.deepEqual(tableCells(block), tableCells(configTable()));
});

test('the README names the test command that CI runs', () => {
  const ci = readFileSync(new URL('../../.ci/run', import.meta.url), 'utf8');
  assert.match(readme, /npm test/);
  assert.match(ci, /^npm test$/m);
});
