import { constants as fsc, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { STDERR_FILE } from '../boinc.js';
import { isRealDirOrMissing } from '../slots/clean.js';
import { splitCommandLine } from './cmdline.js';
import type { TaskRecord } from './journal.js';
import { killGroup } from './launch.js';
import type { AltplatSystem } from './system.js';

/** How long a manager's cleanup may take before its group is killed. */
export const CLEANUP_TIMEOUT_MS = 30_000;

/**
 * The opt-in manager cleanup (docs/MANAGER_CONTRACT.md, `<cleanup_cmdline>`): after altplat killed a
 * manager's process group, or when it recovers a journaled task, it runs `<manager> <cleanup_cmdline>`
 * in the slot so a backend can remove what lives outside the process group (a container, a VM the
 * hypervisor runs). Output is appended to stderr.txt; the wait is bounded; failure is only logged.
 */
export async function runManagerCleanup(sys: AltplatSystem, rec: TaskRecord, slotDir: string, timeoutMs = CLEANUP_TIMEOUT_MS): Promise<void> {
  const wc = rec.workingCopy?.dir;
  if (!rec.managerCleanupCmdline || !rec.managerFile || !wc) return;
  if (!(await isRealDirOrMissing(slotDir)) || !(await fsp.stat(slotDir).then(() => true, () => false))) return;
  const exe = path.join(wc, rec.managerFile);
  if (!(await fsp.access(exe, fsc.X_OK).then(() => true, () => false))) return;
  const fh = await fsp.open(path.join(slotDir, STDERR_FILE), fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o644).catch(() => undefined);
  try {
    const child = sys.spawn(exe, splitCommandLine(rec.managerCleanupCmdline), {
      cwd: slotDir, detached: true, stdio: ['ignore', fh ? fh.fd : 'ignore', fh ? fh.fd : 'ignore'],
      env: { ...sys.env, ALTPLAT_WORKING_DIR: wc, ALTPLAT_PLATFORM: rec.assignment.platform },
    });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        if (child.pid) killGroup(sys, child.pid);
        sys.log('warn', `manager cleanup of ${rec.resultName} did not end within ${timeoutMs / 1000} s; killed`);
      }, timeoutMs);
      child.once('error', (e) => { clearTimeout(timer); sys.log('warn', `manager cleanup of ${rec.resultName}: ${e.message}`); resolve(); });
      child.once('exit', () => { clearTimeout(timer); resolve(); });
    });
  } finally {
    await fh?.close();
  }
}
