import { lstatSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';
import { assertRealDirInside } from '../util/owned-dir.js';

/**
 * Deletion that can never leave the folder it was given. Entries are examined with lstat and a symlink is
 * removed as a link, never followed — a manager that plants `slots/3/x -> /etc` loses the link, /etc
 * stays. (BOINC's client_clean_out_dir in client/sandbox.cpp empties a slot the same way.)
 */
export function assertInside(root: string, p: string): void {
  const rel = path.relative(path.resolve(root), path.resolve(p));
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new AltplatError('OUTSIDE_OWNED_DIR', `refusing to delete ${p}: it is not inside ${root}`);
  }
}

async function removeEntry(p: string): Promise<void> {
  let st;
  try {
    st = await fsp.lstat(p);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return;
    throw e;
  }
  if (st.isDirectory()) {
    await emptyDir(p);
    await fsp.rmdir(p);
  } else {
    // Files, symlinks (the link itself), sockets, fifos.
    try {
      await fsp.unlink(p);
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
  }
}

async function emptyDir(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return;
    throw e;
  }
  // Entries are independent: removed together (a slot holds a dozen small files; one by one, each
  // lstat and unlink waits its turn in the thread pool).
  // All are settled before an error is thrown, so nothing is still being deleted once this returns.
  const settled = await Promise.allSettled(names.map((name) => removeEntry(path.join(dir, name))));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Delete everything inside `dir` (which must lie inside `root`); `dir` itself stays. `root` and every
 * folder down to `dir` must be real folders (OWNED_DIR_NOT_REAL otherwise): a `slots` that is a link to
 * a folder elsewhere is never emptied.
 */
export async function cleanOutDir(root: string, dir: string): Promise<void> {
  assertInside(root, dir);
  if (!(await assertRealDirInside(root, path.dirname(dir), { allowMissing: true }))) return;
  const st = await fsp.lstat(dir).catch((e) => (errnoCode(e) === 'ENOENT' ? undefined : Promise.reject(e)));
  if (!st) return;
  if (!st.isDirectory()) throw new AltplatError('NOT_A_DIRECTORY', `${dir} is not a directory`);
  await emptyDir(dir);
}

/**
 * Delete `target` (a file, a link or a whole tree) which must lie inside `root`; `root` and the folders
 * down to `target`'s parent must be real (OWNED_DIR_NOT_REAL otherwise), so nothing is deleted through a
 * link on the way. A link at `target` itself is removed as a link.
 */
export async function removeInside(root: string, target: string): Promise<void> {
  assertInside(root, target);
  if (!(await assertRealDirInside(root, path.dirname(target), { allowMissing: true }))) return;
  await removeEntry(target);
}

/**
 * Before every start the client reuses files it owns in the slot (`boinc_mmap_file` is opened read-write
 * and zeroed, `stderr.txt` opened for appending). An app could have replaced one with a symlink to a file
 * outside the data dir; opening it would then write there. Anything at those names that is not a regular
 * file is removed (the link itself), so the client creates a fresh file instead.
 */
export async function dropPlantedEntries(slotDir: string, names: readonly string[]): Promise<void> {
  for (const name of names) {
    const p = path.join(slotDir, name);
    const st = await fsp.lstat(p).catch((e) => (errnoCode(e) === 'ENOENT' ? undefined : Promise.reject(e)));
    if (st && !st.isFile()) await removeInside(slotDir, p);
  }
}

/**
 * A slot the client may work in: a real folder (or not there yet). An app can replace its own slot with
 * a symlink to a folder outside the data dir (slots/ is writable by the account apps run as); nothing
 * may then be read, written, moved or deleted through it.
 */
export async function isRealDirOrMissing(dir: string): Promise<boolean> {
  // Synchronous, as the owned-folder walks (src/util/owned-dir.ts): one lstat of a folder just used.
  const st = lstatSync(dir, { throwIfNoEntry: false });
  return st === undefined || st.isDirectory();
}
