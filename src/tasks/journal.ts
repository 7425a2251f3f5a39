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

export interface TaskRecord {
  resultName: string;
  assignment: Assignment;
  step: TaskStep;
  slot?: number;
  workingCopy?: { dir: string; platformDir: string; shared: SharedFileStamp[] };
  /** The running manager (or native program) and its process group, to kill an orphan after a crash. */
  /** The manager's file and cmdline when the working copy was made (so a restart does not need discovery). */
  managerFile?: string;
  managerCmdline?: string;
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

  private constructor(readonly file: string) {}

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
      for (const t of parsed.tasks) j.tasks.set(t.resultName, t);
    }
    return j;
  }

  get(name: string): TaskRecord | undefined {
    return this.tasks.get(name);
  }

  all(): TaskRecord[] {
    return [...this.tasks.values()];
  }

  /** Records that still have work to do (not finished, not done). */
  unfinished(): TaskRecord[] {
    return this.all().filter((t) => t.step !== 'done' && t.step !== 'finished');
  }

  /** Apply `patch` to a record (creating it with `init`) and persist the whole journal before returning. */
  async update(name: string, patch: Partial<TaskRecord>, init?: Omit<TaskRecord, 'updatedAt'>): Promise<TaskRecord> {
    const run = async (): Promise<TaskRecord> => {
      const old = this.tasks.get(name) ?? (init ? { ...init, updatedAt: '' } : undefined);
      if (!old) throw new AltplatError('JOURNAL_NO_TASK', `no task ${name} in the journal`);
      const next: TaskRecord = { ...old, ...patch, updatedAt: new Date().toISOString() };
      const prev = this.tasks.get(name);
      this.tasks.set(name, next);
      try {
        await writeFileAtomic(this.file, `${JSON.stringify({ version: JOURNAL_VERSION, tasks: this.all() }, null, 1)}\n`);
      } catch (e) {
        // i9a: not on disk, so not in memory either (a full disk must not leave a task only half taken on).
        if (prev) this.tasks.set(name, prev);
        else this.tasks.delete(name);
        throw e;
      }
      return next;
    };
    const p = this.chain.then(run, run);
    this.chain = p.then(() => undefined, () => undefined);
    return p;
  }
}
