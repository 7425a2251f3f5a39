import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { JOB_FILE, parseJob } from '../job/jobfile.js';
import type { Engine } from './engine.js';
import { LABEL_DATA_DIR, LABEL_RESULT, LABEL_SLOT, realDir } from './names.js';

/**
 * The manager's `--cleanup` verb (the definition's <cleanup_cmdline>), run by the client with cwd =
 * the slot after it has killed the manager's process group, and at recovery: a container lives outside
 * that group (conmon is re-parented to pid 1), so killing the group does not end it. Removes every
 * container labelled with this slot — and nothing else. Returns the names removed.
 */
export async function cleanupSlot(engine: Engine, slotDir: string): Promise<string[]> {
  const names = await engine.namesWithLabel(LABEL_SLOT, realDir(slotDir));
  for (const n of names) await engine.remove(n);
  return names;
}

/** The result a slot's job file names, or undefined when the slot holds no (readable) job. */
async function slotResult(slot: string): Promise<string | undefined> {
  try {
    return parseJob(await fsp.readFile(path.join(slot, JOB_FILE), 'utf8')).resultName;
  } catch {
    return undefined;
  }
}

/**
 * The start-up sweep: containers of this data dir (by label) whose slot no longer holds their task —
 * the slot is gone, or its job file names another result — are orphans of altplat's own finished or
 * abandoned tasks, and are removed. Containers of other data dirs, and any container without altplat's
 * labels, are never looked at.
 */
export async function sweepOrphans(engine: Engine, dataDir: string, keep?: string): Promise<string[]> {
  const removed: string[] = [];
  for (const n of await engine.namesWithLabel(LABEL_DATA_DIR, realDir(dataDir))) {
    if (n === keep) continue;
    const st = await engine.inspect(n);
    if (!st || st.labels[LABEL_DATA_DIR] !== realDir(dataDir)) continue;
    const slot = st.labels[LABEL_SLOT];
    if (slot && (await slotResult(slot)) === st.labels[LABEL_RESULT]) continue;
    await engine.remove(n);
    removed.push(n);
  }
  return removed;
}
