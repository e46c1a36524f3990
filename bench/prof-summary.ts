/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per function and per file,
 * heaviest first; or a .heapprofile (from bench/profile.ts --alloc): bytes allocated per
 * function and per file.
 *
 *   npx tsx bench/prof-summary.ts FILE.cpuprofile|FILE.heapprofile [--top 30] [--filter src/]
 */
import fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function main(): void {
  const file = process.argv[2];
  if (!file) throw new Error('usage: prof-summary FILE.cpuprofile [--top N] [--filter TEXT]');
  const topIdx = process.argv.indexOf('--top');
  const top = topIdx > 0 ? Number(process.argv[topIdx + 1]) : 30;
  const filterIdx = process.argv.indexOf('--filter');
  const filter = filterIdx > 0 ? process.argv[filterIdx + 1] : undefined;
  const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile | { head: HeapNode };
  // Both formats reduce to (call frame, weight) pairs: µs of self time, or bytes allocated.
  const weighted: Array<[ProfileNode['callFrame'], number]> = [];
  const heap = 'head' in raw;
  if ('head' in raw) {
    const walk = (n: HeapNode): void => {
      if (n.selfSize > 0) weighted.push([n.callFrame, n.selfSize]);
      for (const c of n.children) walk(c);
    };
    walk(raw.head);
  } else {
    const byId = new Map(raw.nodes.map((n) => [n.id, n]));
    const selfUs = new Map<number, number>();
    for (let i = 0; i < raw.samples.length; i++) {
      const id = raw.samples[i]!;
      selfUs.set(id, (selfUs.get(id) ?? 0) + (raw.timeDeltas[i] ?? 0));
    }
    for (const [id, us] of selfUs) weighted.push([byId.get(id)!.callFrame, us]);
  }
  const total = weighted.reduce((a, [, w]) => a + w, 0);
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const [callFrame, us] of weighted) {
    const n = { callFrame };
    const url = n.callFrame.url.replace(/^file:\/\//, '').replace(process.cwd() + '/', '');
    const short = url.replace(/^.*node_modules\//, '');
    const key = `${n.callFrame.functionName || '(anonymous)'} ${short}:${n.callFrame.lineNumber + 1}`;
    byFn.set(key, (byFn.get(key) ?? 0) + us);
    const pkg = url.includes('node_modules/')
      ? url.replace(/^.*node_modules\/((?:@[^/]+\/)?[^/]+).*$/, '$1')
      : url || n.callFrame.functionName;
    byFile.set(pkg, (byFile.get(pkg) ?? 0) + us);
  }
  const unit = heap ? 'KiB' : 'ms';
  const show = (title: string, m: Map<string, number>): void => {
    process.stdout.write(
      `\n${title} (total ${(total / (heap ? 1024 : 1000)).toFixed(0)} ${unit})\n`,
    );
    const rows = [...m.entries()]
      .filter(([k]) => filter === undefined || k.includes(filter))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top);
    for (const [k, us] of rows) {
      process.stdout.write(
        `${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / (heap ? 1024 : 1000)).toFixed(0).padStart(8)} ${unit}  ${k}\n`,
      );
    }
  };
  show(heap ? 'allocated by package/file' : 'self time by package/file', byFile);
  show(heap ? 'allocated by function' : 'self time by function', byFn);
}

main();
