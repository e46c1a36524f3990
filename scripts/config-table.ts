/**
 * Generates the README's configuration table from OPTION_TABLE, so docs and code cannot drift:
 * `tsx scripts/config-table.ts --write` rewrites the block between the markers;
 * test/unit/readme.test.ts fails when the README's block differs from this output.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { OPTION_TABLE } from '../src/config.js';

export const START = '<!-- config-table:start -->';
export const END = '<!-- config-table:end -->';

export function configTable(): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const lines = [
    '| option | env variable | default | meaning | accepted |',
    '| --- | --- | --- | --- | --- |',
    ...OPTION_TABLE.map(
      (r) =>
        `| \`${r.option}\` | \`${r.env}\` | \`${esc(r.default)}\` | ${esc(r.meaning)} | ${esc(r.accepted)} |`,
    ),
  ];
  return lines.join('\n');
}

/** The table's cells, independent of how a formatter aligned the columns. */
export function tableCells(markdown: string): string[][] {
  return markdown
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('|') && !/^\|[\s|:-]+\|$/.test(line))
    .map((line) =>
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim()),
    );
}

export function withTable(readme: string): string {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md lacks the ${START} … ${END} markers`);
  return `${readme.slice(0, start + START.length)}\n${configTable()}\n${readme.slice(end)}`;
}

if (process.argv.includes('--write')) {
  const path = new URL('../README.md', import.meta.url);
  writeFileSync(path, withTable(readFileSync(path, 'utf8')));
}
