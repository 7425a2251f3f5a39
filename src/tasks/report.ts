import type { OutputReport } from '../slots/outputs.js';

/** `outcome` values of `altplat run --json` (issue 3). */
export type Outcome = 'success' | 'compute_error' | 'aborted' | 'quit' | 'rejected';

/** One line of the `altplat run` report. */
export interface ResultReport {
  name: string;
  platform: string;
  /** 'native' ran the main program directly; 'alt' ran it through the platform's manager. */
  kind?: 'native' | 'alt';
  slot: number | null;
  outcome: Outcome;
  /** BOINC's result exit_status (0, the app's exit code, a signal number, 194, 203, -226, …). */
  exitStatus: number | null;
  outputs: Array<{ name: string; path: string | null; nbytes: number | null; md5: string | null; status: number }>;
  /** Last 63 KB of stderr.txt. */
  stderr: string;
  /** Seconds the task's processes ran, over all runs. */
  elapsed: number;
  /** Why: the error message, the rejection reason, or the quit cause. */
  reason?: string;
  /** Reason code for rejections and lifecycle errors. */
  code?: string;
  /** Message line 2 of boinc_finish_called, if the app gave one. */
  message?: string;
  restarts: number;
  /** Things that did not stop the task but need attention (e.g. a changed platform original). */
  warnings: string[];
  /** True when this run found the task already finished by an earlier run (never rerun). */
  previouslyFinished?: boolean;
}

export function outputLine(o: OutputReport): ResultReport['outputs'][number] {
  return { name: o.name, path: o.path ?? null, nbytes: o.nbytes ?? null, md5: o.md5 ?? null, status: o.status };
}
