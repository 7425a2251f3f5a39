import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, promises as fsp, readFileSync, realpathSync, writeFileSync, type Stats } from 'node:fs';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';

/**
 * The folders altplat writes in (`slots/`, `alt_platforms_working/`, `altplat/`, the project dirs and
 * their sub-folders) must be real folders inside the data dir. An app, or anyone who can write in the data
 * dir, can plant a symbolic link at such a place (`slots -> /home/x`); a path operation through it would
 * then write, move or delete outside. So paths are built from the data dir resolved once (realpath: the
 * data dir itself may be a link, as Debian's /var/lib/boinc is), and every folder between that root and
 * what is touched is checked with lstat, one component at a time, right before the operation, and
 * created one level at a time (never `mkdir -p`, which follows links). Files are created with
 * O_EXCL|O_NOFOLLOW and moved with rename, which replaces a link at the destination rather than writing
 * through it. Node has no openat, so a folder swapped for a link between the check and the operation
 * is a window this narrows but cannot close (docs/LIFECYCLE.md, "Trust").
 */

/** A folder altplat writes in is a symbolic link or not a folder: nothing is written there. */
export const OWNED_DIR_NOT_REAL = 'OWNED_DIR_NOT_REAL';

/** The data dir resolved once: realpath when it exists, else the absolute path as given. */
export function realDataRoot(dataDir: string): string {
  const abs = path.resolve(dataDir);
  try {
    return realpathSync.native(abs);
  } catch {
    return abs;
  }
}

/** `target` below `root`, as path components ([] for root itself). Throws OUTSIDE_OWNED_DIR otherwise. */
export function componentsBelow(root: string, target: string): string[] {
  const rel = path.relative(path.resolve(root), path.resolve(target));
  if (rel === '') return [];
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new AltplatError('OUTSIDE_OWNED_DIR', `${target} is not inside ${root}`);
  }
  return rel.split(path.sep);
}

/**
 * Synchronous on purpose: each check walks the folders from the data dir down (a dozen walks per task,
 * one lstat per component), and every one of those folders was just used, so the kernel answers from
 * its dentry cache in microseconds; through libuv's thread pool each lstat costs a round trip of
 * 50-100 µs (several ms per task).
 */
function lstatOrMissing(p: string): Stats | undefined {
  return lstatSync(p, { throwIfNoEntry: false });
}

async function notReal(root: string, dir: string, isLink: boolean): Promise<AltplatError> {
  const rel = path.relative(root, dir) || '.';
  const to = isLink ? await fsp.readlink(dir).catch(() => '?') : undefined;
  return new AltplatError(OWNED_DIR_NOT_REAL,
    isLink
      ? `${rel} in ${root} is a symbolic link (to ${to}), not a real folder; altplat writes nothing through it`
      : `${rel} in ${root} is not a folder; altplat writes nothing there`,
    { path: dir, link: isLink });
}

/**
 * Every folder from `root` down to `dir` (both included) is an existing real folder, not a symbolic link.
 * With `allowMissing`, a missing folder ends the walk and the answer is false (nothing below it exists
 * either); otherwise a missing folder throws ENOENT-coded OWNED_DIR_MISSING. A link or a non-folder throws
 * OWNED_DIR_NOT_REAL.
 */
export async function assertRealDirInside(root: string, dir: string, opts: { allowMissing?: boolean } = {}): Promise<boolean> {
  let cur = path.resolve(root);
  for (const part of ['', ...componentsBelow(root, dir)]) {
    if (part !== '') cur = path.join(cur, part);
    const st = lstatOrMissing(cur);
    if (!st) {
      if (opts.allowMissing) return false;
      throw new AltplatError('OWNED_DIR_MISSING', `${cur} does not exist`, { path: cur });
    }
    if (!st.isDirectory()) throw await notReal(root, cur, st.isSymbolicLink());
  }
  return true;
}

/** True when every folder from `root` down to `dir` is real (or missing); false when one is a link or a file. */
export async function isRealDirInside(root: string, dir: string): Promise<boolean> {
  try {
    await assertRealDirInside(root, dir, { allowMissing: true });
    return true;
  } catch (e) {
    if (e instanceof AltplatError && e.code === OWNED_DIR_NOT_REAL) return false;
    throw e;
  }
}

/**
 * Make `<root>/<rel>` exist as a real folder, creating one level at a time; refuse (OWNED_DIR_NOT_REAL)
 * when `root` or any folder on the way is a symbolic link or not a folder. Returns the absolute path.
 */
export async function ensureOwnedDir(root: string, rel: string): Promise<string> {
  const base = path.resolve(root);
  const target = path.resolve(base, rel);
  let cur = base;
  for (const part of ['', ...componentsBelow(base, target)]) {
    if (part !== '') cur = path.join(cur, part);
    let st = lstatOrMissing(cur);
    if (!st) {
      try {
        await fsp.mkdir(cur);
      } catch (e) {
        if (errnoCode(e) !== 'EEXIST') throw e;
      }
      st = await fsp.lstat(cur);
    }
    if (!st.isDirectory()) throw await notReal(base, cur, st.isSymbolicLink());
  }
  return target;
}

/** Open flags for a new file that can never be a link or an existing file (O_EXCL fails on any entry). */
export const NEW_FILE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;

/**
 * Open an existing regular file for reading without following a link at its own name, and check it is
 * a regular file through the handle (so a swap after the check does not matter).
 */
export async function openRegularNoFollow(file: string): Promise<fsp.FileHandle> {
  const fh = await fsp.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new AltplatError('NOT_A_REGULAR_FILE', `${file} is not a regular file`, { path: file });
    return fh;
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/**
 * Append to (creating) a file in a checked folder without following a link at its name: a planted link
 * there fails with ELOOP instead of being written through.
 */
export async function appendNoFollow(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  // Direct calls: small appends into the page cache (stderr.txt, logs).
  const fd = openSync(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND | fsc.O_NOFOLLOW | fsc.O_NONBLOCK, mode);
  try {
    if (!fstatSync(fd).isFile()) throw new AltplatError('NOT_A_REGULAR_FILE', `${file} is not a regular file`, { path: file });
    if (typeof data === 'string' ? data.length > 0 : data.byteLength > 0) writeFileSync(fd, data);
  } finally {
    closeSync(fd);
  }
}

/**
 * Move a regular file (never a link: the entry at `from` is checked with lstat) to `to` by rename, which
 * replaces whatever entry is at `to` — a planted link included — instead of writing through it. Both
 * folders must have been checked by the caller. Returns false when `from` is missing or not a regular file.
 */
export async function moveRegularFile(from: string, to: string): Promise<boolean> {
  let st: Stats | undefined;
  try {
    st = lstatOrMissing(from);
  } catch (e) {
    if (errnoCode(e) !== 'ENOTDIR') throw e;
  }
  if (!st || !st.isFile()) return false;
  await fsp.rename(from, to);
  return true;
}

/**
 * Read one of altplat's own state files (a cache in `<data>/altplat/`) only where altplat owns it: its
 * folder must be a real folder (not a link to one elsewhere, whose planted "cache" would then be
 * believed) and the file a regular file opened without following a link. Throws otherwise; callers
 * treat that as "no cache".
 */
export function readStateFileSync(file: string): string {
  const dir = path.dirname(file);
  if (!lstatSync(dir).isDirectory()) throw new AltplatError(OWNED_DIR_NOT_REAL, `${dir} is not a real folder`, { path: dir });
  const fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) throw new AltplatError('NOT_A_REGULAR_FILE', `${file} is not a regular file`, { path: file });
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}
