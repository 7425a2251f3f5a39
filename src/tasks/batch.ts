import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError } from '../errors.js';
import { stageFiles } from '../slots/files.js';
import { inputFilesUsed } from '../scheduler/reply.js';
import type { AltplatClient } from './client.js';
import { checkIdentity } from './intake.js';
import type { ResultReport } from './report.js';
import type { AltTask } from './active-task.js';

export interface BatchInput {
  /** A scheduler reply file to take assignments from; without it, only unfinished tasks are resumed. */
  replyFile?: string;
  /** Stage the reply's input/app files from this folder into the project dir first. */
  filesDir?: string;
  /** How many tasks run at the same time (default 1). */
  maxTasks?: number;
  /** The project's identity; default: the reply's own <master_url>. */
  masterUrl?: string;
  /** The reply's <global_preferences>, before any task starts (the CLI saves them and applies them). */
  onGlobalPrefs?: (xml: string) => void | Promise<void>;
}

export interface RunResult {
  results: ResultReport[];
}

/**
 * `altplat run` on top of the client API: accept a reply, then run every unfinished task to its end
 * (or until the client closes), `maxTasks` at a time, in journal order. The report lists rejections
 * first, then the tasks in the order they were accepted.
 */
export async function runBatch(client: AltplatClient, input: BatchInput = {}): Promise<RunResult> {
  const reports: ResultReport[] = [];
  await client.discover();
  const done = new Set<AltTask>();
  if (input.replyFile) {
    let text: Buffer;
    try {
      text = await fsp.readFile(input.replyFile);
    } catch (e) {
      throw new AltplatError('REPLY_UNREADABLE', `cannot read scheduler reply ${input.replyFile}: ${(e as Error).message}`, undefined, { cause: e });
    }
    const reply = await client.parseReply(text);
    const masterUrl = input.masterUrl ?? reply.masterUrl;
    const projectDir = path.join(client.paths.projects, checkIdentity(masterUrl, reply));
    // A wrong file in --files never lands in the project dir, and it fails only the results that need
    // it (as a download that fails verification does in BOINC), not the whole run.
    const refused = new Map<string, AltplatError>();
    if (input.filesDir) {
      for (const info of inputFilesUsed(reply)) { // i9a: only what the results use
        try {
          await stageFiles(input.filesDir, projectDir, [info]);
        } catch (e) {
          if (!(e instanceof AltplatError)) throw e;
          refused.set(info.name, e);
        }
      }
    }
    const acc = await client.accept(reply, { masterUrl, explainMissing: (f) => refused.get(f) });
    reports.push(...acc.rejected);
    if (acc.globalPrefs && input.onGlobalPrefs) await input.onGlobalPrefs(acc.globalPrefs);
    for (const t of acc.tasks) {
      if (t.state === 'finished' && t.previouslyFinished && t.step === 'done') {
        reports.push({ ...(await t.result), previouslyFinished: true });
        done.add(t);
      }
    }
  }
  const queue = client.tasks().filter((t) => t.state !== 'finished');
  const report = async (t: AltTask): Promise<ResultReport> => {
    if (client.isClosing) return t.quitReport('quit before start');
    if (t.state === 'suspended') return t.quitReport('suspended; not started until resumed');
    const stopped = t.stopped();
    await t.start();
    const r = await stopped;
    return t.previouslyFinished ? { ...r, previouslyFinished: true } : r;
  };
  const workers = Math.max(1, input.maxTasks ?? 1);
  const next = async (): Promise<void> => {
    for (let t = queue.shift(); t; t = queue.shift()) reports.push(await report(t));
  };
  await Promise.all(Array.from({ length: workers }, next));
  // Report in accept order (rejections first), not in completion order.
  const order = new Map(client.tasks().map((t, i) => [t.name, i]));
  const rank = (r: ResultReport) => (r.outcome === 'rejected' ? -1 : order.get(r.name) ?? Number.MAX_SAFE_INTEGER);
  reports.sort((x, y) => rank(x) - rank(y));
  return { results: reports };
}
