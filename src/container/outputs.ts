import { constants, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { resolveFilename } from '../ipc/resolve.js';
import type { JobDescription } from '../job/jobfile.js';
import { checkOpenName, GUEST_STDERR, GUEST_STDERR_KEEP, GUEST_STDOUT, STDOUT_OPEN_NAME, type CopyOutReport } from '../manager/guest-job.js';

/**
 * Opens `rel` below `root` for reading without following a symbolic link anywhere on the way: every
 * folder on the path is lstat-ed (a link there means "not there"), and the file itself is opened with
 * O_NOFOLLOW and must be a regular file. The container has stopped when this runs, so nothing can swap
 * a component between the checks. Undefined when there is no such regular file.
 */
export async function openNoFollow(root: string, rel: string): Promise<fsp.FileHandle | undefined> {
  const parts = rel.split('/');
  let dir = root;
  for (const p of parts.slice(0, -1)) {
    dir = path.join(dir, p);
    const st = await fsp.lstat(dir).catch(() => undefined);
    if (!st || !st.isDirectory()) return undefined;
  }
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path.join(root, rel), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    return undefined;
  }
  return fh;
}

async function copyHandle(fh: fsp.FileHandle, dest: string): Promise<void> {
  const tmp = `${dest}.altplat-pull-${process.pid}`;
  const out = await fsp.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
  try {
    const buf = Buffer.alloc(1 << 20);
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      await out.write(buf, 0, bytesRead);
      pos += bytesRead;
    }
    await out.sync();
  } finally {
    await out.close();
  }
  await fsp.rename(tmp, dest);
}

/**
 * The container's version of the VM's copy-out (src/manager/guest-job.ts copyOut), with the same rules:
 * the program's standard error (its last 16 MiB) is appended to the slot's stderr.txt, its standard
 * output becomes the output with open name stdout.txt, every declared output is copied to the file
 * its open name resolves to; missing ones are reported; one over max_nbytes is left as a sparse file of
 * the real size for the client to refuse (ERR_FILE_TOO_BIG). The job folder was writable by the
 * program, so what it holds is untrusted: links are never followed, only regular files are read.
 */
export async function collectOutputs(workDir: string, slotDir: string, job: JobDescription): Promise<CopyOutReport> {
  const report: CopyOutReport = { copied: [], missing: [], tooBig: [] };
  const err = await openNoFollow(workDir, GUEST_STDERR);
  if (err) {
    try {
      const size = (await err.stat()).size;
      const keep = Math.min(size, GUEST_STDERR_KEEP);
      const buf = Buffer.alloc(keep);
      await err.read(buf, 0, keep, size - keep);
      if (keep > 0) await fsp.appendFile(path.join(slotDir, 'stderr.txt'), buf);
    } finally {
      await err.close();
    }
  }
  for (const out of job.outputs) {
    checkOpenName(out.openName);
    const rel = out.openName === STDOUT_OPEN_NAME ? GUEST_STDOUT : out.openName;
    const host = await resolveFilename(slotDir, out.openName);
    const fh = await openNoFollow(workDir, rel);
    if (!fh) {
      report.missing.push(out.openName);
      continue;
    }
    try {
      const size = (await fh.stat()).size;
      if (out.maxNbytes !== undefined && out.maxNbytes > 0 && size > out.maxNbytes) {
        const tmp = `${host}.altplat-pull-${process.pid}`;
        await fsp.writeFile(tmp, '', { flag: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW });
        await fsp.truncate(tmp, size);
        await fsp.rename(tmp, host);
        report.tooBig.push(out.openName);
        continue;
      }
      await copyHandle(fh, host);
      report.copied.push(out.openName);
    } finally {
      await fh.close();
    }
  }
  return report;
}
