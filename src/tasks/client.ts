import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';
import type { PlatformDefinition } from '../definition/types.js';
import type { DiscoveryResult } from '../discovery/discover.js';
import type { HostProbes } from '../host/probes.js';
import { openClientControl } from '../ipc/client.js';
import type { ClientControl } from '../ipc/contract.js';
import { SlotLock } from '../ipc/lockfile.js';
import { dataPaths, type DataPaths } from '../paths.js';
import type { PatchResult } from '../scheduler/request.js';
import { patchSchedulerRequest } from '../scheduler/request.js';
import type { ParsedReply } from '../scheduler/reply-types.js';
import { AltTask, atLeast } from './active-task.js';
import { DEFAULT_PREFS, type TaskContext, type VolunteerPrefs } from './context.js';
import { TypedEmitter, type AltplatEvents } from './events.js';
import { globalPreferencesElement, intake, parseReply, type ReplyInput } from './intake.js';
import { Journal, type TaskRecord } from './journal.js';
import { killOrphans } from './launch.js';
import { runManagerCleanup } from './manager-cleanup.js';
import { sameProject } from './project.js';
import type { ResultReport } from './report.js';
import { DefaultSlotAllocator, type SlotAllocator } from './slot-allocator.js';
import { defaultSystem, type AltplatSystem } from './system.js';
import { testHook } from './test-hooks.js';
import { removeInside } from '../slots/clean.js';
import { ioError } from '../util/io-error.js';
import { ensureOwnedDir, isRealDirInside } from '../util/owned-dir.js';
import { STATE_DIR } from '../paths.js';
import { rejectedReport } from './windup.js';

/** client/client_state.h TASK_POLL_PERIOD */
export const TASK_POLL_MS = 1000;

/** `<data>/altplat/client.lock`: held (fcntl) while a client has the data dir open. */
export const CLIENT_LOCK_FILE = 'client.lock';

/** Preferences as BOINC spells them in global_prefs.xml, accepted as well as the camelCase names. */
export interface BoincPrefNames {
  disk_interval: number;
  leave_apps_in_memory: boolean;
}

export interface AltplatClientOptions {
  /** The BOINC data dir. Required: the library never reads BOINC_DATA_DIR (the CLI does). */
  dataDir: string;
  /** Host platforms, primary first; default: detected (BOINC's detect_platforms). */
  hostPlatforms?: string[];
  /** Who hands out slots; default: the lowest free number among folders altplat made (DefaultSlotAllocator). */
  slots?: SlotAllocator;
  /** Effects: clock, spawn, kill, process listing, the apps' environment, log sink. */
  system?: Partial<AltplatSystem>;
  /** The volunteer's preferences; the library reads no preference file (the CLI does). */
  prefs?: Partial<VolunteerPrefs> & Partial<BoincPrefNames>;
  /** Serve `altplat task` on this unix socket path; default false (`altplat run` turns it on). */
  controlSocket?: string | false;
  /** Host probes handed to discovery (tests and clients with their own detection pin them). */
  probes?: Partial<HostProbes>;
  /** Poll period of running tasks in ms (BOINC: 1000). */
  pollMs?: number;
}

export interface AcceptResult {
  /** The reply's results the client now has as tasks (new ones and ones it already had), in reply order. */
  tasks: AltTask[];
  /** Results not taken on, with a named reason (outcome 'rejected'). */
  rejected: ResultReport[];
  /** The reply's `<global_preferences>` element, for the client to save (client/cs_scheduler.cpp). */
  globalPrefs?: string;
}

export interface AcceptOptions {
  /** The project's identity as the client knows it (its account's master URL). */
  masterUrl: string;
  /** @internal `altplat run --files`: why an input is missing. */
  explainMissing?: (file: string) => AltplatError | undefined;
}

const keyOf = (masterUrl: string, name: string) => `${masterUrl}\n${name}`;
/** Data dirs open in this process: refused at once, before the fcntl lock is even tried. */
const openHere = new Set<string>();

/** The given preferences in camelCase, BOINC's spelling accepted too; absent fields left out. */
function givenPrefs(p: AltplatClientOptions['prefs'] = {}): Partial<VolunteerPrefs> {
  const out: Partial<VolunteerPrefs> = {};
  const disk = p.diskInterval ?? p.disk_interval;
  const leave = p.leaveAppsInMemory ?? p.leave_apps_in_memory;
  if (disk !== undefined) out.diskInterval = disk;
  if (leave !== undefined) out.leaveAppsInMemory = leave;
  return out;
}

function normalisePrefs(p: AltplatClientOptions['prefs'] = {}): VolunteerPrefs {
  return { ...DEFAULT_PREFS, ...givenPrefs(p) };
}

/**
 * altplat as the per-task part of a TypeScript BOINC client: discovery and the request patch, then
 * tasks the client accepts from a reply and schedules itself (start, suspend, resume, quit, abort).
 * The client owns the task table's scheduling and its slots; altplat owns each task's life, journaled
 * under `<data>/altplat/`, and survives being killed at any step.
 *
 * @example
 *   const client = await AltplatClient.open({ dataDir: '/var/lib/boinc-client' });
 *   await client.discover();
 *   const { tasks } = await client.accept(replyBytes, { masterUrl: 'https://example.org/project/' });
 *   await tasks[0].start();
 *   console.log(await tasks[0].result);
 *   await client.close();
 */
export class AltplatClient extends TypedEmitter<AltplatEvents> {
  readonly paths: DataPaths;
  private readonly byKey = new Map<string, AltTask>();
  private readonly definitions = new Map<string, PlatformDefinition>();
  private lastDiscovery?: DiscoveryResult;
  private prefs: VolunteerPrefs;
  private closed = false;
  private closing?: Promise<void>;
  private server?: { close(): Promise<void> };
  private readonly ctx: TaskContext;

  private constructor(private readonly opts: AltplatClientOptions, private readonly lock: SlotLock, private readonly journal: Journal,
    slots: SlotAllocator, private readonly system: AltplatSystem, private readonly realRoot: string) {
    super();
    this.paths = dataPaths(opts.dataDir);
    this.prefs = normalisePrefs(opts.prefs);
    const openControl = (slotDir: string, o: { clock: () => number; initialCheckpointCpuTime: number }): Promise<ClientControl> => openClientControl(slotDir, o);
    this.ctx = {
      paths: this.paths, journal, system, slots, pollMs: opts.pollMs ?? TASK_POLL_MS,
      prefs: () => this.prefs,
      definition: (p) => this.definitions.get(p),
      openControl,
      emit: (event, payload) => this.emit(event, payload),
      hook: testHook,
      closing: () => this.closed || this.closing !== undefined,
    };
  }

  /**
   * Open a data dir: lock it (DATA_DIR_IN_USE if another client — in this process too — has it), read
   * the journal, recover altplat's own tasks (kill their orphans, run their manager cleanup, remove
   * altplat's leftovers). Every journaled task is listed at once, without a discover().
   */
  static async open(opts: AltplatClientOptions): Promise<AltplatClient> {
    if (!opts || typeof opts.dataDir !== 'string' || opts.dataDir === '') {
      throw new AltplatError('DATA_DIR_MISSING', 'AltplatClient.open needs a dataDir');
    }
    const paths = dataPaths(opts.dataDir);
    // Never create a data dir by accident (a typo in --data-dir); same codes as discovery.
    const st = await fsp.stat(paths.root).catch(() => undefined);
    if (!st) throw new AltplatError('DATA_DIR_MISSING', `data dir ${paths.root} does not exist`);
    if (!st.isDirectory()) throw new AltplatError('DATA_DIR_NOT_A_FOLDER', `data dir ${paths.root} is not a folder`);
    const realRoot = await fsp.realpath(paths.root);
    if (openHere.has(realRoot)) throw inUse(paths.root);
    openHere.add(realRoot);
    let lock: SlotLock | undefined;
    try {
      await ensureOwnedDir(paths.root, STATE_DIR); // i9a: a real folder, never a planted link
      // A real fcntl lock (the same helper as the slot lock), on altplat's own file: not BOINC's
      // lockfile, which the embedding client holds, and not the control socket.
      lock = await SlotLock.tryLock(paths.state, CLIENT_LOCK_FILE);
      if (!lock) throw inUse(paths.root);
      const journal = await Journal.open(paths.state);
      const system = defaultSystem(opts.system);
      const held = journal.all().filter((t) => t.step !== 'done' && t.slot !== undefined).map((t) => t.slot!);
      const slots = opts.slots ?? await DefaultSlotAllocator.open(paths, held);
      const client = new AltplatClient(opts, lock, journal, slots, system, realRoot);
      for (const rec of journal.all()) client.byKey.set(keyOf(rec.masterUrl, rec.resultName), new AltTask(client.ctx, rec));
      await client.recover();
      if (opts.controlSocket) {
        const { serveControl } = await import('../cli/control-socket.js');
        client.server = await serveControl(opts.controlSocket, (req) => client.control(req.op, req.result, req.project));
      }
      return client;
    } catch (e) {
      await lock?.unlock({ keepFile: true });
      openHere.delete(realRoot);
      throw e;
    }
  }

  /**
   * Recovery of altplat's own tasks only: orphans in their slots and working copies are killed (a
   * slot altplat did not acquire is never searched), a journaled manager's cleanup runs, and working
   * copies no unfinished task owns are removed (`alt_platforms_working/` is altplat's).
   */
  private async recover(): Promise<void> {
    const ownedWorking = new Set<string>();
    for (const rec of this.journal.all()) {
      if (rec.step === 'done') continue;
      if (rec.workingCopy) ownedWorking.add(path.basename(rec.workingCopy.dir));
      const slotDir = rec.slot !== undefined ? this.paths.slotDir(rec.slot) : undefined;
      const dirs = [slotDir, rec.workingCopy?.dir].filter((d): d is string => !!d);
      if (dirs.length > 0) await killOrphans(this.system, dirs, rec.pgid);
      // Only a manager that was running when the client died (step 'launched') may have left something
      // behind; one that exited after a quit ('exited') left what the next start resumes.
      if (slotDir && rec.managerCleanupCmdline && rec.step === 'launched') await runManagerCleanup(this.system, rec, slotDir);
    }
    let names: string[] = [];
    if (!(await isRealDirInside(this.paths.root, this.paths.altPlatformsWorking))) return; // i9a: a planted link is not swept through
    try {
      names = await fsp.readdir(this.paths.altPlatformsWorking);
    } catch (e) {
      // Missing: nothing to sweep. Not a folder: not ours to delete; the task that needs it reports it.
      if (errnoCode(e) !== 'ENOENT' && errnoCode(e) !== 'ENOTDIR') throw e;
    }
    for (const n of names) if (!ownedWorking.has(n)) await removeInside(this.paths.altPlatformsWorking, path.join(this.paths.altPlatformsWorking, n));
  }

  /** close() was called. */
  get isClosing(): boolean {
    return this.closed || this.closing !== undefined;
  }

  private assertOpen(): void {
    if (this.closed || this.closing) throw new AltplatError('CLIENT_CLOSED', 'this AltplatClient is closed');
  }

  /** Discover `<data>/alt_platforms/` (today's DiscoveryResult); accept() and patchRequest() use the last one. */
  async discover(): Promise<DiscoveryResult> {
    this.assertOpen();
    const { discoverPlatforms } = await import('../discovery/discover.js');
    const view = await discoverPlatforms({ dataDir: this.paths.root, hostPlatforms: this.opts.hostPlatforms, probes: this.opts.probes });
    this.definitions.clear();
    for (const p of view.platforms) if (p.status === 'ok' && p.definition) this.definitions.set(p.name, p.definition);
    this.lastDiscovery = view;
    return view;
  }

  /** Add the last discover()'s usable platforms to a scheduler request, byte-exact (src/scheduler/request.ts). */
  patchRequest(request: Uint8Array): PatchResult<Buffer>;
  patchRequest(request: string): PatchResult<string>;
  patchRequest(request: string | Uint8Array): PatchResult<string | Buffer> {
    this.assertOpen();
    const names = this.lastDiscovery?.advertised ?? [];
    return typeof request === 'string' ? patchSchedulerRequest(request, names) : patchSchedulerRequest(request, names);
  }

  /** @internal Parse a reply against the last discovery (host and advertised platforms). */
  async parseReply(reply: ReplyInput): Promise<ParsedReply> {
    if (!this.lastDiscovery) await this.discover();
    const d = this.lastDiscovery!;
    return parseReply(reply, { host: this.opts.hostPlatforms ?? d.hostPlatforms, alt: d.advertised });
  }

  /**
   * Take a scheduler reply's results as tasks: each is journaled, none is started. `masterUrl` is the
   * project as the client knows it; the reply must name the same project (REPLY_MASTER_URL_MISMATCH)
   * and its folder must be one safe name (PROJECT_URL_UNSAFE). `<result_abort>` of this project's
   * tasks is carried out (client/cs_scheduler.cpp handle_scheduler_reply).
   */
  async accept(reply: ReplyInput, opts: AcceptOptions): Promise<AcceptResult> {
    this.assertOpen();
    if (!opts || typeof opts.masterUrl !== 'string') throw new AltplatError('PROJECT_URL_UNSAFE', 'accept() needs the project\'s masterUrl');
    const parsed = await this.parseReply(reply);
    const masterUrl = opts.masterUrl;
    const got = await intake({
      reply: parsed, masterUrl, projectsDir: this.paths.projects,
      known: (name) => this.journal.get(masterUrl, name),
      definition: (p) => this.definitions.get(p), explainMissing: opts.explainMissing,
    });
    const tasks: AltTask[] = [];
    for (const rec of got.known) tasks.push(this.byKey.get(keyOf(rec.masterUrl, rec.resultName))!);
    // i9a: a full disk is a reason, not a crash: the results are rejected with it and nothing is journaled.
    const added = await this.journal.addAll(got.accepted).catch((e: unknown) => ioError(e, 'recording the tasks in the journal'));
    if (added instanceof AltplatError) {
      got.rejected.push(...got.accepted.map((r) => rejectedReport(r.resultName, r.assignment.platform, added.code, added.message)));
    }
    for (const rec of added instanceof AltplatError ? [] : added) {
      const t = new AltTask(this.ctx, rec);
      this.byKey.set(keyOf(rec.masterUrl, rec.resultName), t);
      tasks.push(t);
    }
    if (got.accepted.length > 0) this.ctx.hook('assigned');
    const order = new Map(parsed.assignments.map((a, i) => [a.result.name, i]));
    tasks.sort((x, y) => (order.get(x.name) ?? 0) - (order.get(y.name) ?? 0));
    await this.applyResultAborts(parsed, masterUrl);
    return { tasks, rejected: got.rejected, globalPrefs: globalPreferencesElement(parsed) };
  }

  /**
   * `<result_abort>` aborts a task of this project (running or not) with EXIT_ABORTED_BY_PROJECT;
   * `<result_abort_if_not_started>` only one that never ran. Unknown names are ignored, as BOINC only
   * logs them. The flag is journaled first, so the abort survives a crash before the wind-up.
   */
  private async applyResultAborts(reply: ParsedReply, masterUrl: string): Promise<void> {
    const notStarted = (t: TaskRecord) => !atLeast(t.step, 'launched') && t.restarts === 0 && t.elapsed === 0;
    const names = [...reply.resultAborts.map((n) => [n, false] as const), ...reply.resultAbortsIfNotStarted.map((n) => [n, true] as const)];
    for (const [name, onlyIfNotStarted] of names) {
      const t = this.byKey.get(keyOf(masterUrl, name));
      if (!t || t.step === 'finished' || t.step === 'done' || t.rec.projectAbort) continue;
      if (onlyIfNotStarted && !notStarted(t.rec)) continue;
      await t.projectAbort();
    }
  }

  /** Every journaled task (finished ones included, as tombstones), in the order they were accepted. */
  tasks(): AltTask[] {
    return [...this.byKey.values()];
  }

  /**
   * A task by result name and, when two projects share the name, project URL (BOINC keys tasks by
   * both: `boinccmd --task URL NAME`). A name alone that two projects use throws TASK_AMBIGUOUS.
   */
  task(name: string, masterUrl?: string): AltTask | undefined {
    const all = this.tasks().filter((t) => t.name === name && (masterUrl === undefined || t.masterUrl === masterUrl || sameProject(t.masterUrl, masterUrl)));
    if (all.length > 1) {
      throw new AltplatError('TASK_AMBIGUOUS', `${all.length} projects have a task named ${name}; name the project too`, { projects: all.map((t) => t.masterUrl) });
    }
    return all[0];
  }

  /** Change the volunteer's preferences (e.g. after saving a reply's global preferences). */
  setPrefs(prefs: AltplatClientOptions['prefs']): void {
    this.prefs = { ...this.prefs, ...givenPrefs(prefs) };
  }

  get preferences(): VolunteerPrefs {
    return { ...this.prefs };
  }

  /** `altplat task OP RESULT [--project URL]`: answered once the request is under way. */
  private async control(op: 'suspend' | 'resume' | 'quit' | 'abort', name: string, project?: string) {
    let t: AltTask | undefined;
    try {
      t = this.task(name, project);
    } catch (e) {
      if (e instanceof AltplatError) return { ok: false as const, code: e.code, error: e.message };
      throw e;
    }
    if (!t) return { ok: false as const, code: 'TASK_UNKNOWN', error: `no task named ${name}` };
    const done = op === 'suspend' ? t.suspend() : op === 'resume' ? t.resume() : op === 'quit' ? t.quit() : t.abort();
    // The state as the request left it (QUIT_PENDING, SUSPENDED, …): each call changes it at once.
    const state = t.processState;
    done.catch((e: unknown) => this.system.log('error', `task ${name} ${op}: ${(e as Error).message}`));
    return { ok: true as const, result: name, state };
  }

  /**
   * As the BOINC client does at exit (client/app_control.cpp ACTIVE_TASK_SET::exit_tasks): quit every
   * running task, kill any still running after the quit timeout (60 s), journal them; then stop. The
   * next open() lists them, and start() resumes a quit one from its checkpoint.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closing ??= (async () => {
      await Promise.all(this.tasks().map((t) => t.quitForExit()));
      await this.server?.close();
      await this.lock.unlock({ keepFile: true });
      openHere.delete(this.realRoot);
      this.closed = true;
    })();
    return this.closing;
  }
}

function inUse(dir: string): AltplatError {
  return new AltplatError('DATA_DIR_IN_USE', `the data dir ${dir} is open in another altplat client`, { dataDir: dir });
}
