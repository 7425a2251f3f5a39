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

/** Starts the program in the guest: cwd = guestDir, stdout/stderr to files there; returns its guest pid. */
export async function startProgram(qga: QgaClient, job: JobDescription, guestDir: string): Promise<number> {
  const argv = [`./${checkOpenName(job.mainProgram)}`, ...splitCommandLine(job.commandLine)];
  const script = `cd ${shQuote(guestDir)} && exec ${argv.map(shQuote).join(' ')} >${GUEST_STDOUT} 2>${GUEST_STDERR}`;
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
}

/**
 * After the program ends: its standard output goes to the output with open name stdout.txt (when the
 * result declares one), its standard error is appended to the slot's stderr.txt, and every declared
 * output is copied back to the file its open name resolves to. Missing outputs are reported, not
 * invented: the client's exit rules decide what a missing output means.
 */
export async function copyOut(qga: QgaClient, slotDir: string, job: JobDescription, guestDir: string): Promise<CopyOutReport> {
  const report: CopyOutReport = { copied: [], missing: [] };
  const stderrText = await qga.readFile(`${guestDir}/${GUEST_STDERR}`, 16 << 20).catch(() => Buffer.alloc(0));
  if (stderrText.length > 0) await fsp.appendFile(path.join(slotDir, 'stderr.txt'), stderrText);
  for (const out of job.outputs) {
    checkOpenName(out.openName);
    const guestFile = out.openName === STDOUT_OPEN_NAME ? `${guestDir}/${GUEST_STDOUT}` : `${guestDir}/${out.openName}`;
    const host = await resolveFilename(slotDir, out.openName);
    try {
      await qga.pullFile(guestFile, host, out.maxNbytes && out.maxNbytes > 0 ? Math.max(out.maxNbytes, 1) : undefined);
      report.copied.push(out.openName);
    } catch (e) {
      const code = (e as AltplatError).code;
      if (code !== 'QGA_COMMAND_FAILED' && code !== 'QGA_FILE_TOO_LARGE') throw e;
      report.missing.push(out.openName);
    }
  }
  return report;
}
