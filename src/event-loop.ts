/**
 * How long the event loop was blocked while `doctor` or `probe` ran: both commands report it, so
 * a synchronous call anywhere in the process (ours, a dependency's, a diagnostic report's DNS
 * lookups) shows up as a number instead of as a mysteriously slow command.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Period of the monitor's timer, ms. */
const RESOLUTION_MS = 10;

/** What the commands report. */
export interface EventLoopBlock {
  /** The longest time the event loop did not run while the command ran, ms (to within 10 ms;
   * the first and the last 10 ms of the command are not seen). */
  maxBlockMs: number;
}

/** A running measurement; `stop()` ends it and says what it saw. */
export interface EventLoopWatch {
  stop(): EventLoopBlock;
}

/** Starts measuring now. The monitor's timer does not keep the process alive. */
export function watchEventLoop(): EventLoopWatch {
  const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  h.enable();
  let result: EventLoopBlock | undefined;
  return {
    stop(): EventLoopBlock {
      if (result) return result;
      h.disable();
      // The histogram holds the intervals between runs of its timer; beyond the timer's period,
      // an interval is time the loop did not get to run.
      const longest = h.count > 0 ? h.max / 1e6 - RESOLUTION_MS : 0;
      result = { maxBlockMs: Math.max(0, Math.round(longest)) };
      return result;
    },
  };
}
