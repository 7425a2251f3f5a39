import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { readGlobalPrefs } from '../prefs/global-prefs.js';
import { writeFileAtomic } from '../util/atomic.js';
import { STATE_DIR } from '../paths.js';
import type { VolunteerPrefs } from '../tasks/context.js';

/** lib/prefs.cpp GLOBAL_PREFS::defaults(): disk_interval = 60 ("at most every 60 s"), leave_apps_in_memory 0. */
export const DEFAULT_DISK_INTERVAL = 60;

/**
 * `<data>/altplat/global_prefs.xml`: the last scheduler reply's `<global_preferences>`, saved by the CLI
 * (client/cs_scheduler.cpp save_global_prefs) — not the data dir's own global_prefs.xml, which a real
 * BOINC client may own.
 */
export const SAVED_PREFS_FILE = 'global_prefs.xml';

/**
 * The volunteer's preferences for `altplat run`, read as the BOINC client reads them
 * (src/prefs/global-prefs.ts, client/cs_prefs.cpp read_global_prefs): the newer of the data dir's
 * global_prefs.xml and the reply preferences altplat saved in `<data>/altplat/global_prefs.xml`, then
 * global_prefs_override.xml (the volunteer's local settings) on top.
 */
export async function readVolunteerPrefs(dataDir: string): Promise<VolunteerPrefs> {
  const p = await readGlobalPrefs(dataDir);
  return { diskInterval: p.diskInterval, leaveAppsInMemory: p.leaveAppsInMemory };
}

/** The checkpoint period handed to apps in init_data.xml (client/app_start.cpp: global_prefs.disk_interval). */
export async function readCheckpointPeriod(dataDir: string): Promise<number> {
  return (await readVolunteerPrefs(dataDir)).diskInterval;
}

/** Save a reply's `<global_preferences>` under `<data>/altplat/` (atomically). */
export async function saveReplyPrefs(dataDir: string, xml: string): Promise<void> {
  await fsp.mkdir(path.join(dataDir, STATE_DIR), { recursive: true });
  await writeFileAtomic(path.join(dataDir, STATE_DIR, SAVED_PREFS_FILE), `${xml}\n`);
}
