/**
 * src/native.ts: the C library is told from the process's own memory map, and a native loader
 * run through requireNative() gets its answer without a diagnostic report being built, with
 * process.report exactly as it was afterwards (also when the loader throws).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { libcFromMaps, processLibc, requireNative } from '../../src/native.js';

const line = (file: string): string =>
  `7f00c0000000-7f00c0028000 r--p 00000000 fe:01 1234   ${file}\n`;

test('libcFromMaps: glibc, musl, or unknown', () => {
  assert.equal(libcFromMaps(line('/usr/lib/x86_64-linux-gnu/libc.so.6')), 'glibc');
  assert.equal(libcFromMaps(line('/lib/x86_64-linux-gnu/libc-2.31.so')), 'glibc');
  assert.equal(libcFromMaps(line('/lib/ld-musl-x86_64.so.1')), 'musl');
  assert.equal(
    libcFromMaps(line('/lib/ld-musl-aarch64.so.1') + line('/usr/lib/libc.so.6x')),
    'musl',
  );
  assert.equal(libcFromMaps(line('/usr/lib/libcrypto.so.3') + line('[heap]')), null);
  assert.equal(libcFromMaps(''), null);
});

test('processLibc: this process, read from /proc/self/maps, agrees with a real report', () => {
  const header = (process.report.getReport() as { header: { glibcVersionRuntime?: string } })
    .header;
  assert.equal(processLibc(), header.glibcVersionRuntime ? 'glibc' : 'musl');
});

test('requireNative: the loader sees the libc answer, no report is built, all is restored', () => {
  const report = process.report as unknown as {
    getReport: () => object;
    excludeNetwork?: boolean;
  };
  const original = report.getReport;
  let built = 0;
  const spy = (): object => {
    built++;
    return original.call(report);
  };
  report.getReport = spy;
  const excludeBefore = report.excludeNetwork;
  try {
    let seen: unknown;
    let excludeInside: boolean | undefined;
    const value = requireNative(() => {
      // What ffi-rs's loader does to choose its binary.
      seen = (report.getReport() as { header: { glibcVersionRuntime?: string } }).header
        .glibcVersionRuntime;
      excludeInside = report.excludeNetwork;
      return 42;
    });
    assert.equal(value, 42);
    assert.equal(built, 0, 'no diagnostic report was built');
    assert.equal(Boolean(seen), processLibc() === 'glibc');
    if ('excludeNetwork' in report) assert.equal(excludeInside, true);
    assert.equal(report.getReport, spy, 'getReport is the one it was');
    assert.equal(report.excludeNetwork, excludeBefore);

    assert.throws(
      () =>
        requireNative(() => {
          throw new Error('Cannot find module');
        }),
      /Cannot find module/,
    );
    assert.equal(report.getReport, spy, 'restored after a throw too');
    assert.equal(report.excludeNetwork, excludeBefore);
  } finally {
    report.getReport = original;
  }
});
