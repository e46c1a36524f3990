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

test("the README's table of mysql2's own tests names exactly the files scripts/mysql2-suite.sh runs by default", () => {
  const script = readFileSync(new URL('../../scripts/mysql2-suite.sh', import.meta.url), 'utf8');
  const defaults = script.slice(script.indexOf('  files=(\n'), script.indexOf('\n  )\n'));
  const named = [...defaults.matchAll(/^\s+(test\/\S+\.test\.mts)$/gm)].map((m) => m[1]!);
  const section = readme.slice(readme.indexOf("## mysql2's own tests"));
  const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| mysql2 test file')));
  const rows = [...table.matchAll(/^\| `(test\/[^`]+)`\s+\| (PASS|FAIL)\s+\|$/gm)];
  const listed = rows.map((m) => m[1]!);
  // The script's globs (the PoolCluster directories) cover the table's other rows.
  const globs = named.filter((f) => f.includes('*'));
  const explicit = named.filter((f) => !f.includes('*'));
  const glob = (g: string): RegExp =>
    new RegExp(`^${g.replace(/[.]/g, '\\.').replace(/\*/g, '[^/]+')}$`);
  for (const f of explicit) assert.ok(listed.includes(f), `${f} is run but not in the README`);
  for (const f of listed) {
    assert.ok(
      explicit.includes(f) || globs.some((g) => glob(g).test(f)),
      `${f} is in the README but not run by default`,
    );
  }
  const summary = /\*\*(\d+) of (\d+) pass\*\*/.exec(section);
  assert.ok(summary, 'the README states how many pass');
  assert.equal(Number(summary[2]), listed.length, 'the count matches the table');
  assert.equal(
    Number(summary[1]),
    rows.filter((m) => m[2] === 'PASS').length,
    'the passes match the table',
  );
});
