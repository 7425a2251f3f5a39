import { readGlobalPrefs } from '../prefs/global-prefs.js';

/** lib/prefs.cpp GLOBAL_PREFS::defaults(): disk_interval = 60 ("at most every 60 s"). */
export const DEFAULT_DISK_INTERVAL = 60;

/**
 * The checkpoint period the client hands apps in init_data.xml: the volunteer's `disk_interval`
 * preference (client/app_start.cpp sets checkpoint_period from global_prefs.disk_interval), read as
 * the BOINC client reads its preferences (src/prefs/global-prefs.ts).
 */
export async function readCheckpointPeriod(dataDir: string): Promise<number> {
  return (await readGlobalPrefs(dataDir)).diskInterval;
}
