import { constants as fsc, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';
import type { PlatformDefinition } from '../definition/types.js';
import { ensureOwnedDir } from '../util/owned-dir.js';
import { removeInside } from './clean.js';

/** How a `<shared/>` file reached the working copy. */
export type ShareMethod = 'reflink' | 'hardlink' | 'symlink';

export interface SharedFileStamp {
  /** Path inside the platform folder. */
  name: string;
  method: ShareMethod;
  size: number;
  mtimeMs: number;
}

export interface WorkingCopy {
  dir: string;
  platformDir: string;
  shared: SharedFileStamp[];
  /** Files copied byte for byte (everything not marked shared). */
  copied: string[];
}

/**
 * Give a `<shared/>` file to the working copy without copying its bytes, so staging cost does not grow
 * with image size:
 * 1. reflink clone (copy-on-write; btrfs, XFS, bcachefs): the manager may even write to it safely;
 * 2. else a hard link after making the original read-only (chmod a-w). Why not a plain symlink first:
 *    both share the original's bytes, but the hard link keeps working if the data dir is moved and
 *    survives the platform folder being reinstalled; a-w makes an in-place write fail with EACCES for
 *    the unprivileged account BOINC runs as. (Root ignores permission bits — see docs/LIFECYCLE.md.)
 * 3. else (another filesystem) a symlink to the read-only original.
 * Replacing the file (write + rename, unlink) only ever replaces the working copy's entry.
 */
async function shareFile(src: string, dest: string): Promise<ShareMethod> {
  try {
    await fsp.copyFile(src, dest, fsc.COPYFILE_FICLONE_FORCE);
    return 'reflink';
  } catch (e) {
    await fsp.rm(dest, { force: true });
    const code = errnoCode(e);
    if (code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV' && code !== 'EINVAL' && code !== 'ENOSYS') throw e;
  }
  const st = await fsp.stat(src);
  if ((st.mode & 0o222) !== 0) await fsp.chmod(src, st.mode & ~0o222);
  try {
    await fsp.link(src, dest);
    return 'hardlink';
  } catch (e) {
    const code = errnoCode(e);
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw e;
  }
  await fsp.symlink(src, dest);
  return 'symlink';
}

async function copyTree(srcDir: string, destDir: string, rel: string, sharedNames: Set<string>, wc: WorkingCopy): Promise<void> {
  // One level at a time into a folder just emptied: EEXIST (a link planted meanwhile) fails the copy.
  await fsp.mkdir(path.join(destDir, rel));
  for (const ent of await fsp.readdir(path.join(srcDir, rel), { withFileTypes: true })) {
    const r = rel === '' ? ent.name : `${rel}/${ent.name}`;
    const src = path.join(srcDir, r);
    const dest = path.join(destDir, r);
    if (ent.isDirectory()) {
      await copyTree(srcDir, destDir, r, sharedNames, wc);
    } else if (ent.isSymbolicLink()) {
      // Discovery has checked that links stay inside the platform folder; keep them as links.
      await fsp.symlink(await fsp.readlink(src), dest);
    } else if (ent.isFile()) {
      if (sharedNames.has(r)) {
        const method = await shareFile(src, dest);
        const st = await fsp.stat(src);
        wc.shared.push({ name: r, method, size: st.size, mtimeMs: st.mtimeMs });
      } else {
        await fsp.copyFile(src, dest, fsc.COPYFILE_EXCL);
        wc.copied.push(r);
      }
    }
  }
}

/**
 * Build `alt_platforms_working/slotN` from `alt_platforms/<name>`. An old working copy at the same place
 * (a crash between staging and cleanup) is removed first, so a slot never has two. `workingRoot` is the
 * `alt_platforms_working` folder of the data dir: it must be a real folder there (OWNED_DIR_NOT_REAL when
 * it is a link), and nothing outside it is ever deleted.
 */
export async function createWorkingCopy(def: PlatformDefinition, workingRoot: string, dest: string): Promise<WorkingCopy> {
  await ensureOwnedDir(path.dirname(workingRoot), path.basename(workingRoot));
  await removeInside(workingRoot, dest);
  const wc: WorkingCopy = { dir: dest, platformDir: def.dir, shared: [], copied: [] };
  const shared = new Set(def.files.filter((f) => f.shared).map((f) => f.name));
  await copyTree(def.dir, dest, '', shared, wc);
  return wc;
}

/**
 * After a task: the shared originals must have the size and mtime they had when the working copy was
 * made (the cheap check; `altplat verify` hashes). Returns the names that changed.
 */
export async function changedSharedOriginals(wc: Pick<WorkingCopy, 'platformDir' | 'shared'>): Promise<string[]> {
  const changed: string[] = [];
  for (const s of wc.shared) {
    try {
      const st = await fsp.stat(path.join(wc.platformDir, s.name));
      if (st.size !== s.size || st.mtimeMs !== s.mtimeMs) changed.push(s.name);
    } catch {
      changed.push(s.name);
    }
  }
  return changed;
}

export async function removeWorkingCopy(workingRoot: string, dir: string): Promise<void> {
  await removeInside(workingRoot, dir);
}

export function assertPlatformDir(def: PlatformDefinition): void {
  if (!path.isAbsolute(def.dir)) throw new AltplatError('PLATFORM_DIR_RELATIVE', `platform folder ${def.dir} is not absolute`);
}
