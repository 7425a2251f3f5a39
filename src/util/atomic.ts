import { constants as fsc, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Replace `file` with `data` so that a crash at any moment leaves either the old or the new content,
 * never a torn file: write a sibling temp file, fsync it, rename it over the target, fsync the folder.
 * (vboxwrapper's in-place rewrites of its state file are the failure this avoids; see docs/DESIGN.md.)
 * The temp file is created with O_EXCL|O_NOFOLLOW, so a link planted at its name is never written
 * through, and rename replaces a link planted at `file` itself rather than its target. The folder must
 * be one the caller checked (src/util/owned-dir.ts).
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await handle.close();
  try {
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(dir);
}

/** Make a rename or unlink inside `dir` durable. Some filesystems refuse fsync on a folder; that is not fatal. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, 'r');
    await handle.sync();
  } catch {
    // EISDIR/EINVAL/EPERM on exotic filesystems: the rename itself is still atomic.
  } finally {
    await handle?.close();
  }
}
