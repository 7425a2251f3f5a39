import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError } from '../errors.js';
import { resolveFilename } from '../ipc/resolve.js';
import type { JobDescription } from '../job/jobfile.js';
import { shQuote, splitCommandLine } from './cmdline.js';
import type { QgaClient } from './qga.js';

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

/**
 * Fails clearly when the guest lacks the main program's loader: the VM's image has no 32-bit
 * libraries and only the 64-bit ones qemu-ga needs (docs/REFERENCE_PLATFORM.md, "What programs can
 * run"). Returns a message for stderr.txt, or undefined when the program can be started.
 */
export async function missingInterpreter(qga: QgaClient, slotDir: string, job: JobDescription): Promise<string | undefined> {
  const host = await resolveFilename(slotDir, checkOpenName(job.mainProgram));
  const interp = await programInterpreter(host);
  if (!interp) return undefined;
  const st = await qga.waitExec(await qga.exec('/bin/sh', { args: ['-c', 'test -e "$1"', 'sh', interp] }));
  if (st.exitCode === 0) return undefined;
  return `cannot start ${job.mainProgram}: it needs ${interp}, which the guest image does not have; ` +
    (interp.includes('ld-linux.so.2') || interp.includes('ld-linux-')
      ? 'it is dynamically linked against libraries the guest lacks; build it statically (gcc -static) for this platform'
      : 'the guest has only busybox (/bin/sh and its applets)');
}

/** Starts the program in the guest: cwd = guestDir, stdout/stderr to files there; returns its guest pid. */
export async function startProgram(qga: QgaClient, job: JobDescription, guestDir: string, personality: 'native' | 'linux32' = 'native'): Promise<number> {
  // (busybox linux32 sets the personality and execs the program: the guest pid stays the program's)
  const argv = [...(personality === 'linux32' ? ['/bin/linux32'] : []), `./${checkOpenName(job.mainProgram)}`, ...splitCommandLine(job.commandLine)];
  // The client puts the slot dir on the library path of every app it starts (client/app_start.cpp:
  // LD_LIBRARY_PATH = ../../projects/X:.:../..), so an app version may ship its own shared libraries;
  // in the guest they all sit in the job directory, the program's working directory.
  const script = `cd ${shQuote(guestDir)} && LD_LIBRARY_PATH=.\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH} && export LD_LIBRARY_PATH && ` +
    `exec ${argv.map(shQuote).join(' ')} >${GUEST_STDOUT} 2>${GUEST_STDERR}`;
  return qga.exec('/bin/sh', { args: ['-c', script], captureOutput: false });
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
