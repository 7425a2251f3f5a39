import * as fs from 'node:fs';
import { constants as fsc } from 'node:fs';
import { promisify } from 'node:util';
import * as path from 'node:path';

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
  const tmp = tempName(file);
  const fd = fs.openSync(tmp, NEW_TEMP, mode);
  try {
    fs.writeFileSync(fd, data);
    if (durable) await fsyncFd(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  if (durable) await fsyncDir(path.dirname(file));
}

/*
 * Only the fsyncs go through libuv's thread pool: they wait for the disk. Opening, writing into the page
 * cache, closing and renaming a small file take microseconds as direct calls and ~50-150 µs each as
 * promises (a task journals a handful of steps, each one such write).
 */
const NEW_TEMP = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
const fsyncFd = promisify(fs.fsync);

// Unique enough with the pid (O_EXCL refuses a clash anyway); Math.random, not crypto: it is no secret,
// and randomBytes cost more than the rest of a small write.
const tempName = (file: string) =>
  path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Math.floor(Math.random() * 0x100000000).toString(16)}.tmp`);

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
    const fds: number[] = [];
    try {
      for (const f of files) {
        const tmp = tempName(f.file);
        fds.push(fs.openSync(tmp, NEW_TEMP, f.mode ?? 0o644));
        temps.push(tmp);
        fs.writeFileSync(fds[fds.length - 1]!, f.data);
      }
      await Promise.all(fds.map((fd) => fsyncFd(fd)));
    } finally {
      for (const fd of fds) fs.closeSync(fd);
    }
    for (let i = 0; i < files.length; i++) {
      fs.renameSync(temps[i]!, files[i]!.file);
      temps[i] = '';
    }
  } catch (e) {
    for (const t of temps) if (t !== '') fs.rmSync(t, { force: true });
    throw e;
  }
  await Promise.all([...new Set(files.map((f) => path.dirname(f.file)))].map(fsyncDir));
}

/** fsync a file written by other means (fsp.copyFile), before it is renamed into place. */
export async function fsyncFile(file: string): Promise<void> {
  const fd = fs.openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    await fsyncFd(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Make a rename or unlink inside `dir` durable. Some filesystems refuse fsync on a folder; that is not fatal. */
export async function fsyncDir(dir: string): Promise<void> {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    await fsyncFd(fd);
  } catch {
    // EISDIR/EINVAL/EPERM on exotic filesystems: the rename itself is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
