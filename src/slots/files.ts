import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { constants as fsc, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';
import type { ReplyFileInfo } from '../scheduler/reply-types.js';
import { ioError } from '../util/io-error.js';
import { assertRealDirInside, componentsBelow, ensureOwnedDir, openRegularNoFollow } from '../util/owned-dir.js';

/** Below this, a file is hashed with direct calls: one read, no thread-pool round trips. */
const SMALL_FILE = 1 << 20;

export async function md5File(file: string, sizeHint?: number): Promise<string> {
  if (sizeHint !== undefined && sizeHint <= SMALL_FILE) {
    const fd = fs.openSync(file, 'r');
    try {
      const st = fs.fstatSync(fd);
      if (st.isFile() && st.size <= SMALL_FILE) return createHash('md5').update(fs.readFileSync(fd)).digest('hex');
    } finally {
      fs.closeSync(fd);
    }
  }
  const fh = await fsp.open(file, 'r');
  try {
    return await md5Of(fh);
  } finally {
    await fh.close();
  }
}

/**
 * md5 of an open file, read in 1 MiB chunks through the handle: a small input costs one read, where a
 * read stream's set-up cost more than the hashing (every input is hashed at accept() and at start()).
 */
async function md5Of(fh: fsp.FileHandle): Promise<string> {
  const h = createHash('md5');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, null);
    if (bytesRead === 0) break;
    h.update(buf.subarray(0, bytesRead));
  }
  return h.digest('hex');
}

/** md5 of a regular file opened without following a link at its name (an output the app left). */
export async function md5RegularFile(file: string): Promise<string> {
  const fd = fs.openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new AltplatError('NOT_A_REGULAR_FILE', `${file} is not a regular file`, { path: file });
    if (st.size <= SMALL_FILE) return createHash('md5').update(fs.readFileSync(fd)).digest('hex');
  } finally {
    fs.closeSync(fd);
  }
  const fh = await openRegularNoFollow(file);
  try {
    return await md5Of(fh);
  } finally {
    await fh.close();
  }
}

/** `<data>/projects/<P>` → the data dir and its `projects` folder. */
export function projectRoots(projectDir: string): { dataRoot: string; projects: string } {
  const projects = path.dirname(path.resolve(projectDir));
  return { dataRoot: path.dirname(projects), projects };
}

/**
 * A project file may be read only where altplat owns it: every folder from the data dir down to it is
 * real (OWNED_DIR_NOT_REAL otherwise), and a symbolic link at its own name must resolve inside the data
 * dir's `projects/` folder. A link to a secret elsewhere (with the right md5, say) is refused with
 * INPUT_OUTSIDE_DATA_DIR before a byte of it is read — the app would read through it too.
 */
export async function checkProjectFilePath(projectDir: string, file: string, name: string): Promise<void> {
  const { dataRoot, projects } = projectRoots(projectDir);
  if (!(await assertRealDirInside(dataRoot, path.dirname(file), { allowMissing: true }))) return; // missing: the stat says so
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  // A hard link shares its bytes with a name that may be anywhere on the file system (a secret with the
  // right md5, say); BOINC's downloads and altplat's staging never make one, so such an input is refused.
  if (st?.isFile() && st.nlink > 1) {
    throw new AltplatError('INPUT_HARD_LINKED',
      `file ${name} in the project dir has ${st.nlink} names (a hard link, maybe to a file outside the data dir); it is not read or used`,
      { file: name, nlink: st.nlink });
  }
  if (!st?.isSymbolicLink()) return;
  let real: string;
  try {
    real = await fsp.realpath(file);
  } catch {
    return; // a dangling link: the stat reports the file missing
  }
  try {
    if (componentsBelow(projects, real).length > 0) return;
  } catch {
    // outside projects/
  }
  throw new AltplatError('INPUT_OUTSIDE_DATA_DIR',
    `file ${name} in the project dir is a symbolic link to ${real}, outside the data dir's projects folder; it is not read or used`,
    { file: name, target: real });
}

/**
 * Check a project file against its `<nbytes>` and `<md5_cksum>` before any task uses it
 * (client/cs_files.cpp FILE_INFO::verify_file; task_files_present in client/app_start.cpp checks size).
 * With `projectDir`, the path rules of checkProjectFilePath apply first.
 * Throws INPUT_MISSING / INPUT_SIZE_MISMATCH / INPUT_MD5_MISMATCH / INPUT_OUTSIDE_DATA_DIR / INPUT_HARD_LINKED /
 * OWNED_DIR_NOT_REAL.
 */
export async function verifyProjectFile(file: string, info: ReplyFileInfo, opts: { projectDir?: string } = {}): Promise<void> {
  if (opts.projectDir !== undefined) await checkProjectFilePath(opts.projectDir, file, info.name);
  let st;
  try {
    st = fs.statSync(file);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') {
      throw new AltplatError('INPUT_MISSING', `file ${info.name} is not in the project dir (${file}); the embedding client must download it, or pass --files DIR`, { file: info.name });
    }
    throw ioError(e, `checking ${info.name}`);
  }
  if (!st.isFile()) throw new AltplatError('INPUT_MISSING', `${file} is not a regular file`, { file: info.name });
  if (info.nbytes !== undefined && st.size !== info.nbytes) {
    throw new AltplatError('INPUT_SIZE_MISMATCH', `file ${info.name} has ${st.size} bytes; the reply says ${info.nbytes}`, { file: info.name, nbytes: st.size, expected: info.nbytes });
  }
  if (info.md5 !== undefined) {
    const md5 = await md5File(file, st.size).catch((e) => Promise.reject(ioError(e, `reading ${info.name}`)));
    if (md5 !== info.md5) {
      throw new AltplatError('INPUT_MD5_MISMATCH', `file ${info.name} has md5 ${md5}; the reply says ${info.md5}`, { file: info.name, md5, expected: info.md5 });
    }
  }
}

/**
 * `altplat run --files DIR`: bring the reply's input and app files from a local folder into the project
 * dir (altplat never downloads). A file already present and correct is left alone; a staged file is
 * checked first, so a wrong file never lands in the project dir. Outputs are never staged. The project
 * dir and its sub-folders must be real folders of the data dir; the copy goes to a new temp file
 * (O_EXCL: never through a planted link) renamed into place (which replaces a link planted at the name).
 * Any I/O failure (a full disk, say) is an AltplatError with an `IO_<errno>` code and leaves no temp file.
 */
export async function stageFiles(fromDir: string, projectDir: string, infos: ReplyFileInfo[]): Promise<string[]> {
  const { dataRoot } = projectRoots(projectDir);
  const staged: string[] = [];
  for (const info of infos) {
    if (info.isOutput) continue;
    const dest = path.join(projectDir, info.name);
    try {
      await verifyProjectFile(dest, info, { projectDir });
      continue;
    } catch (e) {
      if (!(e instanceof AltplatError)) throw e;
      if (e.code === 'OWNED_DIR_NOT_REAL') throw e;
    }
    const src = path.join(fromDir, info.name);
    try {
      await fsp.access(src);
    } catch {
      continue; // not supplied; the check before the task reports it
    }
    await verifyProjectFile(src, info);
    await ensureOwnedDir(dataRoot, path.relative(dataRoot, path.dirname(dest))).catch((e) => Promise.reject(ioError(e, `making the folder for ${info.name}`)));
    const tmp = `${dest}.staging.${process.pid}`;
    try {
      await fsp.rm(tmp, { force: true }); // a leftover of a killed run (rm unlinks a link, never its target)
      await fsp.copyFile(src, tmp, fsc.COPYFILE_EXCL);
      if (info.executable) await fsp.chmod(tmp, 0o755);
      await fsp.rename(tmp, dest);
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw ioError(e, `staging ${info.name} from ${fromDir} into the project dir`);
    }
    staged.push(info.name);
  }
  return staged;
}
