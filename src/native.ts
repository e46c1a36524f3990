/**
 * Loading a native add-on without stalling the event loop.
 *
 * net-keepalive calls setsockopt through ffi-rs, whose loader chooses between its glibc and its
 * musl binary by calling `process.report.getReport()` and looking at one field,
 * `header.glibcVersionRuntime`. A diagnostic report is built synchronously on the main thread: it
 * walks every libuv handle of the process and, unless `process.report.excludeNetwork` is set,
 * resolves the local and the peer address of every socket with a blocking reverse DNS lookup.
 * With the cluster's DNS unreachable that is two resolver timeouts per open socket (80 s for four
 * pooled connections in a pod-like network namespace); on a healthy network it is still a walk
 * over every socket the application holds (an HTTP server's thousands of them).
 *
 * {@link requireNative} runs such a loader with `process.report.getReport` answering that one
 * question from the C library this process has actually mapped (`/proc/self/maps`, procfs: no
 * disk, no network), so no report is built at all. Where the maps cannot be read or name neither
 * C library, the loader gets a real report, built with `excludeNetwork` on (Node ≥ 20.13), which
 * leaves out the DNS lookups. Both are set back the moment the synchronous `require` returns, so
 * nothing but the loader ever sees them (JavaScript cannot run in between).
 *
 * It replaces a public Node API for the duration of one synchronous call rather than reaching
 * into ffi-rs: ffi-rs offers no switch (no environment variable) to name the C library.
 */
import { readFileSync } from 'node:fs';

/** The C library this process runs on, as far as a native loader needs to know. */
export type Libc = 'glibc' | 'musl';

/**
 * What the stand-in report says for glibc. ffi-rs only tests whether the field is set; the real
 * version is not known without a report.
 */
const GLIBC_VERSION_UNKNOWN = 'unknown';

/**
 * The C library named by the text of `/proc/self/maps`: musl's dynamic loader is its libc
 * (`ld-musl-<arch>.so.1`); glibc maps `libc.so.6` (or `libc-<version>.so` on older systems).
 * `null` when neither appears (a static binary, an unusual platform). Pure.
 */
export function libcFromMaps(maps: string): Libc | null {
  if (/\/ld-musl-[^/\s]*\.so/.test(maps) || /\/libc\.musl-[^/\s]*\.so/.test(maps)) return 'musl';
  if (/\/libc\.so\.6(?:\s|$)/m.test(maps) || /\/libc-\d+\.\d+[^/\s]*\.so(?:\s|$)/m.test(maps)) {
    return 'glibc';
  }
  return null;
}

let libc: Libc | null | undefined;

/** This process's C library on Linux, read once from `/proc/self/maps`; `null` if unknown. */
export function processLibc(): Libc | null {
  if (libc !== undefined) return libc;
  if (process.platform !== 'linux') return (libc = null);
  try {
    libc = libcFromMaps(readFileSync('/proc/self/maps', 'utf8'));
  } catch {
    libc = null;
  }
  return libc;
}

interface ReportApi {
  getReport(err?: Error): object;
  excludeNetwork?: boolean;
}

/**
 * Runs `load` (a synchronous `require` of a native add-on) so that nothing it does can build a
 * diagnostic report with network details: see the file comment. Returns what `load` returns and
 * rethrows what it throws, after putting `process.report` back as it was.
 */
export function requireNative<T>(load: () => T): T {
  const report = process.report as unknown as ReportApi | undefined;
  if (!report || typeof report.getReport !== 'function') return load();
  const ownGetReport = Object.getOwnPropertyDescriptor(report, 'getReport');
  // A getReport that cannot be replaced (frozen by someone) gets the excludeNetwork route only.
  const family = (ownGetReport?.configurable ?? Object.isExtensible(report)) ? processLibc() : null;
  const hasExcludeNetwork = 'excludeNetwork' in report;
  const excludeNetwork = hasExcludeNetwork ? report.excludeNetwork : undefined;
  try {
    if (hasExcludeNetwork) report.excludeNetwork = true;
    if (family !== null) {
      const header = family === 'glibc' ? { glibcVersionRuntime: GLIBC_VERSION_UNKNOWN } : {};
      Object.defineProperty(report, 'getReport', {
        value: () => ({ header }),
        writable: true,
        configurable: true,
        enumerable: ownGetReport?.enumerable ?? true,
      });
    }
    return load();
  } finally {
    if (family !== null) {
      if (ownGetReport) Object.defineProperty(report, 'getReport', ownGetReport);
      else delete (report as Partial<ReportApi>).getReport;
    }
    if (hasExcludeNetwork) report.excludeNetwork = excludeNetwork;
  }
}
