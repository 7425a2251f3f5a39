import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFINITION_FILE } from '../paths.js';
import { MAX_DEFINITION_BYTES } from './parse.js';
import { isInside } from './paths.js';
import type { Reason } from './types.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

function invalid(code: string, message: string): Reason {
  return { code, message };
}

const NOFOLLOW = fs.constants.O_NOFOLLOW;
const NONBLOCK = fs.constants.O_NONBLOCK ?? 0;
/** Reused read buffer: most definitions are a few KiB. */
let scratch = Buffer.allocUnsafe(64 * 1024);

/**
 * Read alt_platform.xml of a folder (whose real path is `dirReal`): it must be a regular file inside the
 * folder (a symbolic link may point elsewhere in the folder, not out of it), at most 1 MiB, UTF-8.
 * Costs open + read + close in the common case.
 */
export function readDefinition(dirReal: string): { text: string } | { reason: Reason } {
  const file = path.join(dirReal, DEFINITION_FILE);
  let fd: number | undefined;
  let real = file;
  try {
    if (NOFOLLOW !== undefined) {
      try {
        fd = fs.openSync(file, fs.constants.O_RDONLY | NOFOLLOW | NONBLOCK);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return { reason: invalid('DEF_MISSING', `the folder has no ${DEFINITION_FILE}; every platform folder needs one`) };
        if (code !== 'ELOOP') return { reason: invalid('DEF_UNREADABLE', `${DEFINITION_FILE} cannot be opened: ${code ?? (e as Error).message}`) };
      }
    }
    if (fd === undefined) {
      // A symbolic link (or no O_NOFOLLOW): it must lead to a regular file inside the folder.
      const lst = fs.lstatSync(file, { throwIfNoEntry: false });
      if (!lst) return { reason: invalid('DEF_MISSING', `the folder has no ${DEFINITION_FILE}; every platform folder needs one`) };
      try {
        real = fs.realpathSync.native(file);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return { reason: invalid('DEF_MISSING', `${DEFINITION_FILE} is a symbolic link to a file that does not exist`) };
        return { reason: invalid('DEF_UNREADABLE', `${DEFINITION_FILE} cannot be opened: ${code ?? (e as Error).message}`) };
      }
      if (real !== file && !isInside(dirReal, real)) {
        return { reason: invalid('PATH_ESCAPES', `${DEFINITION_FILE} is a symbolic link to ${real}, outside the platform folder`) };
      }
      const st = fs.statSync(real);
      if (!st.isFile()) return { reason: invalid('DEF_UNREADABLE', `${DEFINITION_FILE} is not a regular file${st.isDirectory() ? ' (it is a folder)' : ''}`) };
      fd = fs.openSync(real, fs.constants.O_RDONLY | NONBLOCK);
    }
    let buf = scratch;
    let n = 0;
    for (;;) {
      const got = fs.readSync(fd, buf, n, buf.length - n, n);
      if (got === 0) break;
      n += got;
      if (n > MAX_DEFINITION_BYTES) {
        const size = fs.fstatSync(fd).size;
        return { reason: invalid('DEF_TOO_LARGE', `${DEFINITION_FILE} is ${size} bytes; definitions over ${MAX_DEFINITION_BYTES} bytes (1 MiB) are refused without being parsed`) };
      }
      if (n === buf.length) {
        const bigger = Buffer.allocUnsafe(Math.min(buf.length * 4, MAX_DEFINITION_BYTES + 1));
        buf.copy(bigger, 0, 0, n);
        buf = bigger;
      }
    }
    if (buf.length > scratch.length && buf.length <= 1024 * 1024) scratch = buf;
    if (n === 0 && !fs.fstatSync(fd).isFile()) {
      return { reason: invalid('DEF_UNREADABLE', `${DEFINITION_FILE} is not a regular file`) };
    }
    try {
      return { text: utf8.decode(buf.subarray(0, n)) };
    } catch {
      return { reason: invalid('DEF_NOT_WELL_FORMED', `${DEFINITION_FILE} is not UTF-8 text`) };
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') return { reason: invalid('DEF_UNREADABLE', `${DEFINITION_FILE} is not a regular file (it is a folder)`) };
    // A named pipe or a device opened without blocking fails its read with ESPIPE/EAGAIN: say what it is.
    const st = fd !== undefined ? fstatOrNull(fd) : null;
    if (st && !st.isFile()) return { reason: invalid('DEF_UNREADABLE', `${DEFINITION_FILE} is not a regular file (it is ${whatIs(st)})`) };
    return { reason: invalid('DEF_UNREADABLE', `${DEFINITION_FILE} cannot be read: ${code ?? (e as Error).message}`) };
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function fstatOrNull(fd: number): fs.Stats | null {
  try {
    return fs.fstatSync(fd);
  } catch {
    return null;
  }
}

function whatIs(st: fs.Stats): string {
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isDirectory()) return 'a folder';
  return 'not a file';
}
