import { constants as fsc, lstatSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';
import { escapeProjectUrl, PROJECTS_DIR } from '../paths.js';
import type { Assignment, ReplyFileRef } from '../scheduler/reply-types.js';
import { fsyncDir, fsyncFile, writeFileAtomic, writeFilesAtomic } from '../util/atomic.js';
import { appendNoFollow, assertRealDirInside, ensureOwnedDir } from '../util/owned-dir.js';
import { projectRoots, verifyProjectFile } from './files.js';

/** Slot file names, as lib/filesys.h / lib/app_ipc.h spell them. */
import { FINISH_FILE, INIT_DATA_FILE, MMAP_FILE_NAME, SETUP_COMPLETE_FILE, STDERR_FILE, TEMPORARY_EXIT_FILE } from '../boinc.js';

// BOINC's slot file names are defined once, in src/boinc.ts. (SETUP_COMPLETE_FILE: not written by 7.20.5;
// BOINC 8.x's client/app_start.cpp setup_slot_dir writes it once the slot is filled, for async copies.)
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

/** lstat of an entry of a folder just checked: direct, as the owned-folder walks (src/util/owned-dir.ts). */
async function exists(p: string): Promise<boolean> {
  return lstatSync(p, { throwIfNoEntry: false }) !== undefined;
}

/**
 * Every input and app file of the assignment is present in the project dir with the right size and md5,
 * in real folders of the data dir, and not a link to anything outside its projects folder
 * (INPUT_OUTSIDE_DATA_DIR, OWNED_DIR_NOT_REAL).
 */
export async function checkInputs(projectDir: string, a: Assignment): Promise<void> {
  for (const ref of [...a.appVersion.fileRefs, ...a.workunit.fileRefs]) {
    await verifyProjectFile(path.join(projectDir, ref.fileName), a.files[ref.fileName], { projectDir });
  }
  await checkOutputPaths(projectDir, a);
}

/**
 * Before a result is taken on, nothing may wait at its outputs' names in the project dir but a plain
 * file: a symbolic link (or a hard link to a file elsewhere, or a folder) planted there would be written
 * through by a native app, or replaced by altplat's move. Such a result is refused (OUTPUT_PATH_PLANTED)
 * and nothing is touched; dropPlantedOutputs handles one planted after the task was taken on.
 */
export async function checkOutputPaths(projectDir: string, a: Assignment): Promise<void> {
  const { dataRoot } = projectRoots(projectDir);
  for (const ref of a.result.fileRefs) {
    const file = path.join(projectDir, ref.fileName);
    if (!(await assertRealDirInside(dataRoot, path.dirname(file), { allowMissing: true }))) continue;
    const st = lstatSync(file, { throwIfNoEntry: false }); // direct, as the folder walk before it
    if (!st || (st.isFile() && st.nlink === 1)) continue;
    const what = st.isSymbolicLink() ? `a symbolic link (to ${await fsp.readlink(file).catch(() => '?')})`
      : st.isFile() ? `a hard link (${st.nlink} names)` : 'not a regular file';
    throw new AltplatError('OUTPUT_PATH_PLANTED', `output ${ref.fileName} already exists in the project dir as ${what}; the result is refused and it is left alone`, { file: ref.fileName });
  }
}

/**
 * A result's outputs that the app writes straight into the project dir (no `<copy_file/>`: the slot has
 * a soft-link file naming `projects/<P>/<name>`): anything already at such a name that is not a plain
 * regular file — a symbolic link, or a hard link to a file elsewhere — would make the app write through
 * it, so that entry itself is removed before the app starts (its target is never touched). A partial
 * output of an earlier run of the same task is a plain file and stays. The folders must be real.
 */
export async function dropPlantedOutputs(projectDir: string, a: Assignment): Promise<string[]> {
  const { dataRoot } = projectRoots(projectDir);
  const dropped: string[] = [];
  for (const ref of a.result.fileRefs) {
    const file = path.join(projectDir, ref.fileName);
    if (!(await assertRealDirInside(dataRoot, path.dirname(file), { allowMissing: true }))) continue;
    const st = lstatSync(file, { throwIfNoEntry: false }); // direct, as the folder walk before it
    if (!st || (st.isFile() && st.nlink === 1)) continue;
    if (st.isDirectory()) {
      throw new AltplatError('OUTPUT_PATH_IS_A_FOLDER', `output ${ref.fileName} names a folder in the project dir; it is not removed`, { file: ref.fileName });
    }
    await fsp.unlink(file);
    dropped.push(ref.fileName);
  }
  return dropped;
}

/**
 * Fill a slot as client/app_start.cpp ACTIVE_TASK::setup_slot_dir does: app-version files, then workunit
 * inputs, then non-copied outputs each become a soft-link file at their open name (or a copy with
 * `<copy_file/>`; copied outputs get nothing — the app creates them); an existing entry is left alone,
 * which makes a half-done setup safe to repeat. `boinc_setup_complete` marks the end; if it is there
 * already, nothing is done (the restart case). Inputs are checked against nbytes/md5 first, unless the
 * caller has just checked them (`inputsChecked`: runTask checks them before it takes a slot). The
 * soft-link files are written together (writeFilesAtomic: each is durable before the marker is written).
 */
export async function setupSlot(slotDir: string, projectDir: string, a: Assignment,
  hooks: { afterFile?: (openName: string) => void; inputsChecked?: boolean } = {}): Promise<{ skipped: boolean }> {
  // slots/ and slots/N must be real folders of the data dir (the data dir is <slotDir>/../..).
  const slotsParent = path.dirname(path.dirname(slotDir));
  await ensureOwnedDir(slotsParent, path.relative(slotsParent, slotDir));
  await dropPlantedOutputs(projectDir, a);
  if (await exists(path.join(slotDir, SETUP_COMPLETE_FILE))) return { skipped: true };
  if (!hooks.inputsChecked) await checkInputs(projectDir, a);
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
  const links: Array<{ file: string; data: string; openName: string }> = [];
  const copiedDirs = new Set<string>();
  for (const { ref, output } of refs) {
    const dest = slotPath(slotDir, ref);
    if (await exists(dest)) continue;
    await ensureOwnedDir(slotDir, path.relative(slotDir, path.dirname(dest)));
    if (ref.copyFile) {
      if (output) continue;
      const tmp = `${dest}.copying`;
      await fsp.rm(tmp, { force: true });
      await fsp.copyFile(path.join(projectDir, ref.fileName), tmp, fsc.COPYFILE_EXCL);
      if (a.files[ref.fileName]?.executable || ref.mainProgram) await fsp.chmod(tmp, 0o755);
      await fsyncFile(tmp);
      await fsp.rename(tmp, dest);
      copiedDirs.add(path.dirname(dest));
      hooks.afterFile?.(ref.openName);
    } else if (!links.some((l) => l.file === dest)) {
      links.push({ file: dest, data: softLinkText(a.masterUrl, ref.fileName), openName: ref.openName });
    }
  }
  // Every entry is durable before the marker exists (copies fsynced before their rename, their folders after).
  await Promise.all([writeFilesAtomic(links), ...[...copiedDirs].map(fsyncDir)]);
  for (const l of links) hooks.afterFile?.(l.openName);
  // stderr.txt exists from the start so a manager that dies before writing still leaves a (empty) log.
  await appendNoFollow(path.join(slotDir, STDERR_FILE), '');
  // The marker needs no fsync of its own: the entries it vouches for are durable already, and a marker
  // lost in a power cut only makes the next start redo the set-up, which leaves every entry alone.
  await writeFileAtomic(path.join(slotDir, SETUP_COMPLETE_FILE), '', 0o644, { durable: false });
  return { skipped: false };
}
