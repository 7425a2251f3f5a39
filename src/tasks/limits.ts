import { EXIT_ABORTED_BY_CLIENT, FINISH_FILE_CHECK_S, FINISH_FILE_TIMEOUT_S } from './exit-rules.js';
import { DISK_LIMIT_MESSAGE, elapsedLimitMessage, EXIT_DISK_LIMIT_EXCEEDED, EXIT_TIME_LIMIT_EXCEEDED, MIN_DISK_CHECK_INTERVAL_S } from './rsc-limits.js';

/** What the limit checks remember between polls of one run of a task. */
export interface LimitState {
  lastFinishCheck: number;
  /** When the finish file was first seen (ms on the client's clock). */
  finishSeenAt?: number;
  finishAbortSent: boolean;
  lastDiskCheck: number;
  /** BOINC's peak_disk_usage: 0 until the first measurement. */
  peakDisk: number;
}

export const initialLimitState = (): LimitState => ({ lastFinishCheck: -Infinity, finishAbortSent: false, lastDiskCheck: -Infinity, peakDisk: 0 });

/** What is known at one poll. `finishFilePresent` / `diskUsage` are the answers to a previous action. */
export interface LimitFacts {
  /** The task is EXECUTING (not suspended, not already being quit or aborted). */
  executing: boolean;
  /** An abort is already under way (no second one). */
  aborting: boolean;
  elapsed: number;
  maxElapsed: number;
  rscDiskBound: number;
  rscFpopsBound: number;
  flops: number;
  /** The volunteer's disk_interval in seconds. */
  diskInterval: number;
}

export type LimitAction =
  | { kind: 'look_for_finish_file' }
  | { kind: 'measure_disk' }
  | { kind: 'abort'; exitStatus: number; message: string };

/**
 * The timers of client/app_control.cpp as a pure function of (state, facts, now), like
 * ClientControl.poll: the caller does the I/O an action asks for and reports it back through
 * `sawFinishFile` / `measuredDisk`, which may return an abort.
 * - ACTIVE_TASK_SET::poll: every 10 s look for the finish file; a process still there 300 s after it
 *   appeared is aborted with EXIT_ABORTED_BY_CLIENT (194).
 * - check_rsc_limits_exceeded, for an executing task only: elapsed time over max_elapsed_time → 197;
 *   else the disk, at the first poll and then every max(disk_interval, 300) s → over rsc_disk_bound 196.
 */
export function checkLimits(s: LimitState, f: LimitFacts, now: number): LimitAction[] {
  const out: LimitAction[] = [];
  if (now - s.lastFinishCheck >= FINISH_FILE_CHECK_S * 1000) {
    s.lastFinishCheck = now;
    if (s.finishSeenAt === undefined) out.push({ kind: 'look_for_finish_file' });
    else if (!s.finishAbortSent && now - s.finishSeenAt > FINISH_FILE_TIMEOUT_S * 1000) {
      s.finishAbortSent = true;
      out.push({ kind: 'abort', exitStatus: EXIT_ABORTED_BY_CLIENT, message: 'Process still present 5 min after writing finish file; aborting' });
    }
  }
  if (f.executing && !f.aborting) {
    if (f.elapsed > f.maxElapsed) {
      out.push({ kind: 'abort', exitStatus: EXIT_TIME_LIMIT_EXCEEDED, message: elapsedLimitMessage(f.maxElapsed, f.rscFpopsBound, f.flops) });
    } else if (s.peakDisk === 0 || now - s.lastDiskCheck > Math.max(f.diskInterval, MIN_DISK_CHECK_INTERVAL_S) * 1000) {
      s.lastDiskCheck = now;
      out.push({ kind: 'measure_disk' });
    }
  }
  return out;
}

export function sawFinishFile(s: LimitState, present: boolean, now: number): void {
  if (present && s.finishSeenAt === undefined) s.finishSeenAt = now;
}

/** A measurement that failed (undefined) is skipped, as BOINC only logs "Can't get task disk usage". */
export function measuredDisk(s: LimitState, usage: number | undefined, rscDiskBound: number): LimitAction | undefined {
  if (usage === undefined) return undefined;
  s.peakDisk = Math.max(s.peakDisk, usage);
  return usage > rscDiskBound ? { kind: 'abort', exitStatus: EXIT_DISK_LIMIT_EXCEEDED, message: DISK_LIMIT_MESSAGE } : undefined;
}
