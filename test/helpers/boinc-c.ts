import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Compile once per (source, flags): several test files share one binary, cached in the temp dir. */
async function buildCached(source: string, compile: (src: string, out: string) => [string, string[]], flags: string[]): Promise<string> {
  const text = await fsp.readFile(source);
  const key = createHash('sha256').update(text).update(flags.join(' ')).digest('hex').slice(0, 16);
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
  const [cmd, args] = compile(source, tmp);
  await run(cmd, args);
  await fsp.rename(tmp, out);
  return out;
}

/** A C/C++ test program linked with Debian's real BOINC API library (libboinc-app-dev). */
export function buildBoincProgram(source: string, extraFlags: string[] = []): Promise<string> {
  return buildCached(source, (src, out) => ['g++', ['-O1', '-x', 'c++', src, '-o', out, '-I/usr/include/boinc',
    ...extraFlags, '-lboinc_api', '-lboinc', '-lpthread']], extraFlags);
}

/** A plain C program (no BOINC API), e.g. the paper's Appendix A program. */
export function buildPlainC(source: string, flags: string[] = []): Promise<string> {
  return buildCached(source, (src, out) => ['gcc', [...flags, src, '-o', out, '-lm']], flags);
}
