import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { parseStr } from './messages.js';

/**
 * boinc_resolve_filename (lib/app_ipc.cpp) for a manager written in TypeScript: which file an open
 * name in the slot really means. A symbolic link is used as it is; a file whose first line holds
 * `<soft_link>X</soft_link>` (what the client writes, client/file_names.cpp make_soft_link) means X;
 * anything else, including a missing file, means the name itself.
 * Returns an absolute path (a relative X is relative to the slot, as it is for an app whose cwd is
 * the slot).
 */
export async function resolveFilename(slotDir: string, openName: string): Promise<string> {
  const own = path.resolve(slotDir, openName);
  try {
    if ((await fsp.lstat(own)).isSymbolicLink()) return own;
  } catch {
    return own; // missing: the name itself, as fopen failing does in BOINC
  }
  let first: string;
  try {
    first = await readFirstLine(own);
  } catch {
    return own;
  }
  const target = parseStr(first, '<soft_link>');
  return target !== undefined ? path.resolve(slotDir, target) : own;
}

/** fgets(buf, 512): at most 511 bytes, up to and including the first newline. */
async function readFirstLine(file: string): Promise<string> {
  const handle = await fsp.open(file, 'r');
  try {
    const buf = Buffer.alloc(511);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    const text = buf.subarray(0, bytesRead).toString('utf8');
    const nl = text.indexOf('\n');
    return nl >= 0 ? text.slice(0, nl + 1) : text;
  } finally {
    await handle.close();
  }
}
