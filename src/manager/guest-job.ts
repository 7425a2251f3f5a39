import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError } from '../errors.js';
import { resolveFilename } from '../ipc/resolve.js';
import type { JobDescription } from '../job/jobfile.js';
import { splitCommandLine } from './cmdline.js';
import type { GuestExecStatus, QgaClient } from './qga.js';

/** File names the manager uses inside the guest's job directory for the program's output streams. */
export const GUEST_STDOUT = '.altplat_stdout';
export const GUEST_STDERR = '.altplat_stderr';
/** How much of the program's standard error is kept (its end). */
export const GUEST_STDERR_KEEP = 16 << 20;
/** A program may write its progress (0..1) here, in its working directory. */
export const FRACTION_DONE_FILE = 'fraction_done';
/** Open name of the output file that receives the program's standard output. */
export const STDOUT_OPEN_NAME = 'stdout.txt';

/** An open name is a relative path in the slot; nothing may climb out of the guest's job directory. */
export function checkOpenName(name: string): string {
  const parts = name.split('/');
  if (name === '' || name.startsWith('/') || parts.some((p) => p === '..' || p === '' || p === '.')) {
    throw new AltplatError('JOB_BAD_OPEN_NAME', `open name '${name}' is not a plain relative path`, { openName: name });
  }
  return name;
}

/** Every file the program needs, mapped from its open name to the host file it resolves to. */
export async function jobInputs(slotDir: string, job: JobDescription): Promise<Array<{ openName: string; host: string; exec: boolean }>> {
  const names = new Map<string, boolean>();
  names.set(job.mainProgram, true);
  for (const f of job.appFiles) if (!f.openName.endsWith('.qcow2')) names.set(f.openName, names.get(f.openName) ?? false);
  for (const f of job.inputs) names.set(f.openName, names.get(f.openName) ?? false);
  const out = [];
  for (const [openName, exec] of names) {
    checkOpenName(openName);
    // Soft-link files are resolved on the host side: the guest gets the real content under the open name.
    const host = await resolveFilename(slotDir, openName);
    try {
      const st = await fsp.stat(host);
      if (!st.isFile()) throw new Error('not a regular file');
    } catch (e) {
      throw new AltplatError('JOB_INPUT_MISSING', `job file '${openName}' (${host}) is not readable: ${(e as Error).message}`, { openName, host });
    }
    out.push({ openName, host, exec });
  }
  return out;
}

/** Copies the main program, app files and inputs into `guestDir`, marking the main program executable. */
export async function copyIn(qga: QgaClient, slotDir: string, job: JobDescription, guestDir: string): Promise<number> {
  await qga.run('/bin/mkdir', ['-p', guestDir]);
  let bytes = 0;
  for (const f of await jobInputs(slotDir, job)) {
    const dest = `${guestDir}/${f.openName}`;
    if (f.openName.includes('/')) await qga.run('/bin/mkdir', ['-p', path.posix.dirname(dest)]);
    bytes += await qga.pushFile(f.host, dest, f.exec ? 0o755 : undefined);
  }
  return bytes;
}

/**
 * The program loader the main program needs, read from the host copy: the `#!` line of a script, or
 * the ELF PT_INTERP of a dynamically linked binary (e.g. /lib/ld-linux.so.2 for a dynamic i686
 * program); undefined for a static binary or anything else. Without this check a program whose
 * loader the guest lacks fails with the shell's bare "not found".
 */
export async function programInterpreter(hostFile: string): Promise<string | undefined> {
  const fh = await fsp.open(hostFile, 'r');
  try {
    const head = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const b = head.subarray(0, bytesRead);
    if (b.length > 2 && b[0] === 0x23 && b[1] === 0x21) {
      const line = b.subarray(2).toString('latin1').split('\n')[0]!.trim();
      return line.split(/[ \t]+/)[0] || undefined;
    }
    if (b.length < 52 || b.readUInt32BE(0) !== 0x7f454c46) return undefined;
    const is64 = b[4] === 2;
    const le = b[5] === 1;
    const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const u64 = (o: number) => Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
    const phoff = is64 ? u64(32) : u32(28);
    const phentsize = u16(is64 ? 54 : 42);
    const phnum = u16(is64 ? 56 : 44);
    const ph = Buffer.alloc(phentsize * phnum);
    await fh.read(ph, 0, ph.length, phoff);
    const pu32 = (o: number) => (le ? ph.readUInt32LE(o) : ph.readUInt32BE(o));
    const pu64 = (o: number) => Number(le ? ph.readBigUInt64LE(o) : ph.readBigUInt64BE(o));
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize;
      if (pu32(o) !== 3 /* PT_INTERP */) continue;
      const off = is64 ? pu64(o + 8) : pu32(o + 4);
      const size = is64 ? pu64(o + 32) : pu32(o + 16);
      const name = Buffer.alloc(Math.min(size, 4096));
      await fh.read(name, 0, name.length, off);
      return name.toString('latin1').replace(/\0.*$/s, '') || undefined;
    }
    return undefined;
  } finally {
    await fh.close();
  }
}

/** The guest's own start-up helper (scripts/guest/altplat-resume.c), in the image's initramfs. */
export const GUEST_HELPER = '/sbin/altplat-resume';
/** The helper's exit status when the main program's loader is missing (its `-i` check). */
const HELPER_NO_INTERPRETER = 3;

export interface GuestStart {
  /** The guest's job directory. */
  guestDir: string;
  personality?: 'native' | 'linux32';
  /** After a resume from a saved booted state: the host's entropy for the reseed (the clock is set too). */
  entropy?: Buffer;
  /** The job disk's guest device, mounted at guestDir first; after the program the helper remounts it read-only. */
  jobDevice?: string;
}

/**
 * Starts the main program in ONE guest program (each guest program costs tens of ms under TCG, the
 * first after a resume well over 100): the helper sets the clock and reseeds the RNG (after a resume),
 * mounts the job disk, checks the program's loader, then starts the program as busybox sh did before
 * (`cd guestDir && exec ./prog args >.altplat_stdout 2>.altplat_stderr`, same environment); with the
 * job disk it waits for the program and remounts the disk read-only before it exits, so the host can
 * read the outputs as soon as the exit is seen. Returns the guest pid to poll; what happened comes
 * back with the exit (startOutcome).
 */
export async function startInGuest(qga: QgaClient, slotDir: string, job: JobDescription, o: GuestStart): Promise<number> {
  const prog = checkOpenName(job.mainProgram);
  const args: string[] = [];
  if (o.entropy) {
    const now = Date.now();
    args.push('-t', String(Math.floor(now / 1000)), String((now % 1000) * 1e6), '-e');
  }
  if (o.jobDevice) args.push('-m', o.jobDevice, o.guestDir, '-x', `${o.guestDir}/${prog}`);
  // The loader is read from the host copy; the guest checks only that it exists (as `test -e` did).
  const interp = await programInterpreter(await resolveFilename(slotDir, prog));
  if (interp) args.push('-i', interp);
  if (o.jobDevice) args.push('-R', o.guestDir);
  args.push('-c', o.guestDir, '-o', GUEST_STDOUT, '-E', GUEST_STDERR);
  // (the linux32 personality is set by the helper before exec, as busybox linux32 did)
  if (o.personality === 'linux32') args.push('-l');
  // The client puts the slot dir on the library path of every app it starts (client/app_start.cpp:
  // LD_LIBRARY_PATH = ../../projects/X:.:../..), so an app version may ship its own shared libraries;
  // in the guest they all sit in the job directory: the helper prepends `.` as the shell line did.
  args.push('--', `./${prog}`, ...splitCommandLine(job.commandLine));
  return qga.exec(GUEST_HELPER, { args, input: o.entropy, captureOutput: true });
}

export type StartOutcome =
  | { kind: 'ran'; diskReadOnly: boolean }
  | { kind: 'cannot-start'; message: string }
  | { kind: 'prepare-failed'; error: AltplatError };

/**
 * What an ended startInGuest program says: the program ran (the exit status is its own; whether the
 * job disk is read-only now), its loader is missing, or the preparation failed (the helper's reason).
 * The program's own output never reaches the captured streams (they are redirected to files first),
 * so only the helper writes there.
 */
export function startOutcome(st: GuestExecStatus, job: JobDescription): StartOutcome {
  const out = st.stdout?.toString() ?? '';
  const err = st.stderr?.toString().trim() ?? '';
  if (out.split('\n').includes('started') || !/altplat-resume/.test(err)) return { kind: 'ran', diskReadOnly: out.split('\n').includes('readonly') };
  const interp = /^altplat-resume: no interpreter (.*)$/m.exec(err)?.[1];
  if (st.exitCode === HELPER_NO_INTERPRETER && interp) {
    return {
      kind: 'cannot-start',
      message: `cannot start ${job.mainProgram}: it needs ${interp}, which the guest image does not have; ` +
        (interp.includes('ld-linux.so.2') || interp.includes('ld-linux-')
          ? 'it is dynamically linked against libraries the guest lacks; build it statically (gcc -static) for this platform'
          : 'the guest has only busybox (/bin/sh and its applets)'),
    };
  }
  return {
    kind: 'prepare-failed',
    error: new AltplatError('VM_GUEST_PREPARE_FAILED', `${GUEST_HELPER} failed in the guest before the program started (${st.exitCode ?? `signal ${st.signal}`}): ${err}`,
      { exitCode: st.exitCode, signal: st.signal }),
  };
}

/** Reads the program's own progress report, if it wrote one; undefined when absent or unreadable. */
export async function readGuestFraction(qga: QgaClient, guestDir: string): Promise<number | undefined> {
  try {
    const text = (await qga.readFile(`${guestDir}/${FRACTION_DONE_FILE}`, 4096)).toString('utf8').trim();
    const f = Number(text);
    return text !== '' && Number.isFinite(f) ? Math.min(1, Math.max(0, f)) : undefined;
  } catch (e) {
    if ((e as AltplatError).code === 'QGA_COMMAND_FAILED') return undefined;
    throw e;
  }
}

export interface CopyOutReport {
  copied: string[];
  missing: string[];
  /** Over their max_nbytes: left on the host as a sparse file of the real size, for the client to refuse. */
  tooBig: string[];
}

/**
 * After the program ends: its standard output goes to the output with open name stdout.txt (when the
 * result declares one), its standard error is appended to the slot's stderr.txt, and every declared
 * output is copied back to the file its open name resolves to. Missing outputs are reported, not
 * invented: the client's exit rules decide what a missing output means.
 */
export async function copyOut(qga: QgaClient, slotDir: string, job: JobDescription, guestDir: string): Promise<CopyOutReport> {
  const report: CopyOutReport = { copied: [], missing: [], tooBig: [] };
  // A program that floods stderr keeps its last 16 MiB (the end is where the reason for a failure is;
  // the client reports only the last 63 KB of stderr.txt anyway). Absent: nothing to append.
  const stderrText = await qga.readFileTail(`${guestDir}/${GUEST_STDERR}`, GUEST_STDERR_KEEP).catch((e) => {
    if ((e as AltplatError).code === 'QGA_COMMAND_FAILED') return Buffer.alloc(0);
    throw e;
  });
  if (stderrText.length > 0) await fsp.appendFile(path.join(slotDir, 'stderr.txt'), stderrText);
  for (const out of job.outputs) await copyOutputViaAgent(qga, slotDir, job, guestDir, out.openName, report);
  return report;
}

/** One declared output through the agent (inside the guest: a symlink is followed there, never on the host). */
export async function copyOutputViaAgent(qga: QgaClient, slotDir: string, job: JobDescription, guestDir: string, openName: string, report: CopyOutReport): Promise<void> {
  const out = job.outputs.find((o) => o.openName === openName);
  if (!out) return;
  checkOpenName(out.openName);
  const guestFile = out.openName === STDOUT_OPEN_NAME ? `${guestDir}/${GUEST_STDOUT}` : `${guestDir}/${out.openName}`;
  const host = await resolveFilename(slotDir, out.openName);
  try {
    await qga.pullFile(guestFile, host, out.maxNbytes && out.maxNbytes > 0 ? Math.max(out.maxNbytes, 1) : undefined);
    report.copied.push(out.openName);
  } catch (e) {
    const code = (e as AltplatError).code;
    if (code === 'QGA_FILE_TOO_LARGE') {
      // Over max_nbytes: not worth copying, but the client must see a file of the real size so that
      // its rule reports ERR_FILE_TOO_BIG with that size (client/cs_apps.cpp app_finished) rather
      // than a missing file. A sparse file of that size costs nothing; the client deletes it.
      const size = await qga.fileSize(guestFile);
      const tmp = `${host}.altplat-pull-${process.pid}`;
      await fsp.writeFile(tmp, '');
      await fsp.truncate(tmp, size);
      await fsp.rename(tmp, host);
      report.tooBig.push(out.openName);
      return;
    }
    if (code !== 'QGA_COMMAND_FAILED') throw e;
    report.missing.push(out.openName);
  }
}
