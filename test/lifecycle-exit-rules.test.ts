import { describe, expect, it } from 'vitest';
import { ProcessState } from '../src/ipc/contract.js';
import { decideExit, ERR_TOO_MANY_EXITS, parseFinishFile, parseTemporaryExitFile, type ExitFacts } from '../src/tasks/exit-rules.js';

const base: ExitFacts = { state: ProcessState.EXECUTING, code: 0, signal: null, finishFilePresent: false, prematureExits: 0 };

describe('exit rules (client/app_control.cpp handle_exited_app, Unix branch)', () => {
  it('abort pending and quit pending ignore the exit status', () => {
    expect(decideExit({ ...base, state: ProcessState.ABORT_PENDING, code: 0, finishFilePresent: true, abortStatus: 203 }))
      .toMatchObject({ kind: 'aborted', exitStatus: 203 });
    expect(decideExit({ ...base, state: ProcessState.QUIT_PENDING, code: 7 })).toMatchObject({ kind: 'restart', reason: 'quit', countsAsPremature: false });
  });
  it('the temporary-exit file is checked first, for any exit code', () => {
    const t = { delaySec: 5, reason: 'busy', notice: false };
    expect(decideExit({ ...base, code: 3, temporaryExit: t })).toMatchObject({ kind: 'restart', reason: 'temporary', delaySec: 5, countsAsPremature: true });
    expect(decideExit({ ...base, code: 0, finishFilePresent: true, temporaryExit: t })).toMatchObject({ kind: 'restart', reason: 'temporary' });
  });
  it('non-zero exit = compute error; zero + finish file = success; zero alone = premature (restart)', () => {
    expect(decideExit({ ...base, code: 3, finishFilePresent: true })).toMatchObject({ kind: 'error', exitStatus: 3, message: 'process exited with code 3 (0x3, -253)' });
    expect(decideExit({ ...base, code: 0, finishFilePresent: true })).toEqual({ kind: 'success', exitStatus: 0 });
    expect(decideExit({ ...base, code: 0 })).toMatchObject({ kind: 'restart', reason: 'premature', countsAsPremature: true });
  });
  it('more than 100 premature or temporary exits without a checkpoint abort with ERR_TOO_MANY_EXITS', () => {
    expect(decideExit({ ...base, prematureExits: 99 })).toMatchObject({ kind: 'restart' });
    expect(decideExit({ ...base, prematureExits: 100 })).toMatchObject({ kind: 'aborted', exitStatus: ERR_TOO_MANY_EXITS, message: 'too many exit(0)s' });
    expect(decideExit({ ...base, prematureExits: 100, temporaryExit: { delaySec: 1, reason: 'x', notice: false } }))
      .toMatchObject({ kind: 'aborted', exitStatus: -226, message: 'too many boinc_temporary_exit()s' });
  });
  it.each(['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGKILL', 'SIGTERM', 'SIGSTOP'] as const)('%s restarts the task', (sig) => {
    expect(decideExit({ ...base, code: null, signal: sig })).toMatchObject({ kind: 'restart', reason: 'signal', countsAsPremature: false });
  });
  it.each([['SIGSEGV', 11], ['SIGABRT', 6], ['SIGFPE', 8]] as const)('%s is an error with the signal as exit status', (sig, n) => {
    expect(decideExit({ ...base, code: null, signal: sig })).toMatchObject({ kind: 'error', state: ProcessState.WAS_SIGNALED, exitStatus: n, message: `process got signal ${n}` });
  });
});

describe('slot marker files', () => {
  it('temporary exit: delay 0..86400 else 300; the reason line is required; "notice" on line 3', () => {
    expect(parseTemporaryExitFile('60\nwaiting for lock\n')).toEqual({ delaySec: 60, reason: 'waiting for lock', notice: false });
    expect(parseTemporaryExitFile('99999\nr\nnotice\n')).toEqual({ delaySec: 300, reason: 'r', notice: true });
    expect(parseTemporaryExitFile('abc\nr\n')).toMatchObject({ delaySec: 300 });
    expect(parseTemporaryExitFile('60\n')).toBeUndefined();
    expect(parseTemporaryExitFile('60')).toBeUndefined();
  });
  it('finish file: status, message, notice', () => {
    expect(parseFinishFile('0\n')).toEqual({ status: 0, message: undefined, notice: false });
    expect(parseFinishFile('3\nout of memory\nnotice\n')).toEqual({ status: 3, message: 'out of memory', notice: true });
  });
});
