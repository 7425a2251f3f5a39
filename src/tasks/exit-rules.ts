import { constants as osc } from 'node:os';
import { ProcessState } from '../ipc/contract.js';

import { EXIT_ABORTED_BY_CLIENT, EXIT_UNKNOWN, ERR_TOO_MANY_EXITS } from '../boinc.js';

export { EXIT_ABORTED_BY_CLIENT, EXIT_ABORTED_BY_PROJECT, EXIT_ABORTED_VIA_GUI, EXIT_UNKNOWN, ERR_TOO_MANY_EXITS, ERR_RESULT_START } from '../boinc.js';
/** client/client_state.h */
export const QUIT_TIMEOUT_S = 60;
export const ABORT_TIMEOUT_S = 60;
export const FINISH_FILE_TIMEOUT_S = 300;
export const FINISH_FILE_CHECK_S = 10;
/** client/app_control.cpp handle_premature_exit: more than this many exits without a checkpoint aborts. */
export const MAX_PREMATURE_EXITS = 100;

export interface TemporaryExit {
  delaySec: number;
  reason: string;
  notice: boolean;
}

/**
 * client/app_control.cpp temporary_exit_file_present: line 1 = delay (0..86400, else 300), line 2 = the
 * reason, which is required — a file without it is not a temporary exit; line 3 containing "notice".
 */
export function parseTemporaryExitFile(text: string): TemporaryExit | undefined {
  const lines = text.split('\n');
  const m = /^\s*([+-]?\d+)/.exec(lines[0] ?? '');
  const y = m ? Number(m[1]) : NaN;
  const delaySec = Number.isInteger(y) && y >= 0 && y <= 86400 ? y : 300;
  if (lines.length < 2 || (lines.length === 2 && lines[1] === '')) return undefined;
  return { delaySec, reason: lines[1].trim(), notice: (lines[2] ?? '').includes('notice') };
}

/** api/boinc_api.cpp boinc_finish_message: line 1 status, optional line 2 message, line 3 "notice". */
export function parseFinishFile(text: string): { status: number; message?: string; notice: boolean } {
  const lines = text.split('\n');
  const status = Number.parseInt(lines[0] ?? '', 10);
  return { status: Number.isNaN(status) ? 0 : status, message: lines[1]?.trim() || undefined, notice: (lines[2] ?? '').includes('notice') };
}

export interface ExitFacts {
  /** The task's process state when the exit was seen. */
  state: ProcessState;
  /** Exit code for a normal exit, else null. */
  code: number | null;
  /** Signal name (Node spelling, 'SIGSEGV') when killed by a signal, else null. */
  signal: NodeJS.Signals | null;
  /** Parsed `boinc_temporary_exit`, if the file exists and is valid. */
  temporaryExit?: TemporaryExit;
  finishFilePresent: boolean;
  /** Premature + temporary exits since the last checkpoint, before this one. */
  prematureExits: number;
  /** The exit status already set by abort_task (203 user abort, 194 finish-file timeout, 197 time limit, …). */
  abortStatus?: number;
  /** The message abort_task was given (client/app_control.cpp passes it to report_result_error). */
  abortMessage?: string;
}

export type ExitDecision =
  | { kind: 'success'; exitStatus: 0 }
  | { kind: 'error'; state: ProcessState; exitStatus: number; message: string }
  | { kind: 'aborted'; exitStatus: number; message: string }
  | { kind: 'restart'; reason: 'quit' | 'premature' | 'temporary' | 'signal'; delaySec: number; countsAsPremature: boolean; message: string };

/** Signals after which BOINC restarts the task: it was killed from outside, not crashed. */
const RESTART_SIGNALS = new Set<NodeJS.Signals>(['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGKILL', 'SIGTERM', 'SIGSTOP']);


export function signalNumber(sig: NodeJS.Signals): number {
  return (osc.signals as Record<string, number>)[sig] ?? 0;
}

/**
 * What an exited app means, exactly as the Unix branch of client/app_control.cpp
 * ACTIVE_TASK::handle_exited_app (with handle_premature_exit / handle_temporary_exit) decides it.
 */
export function decideExit(f: ExitFacts): ExitDecision {
  if (f.state === ProcessState.ABORT_PENDING) {
    return { kind: 'aborted', exitStatus: f.abortStatus ?? EXIT_ABORTED_BY_CLIENT, message: f.abortMessage ?? 'aborted' };
  }
  if (f.state === ProcessState.QUIT_PENDING) {
    return { kind: 'restart', reason: 'quit', delaySec: 0, countsAsPremature: false, message: 'quit on request' };
  }
  const tooMany = (what: string): ExitDecision | undefined => f.prematureExits + 1 > MAX_PREMATURE_EXITS
    ? { kind: 'aborted', exitStatus: ERR_TOO_MANY_EXITS, message: `too many ${what}` }
    : undefined;
  if (f.code !== null) {
    if (f.temporaryExit) {
      return tooMany('boinc_temporary_exit()s') ?? { kind: 'restart', reason: 'temporary', delaySec: f.temporaryExit.delaySec,
        countsAsPremature: true, message: `postponed for ${f.temporaryExit.delaySec} seconds: ${f.temporaryExit.reason}` };
    }
    if (f.code !== 0) {
      const neg = f.code | ~0xff;
      return { kind: 'error', state: ProcessState.EXITED, exitStatus: f.code,
        message: `process exited with code ${f.code} (0x${f.code.toString(16)}, ${neg})` };
    }
    if (f.finishFilePresent) return { kind: 'success', exitStatus: 0 };
    return tooMany('exit(0)s') ?? { kind: 'restart', reason: 'premature', delaySec: 0, countsAsPremature: true,
      message: "exited with zero status but no 'finished' file" };
  }
  if (f.signal !== null) {
    if (RESTART_SIGNALS.has(f.signal)) {
      return { kind: 'restart', reason: 'signal', delaySec: 0, countsAsPremature: false, message: `killed by ${f.signal}; will restart` };
    }
    const n = signalNumber(f.signal);
    // BOINC stores the raw wait status; for a plain signal death (no core flag) that is the signal number.
    return { kind: 'error', state: ProcessState.WAS_SIGNALED, exitStatus: n, message: `process got signal ${n}` };
  }
  return { kind: 'error', state: ProcessState.EXIT_UNKNOWN, exitStatus: EXIT_UNKNOWN, message: 'process exit, unknown' };
}
