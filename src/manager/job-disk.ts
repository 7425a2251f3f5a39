import { execFile } from 'node:child_process';
import { constants as fsConstants, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { AltplatError } from '../errors.js';
import { resolveFilename } from '../ipc/resolve.js';
import type { JobDescription } from '../job/jobfile.js';
import { checkOpenName, GUEST_HELPER, GUEST_STDERR, GUEST_STDERR_KEEP, GUEST_STDOUT, jobInputs, STDOUT_OPEN_NAME, type CopyOutReport } from './guest-job.js';
import type { QgaClient } from './qga.js';
import { QEMU_IMG } from './qemu.js';

const execFileP = promisify(execFile);

/**
 * The job disk: the data path at disk speed (issue 10 item 3). The job's files go in as an ext4 image
 * made on the host without root (`mke2fs -d` from a folder of hard links), layered under a qcow2 overlay
 * (internal snapshots need every writable disk to be qcow2) and mounted at the guest's job directory;
 * the outputs come back by reading that file system on the host (`qemu-img convert` to raw, then
 * e2fsprogs' `debugfs`), never by following anything of the guest's on the host. The guest agent stays
 * for control and for what the disk cannot answer (symlinks, special files, odd names), which keeps
 * today's outcome for those: the agent opens them inside the guest.
 */
export const JOB_DISK_RAW = 'altplat_job.raw';
export const JOB_DISK = 'altplat_job.qcow2';
const JOB_DISK_STAGE = 'altplat_job.stage';
const JOB_DISK_READ = 'altplat_job.read';
/**
 * Fixed capacity of the job disk: a guest resumed from a saved booted state keeps the capacity its
 * driver read at boot, so every task's disk has this size. Sparse: only what is written is allocated.
 */
export const JOB_DISK_BYTES = 16 * 2 ** 30;
/** The guest device the job disk is (second virtio-blk after the system disk). */
export const JOB_DEVICE = '/dev/vdb';

const TOOL_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

/** Absolute path of an e2fsprogs tool (the client's PATH may lack the sbin dirs), or undefined. */
export async function findTool(name: string): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...TOOL_DIRS];
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      await fsp.access(p, fsConstants.X_OK);
      return p;
    } catch { /* next */ }
  }
  return undefined;
}

export interface DiskTools { mke2fs: string; debugfs: string }

/** The tools the disk path needs; undefined (agent path) when one is missing or ALTPLAT_DATA_PATH=agent. */
export async function diskTools(): Promise<DiskTools | undefined> {
  if (process.env.ALTPLAT_DATA_PATH === 'agent') return undefined;
  const [mke2fs, debugfs] = await Promise.all([findTool('mke2fs'), findTool('debugfs')]);
  return mke2fs && debugfs ? { mke2fs, debugfs } : undefined;
}

async function qemuImg(args: string[]): Promise<void> {
  try {
    await execFileP(QEMU_IMG, args);
  } catch (e) {
    throw new AltplatError('VM_JOB_DISK_FAILED', `qemu-img ${args.join(' ')} failed: ${(e as { stderr?: string }).stderr ?? (e as Error).message}`, { args }, { cause: e });
  }
}

/** An empty qcow2 of the job disk's capacity: the placeholder a saved booted state is made with. */
export async function createPlaceholderJobDisk(file: string): Promise<void> {
  await fsp.rm(file, { force: true });
  await qemuImg(['create', '-q', '-f', 'qcow2', file, String(JOB_DISK_BYTES)]);
}

/**
 * Builds the task's job disk in the slot from the main program, app files and inputs (soft links
 * resolved on the host, as the agent copy does): returns the bytes put in. Rebuilt from scratch on
 * every fresh start; a checkpoint's disk is never rebuilt.
 */
export async function buildJobDisk(tools: DiskTools, slotDir: string, job: JobDescription): Promise<number> {
  const stage = path.join(slotDir, JOB_DISK_STAGE);
  const raw = path.join(slotDir, JOB_DISK_RAW);
  const overlay = path.join(slotDir, JOB_DISK);
  await Promise.all([stage, raw, overlay, `${raw}.tmp`].map((p) => fsp.rm(p, { recursive: true, force: true })));
  await fsp.mkdir(stage);
  let bytes = 0;
  try {
    for (const f of await jobInputs(slotDir, job)) {
      const real = await fsp.realpath(f.host);
      const dest = path.join(stage, f.openName);
      await fsp.mkdir(path.dirname(dest), { recursive: true });
      // A reflink where the file system has them, else a copy — never a hard link: a second name on a
      // project file makes other tasks refuse it as an input (INPUT_HARD_LINKED, src/slots/files.ts)
      // for as long as this stage folder lives, a killed manager's included.
      await fsp.copyFile(real, dest, fsConstants.COPYFILE_FICLONE);
      bytes += (await fsp.stat(dest)).size;
    }
    // The file system is sized for the inputs plus room for the outputs (their max_nbytes, at least
    // 256 MiB as the system disk gave before), within the fixed capacity: a smaller file system mounts
    // faster under TCG (fewer block groups to read).
    const room = job.outputs.reduce((n, o) => n + (o.maxNbytes && o.maxNbytes > 0 ? o.maxNbytes : 256 * 2 ** 20), 0);
    const fsBytes = Math.min(JOB_DISK_BYTES, Math.ceil((bytes * 1.05 + Math.max(room, 256 * 2 ** 20) + 64 * 2 ** 20) / 2 ** 20) * 2 ** 20);
    // No journal: a checkpoint is a snapshot of RAM and disks together, and the host reads the disk
    // only after the guest has made it read-only. Lazy init: nothing but the metadata is written.
    try {
      await execFileP(tools.mke2fs, ['-q', '-F', '-t', 'ext4', '-O', '^has_journal', '-E', 'lazy_itable_init=1,root_owner=0:0',
        '-L', 'altplat-job', '-d', stage, `${raw}.tmp`, `${fsBytes / 1024}k`], { maxBuffer: 16 << 20 });
    } catch (e) {
      throw new AltplatError('VM_JOB_DISK_FAILED', `mke2fs -d of the job's files failed: ${(e as { stderr?: string }).stderr ?? (e as Error).message}`, {}, { cause: e });
    }
    await fsp.truncate(`${raw}.tmp`, JOB_DISK_BYTES);
    await fsp.rename(`${raw}.tmp`, raw);
    await qemuImg(['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', raw, `${overlay}.tmp`, String(JOB_DISK_BYTES)]);
    await fsp.rename(`${overlay}.tmp`, overlay);
  } finally {
    await fsp.rm(stage, { recursive: true, force: true });
  }
  return bytes;
}

interface DiskEntry { type: string; size: number }

/** Runs debugfs commands from a file (one process for all of them); returns its stdout. */
async function debugfsBatch(tools: DiskTools, image: string, cmdFile: string, lines: string[]): Promise<string> {
  await fsp.writeFile(cmdFile, lines.join('\n') + '\n');
  const { stdout } = await execFileP(tools.debugfs, ['-f', cmdFile, image], { maxBuffer: 64 << 20 });
  return stdout;
}

/**
 * What each name is in the file system image (`debugfs stat`, all in one run); undefined where it does
 * not exist. debugfs echoes each command as `debugfs: <command>` before its output; a missing name
 * prints nothing on stdout. The fields read (Type, Size) are fixed text, never guest-chosen.
 */
async function statInImage(tools: DiskTools, image: string, cmdFile: string, names: string[]): Promise<Array<DiskEntry | undefined>> {
  if (names.length === 0) return [];
  const out = await debugfsBatch(tools, image, cmdFile, names.map((n) => `stat "/${n}"`));
  const sections = out.split(/^debugfs: stat "/m).slice(1);
  if (sections.length !== names.length) {
    throw new AltplatError('VM_JOB_DISK_FAILED', `debugfs stat: ${sections.length} answers for ${names.length} names`, {});
  }
  return sections.map((sec, i) => {
    if (!/^Inode:/m.test(sec)) return undefined;
    const type = /Type:\s+(\S+)/.exec(sec)?.[1];
    const size = /\bSize:\s+(\d+)/.exec(sec)?.[1];
    if (!type || size === undefined) throw new AltplatError('VM_JOB_DISK_FAILED', `debugfs stat /${names[i]}: unexpected answer`, { name: names[i] });
    return { type, size: Number(size) };
  });
}

/** Copies regular files out of the image (all in one run) to fresh paths of ours; checks every size. */
async function dumpFromImage(tools: DiskTools, image: string, cmdFile: string, files: Array<{ name: string; dest: string; size: number }>): Promise<void> {
  if (files.length === 0) return;
  await debugfsBatch(tools, image, cmdFile, files.map((f) => `dump "/${f.name}" "${f.dest}"`));
  for (const f of files) {
    const st = await fsp.lstat(f.dest).catch(() => undefined);
    if (!st?.isFile() || st.size !== f.size) {
      throw new AltplatError('VM_JOB_DISK_FAILED', `debugfs dump of /${f.name} gave ${st ? st.size : 'no file'} bytes, expected ${f.size}`, { name: f.name });
    }
  }
}

/** A name debugfs's command parser takes as it is inside double quotes; anything else goes through the agent. */
const plainName = (n: string) => /^[^"\\\x00-\x1f\x7f]+$/.test(n);

/**
 * After the program ended: the guest makes the job file system read-only (everything on the disk),
 * the host reads it. Same rules as the agent copy (guest-job.ts copyOut): stdout to `stdout.txt`,
 * the end of stderr appended to stderr.txt, declared outputs to where their open names resolve (temp +
 * rename), missing ones reported, ones over max_nbytes left as a sparse file of the real size. A symlink,
 * special file or odd name is fetched through the agent instead, inside the guest, as before.
 * `viaAgent` is the agent copy for one output; returns undefined when the disk could not be used at all.
 * `alreadyReadOnly`: the start helper has remounted it (startOutcome's diskReadOnly).
 */
export async function copyOutDisk(tools: DiskTools, qga: QgaClient, slotDir: string, job: JobDescription, guestDir: string,
  viaAgent: (openName: string, report: CopyOutReport) => Promise<void>, log: (s: string) => void, alreadyReadOnly = false): Promise<CopyOutReport | undefined> {
  try {
    // Usually done already: the start helper remounts the disk read-only as soon as the program exits.
    if (!alreadyReadOnly) await qga.run(GUEST_HELPER, ['-r', guestDir]);
  } catch (e) {
    log(`the job disk could not be made read-only in the guest (${(e as Error).message}); copying outputs through the agent`);
    return undefined;
  }
  const readDir = path.join(slotDir, JOB_DISK_READ);
  if (!plainName(readDir)) {
    log(`the slot's path cannot be given to debugfs (${readDir}); copying outputs through the agent`);
    return undefined;
  }
  await fsp.rm(readDir, { recursive: true, force: true });
  await fsp.mkdir(readDir);
  try {
    const image = path.join(readDir, 'fs.raw');
    // -U: QEMU still has the disk open; the guest's remount flushed it (qcow2 metadata included).
    await qemuImg(['convert', '-U', '-f', 'qcow2', '-O', 'raw', path.join(slotDir, JOB_DISK), image]);
    const report: CopyOutReport = { copied: [], missing: [], tooBig: [] };
    const cmdFile = path.join(readDir, 'commands');
    // Next to the destination, so the final rename stays on one file system; removed first (a stale
    // entry of that name, even a symlink, is never written through).
    const tmpNextTo = async (host: string) => {
      const t = `${host}.altplat-pull-${process.pid}`;
      await fsp.rm(t, { force: true });
      return t;
    };
    const outs = job.outputs.map((o) => ({ open: checkOpenName(o.openName), name: o.openName === STDOUT_OPEN_NAME ? GUEST_STDOUT : o.openName, max: o.maxNbytes }));
    const onDisk = outs.filter((o) => plainName(o.name));
    const entries = await statInImage(tools, image, cmdFile, [GUEST_STDERR, ...onDisk.map((o) => o.name)]);
    const err = entries[0];
    const dumps: Array<{ name: string; dest: string; size: number; host?: string; open?: string }> = [];
    if (err?.type === 'regular' && err.size > 0) dumps.push({ name: GUEST_STDERR, dest: path.join(readDir, 'stderr'), size: err.size });
    const decided = new Map<string, () => Promise<void>>();
    for (const [i, o] of onDisk.entries()) {
      const ent = entries[i + 1];
      if (!ent) {
        decided.set(o.open, async () => { report.missing.push(o.open); });
      } else if (ent.type === 'symlink') {
        // Followed inside the guest by the agent, as before: a link to /etc/shadow reads the guest's (none).
        decided.set(o.open, () => viaAgent(o.open, report));
      } else if (ent.type !== 'regular') {
        // A FIFO, device or socket is refused (the agent would read a FIFO as empty); a directory is missing, as before.
        decided.set(o.open, async () => {
          log(`output ${o.open} is a ${ent.type} in the guest, not a regular file: not collected`);
          report.missing.push(o.open);
        });
      } else {
        const host = await resolveFilename(slotDir, o.open);
        const t = await tmpNextTo(host);
        if (o.max && o.max > 0 && ent.size > o.max) {
          // As the agent path: not copied, a sparse file of the real size for the client to refuse.
          decided.set(o.open, async () => {
            await fsp.writeFile(t, '');
            await fsp.truncate(t, ent.size);
            await fsp.rename(t, host);
            report.tooBig.push(o.open);
          });
        } else if (!plainName(t)) {
          decided.set(o.open, () => viaAgent(o.open, report));
        } else {
          dumps.push({ name: o.name, dest: t, size: ent.size, host, open: o.open });
          decided.set(o.open, async () => {
            await fsp.rename(t, host);
            report.copied.push(o.open);
          });
        }
      }
    }
    try {
      await dumpFromImage(tools, image, cmdFile, dumps);
    } catch (e) {
      for (const d of dumps) await fsp.rm(d.dest, { force: true });
      throw e;
    }
    if (err?.type === 'regular' && err.size > 0) {
      const fh = await fsp.open(path.join(readDir, 'stderr'), 'r');
      try {
        const keep = Math.min(err.size, GUEST_STDERR_KEEP);
        const buf = Buffer.alloc(keep);
        await fh.read(buf, 0, keep, err.size - keep);
        await fsp.appendFile(path.join(slotDir, 'stderr.txt'), buf);
      } finally {
        await fh.close();
      }
    }
    // In the declared order, as the agent path reports them.
    for (const o of outs) await (decided.get(o.open) ?? (() => viaAgent(o.open, report)))();
    return report;
  } catch (e) {
    if ((e as AltplatError).code !== 'VM_JOB_DISK_FAILED') throw e;
    log(`reading the job disk failed (${(e as Error).message}); copying outputs through the agent`);
    return undefined;
  } finally {
    await fsp.rm(readDir, { recursive: true, force: true });
  }
}
