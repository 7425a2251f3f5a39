import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { AltplatError, errnoCode } from '../errors.js';
import { ensureOwnedDir } from '../util/owned-dir.js';
import { cleanOutDir } from './clean.js';

/**
 * Pick a slot the way client/app.cpp ACTIVE_TASK::get_free_slot does: scan 0, 1, 2, …; skip numbers an
 * active task holds; an existing folder is used if it can be emptied, else the next number is tried; a
 * missing one is created. BOINC gives up past n_usable_cpus * 100. `slots/` itself must be a real
 * folder of the data dir (OWNED_DIR_NOT_REAL when it is a link: no slot is made or emptied through it).
 */
export async function chooseFreeSlot(slotsDir: string, inUse: ReadonlySet<number>,
  maxSlots = Math.max(1, os.availableParallelism()) * 100): Promise<number> {
  await ensureOwnedDir(path.dirname(slotsDir), path.basename(slotsDir));
  for (let j = 0; j <= maxSlots; j++) {
    if (inUse.has(j)) continue;
    const dir = path.join(slotsDir, String(j));
    let st;
    try {
      st = await fsp.lstat(dir);
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
    if (!st) {
      try {
        await fsp.mkdir(dir);
        return j;
      } catch (e) {
        if (errnoCode(e) === 'EEXIST') continue; // someone else took it between lstat and mkdir
        throw e;
      }
    }
    if (!st.isDirectory()) continue;
    try {
      await cleanOutDir(slotsDir, dir);
      return j;
    } catch {
      // BOINC: a slot that cannot be emptied is skipped, not fatal.
    }
  }
  throw new AltplatError('NO_FREE_SLOT', `no free slot under ${slotsDir} (tried 0..${maxSlots})`);
}
