import * as fs from 'node:fs';
import { constants as fsc, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { errnoCode } from '../errors.js';
import type { Assignment } from '../scheduler/reply-types.js';
import { ensureOwnedDir, isRealDirInside, moveRegularFile } from '../util/owned-dir.js';
import { md5RegularFile, projectRoots } from './files.js';
import { slotPath, STDERR_FILE } from './setup.js';

/** lib/error_numbers.h */
import { ERR_FILE_TOO_BIG, ERR_NOT_FOUND } from '../boinc.js';

export { ERR_FILE_TOO_BIG, ERR_NOT_FOUND };
/** client/app_control.cpp read_stderr_file keeps the last 63 KB of stderr.txt. */
export const STDERR_TAIL_BYTES = 63 * 1024;

export interface OutputReport {
  name: string;
  /** Absolute path in the project dir (present only when the file is there). */
  path?: string;
  nbytes?: number;
  md5?: string;
  /** 0 = present; ERR_NOT_FOUND (-161) missing; ERR_FILE_TOO_BIG (-131) over max_nbytes (deleted). */
  status: number;
  optional: boolean;
}

/**
 * client/app_start.cpp copy_output_files: each `<copy_file/>` output is renamed from the slot into the
 * project dir (a missing one is only noted here; the check below decides).
 */
export async function moveCopiedOutputs(slotDir: string, projectDir: string, a: Assignment): Promise<void> {
  const { dataRoot } = projectRoots(projectDir);
  // slots/ and slots/N themselves: never collect through a link (the caller checked slots/N; this is the chain).
  if (!(await isRealDirInside(path.dirname(path.dirname(slotDir)), slotDir))) return;
  for (const ref of a.result.fileRefs) {
    if (!ref.copyFile) continue;
    const from = slotPath(slotDir, ref);
    // An open name with subdirectories ("results/out.txt"): the app may have replaced "results" with a
    // symlink to a folder outside the data dir; renaming through it would move (delete) a file there.
    if (!(await realDirsUpTo(slotDir, from))) continue;
    const to = path.join(projectDir, ref.fileName);
    // The project dir and the output's sub-folders must be real folders of the data dir (created if
    // missing); a link planted at `to` itself is replaced by the rename, never written through.
    await ensureOwnedDir(dataRoot, path.relative(dataRoot, path.dirname(to)));
    // Only a regular file is collected: a symlink planted under an output name is not followed.
    await moveRegularFile(from, to);
  }
}

/** lstat as a direct call (the folders of a slot just used); undefined when it fails. */
function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

/**
 * Every folder between `root` and `file` (exclusive) is a real directory, not a symlink: then a path
 * operation on `file` stays inside `root` whatever the app left in its slot.
 */
export async function realDirsUpTo(root: string, file: string): Promise<boolean> {
  const parts = path.relative(root, path.dirname(file)).split(path.sep).filter((p) => p !== '');
  let dir = root;
  for (const part of parts) {
    dir = path.join(dir, part);
    const st = lstatOrUndefined(dir);
    if (!st || !st.isDirectory()) return false;
  }
  return true;
}

/**
 * client/cs_apps.cpp CLIENT_STATE::app_finished: every output must exist unless `<optional/>`; one over
 * `max_nbytes` is deleted with ERR_FILE_TOO_BIG; the rest get nbytes and md5. Skipped entirely when the
 * user or project aborted the task (the same switch on exit_status as BOINC).
 */
export async function checkOutputs(projectDir: string, a: Assignment): Promise<{ outputs: OutputReport[]; hadError: boolean }> {
  const outputs: OutputReport[] = [];
  let hadError = false;
  const { dataRoot } = projectRoots(projectDir);
  for (const ref of a.result.fileRefs) {
    const info = a.files[ref.fileName];
    const file = path.join(projectDir, ref.fileName);
    let st;
    // Nothing is read through a folder that is a link: the output then counts as missing.
    if (await isRealDirInside(dataRoot, path.dirname(file))) {
      try {
        st = fs.lstatSync(file);
      } catch (e) {
        if (errnoCode(e) !== 'ENOENT' && errnoCode(e) !== 'ENOTDIR') throw e;
      }
    }
    if (!st || !st.isFile()) {
      if (!ref.optional) hadError = true;
      outputs.push({ name: ref.fileName, status: ERR_NOT_FOUND, optional: ref.optional });
      continue;
    }
    if (info?.maxNbytes !== undefined && st.size > info.maxNbytes) {
      await fsp.unlink(file);
      hadError = true;
      outputs.push({ name: ref.fileName, nbytes: st.size, status: ERR_FILE_TOO_BIG, optional: ref.optional });
      continue;
    }
    outputs.push({ name: ref.fileName, path: file, nbytes: st.size, md5: await md5RegularFile(file), status: 0, optional: ref.optional });
  }
  return { outputs, hadError };
}

/** The last 63 KB of the slot's stderr.txt ('' when there is none). */
export async function readStderrTail(slotDir: string, limit = STDERR_TAIL_BYTES): Promise<string> {
  // Direct calls: at most 63 KB from the page cache.
  let fd: number;
  try {
    // O_NOFOLLOW: a stderr.txt the app replaced by a symlink (to /etc/shadow, say) is not read into the report.
    fd = fs.openSync(path.join(slotDir, STDERR_FILE), fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ELOOP') return '';
    throw e;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return ''; // a fifo planted at the name is not read (it would block)
    const start = Math.max(0, st.size - limit);
    const buf = Buffer.alloc(st.size - start);
    const n = fs.readSync(fd, buf, 0, buf.length, start);
    return buf.toString('utf8', 0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * client/app.cpp ACTIVE_TASK::move_trickle_file: the app's `trickle_up.xml` moves from the slot to
 * `<projectDir>/trickle_up_<result>_<unix time>.xml` for the embedding client to send; if it cannot be
 * moved it is removed. Only a regular file is moved (a planted symlink is just removed).
 */
export async function moveTrickleUp(slotDir: string, projectDir: string, resultName: string, now = Date.now()): Promise<string | undefined> {
  const from = path.join(slotDir, 'trickle_up.xml');
  const st = await fsp.lstat(from).catch(() => undefined);
  if (!st) return undefined;
  const to = path.join(projectDir, `trickle_up_${resultName}_${Math.floor(now / 1000)}.xml`);
  const { dataRoot } = projectRoots(projectDir);
  if (st.isFile() && await isRealDirInside(dataRoot, projectDir).catch(() => false)) {
    try {
      await fsp.rename(from, to);
      return to;
    } catch {
      // fall through: remove it, as BOINC does
    }
  }
  await fsp.rm(from, { force: true });
  return undefined;
}
