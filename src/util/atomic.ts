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
 *
 * `durable: false` keeps the temp-and-rename (no reader ever sees a torn file, a link is never written
 * through) but skips both fsyncs: only for a file that is rewritten from the journal before every use,
 * so that losing it in a power cut costs nothing (init_data.xml, the job file: BOINC's own
 * write_init_data_file in client/app_start.cpp does not fsync either).
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644,
  opts: { durable?: boolean } = {}): Promise<void> {
  const durable = opts.durable ?? true;
  const dir = path.dirname(file);
  const tmp = tempName(file);
  const handle = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
  try {
    await handle.writeFile(data);
    if (durable) await handle.sync();
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
  if (durable) await fsyncDir(dir);
}

const tempName = (file: string) => path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);

/**
 * writeFileAtomic for several files at once, with the same guarantee for each (a crash leaves it absent
 * or the old one, or complete): every temp file is written, then all are fsynced together, renamed, and
 * their folders fsynced together. Concurrent fsyncs share the file system's journal commits, so n files
 * cost about one writeFileAtomic instead of n (slot set-up: one soft-link file per app file, input and
 * output). When it returns, every file is durable. On a failure the temp files are removed; files
 * already renamed stay (each is complete).
 */
export async function writeFilesAtomic(files: Array<{ file: string; data: string | Uint8Array; mode?: number }>): Promise<void> {
  const temps: string[] = [];
  try {
    const handles: fsp.FileHandle[] = [];
    try {
      for (const f of files) {
        const tmp = tempName(f.file);
        const h = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, f.mode ?? 0o644);
        temps.push(tmp);
        handles.push(h);
        await h.writeFile(f.data);
      }
      await Promise.all(handles.map((h) => h.sync()));
    } finally {
      await Promise.all(handles.map((h) => h.close()));
    }
    for (let i = 0; i < files.length; i++) {
      await fsp.rename(temps[i]!, files[i]!.file);
      temps[i] = '';
    }
  } catch (e) {
    await Promise.all(temps.filter((t) => t !== '').map((t) => fsp.rm(t, { force: true })));
    throw e;
  }
  await Promise.all([...new Set(files.map((f) => path.dirname(f.file)))].map(fsyncDir));
}

/** fsync a file written by other means (fsp.copyFile), before it is renamed into place. */
export async function fsyncFile(file: string): Promise<void> {
  const handle = await fsp.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
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
