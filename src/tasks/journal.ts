import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';
import type { Assignment } from '../scheduler/reply-types.js';
import type { SharedFileStamp } from '../slots/working-copy.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { ExitDecision } from './exit-rules.js';
import type { ResultReport } from './report.js';
import { ensureOwnedDir } from '../util/owned-dir.js';

export const JOURNAL_FILE = 'tasks.json';
const JOURNAL_VERSION = 1;

/**
 * Where a task is in its life. Each step is written to the journal before the next begins, so a
 * restarted client knows exactly what has been done:
 * assigned → slot_chosen → slot_ready → working_copy → launched ⇄ (exited → relaunch) → finished → done.
 */
export type TaskStep = 'assigned' | 'slot_chosen' | 'slot_ready' | 'working_copy' | 'launched' | 'exited' | 'finished' | 'done';

/** BOINC keys a task by (project URL, result name): `boinccmd --task URL NAME`. */
export interface TaskKey {
  masterUrl: string;
  resultName: string;
}

const keyText = (k: TaskKey) => `${k.masterUrl}\n${k.resultName}`;

export interface TaskRecord {
  resultName: string;
  /** The project's identity as the client gave it (`accept(reply, {masterUrl})`); equals assignment.masterUrl. */
  masterUrl: string;
  assignment: Assignment;
  step: TaskStep;
  slot?: number;
  workingCopy?: { dir: string; platformDir: string; shared: SharedFileStamp[] };
  /**
   * The manager (backend) the working copy was made for: name (`manager.name ?? manager.fileName`),
   * file, cmdline and opt-in cleanup cmdline, so a relaunch or a recovery uses the same one without
   * discovery, even if the definition changed since.
   */
  managerName?: string;
  managerFile?: string;
  managerCmdline?: string;
  managerCleanupCmdline?: string;
  /** The backend's virtual CPU and machine type (issue 12), for the job file of every relaunch. */
  managerCpuModel?: string;
  managerMachineType?: string;
  /** The running manager (or native program) and its process group, to kill an orphan after a crash. */
  pid?: number;
  pgid?: number;
  /** Premature and temporary exits since the last checkpoint (client/app_control.cpp). */
  prematureExits: number;
  restarts: number;
  checkpointCpuTime: number;
  fractionDone: number;
  /** Elapsed seconds over all runs, up to the last journal write. */
  elapsed: number;
  /** The project asked for this result to be aborted (`<result_abort>` in a reply): it ends with 202. */
  projectAbort?: boolean;
  /** Set when the task was quit (by `altplat task quit` or SIGINT): resumable by the next run. */
  quitRequested?: boolean;
  /** Suspended by the embedder (BOINC: suspended via the GUI); never launched until resumed. Survives a restart. */
  suspended?: boolean;
  /** The suspend removed it from memory (BOINC ACTIVE_TASK::preempt): resume() launches it again. */
  removedBySuspend?: boolean;
  /** Elapsed time at the last checkpoint (BOINC's checkpoint_elapsed_time); 0 = never checkpointed. */
  checkpointElapsed?: number;
  /** How the last run ended when it ended the task (journaled at 'exited'), so recovery never relaunches it. */
  decision?: Exclude<ExitDecision, { kind: 'restart' }>;
  finishMessage?: string;
  /** Final report, written at 'finished' and kept forever so the task never runs again. */
  report?: ResultReport;
  updatedAt: string;
}

interface JournalFile {
  version: number;
  tasks: TaskRecord[];
}

/**
 * `<dataDir>/altplat/tasks.json`: one record per result, rewritten whole and atomically
 * (writeFileAtomic) at every step change, so a SIGKILL at any moment leaves the previous or the next
 * state, never a torn one. Writes are serialised: concurrent tasks update it one at a time.
 */
export class Journal {
  private tasks = new Map<string, TaskRecord>();
  private chain: Promise<void> = Promise.resolve();

  /** Each record's text in the file, by record: records are replaced, never changed, so it stays valid. */
  private readonly texts = new WeakMap<TaskRecord, string>();

  private constructor(readonly file: string) {}

  /**
   * The whole file, as `JSON.stringify({version, tasks}, null, 1)` writes it, from each record's cached
   * text: a write re-serialises only the records that changed, not every finished task's tombstone.
   */
  private serialize(): string {
    const parts = this.all().map((t) => {
      let text = this.texts.get(t);
      if (text === undefined) {
        // Two levels deeper than a top-level value (JSON strings never hold a raw newline).
        text = JSON.stringify(t, null, 1).replace(/\n/g, '\n  ');
        this.texts.set(t, text);
      }
      return text;
    });
    const tasks = parts.length === 0 ? '[]' : `[\n  ${parts.join(',\n  ')}\n ]`;
    return `{\n "version": ${JOURNAL_VERSION},\n "tasks": ${tasks}\n}\n`;
  }

  static async open(stateDir: string): Promise<Journal> {
    await ensureOwnedDir(path.dirname(stateDir), path.basename(stateDir)); // i9a: a real folder, never a link
    const j = new Journal(path.join(stateDir, JOURNAL_FILE));
    let text: string | undefined;
    try {
      text = await fsp.readFile(j.file, 'utf8');
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
    if (text !== undefined) {
      let parsed: JournalFile;
      try {
        parsed = JSON.parse(text) as JournalFile;
      } catch (e) {
        throw new AltplatError('JOURNAL_CORRUPT', `task journal ${j.file} is not valid JSON; it was left unchanged`, undefined, { cause: e });
      }
      if (parsed.version !== JOURNAL_VERSION || !Array.isArray(parsed.tasks)) {
        throw new AltplatError('JOURNAL_VERSION', `task journal ${j.file} has an unknown format (version ${String(parsed.version)})`);
      }
      // Records written before the key had the URL take it from their assignment.
      for (const t of parsed.tasks) {
        t.masterUrl ??= t.assignment.masterUrl;
        j.tasks.set(keyText(t), t);
      }
    }
    return j;
  }

  get(masterUrl: string, name: string): TaskRecord | undefined {
    return this.tasks.get(keyText({ masterUrl, resultName: name }));
  }

  /** Every record of that result name (two projects may use the same name). */
  byName(name: string): TaskRecord[] {
    return this.all().filter((t) => t.resultName === name);
  }

  all(): TaskRecord[] {
    return [...this.tasks.values()];
  }

  /** Records that still have work to do (not finished, not done). */
  unfinished(): TaskRecord[] {
    return this.all().filter((t) => t.step !== 'done' && t.step !== 'finished');
  }

  /** Add new records with one write (accept() of a reply: one fsync, not one per result). Known keys are kept. */
  async addAll(inits: Array<Omit<TaskRecord, 'updatedAt'>>): Promise<TaskRecord[]> {
    const run = async (): Promise<TaskRecord[]> => {
      const now = new Date().toISOString();
      const out: TaskRecord[] = [];
      const known = new Set(inits.map(keyText).filter((k) => this.tasks.has(k)));
      for (const init of inits) {
        const k = keyText(init);
        const rec = this.tasks.get(k) ?? { ...init, updatedAt: now };
        this.tasks.set(k, rec);
        out.push(rec);
      }
      if (inits.length > 0) {
        try {
          await writeFileAtomic(this.file, this.serialize());
        } catch (e) {
          // Not on disk, so not in memory either (as update()).
          for (const init of inits) if (!known.has(keyText(init))) this.tasks.delete(keyText(init));
          throw e;
        }
      }
      return out;
    };
    const p = this.chain.then(run, run);
    this.chain = p.then(() => undefined, () => undefined);
    return p;
  }

  /** Apply `patch` to a record (creating it with `init`) and persist the whole journal before returning. */
  async update(key: TaskKey, patch: Partial<TaskRecord>, init?: Omit<TaskRecord, 'updatedAt'>): Promise<TaskRecord> {
    const k = keyText(key);
    const run = async (): Promise<TaskRecord> => {
      const old = this.tasks.get(k) ?? (init ? { ...init, updatedAt: '' } : undefined);
      if (!old) throw new AltplatError('JOURNAL_NO_TASK', `no task ${key.resultName} of ${key.masterUrl} in the journal`);
      const next: TaskRecord = { ...old, ...patch, updatedAt: new Date().toISOString() };
      const prev = this.tasks.get(k);
      this.tasks.set(k, next);
      try {
        await writeFileAtomic(this.file, this.serialize());
      } catch (e) {
        // i9a: not on disk, so not in memory either (a full disk must not leave a task only half taken on).
        if (prev) this.tasks.set(k, prev);
        else this.tasks.delete(k);
        throw e;
      }
      return next;
    };
    const p = this.chain.then(run, run);
    this.chain = p.then(() => undefined, () => undefined);
    return p;
  }
}
