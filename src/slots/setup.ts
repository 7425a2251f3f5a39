import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';
import { escapeProjectUrl, PROJECTS_DIR } from '../paths.js';
import type { Assignment, ReplyFileRef } from '../scheduler/reply-types.js';
import { writeFileAtomic } from '../util/atomic.js';
import { verifyProjectFile } from './files.js';

/** Slot file names, as lib/filesys.h / lib/app_ipc.h spell them. */
import { FINISH_FILE, INIT_DATA_FILE, MMAP_FILE_NAME, SETUP_COMPLETE_FILE, STDERR_FILE, TEMPORARY_EXIT_FILE } from '../boinc.js';

// BOINC's slot file names are defined once, in src/boinc.ts.
export { FINISH_FILE, INIT_DATA_FILE, SETUP_COMPLETE_FILE, STDERR_FILE, TEMPORARY_EXIT_FILE };
export const MMAP_FILE = MMAP_FILE_NAME;

/**
 * The one-line soft-link file BOINC writes in place of a symlink (client/file_names.cpp make_soft_link):
 * the path from the slot to the physical file, relative, so the data dir can move.
 */
export function softLinkText(masterUrl: string, fileName: string): string {
  return `<soft_link>../../${PROJECTS_DIR}/${escapeProjectUrl(masterUrl)}/${fileName}</soft_link>\n`;
}

/** Where in the slot a file ref appears; open names may contain '/' (client/app_start.cpp setup_file). */
export function slotPath(slotDir: string, ref: ReplyFileRef): string {
  const p = path.resolve(slotDir, ref.openName);
  const rel = path.relative(slotDir, p);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new AltplatError('REPLY_BAD_FILENAME', `open name ${ref.openName} leaves the slot`);
  }
  return p;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return false;
    throw e;
  }
}

/** Every input and app file of the assignment is present in the project dir with the right size and md5. */
export async function checkInputs(projectDir: string, a: Assignment): Promise<void> {
  for (const ref of [...a.appVersion.fileRefs, ...a.workunit.fileRefs]) {
    await verifyProjectFile(path.join(projectDir, ref.fileName), a.files[ref.fileName]);
  }
}

/**
 * Fill a slot as client/app_start.cpp ACTIVE_TASK::setup_slot_dir does: app-version files, then workunit
 * inputs, then non-copied outputs each become a soft-link file at their open name (or a copy with
 * `<copy_file/>`; copied outputs get nothing — the app creates them); an existing entry is left alone,
 * which makes a half-done setup safe to repeat. `boinc_setup_complete` marks the end; if it is there
 * already, nothing is done (the restart case). Inputs are checked against nbytes/md5 first.
 */
export async function setupSlot(slotDir: string, projectDir: string, a: Assignment,
  hooks: { afterFile?: (openName: string) => void } = {}): Promise<{ skipped: boolean }> {
  if (await exists(path.join(slotDir, SETUP_COMPLETE_FILE))) return { skipped: true };
  await checkInputs(projectDir, a);
  // FILE_INFO::set_permissions (client/client_types.cpp): files marked <executable/> get their x bits,
  // whoever downloaded them into the project dir.
  for (const ref of a.appVersion.fileRefs) {
    if (!a.files[ref.fileName]?.executable) continue;
    const file = path.join(projectDir, ref.fileName);
    const st = await fsp.stat(file);
    if ((st.mode & 0o111) !== 0o111) await fsp.chmod(file, (st.mode | 0o555) & 0o7777);
  }
  const refs: Array<{ ref: ReplyFileRef; output: boolean }> = [
    ...a.appVersion.fileRefs.map((ref) => ({ ref, output: false })),
    ...a.workunit.fileRefs.map((ref) => ({ ref, output: false })),
    ...a.result.fileRefs.map((ref) => ({ ref, output: true })),
  ];
  for (const { ref, output } of refs) {
    const dest = slotPath(slotDir, ref);
    if (await exists(dest)) continue;
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    if (ref.copyFile) {
      if (output) continue;
      const tmp = `${dest}.copying`;
      await fsp.copyFile(path.join(projectDir, ref.fileName), tmp);
      if (a.files[ref.fileName]?.executable || ref.mainProgram) await fsp.chmod(tmp, 0o755);
      await fsp.rename(tmp, dest);
    } else {
      await writeFileAtomic(dest, softLinkText(a.masterUrl, ref.fileName));
    }
    hooks.afterFile?.(ref.openName);
  }
  // stderr.txt exists from the start so a manager that dies before writing still leaves a (empty) log.
  await fsp.appendFile(path.join(slotDir, STDERR_FILE), '');
  await writeFileAtomic(path.join(slotDir, SETUP_COMPLETE_FILE), '');
  return { skipped: false };
}
