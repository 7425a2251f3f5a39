import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Compile a C/C++ test program against Debian's real BOINC API library (libboinc-app-dev) at test time.
 * Builds are cached by source hash so that several test files can share one binary.
 */
export async function buildBoincProgram(source: string, extraFlags: string[] = []): Promise<string> {
  const text = await fsp.readFile(source);
  const key = createHash('sha256').update(text).update(extraFlags.join(' ')).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), 'altplat-cbuild');
  await fsp.mkdir(dir, { recursive: true });
  const out = path.join(dir, `${path.basename(source).replace(/\.(c|cpp|cc)$/, '')}-${key}`);
  try {
    await fsp.access(out);
    return out;
  } catch {
    // not built yet
  }
  const tmp = `${out}.${process.pid}.tmp`;
  await run('g++', ['-O1', '-x', 'c++', source, '-o', tmp, '-I/usr/include/boinc',
    ...extraFlags, '-lboinc_api', '-lboinc', '-lpthread']);
  await fsp.rename(tmp, out);
  return out;
}

/** Compile a plain C program (no BOINC API), e.g. the paper's Appendix A program. */
export async function buildPlainC(source: string, flags: string[] = []): Promise<string> {
  const text = await fsp.readFile(source);
  const key = createHash('sha256').update(text).update(flags.join(' ')).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), 'altplat-cbuild');
  await fsp.mkdir(dir, { recursive: true });
  const out = path.join(dir, `${path.basename(source).replace(/\.c$/, '')}-${key}`);
  try {
    await fsp.access(out);
    return out;
  } catch {
    // not built yet
  }
  const tmp = `${out}.${process.pid}.tmp`;
  await run('gcc', [...flags, source, '-o', tmp, '-lm']);
  await fsp.rename(tmp, out);
  return out;
}
