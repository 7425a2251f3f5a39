import { ProcessState, type ClientControl } from '../ipc/contract.js';
import { EXIT_ABORTED_BY_PROJECT, EXIT_ABORTED_VIA_GUI } from '../boinc.js';
import type { TaskContext } from './context.js';
import type { TaskState } from './events.js';
import type { TaskRecord, TaskStep } from './journal.js';
import { killGroup, type ExitInfo } from './launch.js';
import type { ResultReport } from './report.js';
import { runTask, type RunEnd } from './run-task.js';
import { cleanup, failedReport, quitReport, windUp } from './windup.js';

/** The process of a running task, while it exists. */
export interface LiveProcess {
  control: ClientControl;
  pgid: number;
  exited: Promise<ExitInfo>;
  /** Elapsed time of this run: journaled elapsed at launch, launch time, time spent suspended. */
  timing: { base: number; startedAt: number; suspendedMs: number };
}

/** What the embedder asked a running task to do, carried out when its process exits. */
export type Intent =
  | { kind: 'quit'; reason: string }
  | { kind: 'remove' }
  | { kind: 'abort'; exitStatus: number; message: string };

export interface SuspendOptions {
  /** Keep the process in memory even after it checkpointed; default: the volunteer's leave_apps_in_memory. */
  leaveInMemory?: boolean;
}

const STEPS: TaskStep[] = ['assigned', 'slot_chosen', 'slot_ready', 'working_copy', 'launched', 'exited', 'finished', 'done'];
export const atLeast = (s: TaskStep, min: TaskStep) => STEPS.indexOf(s) >= STEPS.indexOf(min);

/**
 * One journaled task — BOINC's ACTIVE_TASK for one result, without the scheduling: the embedding
 * client decides when it runs. Every call is valid at every step. This object is the only owner of the
 * task's state; the journal stores a projection of it (the TaskRecord) at every step.
 */
export class AltTask {
  /** Scheduling state without the suspension flag: 'running' = wants to run (its process may be gone). */
  private runState: 'queued' | 'running' | 'quit' | 'finished';
  /** @internal */ proc?: LiveProcess;
  /** @internal */ intent?: Intent;
  /** @internal */ wake?: () => void;
  /** @internal */ removeOnCheckpoint = false;
  private loop?: Promise<void>;
  private launchedSignal?: () => void;
  private stopWaiters: Array<(r: ResultReport) => void> = [];
  private settle!: (r: ResultReport) => void;
  private settled = false;
  /** @internal For runBatch: this task was finished before this client touched it. */
  previouslyFinished = false;
  /** @internal The report of the last stop that was not final (quit, failure). */
  lastStop?: ResultReport;

  /** Settles once, with the final report (`success`, `compute_error` or `aborted`). */
  readonly result: Promise<ResultReport>;

  /** @internal */
  constructor(private readonly ctx: TaskContext, private record: TaskRecord) {
    this.result = new Promise((resolve) => { this.settle = resolve; });
    if (record.step === 'done') {
      this.runState = 'finished';
      this.previouslyFinished = true;
      if (record.report) this.finish(record.report);
    } else if (record.removedBySuspend) this.runState = 'running';
    else if (!atLeast(record.step, 'launched') && record.restarts === 0) this.runState = 'queued';
    else this.runState = 'quit';
  }

  get name(): string { return this.record.resultName; }
  get masterUrl(): string { return this.record.masterUrl; }
  get kind(): 'native' | 'alt' { return this.record.assignment.kind; }
  get platform(): string { return this.record.assignment.platform; }
  get step(): TaskStep { return this.record.step; }
  get slot(): number | undefined { return this.record.slot; }
  get state(): TaskState {
    if (this.runState === 'finished') return 'finished';
    if (this.record.suspended) return 'suspended';
    return this.runState;
  }
  /** The app's last fraction done (a relaunched app counts from its checkpoint's until it reports). */
  get fractionDone(): number {
    const st = this.proc?.control.status;
    return st && st.receivedAt !== undefined ? st.fractionDone : this.record.fractionDone;
  }
  /** Seconds the task's processes ran, over all runs (not counting time suspended). */
  get elapsed(): number { return this.elapsedNow(this.ctx.system.clock()); }
  /** The process state BOINC would show (ProcessState name), or the task state when no process runs. */
  get processState(): string {
    if (this.record.suspended && this.runState !== 'finished') return ProcessState[ProcessState.SUSPENDED];
    if (this.proc) return ProcessState[this.proc.control.state];
    return this.runState === 'running' ? ProcessState[ProcessState.EXECUTING] : this.state.toUpperCase();
  }

  /** @internal */ get rec(): TaskRecord { return this.record; }

  /**
   * @internal Journal a step (and the fields that change with it), then tell listeners. `persist: false`
   * for a step that recovery redoes anyway (slot_ready: setup_slot_dir is idempotent): it reaches the
   * journal with the next write, one fsync fewer per task.
   */
  async setStep(step: TaskStep, patch: Partial<TaskRecord> = {}, opts: { persist?: boolean } = {}): Promise<void> {
    if (opts.persist === false) this.record = { ...this.record, ...patch, step };
    else await this.update({ ...patch, step });
    this.emitState();
    this.ctx.hook(step);
  }

  /** @internal */
  async update(patch: Partial<TaskRecord>): Promise<void> {
    this.record = await this.ctx.journal.update(this.record, patch);
  }

  /** @internal */
  elapsedNow(now: number): number {
    const t = this.proc?.timing;
    return t ? t.base + (now - t.startedAt - t.suspendedMs) / 1000 : this.record.elapsed;
  }

  /** @internal */
  signalLaunched(): void {
    this.launchedSignal?.();
  }

  private emitState(): void {
    this.ctx.emit('state', { task: this.name, masterUrl: this.masterUrl, step: this.record.step, state: this.state });
  }

  private finish(report: ResultReport): void {
    this.runState = 'finished';
    if (!this.settled) {
      this.settled = true;
      this.settle(report);
    }
    for (const w of this.stopWaiters.splice(0)) w(report);
  }

  /**
   * Launch the task, or launch it again from its checkpoint after a quit or a crash. Resolves once its
   * process runs (or the task ended without one). A suspended or finished task is left as it is: BOINC
   * never schedules a task suspended via the GUI.
   */
  async start(): Promise<void> {
    if (this.runState === 'finished' || this.record.suspended || this.loop || this.ctx.closing()) return;
    const launched = new Promise<void>((resolve) => { this.launchedSignal = resolve; });
    this.intent = undefined;
    this.runState = 'running';
    this.loop = this.drive();
    await Promise.race([launched, this.loop]);
  }

  private async drive(): Promise<void> {
    let end: RunEnd;
    try {
      end = await runTask(this.ctx, this);
    } catch (e) {
      // altplat itself could not go on (disk full, a folder it cannot write): the process group is
      // killed, the journal keeps the step, and a later start() retries from there.
      if (this.record.pgid) killGroup(this.ctx.system, this.record.pgid);
      this.ctx.system.log('error', `task ${this.name}: ${(e as Error).message}`);
      end = { kind: 'failed', report: failedReport(this.record, e) };
    } finally {
      this.proc = undefined;
      this.wake = undefined;
      this.loop = undefined;
    }
    if (end.kind === 'finished') {
      this.ctx.emit('report', { ...end.report, masterUrl: this.masterUrl });
      this.finish(end.report);
      return;
    }
    if (end.kind === 'removed') {
      // Removed from memory by a suspend: wants to run again once resumed.
      this.runState = 'running';
      if (!this.record.removedBySuspend) await this.update({ removedBySuspend: true });
      this.emitState();
      return;
    }
    this.runState = 'quit';
    this.lastStop = end.kind === 'quit' ? await quitReport(this.ctx, this.record, end.reason) : end.report;
    this.emitState();
    for (const w of this.stopWaiters.splice(0)) w(this.lastStop);
  }

  /**
   * @internal For runBatch: resolves when the task stops without wanting to run on — finished (its
   * report), quit or failed (that report). A task removed from memory by a suspend keeps it waiting.
   */
  stopped(): Promise<ResultReport> {
    if (this.runState === 'finished' && this.record.report) return Promise.resolve(this.record.report);
    return new Promise((resolve) => this.stopWaiters.push(resolve));
  }

  private async loopDone(): Promise<void> {
    while (this.loop) await this.loop;
  }

  /**
   * Suspend, as the BOINC client does for a per-task suspend (client/cpu_sched.cpp enforce_run_list →
   * ACTIVE_TASK::preempt(REMOVE_MAYBE_SCHED), client/app.cpp): an app that has checkpointed
   * (checkpoint_elapsed_time > 0) is removed from memory — quit, and restarted from its checkpoint on
   * resume() — unless leave_apps_in_memory; one that never checkpointed is suspended in memory and
   * removed once it checkpoints. A task that is not running is only marked: start() will not launch it.
   * The mark is journaled, so it survives a client restart.
   */
  async suspend(opts: SuspendOptions = {}): Promise<void> {
    if (this.runState === 'finished') return;
    // The state changes at once, as ACTIVE_TASK's does; the journal follows.
    const wasSuspended = this.record.suspended === true;
    this.record = { ...this.record, suspended: true };
    const p = this.proc;
    const leave = opts.leaveInMemory ?? this.ctx.prefs().leaveAppsInMemory;
    const live = p && (p.control.state === ProcessState.EXECUTING || p.control.state === ProcessState.SUSPENDED) && !this.intent;
    // Checkpointed: journaled, or just reported in a status message the poll has not journaled yet.
    const checkpointed = (this.record.checkpointElapsed ?? 0) > 0 || (p?.control.status.checkpointCpuTime ?? 0) > 0;
    const remove = live && !leave && checkpointed;
    if (remove) {
      this.intent = { kind: 'remove' };
      p!.control.quit();
    } else if (live) {
      if (p!.control.state === ProcessState.EXECUTING) p!.control.suspend();
      this.removeOnCheckpoint = !leave;
    }
    if (!wasSuspended) await this.update({ suspended: true });
    if (remove) {
      this.emitState();
      await this.loopDone();
      return;
    }
    if (!live && this.loop && !p) {
      // Being prepared, or waiting out a temporary exit: it stops before its next launch.
      this.wake?.();
      this.emitState();
      await this.loopDone();
      return;
    }
    this.emitState();
  }

  /** Undo suspend(): a process kept in memory continues; one removed from memory is launched again. */
  async resume(): Promise<void> {
    if (this.runState === 'finished' || !this.record.suspended) return;
    this.record = { ...this.record, suspended: false, removedBySuspend: false };
    this.removeOnCheckpoint = false;
    const p = this.proc;
    const inMemory = p && p.control.state === ProcessState.SUSPENDED && !this.intent;
    if (inMemory) p!.control.resume();
    await this.update({ suspended: false, removedBySuspend: false });
    if (inMemory) {
      this.emitState();
      return;
    }
    await this.loopDone();
    if (this.runState === 'running' && !this.loop) await this.start();
    else this.emitState();
  }

  /**
   * Preempt: the process exits (BOINC ACTIVE_TASK::request_quit, killed after 60 s), the slot is kept,
   * and start() later resumes it from its checkpoint. Only a `state` event, never a report.
   * @param reason internal: the quit report's reason in runBatch
   */
  async quit(reason = 'quit by altplat task'): Promise<void> {
    if (this.runState === 'finished') return;
    if (!this.loop) {
      if (this.runState === 'running') {
        // Removed from memory by a suspend: now it is plainly quit.
        this.runState = 'quit';
        await this.update({ removedBySuspend: false });
        this.emitState();
      }
      return;
    }
    if (this.intent?.kind !== 'abort') this.intent = { kind: 'quit', reason };
    this.proc?.control.quit();
    this.wake?.();
    await this.loopDone();
  }

  /**
   * Abort at any step, queued included: the task ends `aborted` with EXIT_ABORTED_VIA_GUI (203), as
   * BOINC's abort_task (client/app_control.cpp) does for "abort" from the GUI.
   */
  async abort(): Promise<void> {
    return this.abortWith(EXIT_ABORTED_VIA_GUI, 'aborted by user');
  }

  /** @internal abort_task with a status: 203 from the embedder, 202 for a project's <result_abort>. */
  async abortWith(exitStatus: number, message: string): Promise<void> {
    if (this.runState === 'finished') return;
    if (this.loop) {
      this.intent = { kind: 'abort', exitStatus, message };
      this.proc?.control.abort();
      this.wake?.();
      await this.loopDone();
      // The run ended without winding up (altplat itself failed): wind it up now, idle.
      if (this.state !== 'finished') await this.abortWith(exitStatus, message);
      return;
    }
    // Not running: wound up at once (no process to tell). app_finished skips output checks for it.
    this.loop = (async () => {
      try {
        const report = this.record.step === 'finished'
          ? await cleanup(this.ctx, this)
          : await windUp(this.ctx, this, { kind: 'aborted', exitStatus, message });
        this.ctx.emit('report', { ...report, masterUrl: this.masterUrl });
        this.finish(report);
      } finally {
        this.loop = undefined;
      }
    })();
    await this.loop;
  }

  /** @internal A project's <result_abort>: journaled first, carried out now if it runs, else at start(). */
  async projectAbort(): Promise<void> {
    await this.update({ projectAbort: true });
    if (this.loop) await this.abortWith(EXIT_ABORTED_BY_PROJECT, 'aborted by project - no longer usable');
  }

  /** @internal The report of a task that is not running (runBatch). */
  quitReport(reason: string): Promise<ResultReport> {
    return quitReport(this.ctx, this.record, reason);
  }

  /** @internal close(): quit a running task (resumable); a task removed by a suspend stops wanting to run. */
  async quitForExit(): Promise<void> {
    if (this.loop) return this.quit('client exiting');
    if (this.runState === 'running') {
      this.runState = 'quit';
      const r = await quitReport(this.ctx, this.record, 'client exiting');
      this.lastStop = r;
      for (const w of this.stopWaiters.splice(0)) w(r);
    }
  }
}
