import { promises as fsp, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AltplatError } from '../errors.js';
import { ERR_RESULT_DOWNLOAD, ERR_RESULT_START, EXIT_ABORTED_BY_PROJECT, FINISH_FILE, MMAP_FILE_NAME, STDERR_FILE, TEMPORARY_EXIT_FILE } from '../boinc.js';
import { ProcessState, type ClientControl } from '../ipc/contract.js';
import { writeInitData } from '../ipc/init-data.js';
import { clientInitData } from '../prefs/index.js';
import { createMmapFile } from '../ipc/mmap.js';
import { writeJobFile } from '../job/jobfile.js';
import { dropPlantedEntries, isRealDirOrMissing } from '../slots/clean.js';
import { moveTrickleUp } from '../slots/outputs.js';
import { checkInputs, setupSlot } from '../slots/setup.js';
import { createWorkingCopy } from '../slots/working-copy.js';
import { ensureOwnedDir } from '../util/owned-dir.js';
import { atLeast, type AltTask } from './active-task.js';
import type { TaskContext } from './context.js';
import { decideExit, parseFinishFile, parseTemporaryExitFile } from './exit-rules.js';
import { killGroup, killOrphans, launch, type ExitInfo, type LaunchSpec } from './launch.js';
import { checkLimits, initialLimitState, measuredDisk, sawFinishFile } from './limits.js';
import { runManagerCleanup } from './manager-cleanup.js';
import type { ResultReport } from './report.js';
import { maxElapsedTime, taskDiskUsage } from './rsc-limits.js';
import { initDataFor, jobDescriptionFor, managerLaunchSpec, nativeLaunchSpec } from './start-spec.js';
import { projectDirOf, readExitFiles, readOptional, windUp, type FinalDecision } from './windup.js';

/** How one start of a task ended. */
export type RunEnd =
  | { kind: 'finished'; report: ResultReport }
  | { kind: 'quit'; reason: string }
  | { kind: 'removed' }
  | { kind: 'failed'; report: ResultReport };

const couldntStart = (message: string): FinalDecision => ({ kind: 'error', state: ProcessState.COULDNT_START, exitStatus: ERR_RESULT_START, message });

/**
 * One start of a task, as client/app_start.cpp ACTIVE_TASK::start and client/app_control.cpp
 * handle_exited_app do it for one task: set up (slot, working copy), launch, supervise, and relaunch
 * after a premature or temporary exit until BOINC's exit rules end the task or the embedder stops it.
 */
export async function runTask(ctx: TaskContext, t: AltTask): Promise<RunEnd> {
  const finished = async (d: FinalDecision, code?: string, message?: string): Promise<RunEnd> =>
    ({ kind: 'finished', report: await windUp(ctx, t, d, code, message) });
  if (t.rec.step === 'finished') {
    const { cleanup } = await import('./windup.js');
    t.previouslyFinished = true;
    return { kind: 'finished', report: await cleanup(ctx, t) };
  }
  if (t.rec.projectAbort) {
    // Any outputs are left as they are; app_finished skips output checks for a project abort.
    return finished({ kind: 'aborted', exitStatus: EXIT_ABORTED_BY_PROJECT, message: 'aborted by project - no longer usable' });
  }
  const stop = stopBeforeLaunch(t);
  if (stop) return stop.kind === 'abort' ? finished({ kind: 'aborted', exitStatus: stop.exitStatus, message: stop.message }) : stop.end;
  const a = t.rec.assignment;
  const projectDir = projectDirOf(ctx, t.rec.masterUrl);
  // The BOINC side of init_data.xml only reads the volunteer's files and the host: read while the slot
  // is taken and set up. (Marked handled: a run that ends before its launch never awaits it.)
  const boincSide = clientInitData(ctx.paths.root, t.rec.masterUrl, a.result.reportDeadline);
  boincSide.catch(() => undefined);
  const inputsChecked = t.rec.step === 'assigned';
  if (t.rec.step === 'assigned') {
    try {
      await checkInputs(projectDir, a);
    } catch (e) {
      if (!(e instanceof AltplatError)) throw e;
      return finished({ kind: 'error', state: ProcessState.COULDNT_START, exitStatus: ERR_RESULT_DOWNLOAD, message: e.message }, e.code);
    }
    const slot = await ctx.slots.acquire();
    try {
      await t.setStep('slot_chosen', { slot });
    } catch (e) {
      ctx.slots.release(slot);
      throw e;
    }
  }
  const slotDir = ctx.paths.slotDir(t.rec.slot!);
  if (!(await isRealDirOrMissing(slotDir))) return slotReplaced();
  // client/app_start.cpp setup_slot_dir: a main program whose file_info is not <executable/> is
  // refused ("couldn't start app", exit status ERR_RESULT_START), whatever its mode bits are.
  const main = a.appVersion.fileRefs.find((f) => f.mainProgram);
  if (main && !a.files[main.fileName]?.executable) {
    return finished(couldntStart(`couldn't start app: Main program ${main.fileName} is not executable`), 'MAIN_PROGRAM_NOT_EXECUTABLE');
  }
  // Always called: it does nothing when boinc_setup_complete is there, and redoes a slot that vanished.
  await ensureOwnedDir(ctx.paths.root, path.relative(ctx.paths.root, slotDir)); // i9a: never mkdir -p through a link
  await setupSlot(slotDir, projectDir, a, { afterFile: () => ctx.hook('setup_partial'), inputsChecked });
  if (!atLeast(t.rec.step, 'slot_ready')) await t.setStep('slot_ready', {}, { persist: false });
  if (a.kind === 'alt') {
    const wcOk = t.rec.workingCopy !== undefined && atLeast(t.rec.step, 'working_copy')
      && await fsp.stat(t.rec.workingCopy.dir).then(() => true, () => false);
    if (!wcOk) {
      const def = ctx.definition(a.platform);
      if (!def) return finished(couldntStart(`alternate platform ${a.platform} is no longer available`), 'PLATFORM_UNAVAILABLE');
      const wc = await createWorkingCopy(def, ctx.paths.altPlatformsWorking, ctx.paths.workingCopy(t.rec.slot!));
      ctx.hook('working_copy_unjournaled');
      // The backend the copy is made for is journaled with it: a relaunch or a recovery uses the same one.
      await t.setStep('working_copy', {
        workingCopy: { dir: wc.dir, platformDir: wc.platformDir, shared: wc.shared },
        managerName: def.manager.name ?? def.manager.fileName, managerFile: def.manager.fileName,
        managerCmdline: def.manager.cmdline, managerCleanupCmdline: def.manager.cleanupCmdline,
        managerCpuModel: def.manager.cpuModel, managerMachineType: def.manager.machineType,
      });
    }
  }
  return execute(ctx, t, slotDir, projectDir, boincSide);

  function slotReplaced(): Promise<RunEnd> {
    return finished(couldntStart(`slot ${t.rec.slot} is no longer a folder (replaced by a link?); the task cannot continue`), 'SLOT_REPLACED');
  }
}

/** What the embedder asked for before the (next) launch: nothing, an abort, or a stop. */
function stopBeforeLaunch(t: AltTask): { kind: 'abort'; exitStatus: number; message: string } | { kind: 'stop'; end: RunEnd } | undefined {
  const i = t.intent;
  if (i?.kind === 'abort') return i;
  if (i?.kind === 'quit') return { kind: 'stop', end: { kind: 'quit', reason: i.reason } };
  if (i?.kind === 'remove' || t.rec.suspended) return { kind: 'stop', end: { kind: 'removed' } };
  return undefined;
}

async function execute(ctx: TaskContext, t: AltTask, slotDir: string, projectDir: string,
  prefetched?: ReturnType<typeof clientInitData>): Promise<RunEnd> {
  const a = t.rec.assignment;
  const finished = async (d: FinalDecision, code?: string, message?: string): Promise<RunEnd> =>
    ({ kind: 'finished', report: await windUp(ctx, t, d, code, message) });
  // A task whose manager finished while the client was away: its journal or finish file says how it ended.
  if (t.rec.step === 'exited' && t.rec.decision) return finished(t.rec.decision, undefined, t.rec.finishMessage);
  if (t.rec.step === 'launched') {
    const finish = await readOptional(path.join(slotDir, FINISH_FILE));
    if (finish !== undefined) {
      const f = parseFinishFile(finish);
      const d = decideExit({ state: ProcessState.EXECUTING, code: f.status & 0xff, signal: null, finishFilePresent: true, prematureExits: t.rec.prematureExits });
      if (d.kind !== 'restart') return finished(d, undefined, f.message);
    }
  }
  for (;;) {
    const stop = stopBeforeLaunch(t);
    if (stop) return stop.kind === 'abort' ? finished({ kind: 'aborted', exitStatus: stop.exitStatus, message: stop.message }) : stop.end;
    if (!(await isRealDirOrMissing(slotDir))) {
      return finished(couldntStart(`slot ${t.rec.slot} is no longer a folder (replaced by a link?); the task cannot continue`), 'SLOT_REPLACED');
    }
    // BOINC deletes only the temporary-exit file here (client/app_start.cpp). altplat also drops a finish
    // file left by a run that was then killed (a restart signal): otherwise the next premature exit(0)
    // would pass for success, and the 300 s finish-file timer would start at once.
    rmSync(path.join(slotDir, TEMPORARY_EXIT_FILE), { force: true });
    rmSync(path.join(slotDir, FINISH_FILE), { force: true });
    await dropPlantedEntries(slotDir, [MMAP_FILE_NAME, STDERR_FILE]);
    await createMmapFile(slotDir);
    // Preferences, proxy, authenticator and host figures as the BOINC client has them (src/prefs, issue 9
    // item 6), read again for every relaunch; the checkpoint period is the client's own preference
    // (AltplatClient.open's prefs).
    const boincSide = await (prefetched ?? clientInitData(ctx.paths.root, t.rec.masterUrl, a.result.reportDeadline));
    prefetched = undefined;
    await writeInitData(slotDir, { ...initDataFor(t.rec, ctx.paths.root, projectDir), ...boincSide, checkpointPeriod: ctx.prefs().diskInterval });
    const spec = a.kind === 'alt' ? await managerSpec(ctx, t, slotDir) : nativeLaunchSpec(a, slotDir, projectDir, ctx.paths.root, ctx.system.env.LD_LIBRARY_PATH);
    if (!spec) return finished(couldntStart(`alternate platform ${a.platform} is no longer available`), 'PLATFORM_UNAVAILABLE');
    // The shared memory is opened before the process starts, as BOINC maps it before fork
    // (client/app_start.cpp): the client then holds the real file, and an app that swaps
    // boinc_mmap_file for a symlink cannot make the client read or write through it.
    const control = await ctx.openControl(slotDir, { clock: () => ctx.system.clock(), initialCheckpointCpuTime: t.rec.checkpointCpuTime });
    let launched;
    try {
      launched = await launch(spec, ctx.system);
    } catch (e) {
      await control.close();
      if (!(e instanceof AltplatError)) throw e;
      return finished(couldntStart(e.message), e.code);
    }
    t.proc = { control, pgid: launched.pgid, exited: launched.exited, timing: { base: t.rec.elapsed, startedAt: ctx.system.clock(), suspendedMs: 0 } };
    ctx.hook('spawned_unjournaled');
    // The step is journaled while the app runs and, for a short one, while its exit is noticed and its
    // processes are reaped: none of that needs the step on disk (recovery finds leftovers by their
    // folder). It is awaited before the control channel is read or closed and before the next write.
    const journaled = t.setStep('launched', { pid: launched.pid, pgid: launched.pgid }).then(() => {
      t.signalLaunched();
      // Asked for while it was being launched.
      if (t.intent?.kind === 'abort') control.abort();
      else if (t.intent) control.quit();
    });
    journaled.catch(() => undefined); // awaited below; marked handled should supervise throw first
    const sup = await supervise(ctx, t, control, slotDir, projectDir, journaled);
    const exit = sup.exit;
    // BOINC kills the app's descendants once it has exited (ACTIVE_TASK::cleanup_task,
    // kill_subsidiary_processes): the group does it, and a descendant that left the group (setsid, a
    // daemonised VM) but still works in the slot or working copy is found there and killed too.
    const listed = await ctx.system.listProcesses();
    const leftovers = listed.some((p) => !p.zombie && p.pgid === launched.pgid);
    killGroup(ctx.system, launched.pgid);
    // The listing before the kill is reused: a member of the group still working in the slot (a VM)
    // makes killOrphans wait until the group is gone, so nothing of this run outlives it.
    const orphans = await killOrphans(ctx.system, [slotDir, ...(t.rec.workingCopy ? [t.rec.workingCopy.dir] : [])], launched.pgid, listed);
    // A manager that ended by itself after a quit has left what it means to resume (a paused container,
    // docs/MANAGER_CONTRACT.md): its cleanup runs only when altplat had to kill it, or when something of
    // a task that will not be resumed was left behind.
    const quitCleanly = !sup.killed && (t.intent?.kind === 'quit' || t.intent?.kind === 'remove');
    if (sup.killed || (!quitCleanly && (leftovers || orphans.some((g) => g !== launched.pgid)))) await runManagerCleanup(ctx.system, t.rec, slotDir);
    await journaled;
    // handle_exited_app (client/app_control.cpp) reads the last status and trickle-up messages first: a
    // trickle announced between the last poll and the exit is still moved to the project dir.
    const last = await control.poll(ctx.system.clock(), { wss: 0, maxWss: os.totalmem() }).catch(() => []);
    if (last.some((act) => act.kind === 'trickle_up')) await takeTrickleUp(ctx, t, slotDir);
    const state = control.state;
    await control.close();
    const files = await readExitFiles(slotDir);
    const abort = t.intent?.kind === 'abort' ? t.intent : sup.abort;
    const decision = decideExit({
      state, code: exit.code, signal: exit.signal,
      temporaryExit: files.temporary !== undefined ? parseTemporaryExitFile(files.temporary) : undefined,
      finishFilePresent: files.finish !== undefined,
      prematureExits: t.rec.prematureExits, abortStatus: abort?.exitStatus, abortMessage: abort?.message,
    });
    ctx.emit('exit', { task: t.name, masterUrl: t.masterUrl, decision, code: exit.code, signal: exit.signal });
    const elapsed = t.elapsedNow(ctx.system.clock());
    t.proc = undefined;
    if (decision.kind !== 'restart') {
      const finishMessage = files.finish ? parseFinishFile(files.finish).message : undefined;
      // A success needs no journal write here: recovery reads the same verdict from the finish file
      // (the 'launched' branch above). Any other end is journaled, so it is never run again.
      await t.setStep('exited', { pid: undefined, pgid: undefined, elapsed, decision, finishMessage }, { persist: decision.kind !== 'success' });
      return finished(decision, undefined, finishMessage);
    }
    await t.setStep('exited', {
      pid: undefined, pgid: undefined, elapsed, restarts: t.rec.restarts + 1,
      prematureExits: t.rec.prematureExits + (decision.countsAsPremature ? 1 : 0),
    });
    if (decision.reason === 'quit') {
      const i = t.intent;
      if (i?.kind === 'remove') return { kind: 'removed' };
      return { kind: 'quit', reason: i?.kind === 'quit' ? i.reason : 'quit' };
    }
    if (decision.delaySec > 0) await backoff(ctx, t, decision.delaySec);
  }
}

/** Wait out a temporary exit's delay (measured on the injected clock); quit, abort or suspend end the wait. */
async function backoff(ctx: TaskContext, t: AltTask, delaySec: number): Promise<void> {
  const until = ctx.system.clock() + delaySec * 1000;
  const step = Math.min(ctx.pollMs, 1000);
  while (ctx.system.clock() < until && !t.intent && !t.rec.suspended) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, step);
      t.wake = () => { clearTimeout(timer); resolve(); };
    });
  }
  t.wake = undefined;
}

/** The manager contract (docs/MANAGER_CONTRACT.md): the job file, then argv and environment. */
async function managerSpec(ctx: TaskContext, t: AltTask, slotDir: string): Promise<LaunchSpec | undefined> {
  const a = t.rec.assignment;
  // A restarted task keeps the manager its working copy was made for, even if discovery changed since.
  let { managerFile, managerCmdline } = t.rec;
  if (!managerFile) {
    const def = ctx.definition(a.platform);
    if (!def) return undefined;
    managerFile = def.manager.fileName;
    managerCmdline = def.manager.cmdline;
    await t.update({
      managerName: def.manager.name ?? def.manager.fileName, managerFile, managerCmdline, managerCleanupCmdline: def.manager.cleanupCmdline,
      managerCpuModel: def.manager.cpuModel, managerMachineType: def.manager.machineType,
    });
  }
  const workingDir = t.rec.workingCopy!.dir;
  // The platform's virtual CPU as the definition says now (issue 12: a checkpoint taken on another model
  // is the manager's to refuse, and the task starts over on the new one); the journaled one when
  // discovery has no definition any more.
  const def = ctx.definition(a.platform)?.manager;
  const cpu = { fileName: managerFile, cmdline: managerCmdline ?? '',
    cpuModel: def ? def.cpuModel : t.rec.managerCpuModel, machineType: def ? def.machineType : t.rec.managerMachineType };
  const jobFile = await writeJobFile(slotDir, jobDescriptionFor(a, workingDir, cpu));
  return managerLaunchSpec({ platform: a.platform, workingDir, managerFile, managerCmdline: managerCmdline ?? '', slotDir, jobFile });
}

async function takeTrickleUp(ctx: TaskContext, t: AltTask, slotDir: string): Promise<void> {
  if (!(await isRealDirOrMissing(slotDir))) return;
  const file = await moveTrickleUp(slotDir, projectDirOf(ctx, t.rec.masterUrl), t.rec.resultName);
  if (file) ctx.emit('trickle_up', { task: t.name, masterUrl: t.masterUrl, file });
}

interface Supervised {
  exit: ExitInfo;
  /** The client SIGKILLed the group (quit/abort timeout, stuck control channel). */
  killed: boolean;
  /** An abort the limits started (finish-file timeout, time or disk limit). */
  abort?: { exitStatus: number; message: string };
}

/**
 * Supervise the running process: every poll period (BOINC's 1 s) the channel's poll (heartbeat,
 * control queue, status, checkpoints, 60 s quit/abort kills) and the limit checks; the process's exit
 * is noticed from the child's exit event at once, not at the next poll.
 */
async function supervise(ctx: TaskContext, t: AltTask, control: ClientControl, slotDir: string, projectDir: string,
  journaled: Promise<void>): Promise<Supervised> {
  const a = t.rec.assignment;
  const proc = t.proc!;
  // client/app.cpp ACTIVE_TASK::init: the limits come from the workunit's bounds and the app version's flops.
  const maxElapsed = maxElapsedTime(a.workunit.rscFpopsBound, a.appVersion.flops);
  const limits = initialLimitState();
  let killed = false;
  let abort: Supervised['abort'];
  let lastTick = ctx.system.clock();
  let lastState = control.state;
  const abortTask = (exitStatus: number, message: string) => {
    // abort_task (client/app_control.cpp): the exit status is set now, <abort/> is sent (ABORT_PENDING,
    // whose 60 s kill timer the ipc control keeps), and handle_exited_app ends the task with it.
    abort = { exitStatus, message };
    control.abort();
  };
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const tick = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), ctx.pollMs); });
    const exited = await Promise.race([proc.exited, tick]);
    clearTimeout(timer);
    if (exited) return { exit: exited, killed, abort };
    await journaled; // the launch is on disk before the first poll acts on the channel or the journal
    const now = ctx.system.clock();
    if (lastState === ProcessState.SUSPENDED) proc.timing.suspendedMs += now - lastTick;
    lastTick = now;
    lastState = control.state;
    const actions = await control.poll(now, { wss: 0, maxWss: os.totalmem() });
    for (const act of actions) {
      if (act.kind === 'kill') {
        killed = true;
        killGroup(ctx.system, proc.pgid);
      } else if (act.kind === 'trickle_up') {
        await takeTrickleUp(ctx, t, slotDir);
      } else if (act.kind === 'checkpoint') {
        // ACTIVE_TASK_SET::get_msgs: a checkpoint resets the premature-exit count and sets
        // checkpoint_elapsed_time; journaled, so a client killed later resumes the time limit from here.
        const elapsed = t.elapsedNow(now);
        await t.update({ checkpointCpuTime: act.checkpointCpuTime, fractionDone: act.fractionDone, prematureExits: 0, elapsed, checkpointElapsed: elapsed });
        // Suspended in memory because it had not checkpointed yet: now it has, so it is removed (preempt).
        if (t.removeOnCheckpoint && t.rec.suspended && !t.intent) {
          t.removeOnCheckpoint = false;
          t.intent = { kind: 'remove' };
          control.quit();
        }
      }
    }
    const elapsed = t.elapsedNow(now);
    for (const act of checkLimits(limits, {
      executing: control.state === ProcessState.EXECUTING, aborting: abort !== undefined || t.intent?.kind === 'abort',
      elapsed, maxElapsed, rscDiskBound: a.workunit.rscDiskBound, rscFpopsBound: a.workunit.rscFpopsBound,
      flops: a.appVersion.flops, diskInterval: ctx.prefs().diskInterval,
    }, now)) {
      if (act.kind === 'abort') abortTask(act.exitStatus, act.message);
      else if (act.kind === 'look_for_finish_file') sawFinishFile(limits, (await readOptional(path.join(slotDir, FINISH_FILE))) !== undefined, now);
      else {
        const usage = await taskDiskUsage({ slotDir, projectDir, assignment: a, workingCopy: t.rec.workingCopy }).catch(() => undefined);
        const over = measuredDisk(limits, usage, a.workunit.rscDiskBound);
        if (over?.kind === 'abort') abortTask(over.exitStatus, over.message);
      }
    }
    ctx.emit('progress', { task: t.name, masterUrl: t.masterUrl, state: control.state, fractionDone: control.status.fractionDone, elapsed });
  }
}
