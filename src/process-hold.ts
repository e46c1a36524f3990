/**
 * Which sockets keep the process alive. An idle pool must not (its sockets are unref'd); a
 * borrowed connection, a ping a caller waits for and a connection being closed by `end()` must
 * (their sockets are ref'd: work in progress, like a pending request).
 *
 * Holding takes effect at once. A released connection is let go only when it goes idle (or is
 * closed): one handed straight to a waiting caller stays held, the steady state of a busy pool,
 * which then schedules nothing here. Letting go is applied at the end of the current event-loop
 * turn (one `setImmediate` for every connection let go in that turn): a connection that goes idle
 * and is borrowed again within the turn costs no `ref`/`unref` pair of native calls. The process
 * cannot exit before that turn ends anyway, so when it exits is unchanged.
 */
import type { ConnectionRecord } from './health.js';

interface Refable {
  ref?(): void;
  unref?(): void;
}

function streamOf(rec: ConnectionRecord): Refable | undefined {
  return (rec.conn as unknown as { stream?: Refable }).stream;
}

/** Connections let go during this turn, unref'd by {@link flush}. */
let pending: ConnectionRecord[] = [];
let scheduled: NodeJS.Immediate | null = null;

/** The connection's socket keeps the process alive from now on. */
export function hold(rec: ConnectionRecord): void {
  rec.wantsHold = true;
  if (rec.holding) return;
  rec.holding = true;
  streamOf(rec)?.ref?.();
}

/** The connection's socket stops keeping the process alive, at the end of this turn unless it
 * is held again before. */
export function letGo(rec: ConnectionRecord): void {
  rec.wantsHold = false;
  if (!rec.holding || rec.letGoPending) return;
  rec.letGoPending = true;
  pending.push(rec);
  if (scheduled === null) {
    // Unref'd: the sockets waiting here still hold the loop until the flush has run.
    scheduled = setImmediate(flush);
    scheduled.unref();
  }
}

function flush(): void {
  scheduled = null;
  const recs = pending;
  pending = [];
  for (const rec of recs) {
    rec.letGoPending = false;
    if (rec.wantsHold || !rec.holding) continue;
    rec.holding = false;
    streamOf(rec)?.unref?.();
  }
}
