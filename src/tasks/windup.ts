import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';
import { EXIT_ABORTED_BY_PROJECT, EXIT_ABORTED_VIA_GUI, FINISH_FILE, TEMPORARY_EXIT_FILE } from '../boinc.js';
import { ProcessState } from '../ipc/contract.js';
import { cleanOutDir, isRealDirOrMissing, removeInside } from '../slots/clean.js';
import { checkOutputs, moveCopiedOutputs, readStderrTail } from '../slots/outputs.js';
import { changedSharedOriginals, removeWorkingCopy } from '../slots/working-copy.js';
import type { TaskContext } from './context.js';
import type { ExitDecision } from './exit-rules.js';
import type { TaskRecord, TaskStep } from './journal.js';
import { projectFolderName } from './project.js';
import { outputLine, type ResultReport } from './report.js';

/** One task as wind-up sees it: its record and the way it journals a step (the task owns both). */
export interface WindupTask {
  readonly rec: TaskRecord;
  setStep(step: TaskStep, patch?: Partial<TaskRecord>, opts?: { persist?: boolean }): Promise<void>;
}

export type FinalDecision = Exclude<ExitDecision, { kind: 'restart' }>;

export function projectDirOf(ctx: TaskContext, masterUrl: string): string {
  return path.join(ctx.paths.projects, projectFolderName(masterUrl));
}

export async function readOptional(file: string): Promise<string | undefined> {
  // A marker file of a few bytes: read directly (a promise-based read costs ~20x more here).
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
    throw e;
  }
}

/** The marker files an exited app leaves, read once (client/app_control.cpp handle_exited_app). */
export async function readExitFiles(slotDir: string): Promise<{ finish?: string; temporary?: string }> {
  return { finish: await readOptional(path.join(slotDir, FINISH_FILE)), temporary: await readOptional(path.join(slotDir, TEMPORARY_EXIT_FILE)) };
}

/**
 * Outputs (client/app_start.cpp copy_output_files, client/cs_apps.cpp app_finished), the report, then
 * cleanup. The slot goes back to the allocator before the report is returned (and `result` settles).
 */
export async function windUp(ctx: TaskContext, t: WindupTask, d: FinalDecision, code?: string, message?: string): Promise<ResultReport> {
  const a = t.rec.assignment;
  const projectDir = projectDirOf(ctx, t.rec.masterUrl);
  const slotDir = t.rec.slot !== undefined ? ctx.paths.slotDir(t.rec.slot) : undefined;
  const warnings: string[] = [];
  let outputs: ResultReport['outputs'] = [];
  let outputsBad = false;
  const userOrProjectAbort = d.kind === 'aborted' && (d.exitStatus === EXIT_ABORTED_VIA_GUI || d.exitStatus === EXIT_ABORTED_BY_PROJECT);
  const slotReal = slotDir !== undefined && await isRealDirOrMissing(slotDir);
  if (slotDir && !slotReal) warnings.push(`slot ${t.rec.slot} was replaced by a link; nothing was collected or read through it`);
  const ran = !(d.kind === 'error' && d.state === ProcessState.COULDNT_START);
  if (slotDir && slotReal && ran) {
    await moveCopiedOutputs(slotDir, projectDir, a);
    ctx.hook('outputs_moved');
  }
  if (!userOrProjectAbort && ran) {
    const checked = await checkOutputs(projectDir, a);
    outputs = checked.outputs.map(outputLine);
    outputsBad = checked.hadError;
  }
  const stderr = slotDir && slotReal ? await readStderrTail(slotDir) : '';
  if (t.rec.workingCopy) {
    const changed = await changedSharedOriginals(t.rec.workingCopy);
    if (changed.length > 0) warnings.push(`shared platform file(s) changed during the task: ${changed.join(', ')} — run altplat verify`);
  }
  let outcome: ResultReport['outcome'];
  if (d.kind === 'success') outcome = outputsBad ? 'compute_error' : 'success';
  else if (d.kind === 'aborted') outcome = 'aborted';
  else outcome = 'compute_error';
  const reason = d.kind === 'success'
    ? (outputsBad ? 'output file missing or too big' : undefined)
    : d.kind === 'aborted' && d.exitStatus === EXIT_ABORTED_VIA_GUI ? 'aborted by user' : d.message;
  const report: ResultReport = {
    name: t.rec.resultName, platform: a.platform, kind: a.kind, slot: t.rec.slot ?? null, outcome,
    exitStatus: d.exitStatus, outputs, stderr, elapsed: Math.round(t.rec.elapsed * 1000) / 1000,
    reason, code, message, restarts: t.rec.restarts, warnings,
  };
  await t.setStep('finished', { report });
  return cleanup(ctx, t);
}

/** Empty the slot and give it back, remove the working copy, mark the task done (a tombstone). */
export async function cleanup(ctx: TaskContext, t: WindupTask): Promise<ResultReport> {
  const n = t.rec.slot;
  if (n !== undefined) {
    const slotDir = ctx.paths.slotDir(n);
    if (await isRealDirOrMissing(slotDir)) await cleanOutDir(ctx.paths.slots, slotDir);
    else await removeInside(ctx.paths.slots, slotDir); // the planted link itself, never its target
  }
  if (t.rec.workingCopy) await removeWorkingCopy(ctx.paths.altPlatformsWorking, t.rec.workingCopy.dir);
  await t.setStep('done');
  if (n !== undefined) ctx.slots.release(n);
  return t.rec.report!;
}

/** A quit task keeps its slot (it resumes later); its report still carries the stderr.txt tail so far. */
export async function quitReport(ctx: TaskContext, rec: TaskRecord, reason: string): Promise<ResultReport> {
  const a = rec.assignment;
  const slotDir = rec.slot !== undefined ? ctx.paths.slotDir(rec.slot) : undefined;
  const stderr = slotDir && await isRealDirOrMissing(slotDir) ? await readStderrTail(slotDir) : '';
  return {
    name: rec.resultName, platform: a.platform, kind: a.kind, slot: rec.slot ?? null, outcome: 'quit',
    exitStatus: null, outputs: [], stderr, elapsed: Math.round(rec.elapsed * 1000) / 1000, reason,
    restarts: rec.restarts, warnings: [],
  };
}

/** A task altplat itself could not carry on (disk full, a folder it cannot write): retried next start. */
export function failedReport(rec: TaskRecord, e: unknown): ResultReport {
  const a = rec.assignment;
  return {
    name: rec.resultName, platform: a.platform, kind: a.kind, slot: rec.slot ?? null, outcome: 'compute_error',
    exitStatus: null, outputs: [], stderr: '', elapsed: rec.elapsed, restarts: rec.restarts, warnings: [],
    code: e instanceof AltplatError ? e.code : (errnoCode(e) ?? 'LIFECYCLE_ERROR'),
    reason: `the task could not be carried on (it will be retried by the next run): ${(e as Error).message}`,
  };
}

export function rejectedReport(name: string, platform: string, code: string, reason: string): ResultReport {
  return { name, platform, slot: null, outcome: 'rejected', exitStatus: null, outputs: [], stderr: '', elapsed: 0, reason, code, restarts: 0, warnings: [] };
}
