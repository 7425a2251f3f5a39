import { EventEmitter } from 'node:events';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { AltplatError, errnoCode } from '../errors.js';
import type { PlatformDefinition } from '../definition/types.js';
import type { HostProbes } from '../host/probes.js';
import { openClientControl } from '../ipc/client.js';
import { ProcessState, type ClientControl } from '../ipc/contract.js';
import { writeInitData } from '../ipc/init-data.js';
import { createMmapFile } from '../ipc/mmap.js';
import { writeJobFile } from '../job/jobfile.js';
import { dataPaths, type DataPaths } from '../paths.js';
import { inputFilesUsed, readSchedulerReply } from '../scheduler/reply.js';
import type { ParsedReply } from '../scheduler/reply-types.js';
import { chooseFreeSlot } from '../slots/choose.js';
import { cleanOutDir, dropPlantedEntries, isRealDirOrMissing, removeInside } from '../slots/clean.js';
import { stageFiles } from '../slots/files.js';
import { checkOutputs, moveCopiedOutputs, moveTrickleUp, readStderrTail } from '../slots/outputs.js';
import { checkInputs, FINISH_FILE, MMAP_FILE, setupSlot, STDERR_FILE, TEMPORARY_EXIT_FILE } from '../slots/setup.js';
import { changedSharedOriginals, createWorkingCopy, removeWorkingCopy } from '../slots/working-copy.js';
import { ensureOwnedDir, isRealDirInside } from '../util/owned-dir.js';
import { ioError } from '../util/io-error.js';
import { serveControl, type TaskOp, type TaskRequest, type TaskResponse } from './control-socket.js';
import {
  decideExit, EXIT_ABORTED_BY_CLIENT, EXIT_ABORTED_BY_PROJECT, EXIT_ABORTED_VIA_GUI, FINISH_FILE_CHECK_S, FINISH_FILE_TIMEOUT_S,
  parseFinishFile, parseTemporaryExitFile, type ExitDecision,
} from './exit-rules.js';
import { Journal, type TaskRecord, type TaskStep } from './journal.js';
import { killGroup, killOrphans, launch, type LaunchSpec, type Spawner } from './launch.js';
import { initDataFor, jobDescriptionFor, managerLaunchSpec, nativeLaunchSpec } from './start-spec.js';
import { outputLine, type ResultReport } from './report.js';
import { clientInitData } from '../prefs/index.js';
import {
  DISK_LIMIT_MESSAGE, elapsedLimitMessage, EXIT_DISK_LIMIT_EXCEEDED, EXIT_TIME_LIMIT_EXCEEDED, maxElapsedTime,
  MIN_DISK_CHECK_INTERVAL_S, taskDiskUsage,
} from './rsc-limits.js';

/** lib/error_numbers.h: a task whose input files are missing or wrong never starts. */
export const ERR_RESULT_DOWNLOAD = -186;
export const ERR_RESULT_START = -185;
/** client/client_state.h TASK_POLL_PERIOD */
export const TASK_POLL_MS = 1000;

/** What discovery tells the lifecycle (a structural subset of src/discovery's DiscoveryResult). */
export interface PlatformsView {
  advertised: string[];
  /** The host platforms discovery used (primary first), when it detected them. */
  hostPlatforms?: string[];
  platforms: Array<{ name: string; status: string; definition?: PlatformDefinition; reasons?: Array<{ code: string; message: string }> }>;
}

export interface LifecycleOptions {
  dataDir: string;
  /** Host platforms, primary first; default: what discovery detects (BOINC's detect_platforms). `--host-platform` replaces it. */
  hostPlatforms?: string[];
  /** Host probes handed to discovery (tests and embedding clients pin them). */
  probes?: Partial<HostProbes>;
  /** Monotonic milliseconds for BOINC's timers (60 s quit/abort, 300 s finish file, 10 s checks). */
  clock?: () => number;
  spawner?: Spawner;
  /** Discovery, injectable; default: src/discovery discoverPlatforms. */
  discover?: (opts: { dataDir: string; hostPlatforms?: string[]; probes?: Partial<HostProbes> }) => Promise<PlatformsView>;
  /** Client side of the shared-memory channel; default: src/ipc openClientControl. */
  openControl?: (slotDir: string, opts: { clock: () => number; initialCheckpointCpuTime: number }) => Promise<ClientControl>;
  /** How often running tasks are polled (BOINC: 1 s). */
  pollMs?: number;
  /** How many tasks run at the same time (default 1). */
  maxTasks?: number;
  /** Test-only: SIGKILL this process right after the journal records this step (docs/LIFECYCLE.md). */
  crashAt?: string;
  /** init_data.xml checkpoint_period in seconds; default: the volunteer's disk_interval preference (src/prefs/global-prefs.ts). */
  checkpointPeriod?: number;
}

export interface RunInput {
  /** A scheduler reply to take assignments from; without it, only unfinished tasks are resumed. */
  replyFile?: string;
  /** Stage the reply's input/app files from this folder into the project dir first. */
  filesDir?: string;
}

export interface RunResult {
  results: ResultReport[];
}

export interface ProgressEvent {
  result: string;
  state: ProcessState;
  fractionDone: number;
  elapsed: number;
}

interface Running {
  rec: TaskRecord;
  control?: ClientControl;
  pgid?: number;
  userQuit: boolean;
  abortStatus?: number;
  /** The message abort_task was given (finish-file timeout, time or disk limit); it becomes the report's reason. */
  abortMessage?: string;
  /** Wakes a task waiting out a temporary-exit delay. */
  wake?: () => void;
  /** Elapsed time of the current run: journaled elapsed at launch, launch time, time spent suspended. */
  timing?: { base: number; startedAt: number; suspendedMs: number };
}

const STEP_ORDER: TaskStep[] = ['assigned', 'slot_chosen', 'slot_ready', 'working_copy', 'launched', 'exited', 'finished', 'done'];
const atLeast = (s: TaskStep, min: TaskStep) => STEP_ORDER.indexOf(s) >= STEP_ORDER.indexOf(min);

/**
 * The task lifecycle of issue 3, usable from a TypeScript client: `run()` takes a scheduler reply's
 * assignments (or only the journal's unfinished tasks) through slot → working copy → manager → exit
 * rules → outputs → cleanup, journaling every step. Events: 'state' ({result, step}), 'progress'
 * (ProgressEvent), 'exit' ({result, decision}), 'trickle_up' ({result, file}), 'report' (ResultReport).
 *
 * @example
 *   const lc = new TaskLifecycle({ dataDir: '/var/lib/boinc-client' });
 *   lc.on('progress', (p) => console.log(p.result, p.fractionDone));
 *   const { results } = await lc.run({ replyFile: 'sched_reply_example.org.xml' });
 */
export class TaskLifecycle extends EventEmitter {
  readonly paths: DataPaths;
  private journal!: Journal;
  private readonly clock: () => number;
  private checkpointPeriod?: number;
  private readonly running = new Map<string, Running>();
  private quitting = false;
  private slotLock: Promise<unknown> = Promise.resolve();
  private definitions = new Map<string, PlatformDefinition>();
  private readonly reservedSlots = new Set<number>();

  constructor(private readonly opts: LifecycleOptions) {
    super();
    this.paths = dataPaths(opts.dataDir);
    this.clock = opts.clock ?? (() => performance.now());
  }

  private crashPoint(step: string): void {
    if (this.opts.crashAt === step) process.kill(process.pid, 'SIGKILL');
  }

  private async step(rec: Running, step: TaskStep, patch: Partial<TaskRecord> = {}): Promise<void> {
    rec.rec = await this.journal.update(rec.rec.resultName, { ...patch, step });
    this.emit('state', { result: rec.rec.resultName, step });
    this.crashPoint(step);
  }

  /** Quit every task cleanly (SIGINT/SIGTERM): they stop with outcome 'quit' and resume next run. */
  quitAll(): void {
    this.quitting = true;
    for (const r of this.running.values()) {
      r.control?.quit();
      r.wake?.();
    }
  }

  /** `altplat task OP RESULT`, as boinccmd --task does it. */
  async control(name: string, op: TaskOp): Promise<TaskResponse> {
    const r = this.running.get(name);
    if (!r) {
      const rec = this.journal?.get(name);
      const why = rec ? `task ${name} is not running (step ${rec.step})` : `no task named ${name}`;
      return { ok: false, code: rec ? 'TASK_NOT_RUNNING' : 'TASK_UNKNOWN', error: why };
    }
    switch (op) {
      case 'suspend': r.control?.suspend(); break;
      case 'resume': r.control?.resume(); break;
      case 'quit': r.userQuit = true; r.control?.quit(); r.wake?.(); break;
      case 'abort': r.abortStatus = EXIT_ABORTED_VIA_GUI; r.control?.abort(); r.wake?.(); break;
    }
    const state = r.control ? ProcessState[r.control.state] : 'NOT_STARTED';
    return { ok: true, result: name, state };
  }

  async run(input: RunInput = {}): Promise<RunResult> {
    // Never create a data dir by accident (a typo in --data-dir); same codes as discovery.
    const st = await fsp.stat(this.paths.root).catch(() => undefined);
    if (!st) throw new AltplatError('DATA_DIR_MISSING', `data dir ${this.paths.root} does not exist`);
    if (!st.isDirectory()) throw new AltplatError('DATA_DIR_NOT_A_FOLDER', `data dir ${this.paths.root} is not a folder`);
    this.journal = await Journal.open(this.paths.state);
    const server = await serveControl(this.paths.state, (req: TaskRequest) => this.control(req.result, req.op));
    try {
      return await this.runLocked(input);
    } finally {
      await server.close();
    }
  }

  private async discover(): Promise<PlatformsView> {
    const discover = this.opts.discover ?? (async (o) => {
      const { discoverPlatforms } = await import('../discovery/discover.js');
      return discoverPlatforms({ dataDir: o.dataDir, hostPlatforms: o.hostPlatforms, probes: o.probes });
    });
    const view = await discover({ dataDir: this.paths.root, hostPlatforms: this.opts.hostPlatforms, probes: this.opts.probes });
    for (const p of view.platforms) if (p.status === 'ok' && p.definition) this.definitions.set(p.name, p.definition);
    return view;
  }

  private async runLocked(input: RunInput): Promise<RunResult> {
    const reports: ResultReport[] = [];
    const queue: TaskRecord[] = [];
    const view = await this.discover();
    const hostPlatforms = this.opts.hostPlatforms ?? view.hostPlatforms ?? await (async () => {
      const { detectHostPlatforms } = await import('../host/platforms.js');
      return detectHostPlatforms();
    })();

    // Recovery first: kill orphans of a crashed run, finish cleanups that were interrupted.
    for (const rec of this.journal.all()) {
      if (rec.step === 'done') continue;
      const dirs = [rec.slot !== undefined ? this.paths.slotDir(rec.slot) : undefined, rec.workingCopy?.dir].filter((d): d is string => !!d);
      if (dirs.length > 0) await killOrphans(dirs, rec.pgid);
    }

    let reply: ParsedReply | undefined;
    if (input.replyFile) {
      reply = await readSchedulerReply(input.replyFile, { host: hostPlatforms, alt: view.advertised });
      const projectDir = this.paths.projectDir(reply.masterUrl);
      // A wrong file in --files never lands in the project dir, and it fails only the results that need
      // it (as a download that fails verification does in BOINC: ERR_RESULT_DOWNLOAD for those results),
      // not the whole run.
      const refused = new Map<string, AltplatError>();
      if (input.filesDir) {
        for (const info of inputFilesUsed(reply)) {
          try {
            await stageFiles(input.filesDir, projectDir, [info]);
          } catch (e) {
            if (!(e instanceof AltplatError)) throw e;
            refused.set(info.name, e);
          }
        }
      }
      for (const rej of reply.rejections) {
        if (rej.element !== 'result') continue;
        reports.push(rejected(rej.name, rej.platform ?? '', rej.code, rej.reason));
      }
      for (const a of reply.assignments) {
        const known = this.journal.get(a.result.name);
        if (known) {
          if (known.report && (known.step === 'done' || known.step === 'finished')) {
            if (known.step === 'done') reports.push({ ...known.report, previouslyFinished: true });
          }
          continue; // unfinished ones are resumed below, like every other journal task
        }
        if (a.kind === 'alt' && !this.definitions.has(a.platform)) {
          reports.push(rejected(a.result.name, a.platform, 'PLATFORM_UNAVAILABLE',
            `alternate platform ${a.platform} is not installed and supported on this host`));
          continue;
        }
        // Inputs are checked before the task is taken on: a missing or wrong file rejects it without
        // journaling, so running the reply again once the files are right takes it on (nothing is lost).
        try {
          await checkInputs(projectDir, a);
        } catch (e) {
          if (!(e instanceof AltplatError)) throw e;
          const file = (e.details as { file?: string } | undefined)?.file;
          const why = file !== undefined && e.code === 'INPUT_MISSING' ? refused.get(file) : undefined;
          reports.push(why
            ? rejected(a.result.name, a.platform, why.code, `${why.message} (the copy in --files was refused)`)
            : rejected(a.result.name, a.platform, e.code, e.message));
          continue;
        }
        const journaled = await this.journal.update(a.result.name, {}, {
          resultName: a.result.name, assignment: a, step: 'assigned', prematureExits: 0, restarts: 0,
          checkpointCpuTime: 0, fractionDone: 0, elapsed: 0,
        }).catch((e: unknown) => ioError(e, 'recording the task in the journal')); // i9a: a full disk is a reason, not a crash
        if (journaled instanceof AltplatError) { reports.push(rejected(a.result.name, a.platform, journaled.code, journaled.message)); continue; }
        this.crashPoint('assigned');
      }
    }

    if (reply) await this.applyResultAborts(reply);
    await this.sweep();

    for (const rec of this.journal.all()) {
      if (rec.step === 'done') continue;
      queue.push(rec);
    }
    const workers = Math.max(1, this.opts.maxTasks ?? 1);
    const next = async (): Promise<void> => {
      for (let rec = queue.shift(); rec; rec = queue.shift()) {
        const report = await this.runTask(rec).catch((e: unknown) => this.failedReport(rec!, e));
        reports.push(report);
        this.emit('report', report);
      }
    };
    await Promise.all(Array.from({ length: workers }, next));
    // Report in reply order (rejections first), not in completion order.
    const order = new Map(this.journal.all().map((t, i) => [t.resultName, i]));
    const rank = (r: ResultReport) => (r.outcome === 'rejected' ? -1 : order.get(r.name) ?? Number.MAX_SAFE_INTEGER);
    reports.sort((x, y) => rank(x) - rank(y));
    return { results: reports };
  }

  /**
   * client/cs_scheduler.cpp handle_scheduler_reply: `<result_abort>` aborts a task of this project
   * (running or not) with EXIT_ABORTED_BY_PROJECT; `<result_abort_if_not_started>` only one that never
   * ran. The flag is journaled, so the abort survives a crash before the task is wound up. Unknown names
   * are ignored, as BOINC only logs them.
   */
  private async applyResultAborts(reply: ParsedReply): Promise<void> {
    const notStarted = (t: TaskRecord) => !atLeast(t.step, 'launched') && t.restarts === 0 && t.elapsed === 0;
    const names = [
      ...reply.resultAborts.map((n) => [n, false] as const),
      ...reply.resultAbortsIfNotStarted.map((n) => [n, true] as const),
    ];
    for (const [name, onlyIfNotStarted] of names) {
      const t = this.journal.get(name);
      if (!t || t.step === 'finished' || t.step === 'done' || t.projectAbort) continue;
      if (t.assignment.masterUrl !== reply.masterUrl) continue;
      if (onlyIfNotStarted && !notStarted(t)) continue;
      await this.journal.update(name, { projectAbort: true });
    }
  }

  /** Remove slots and working copies that no journal task owns (BOINC: delete_old_slot_dirs). */
  private async sweep(): Promise<void> {
    const ownedSlots = new Set<string>();
    const ownedWorking = new Set<string>();
    for (const t of this.journal.all()) {
      if (t.step === 'done' || t.slot === undefined) continue;
      ownedSlots.add(String(t.slot));
      if (t.workingCopy) ownedWorking.add(path.basename(t.workingCopy.dir));
    }
    for (const [root, owned, keep] of [
      [this.paths.slots, ownedSlots, (n: string) => n.includes('test')],
      [this.paths.altPlatformsWorking, ownedWorking, () => false],
    ] as const) {
      let names: string[] = [];
      if (!(await isRealDirInside(this.paths.root, root))) continue; // i9a: a planted link is not swept through
      try {
        names = await fsp.readdir(root);
      } catch (e) {
        // Missing: nothing to sweep. Not a folder: not ours to delete; the task that needs it reports it.
        if (errnoCode(e) !== 'ENOENT' && errnoCode(e) !== 'ENOTDIR') throw e;
      }
      for (const n of names) if (!owned.has(n) && !keep(n)) await removeInside(root, path.join(root, n));
    }
  }

  private async chooseSlot(): Promise<number> {
    const p = this.slotLock.then(async () => {
      const inUse = new Set(this.journal.all().filter((t) => t.step !== 'done' && t.slot !== undefined).map((t) => t.slot!));
      for (const n of this.reservedSlots) inUse.add(n);
      const n = await chooseFreeSlot(this.paths.slots, inUse);
      // Held until the journal records it, so a concurrent task never gets the same number.
      this.reservedSlots.add(n);
      return n;
    });
    this.slotLock = p.catch(() => undefined);
    return p;
  }

  private async runTask(initial: TaskRecord): Promise<ResultReport> {
    const r: Running = { rec: initial, userQuit: false };
    const name = initial.resultName;
    const a = initial.assignment;
    this.running.set(name, r);
    try {
      if (r.rec.step === 'finished') return await this.cleanup(r, true);
      if (r.rec.projectAbort) {
        // Any outputs are left as they are; app_finished skips output checks for a project abort.
        return await this.finishWith(r, { kind: 'aborted', exitStatus: EXIT_ABORTED_BY_PROJECT, message: 'aborted by project - no longer usable' });
      }
      if (this.quitting) return await this.quitReport(r, 'quit before start');
      const projectDir = this.paths.projectDir(a.masterUrl);
      if (r.rec.step === 'assigned') {
        try {
          await checkInputs(projectDir, a);
        } catch (e) {
          if (!(e instanceof AltplatError)) throw e;
          return await this.finishWith(r, { kind: 'error', state: ProcessState.COULDNT_START, exitStatus: ERR_RESULT_DOWNLOAD, message: e.message }, e.code);
        }
        const slot = await this.chooseSlot();
        try {
          await this.step(r, 'slot_chosen', { slot });
        } finally {
          // The journal holds it from here (until the task is done); a reservation kept forever would push
          // every later task to a higher number, up to NO_FREE_SLOT, where BOINC reuses slot 0.
          this.reservedSlots.delete(slot);
        }
      }
      const slotDir = this.paths.slotDir(r.rec.slot!);
      if (!(await isRealDirOrMissing(slotDir))) return await this.slotReplaced(r);
      // client/app_start.cpp setup_slot_dir: a main program whose file_info is not <executable/> is
      // refused ("couldn't start app", exit status ERR_RESULT_START), whatever its mode bits are.
      const main = a.appVersion.fileRefs.find((f) => f.mainProgram);
      if (main && !a.files[main.fileName]?.executable) {
        return await this.finishWith(r, { kind: 'error', state: ProcessState.COULDNT_START, exitStatus: ERR_RESULT_START,
          message: `couldn't start app: Main program ${main.fileName} is not executable` }, 'MAIN_PROGRAM_NOT_EXECUTABLE');
      }
      // Always called: it does nothing when boinc_setup_complete is there, and redoes a slot that vanished.
      await ensureOwnedDir(this.paths.root, path.relative(this.paths.root, slotDir)); // i9a: never mkdir -p through a link
      await setupSlot(slotDir, projectDir, a, { afterFile: () => this.crashPoint('setup_partial') });
      if (!atLeast(r.rec.step, 'slot_ready')) await this.step(r, 'slot_ready');
      if (a.kind === 'alt') {
        const wcOk = r.rec.workingCopy !== undefined && atLeast(r.rec.step, 'working_copy')
          && await fsp.stat(r.rec.workingCopy.dir).then(() => true, () => false);
        if (!wcOk) {
          const def = this.definitions.get(a.platform);
          if (!def) {
            return await this.finishWith(r, { kind: 'error', state: ProcessState.COULDNT_START, exitStatus: ERR_RESULT_START,
              message: `alternate platform ${a.platform} is no longer available` }, 'PLATFORM_UNAVAILABLE');
          }
          const wc = await createWorkingCopy(def, this.paths.altPlatformsWorking, this.paths.workingCopy(r.rec.slot!));
          this.crashPoint('working_copy_unjournaled');
          await this.step(r, 'working_copy', {
            workingCopy: { dir: wc.dir, platformDir: wc.platformDir, shared: wc.shared },
            managerFile: def.manager.fileName, managerCmdline: def.manager.cmdline,
          });
        }
      }
      return await this.execute(r, slotDir, projectDir);
    } finally {
      this.running.delete(name);
    }
  }

  /**
   * A task the lifecycle itself could not carry on (disk full, a folder it cannot write, …): its process
   * group is killed, its journal record is left as it was, so the next run retries from that step.
   */
  private async failedReport(rec: TaskRecord, e: unknown): Promise<ResultReport> {
    const current = this.journal.get(rec.resultName) ?? rec;
    if (current.pgid) killGroup(current.pgid);
    const a = current.assignment;
    return {
      name: current.resultName, platform: a.platform, kind: a.kind, slot: current.slot ?? null, outcome: 'compute_error',
      exitStatus: null, outputs: [], stderr: '', elapsed: current.elapsed, restarts: current.restarts, warnings: [],
      code: e instanceof AltplatError ? e.code : (errnoCode(e) ?? 'LIFECYCLE_ERROR'),
      reason: `the task could not be carried on (it will be retried by the next run): ${(e as Error).message}`,
    };
  }

  /** The app replaced its slot folder by a link: the task ends here, nothing goes through the link. */
  private slotReplaced(r: Running): Promise<ResultReport> {
    return this.finishWith(r, { kind: 'error', state: ProcessState.COULDNT_START, exitStatus: ERR_RESULT_START,
      message: `slot ${r.rec.slot} is no longer a folder (replaced by a link?); the task cannot continue` }, 'SLOT_REPLACED');
  }

  /** A quit task keeps its slot (it resumes next run); its report still carries the stderr.txt tail so far. */
  private async quitReport(r: Running, reason: string): Promise<ResultReport> {
    const a = r.rec.assignment;
    const stderr = r.rec.slot !== undefined ? await readStderrTail(this.paths.slotDir(r.rec.slot)) : '';
    return {
      name: r.rec.resultName, platform: a.platform, kind: a.kind, slot: r.rec.slot ?? null, outcome: 'quit',
      exitStatus: null, outputs: [], stderr, elapsed: Math.round(r.rec.elapsed * 1000) / 1000, reason,
      restarts: r.rec.restarts, warnings: [],
    };
  }

  /** Launch, supervise and relaunch until BOINC's exit rules say the task is over (or it was quit). */
  private async execute(r: Running, slotDir: string, projectDir: string): Promise<ResultReport> {
    const a = r.rec.assignment;
    // A task whose manager finished while the client was dead: its finish file says how it ended.
    if (r.rec.step === 'exited' && r.rec.decision) return this.finishWith(r, r.rec.decision, undefined, r.rec.finishMessage);
    if (r.rec.step === 'launched') {
      const finish = await readOptional(path.join(slotDir, FINISH_FILE));
      if (finish !== undefined) {
        const status = parseFinishFile(finish).status;
        const d = decideExit({ state: ProcessState.EXECUTING, code: status & 0xff, signal: null, finishFilePresent: true, prematureExits: r.rec.prematureExits });
        if (d.kind !== 'restart') return this.finishWith(r, d);
      }
    }
    for (;;) {
      if (this.quitting || r.userQuit) return this.quitReport(r, r.userQuit ? 'quit by altplat task' : 'client exiting');
      if (!(await isRealDirOrMissing(slotDir))) return this.slotReplaced(r);
      // BOINC deletes only the temporary-exit file here (client/app_start.cpp). altplat also drops a finish
      // file left by a run that was then killed (a restart signal): otherwise the next premature exit(0)
      // would pass for success, and the 300 s finish-file timer would start at once.
      await fsp.rm(path.join(slotDir, TEMPORARY_EXIT_FILE), { force: true });
      await fsp.rm(path.join(slotDir, FINISH_FILE), { force: true });
      await dropPlantedEntries(slotDir, [MMAP_FILE, STDERR_FILE]);
      await createMmapFile(slotDir);
      await this.writeInitData(r, slotDir, projectDir);
      const spec = a.kind === 'alt' ? await this.managerSpec(r, slotDir) : nativeLaunchSpec(a, slotDir, projectDir, this.paths.root);
      // The shared memory is opened before the process starts, as BOINC maps it before fork
      // (client/app_start.cpp): the client then holds the real file, and an app that swaps
      // boinc_mmap_file for a symlink cannot make the client read or write through it.
      const openControl = this.opts.openControl ?? openClientControl;
      const control = await openControl(slotDir, { clock: this.clock, initialCheckpointCpuTime: r.rec.checkpointCpuTime });
      let launched;
      try {
        launched = await launch(spec, this.opts.spawner);
      } catch (e) {
        await control.close();
        if (!(e instanceof AltplatError)) throw e;
        return this.finishWith(r, { kind: 'error', state: ProcessState.COULDNT_START, exitStatus: ERR_RESULT_START, message: e.message }, e.code);
      }
      r.control = control;
      this.crashPoint('spawned_unjournaled');
      const exitP = launched.exited;
      r.pgid = launched.pgid;
      r.timing = { base: r.rec.elapsed, startedAt: this.clock(), suspendedMs: 0 };
      await this.step(r, 'launched', { pid: launched.pid, pgid: launched.pgid });
      if (this.quitting || r.userQuit) control.quit();
      if (r.abortStatus !== undefined) control.abort();
      const exit = await this.supervise(r, control, launched.pgid, exitP, slotDir, projectDir);
      // BOINC kills the app's descendants once it has exited (ACTIVE_TASK::cleanup_task,
      // kill_subsidiary_processes): the group does it, and a descendant that left the group (setsid, a
      // daemonised VM) but still works in the slot or working copy is found there and killed too.
      killGroup(launched.pgid);
      await killOrphans([slotDir, ...(r.rec.workingCopy ? [r.rec.workingCopy.dir] : [])]);
      // handle_exited_app (client/app_control.cpp) reads the last status and trickle-up messages first: a
      // trickle announced between the last poll and the exit is still moved to the project dir.
      const last = await control.poll(this.clock(), { wss: 0, maxWss: os.totalmem() }).catch(() => []);
      if (last.some((act) => act.kind === 'trickle_up')) await this.takeTrickleUp(r, slotDir);
      const state = control.state;
      await control.close();
      r.control = undefined;
      const tempText = await readOptional(path.join(slotDir, TEMPORARY_EXIT_FILE));
      const decision = decideExit({
        state, code: exit.code, signal: exit.signal,
        temporaryExit: tempText !== undefined ? parseTemporaryExitFile(tempText) : undefined,
        finishFilePresent: (await readOptional(path.join(slotDir, FINISH_FILE))) !== undefined,
        prematureExits: r.rec.prematureExits, abortStatus: r.abortStatus, abortMessage: r.abortMessage,
      });
      this.emit('exit', { result: r.rec.resultName, decision, code: exit.code, signal: exit.signal });
      const elapsed = this.elapsedNow(r, this.clock());
      if (decision.kind !== 'restart') {
        const finishText = await readOptional(path.join(slotDir, FINISH_FILE));
        const finishMessage = finishText ? parseFinishFile(finishText).message : undefined;
        await this.step(r, 'exited', { pid: undefined, pgid: undefined, elapsed, decision, finishMessage });
        return this.finishWith(r, decision, undefined, finishMessage);
      }
      await this.step(r, 'exited', {
        pid: undefined, pgid: undefined, elapsed, restarts: r.rec.restarts + 1,
        prematureExits: r.rec.prematureExits + (decision.countsAsPremature ? 1 : 0),
      });
      if (decision.reason === 'quit') return this.quitReport(r, r.userQuit ? 'quit by altplat task' : 'client exiting');
      if (decision.delaySec > 0) await this.backoff(r, decision.delaySec);
    }
  }

  /** Wait out a temporary exit's delay (measured on the injected clock); quit/abort end the wait. */
  private async backoff(r: Running, delaySec: number): Promise<void> {
    const until = this.clock() + delaySec * 1000;
    const step = Math.min(this.opts.pollMs ?? TASK_POLL_MS, 1000);
    while (this.clock() < until && !this.quitting && !r.userQuit && r.abortStatus === undefined) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, step);
        r.wake = () => { clearTimeout(t); resolve(); };
      });
    }
    r.wake = undefined;
  }

  /**
   * The task's elapsed time in seconds: the journaled elapsed at launch plus this run's time, minus the
   * time it spent suspended (client/app_control.cpp ACTIVE_TASK_SET::get_msgs adds to elapsed_time only
   * while the task is scheduled and tasks are not suspended).
   */
  private elapsedNow(r: Running, now: number): number {
    const t = r.timing;
    return t ? t.base + (now - t.startedAt - t.suspendedMs) / 1000 : r.rec.elapsed;
  }

  /**
   * abort_task (client/app_control.cpp ACTIVE_TASK::abort_task) for a running task: the exit status is
   * set now, `<abort/>` is sent (state ABORT_PENDING, whose 60 s kill timer the ipc control keeps), and
   * handle_exited_app then ends the task as aborted with that status and message.
   */
  private abortTask(r: Running, control: ClientControl, exitStatus: number, message: string): void {
    r.abortStatus = exitStatus;
    r.abortMessage = message;
    control.abort();
  }

  private async supervise(r: Running, control: ClientControl, pgid: number,
    exitP: Promise<{ code: number | null; signal: NodeJS.Signals | null }>, slotDir: string, projectDir: string) {
    const pollMs = this.opts.pollMs ?? TASK_POLL_MS;
    const a = r.rec.assignment;
    let finishSeenAt: number | undefined;
    let lastFinishCheck = -Infinity;
    let finishAbortSent = false;
    // client/app.cpp ACTIVE_TASK::init: the limits come from the workunit's bounds and the app version's flops.
    const maxElapsed = maxElapsedTime(a.workunit.rscFpopsBound, a.appVersion.flops);
    // check_rsc_limits_exceeded measures the disk at the first poll (peak_disk_usage still 0), then every
    // max(disk_interval, 300) s; this.checkpointPeriod is the volunteer's disk_interval (src/prefs/global-prefs.ts).
    const diskIntervalMs = Math.max(this.checkpointPeriod ?? 0, MIN_DISK_CHECK_INTERVAL_S) * 1000;
    let lastDiskCheck = -Infinity;
    let peakDisk = 0;
    let lastTick = this.clock();
    let lastState = control.state;
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), pollMs); });
      const exited = await Promise.race([exitP, tick]);
      clearTimeout(timer);
      if (exited) return exited;
      const now = this.clock();
      if (lastState === ProcessState.SUSPENDED && r.timing) r.timing.suspendedMs += now - lastTick;
      lastTick = now;
      lastState = control.state;
      const actions = await control.poll(now, { wss: 0, maxWss: os.totalmem() });
      for (const act of actions) {
        if (act.kind === 'kill') {
          killGroup(pgid);
        } else if (act.kind === 'trickle_up') {
          await this.takeTrickleUp(r, slotDir);
        } else if (act.kind === 'checkpoint') {
          // ACTIVE_TASK_SET::get_msgs: a checkpoint resets the premature-exit count.
          // Its elapsed time is journaled too (BOINC's checkpoint_elapsed_time, client/app_control.cpp
          // get_msgs), so a client killed later resumes the time limit from here, not from 0.
          r.rec = await this.journal.update(r.rec.resultName, {
            checkpointCpuTime: act.checkpointCpuTime, fractionDone: act.fractionDone, prematureExits: 0, elapsed: this.elapsedNow(r, now),
          });
        }
      }
      // client/app_control.cpp ACTIVE_TASK_SET::poll: every 10 s look for the finish file; a process
      // still alive 300 s after it appeared is aborted with EXIT_ABORTED_BY_CLIENT.
      if (now - lastFinishCheck >= FINISH_FILE_CHECK_S * 1000) {
        lastFinishCheck = now;
        if (finishSeenAt === undefined) {
          if ((await readOptional(path.join(slotDir, FINISH_FILE))) !== undefined) finishSeenAt = now;
        } else if (!finishAbortSent && now - finishSeenAt > FINISH_FILE_TIMEOUT_S * 1000) {
          finishAbortSent = true;
          this.abortTask(r, control, EXIT_ABORTED_BY_CLIENT, 'Process still present 5 min after writing finish file; aborting');
        }
      }
      // client/app_control.cpp ACTIVE_TASK_SET::check_rsc_limits_exceeded, for an executing task only:
      // elapsed time over max_elapsed_time → abort_task(EXIT_TIME_LIMIT_EXCEEDED); else, when the disk is
      // due, ACTIVE_TASK::check_max_disk_exceeded: usage over rsc_disk_bound → abort_task(EXIT_DISK_LIMIT_EXCEEDED).
      const elapsed = this.elapsedNow(r, now);
      if (control.state === ProcessState.EXECUTING && r.abortStatus === undefined) {
        if (elapsed > maxElapsed) {
          this.abortTask(r, control, EXIT_TIME_LIMIT_EXCEEDED, elapsedLimitMessage(maxElapsed, a.workunit.rscFpopsBound, a.appVersion.flops));
        } else if (peakDisk === 0 || now - lastDiskCheck > diskIntervalMs) {
          lastDiskCheck = now;
          // A folder that cannot be measured is skipped until the next check, as BOINC only logs
          // "Can't get task disk usage" and lets the task run.
          const usage = await taskDiskUsage({ slotDir, projectDir, assignment: a, workingCopy: r.rec.workingCopy }).catch(() => undefined);
          if (usage !== undefined) {
            peakDisk = Math.max(peakDisk, usage);
            if (usage > a.workunit.rscDiskBound) this.abortTask(r, control, EXIT_DISK_LIMIT_EXCEEDED, DISK_LIMIT_MESSAGE);
          }
        }
      }
      this.emit('progress', {
        result: r.rec.resultName, state: control.state, fractionDone: control.status.fractionDone, elapsed,
      } satisfies ProgressEvent);
    }
  }

  private async takeTrickleUp(r: Running, slotDir: string): Promise<void> {
    if (!(await isRealDirOrMissing(slotDir))) return;
    const file = await moveTrickleUp(slotDir, this.paths.projectDir(r.rec.assignment.masterUrl), r.rec.resultName);
    if (file) this.emit('trickle_up', { result: r.rec.resultName, file });
  }

  private async writeInitData(r: Running, slotDir: string, projectDir: string): Promise<void> {
    // Preferences, proxy, authenticator and host figures as the BOINC client has them (src/prefs).
    const client = await clientInitData(this.paths.root, r.rec.assignment.masterUrl, r.rec.assignment.result.reportDeadline);
    this.checkpointPeriod ??= this.opts.checkpointPeriod ?? client.checkpointPeriod;
    await writeInitData(slotDir, { ...initDataFor(r.rec, this.paths.root, projectDir), ...client, checkpointPeriod: this.checkpointPeriod });
  }

  /** The manager contract (docs/MANAGER_CONTRACT.md): the job file, then argv and environment. */
  private async managerSpec(r: Running, slotDir: string): Promise<LaunchSpec> {
    const a = r.rec.assignment;
    const def = this.definitions.get(a.platform);
    // A restarted task keeps the manager its working copy was made for, even if discovery changed since.
    const managerFile = r.rec.managerFile ?? def?.manager.fileName;
    const managerCmdline = r.rec.managerFile ? r.rec.managerCmdline ?? '' : def?.manager.cmdline ?? '';
    if (!managerFile) throw new AltplatError('PLATFORM_UNAVAILABLE', `alternate platform ${a.platform} is no longer available`);
    if (r.rec.managerFile !== managerFile) {
      r.rec = await this.journal.update(r.rec.resultName, { managerFile, managerCmdline });
    }
    const workingDir = r.rec.workingCopy!.dir;
    const jobFile = await writeJobFile(slotDir, jobDescriptionFor(a, workingDir, def?.manager));
    return managerLaunchSpec({ platform: a.platform, workingDir, managerFile, managerCmdline, slotDir, jobFile });
  }

  /** Outputs (client/app_start.cpp copy_output_files, client/cs_apps.cpp app_finished), report, cleanup. */
  private async finishWith(r: Running, d: Exclude<ExitDecision, { kind: 'restart' }>, code?: string, message?: string): Promise<ResultReport> {
    const a = r.rec.assignment;
    const projectDir = this.paths.projectDir(a.masterUrl);
    const slotDir = r.rec.slot !== undefined ? this.paths.slotDir(r.rec.slot) : undefined;
    const warnings: string[] = [];
    let outputs: ResultReport['outputs'] = [];
    let outputsBad = false;
    const userOrProjectAbort = d.kind === 'aborted' && (d.exitStatus === EXIT_ABORTED_VIA_GUI || d.exitStatus === EXIT_ABORTED_BY_PROJECT);
    const slotReal = slotDir !== undefined && await isRealDirOrMissing(slotDir);
    if (slotDir && !slotReal) warnings.push(`slot ${r.rec.slot} was replaced by a link; nothing was collected or read through it`);
    if (slotDir && slotReal && !(d.kind === 'error' && d.state === ProcessState.COULDNT_START)) {
      await moveCopiedOutputs(slotDir, projectDir, a);
      this.crashPoint('outputs_moved');
    }
    if (!userOrProjectAbort && (d.kind === 'success' || (d.kind === 'error' && d.state !== ProcessState.COULDNT_START) || d.kind === 'aborted')) {
      const checked = await checkOutputs(projectDir, a);
      outputs = checked.outputs.map(outputLine);
      outputsBad = checked.hadError;
    }
    const stderr = slotDir && slotReal ? await readStderrTail(slotDir) : '';
    if (r.rec.workingCopy) {
      const changed = await changedSharedOriginals(r.rec.workingCopy);
      if (changed.length > 0) {
        warnings.push(`shared platform file(s) changed during the task: ${changed.join(', ')} — run altplat verify`);
      }
    }
    let outcome: ResultReport['outcome'];
    if (d.kind === 'success') outcome = outputsBad ? 'compute_error' : 'success';
    else if (d.kind === 'aborted') outcome = 'aborted';
    else outcome = 'compute_error';
    const reason = d.kind === 'success'
      ? (outputsBad ? 'output file missing or too big' : undefined)
      : d.kind === 'aborted' && d.exitStatus === EXIT_ABORTED_VIA_GUI ? 'aborted by user' : d.message;
    const report: ResultReport = {
      name: r.rec.resultName, platform: a.platform, kind: a.kind, slot: r.rec.slot ?? null, outcome,
      exitStatus: d.exitStatus, outputs, stderr, elapsed: Math.round(r.rec.elapsed * 1000) / 1000,
      reason, code, message, restarts: r.rec.restarts, warnings,
    };
    await this.step(r, 'finished', { report });
    return this.cleanup(r, false);
  }

  /** Empty and remove the slot, remove the working copy, mark the task done. */
  private async cleanup(r: Running, previously: boolean): Promise<ResultReport> {
    if (r.rec.slot !== undefined) {
      const slotDir = this.paths.slotDir(r.rec.slot);
      if (await isRealDirOrMissing(slotDir)) {
        await cleanOutDir(this.paths.slots, slotDir);
        await fsp.rmdir(slotDir).catch((e) => (errnoCode(e) === 'ENOENT' ? undefined : Promise.reject(e)));
      } else {
        await removeInside(this.paths.slots, slotDir); // the planted link itself, never its target
      }
    }
    if (r.rec.workingCopy) await removeWorkingCopy(this.paths.altPlatformsWorking, r.rec.workingCopy.dir);
    await this.step(r, 'done');
    const report = r.rec.report!;
    return previously ? { ...report, previouslyFinished: true } : report;
  }
}

function rejected(name: string, platform: string, code: string, reason: string): ResultReport {
  return { name, platform, slot: null, outcome: 'rejected', exitStatus: null, outputs: [], stderr: '', elapsed: 0, reason, code, restarts: 0, warnings: [] };
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  }
}

