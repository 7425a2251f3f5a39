import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Reason } from './types.js';

/**
 * Paths in a definition name files inside the platform folder: relative, '/'-separated. Checked twice:
 * by their text here (absolute, `..`, empty, backslash) and on disk by `resolveInside` (symbolic links).
 */
export type PathCheck = { ok: true; path: string } | { ok: false; reason: Reason };

/** Check a path's text and normalise it (drop `.` and empty segments). `what` names it in messages. */
export function checkRelativePath(raw: string, what: string): PathCheck {
  const p = raw;
  if (p === '') return bad('DEF_BAD_VALUE', `${what} is empty`);
  if (p.includes('\0')) return bad('DEF_BAD_VALUE', `${what} contains a NUL character`);
  if (p.startsWith('/') || p.startsWith('\\') || /^[A-Za-z]:/.test(p)) {
    return bad('PATH_ABSOLUTE', `${what} "${p}" is an absolute path; it must be a path inside the platform folder`);
  }
  const segments = p.split(/[\\/]/);
  if (segments.includes('..')) {
    return bad('PATH_PARENT', `${what} "${p}" contains "..", which could lead outside the platform folder`);
  }
  if (p.includes('\\')) {
    return bad('DEF_BAD_VALUE', `${what} "${p}" contains a backslash; separate folders with "/"`);
  }
  const kept = segments.filter((s) => s !== '' && s !== '.');
  if (kept.length === 0) return bad('DEF_BAD_VALUE', `${what} "${p}" names the platform folder itself, not a file in it`);
  return { ok: true, path: kept.join('/') };
}

function bad(code: string, message: string): PathCheck {
  return { ok: false, reason: { code, message } };
}

export type Resolved =
  | { ok: true; real: string }
  | { ok: false; errno: string; reason?: Reason };

/**
 * Resolve `rel` (already checked by checkRelativePath) inside the folder whose real path is `dirReal`,
 * following symbolic links. A result outside the folder is PATH_ESCAPES; a missing file comes back as
 * `errno: 'ENOENT'` (or ENOTDIR, ELOOP, ...) for the caller to word.
 */
export function resolveInside(dirReal: string, rel: string, what: string): Resolved {
  let real: string;
  try {
    real = fs.realpathSync.native(path.join(dirReal, rel));
  } catch (e) {
    return { ok: false, errno: (e as NodeJS.ErrnoException).code ?? 'EIO' };
  }
  if (!isInside(dirReal, real)) {
    return {
      ok: false,
      errno: 'ESCAPES',
      reason: {
        code: 'PATH_ESCAPES',
        message: `${what} "${rel}" leads through a symbolic link to ${real}, outside the platform folder`,
      },
    };
  }
  return { ok: true, real };
}

/** Is `p` strictly below `dir` (both absolute and real)? */
export function isInside(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

export type Located =
  | { ok: true; real: string; st: fs.Stats }
  | { ok: false; errno: string; reason?: Reason };

/**
 * `resolveInside` made cheap for the common case: `lstat` each component below the folder's real path
 * (a component seen before for this platform is not looked at again); only when a component is a
 * symbolic link does it fall back to realpath and the containment check. Also returns the file's stat
 * (following links), so callers need no second system call.
 */
export function locateInside(dirReal: string, rel: string, what: string, seen?: Map<string, fs.Stats | null>): Located {
  const parts = rel.split('/');
  let cur = dirReal;
  let st: fs.Stats | null | undefined;
  for (let i = 0; i < parts.length; i++) {
    cur = cur + path.sep + parts[i];
    st = seen?.get(cur);
    if (st === undefined) {
      try {
        st = fs.lstatSync(cur, { throwIfNoEntry: false }) ?? null;
      } catch (e) {
        return { ok: false, errno: (e as NodeJS.ErrnoException).code ?? 'EIO' };
      }
      seen?.set(cur, st);
    }
    if (st === null) return { ok: false, errno: 'ENOENT' };
    if (st.isSymbolicLink()) {
      const r = resolveInside(dirReal, rel, what);
      if (!r.ok) return r;
      try {
        return { ok: true, real: r.real, st: fs.statSync(r.real) };
      } catch (e) {
        return { ok: false, errno: (e as NodeJS.ErrnoException).code ?? 'EIO' };
      }
    }
    if (i < parts.length - 1 && !st.isDirectory()) return { ok: false, errno: 'ENOTDIR' };
  }
  return { ok: true, real: cur, st: st as fs.Stats };
}
