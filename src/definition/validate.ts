import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { sha256File, type HashCache } from './hash.js';
import { locateInside } from './paths.js';
import type { PlatformDefinition, Reason } from './types.js';

/** The on-disk state of one listed file (or the manager) after checking. */
export interface FileCheck {
  /** Path inside the platform folder, as listed. */
  name: string;
  /** Real absolute path, when it resolved inside the folder. */
  path?: string;
  expectedNbytes?: number;
  expectedSha256?: string;
  nbytes?: number;
  sha256?: string;
  /** `pending` until its hash job ran; `unchecked` = no sha256 listed, size (if listed) matched. */
  status: 'ok' | 'unchecked' | 'missing' | 'not-regular' | 'escapes' | 'size-mismatch' | 'sha256-mismatch' | 'unreadable' | 'pending';
  /** The sha256 came from the hash cache, not from reading the file in this run. */
  fromCache?: boolean;
}

/** A file whose sha256 must be computed (not in the cache, or a re-hash was asked for). */
export interface HashJob {
  platform: string;
  check: FileCheck;
  stat: fs.Stats;
  reasons: Reason[];
}

export interface OnDiskCheck {
  reasons: Reason[];
  files: FileCheck[];
  /** Real path of the manager when it is sound. */
  manager?: string;
  /** Real path of every sound manager, by its file name in the definition (several backends). */
  managers: Record<string, string>;
  jobs: HashJob[];
}

export interface CheckFilesOptions {
  cache: HashCache;
  /** Ignore the cache and hash every file that lists a sha256 (altplat verify). */
  rehash?: boolean;
  /** Do not hash at all (install hashes while copying); sha256 checks are left `pending` without a job. */
  skipHash?: boolean;
  /** Known fresh hashes by real path (install seeds the ones it computed while copying). */
  known?: ReadonlyMap<string, string>;
}

const isWindows = process.platform === 'win32';
const uid = process.getuid?.();

/**
 * Check a parsed definition against its folder, synchronously (stat-sized work only): every path must
 * resolve inside `dirReal` (the folder's real path), the manager must be a regular executable file, every
 * listed file a regular file of the listed size. sha256 checks are answered from the cache when its key
 * still matches; the rest come back as `jobs` for `runHashJobs`.
 */
export function checkPlatformFiles(def: PlatformDefinition, dirReal: string, opts: CheckFilesOptions): OnDiskCheck {
  const reasons: Reason[] = [];
  const files: FileCheck[] = [];
  const jobs: HashJob[] = [];
  let manager: string | undefined;

  const seen = new Map<string, fs.Stats | null>();
  // Every backend's manager must be sound (the definition is one unit: install and verify check it whole).
  const fileNames = [...new Set([def.manager.fileName, ...(def.managers ?? []).map((x) => x.fileName)])];
  const managers: Record<string, string> = {};
  for (const fileName of fileNames) {
    const m = locateInside(dirReal, fileName, 'manager', seen);
    if (!m.ok) {
      reasons.push(m.reason ?? {
        code: 'MANAGER_MISSING',
        message: `manager "${fileName}" does not exist in the platform folder${m.errno !== 'ENOENT' ? ` (${m.errno})` : ''}`,
      });
      continue;
    }
    const st = m.st;
    if (!st.isFile()) {
      reasons.push({ code: 'MANAGER_NOT_REGULAR', message: `manager "${fileName}" is not a regular file${st.isDirectory() ? ' (it is a folder)' : ''}` });
    } else if (!isExecutable(m.real, st)) {
      reasons.push({ code: 'MANAGER_NOT_EXECUTABLE', message: `manager "${fileName}" is not executable (chmod +x it)` });
    } else {
      managers[fileName] = m.real;
    }
  }
  manager = managers[def.manager.fileName];

  for (const f of def.files) {
    const check: FileCheck = { name: f.name, status: 'ok' };
    if (f.nbytes !== undefined) check.expectedNbytes = f.nbytes;
    if (f.sha256 !== undefined) check.expectedSha256 = f.sha256;
    files.push(check);
    const r = locateInside(dirReal, f.name, 'file', seen);
    if (!r.ok) {
      if (r.reason) {
        check.status = 'escapes';
        reasons.push(r.reason);
      } else {
        check.status = 'missing';
        reasons.push({ code: 'FILE_MISSING', message: `file "${f.name}" does not exist in the platform folder${r.errno !== 'ENOENT' ? ` (${r.errno})` : ''}` });
      }
      continue;
    }
    check.path = r.real;
    const st = r.st;
    if (!st.isFile()) {
      check.status = 'not-regular';
      reasons.push({ code: 'FILE_NOT_REGULAR', message: `file "${f.name}" is not a regular file${st.isDirectory() ? ' (it is a folder)' : ''}` });
      continue;
    }
    check.nbytes = st.size;
    if (f.nbytes !== undefined && st.size !== f.nbytes) {
      check.status = 'size-mismatch';
      reasons.push({ code: 'FILE_SIZE_MISMATCH', message: `file "${f.name}" is ${st.size} bytes; the definition says ${f.nbytes}` });
      continue;
    }
    if (f.sha256 === undefined) {
      check.status = 'unchecked';
      continue;
    }
    const known = opts.known?.get(r.real) ?? (opts.rehash ? undefined : opts.cache.lookup(r.real, st));
    if (known !== undefined) {
      check.sha256 = known;
      check.fromCache = !opts.known?.has(r.real);
      if (known !== f.sha256) {
        check.status = 'sha256-mismatch';
        reasons.push(sha256Mismatch(f.name, known, f.sha256));
      }
      continue;
    }
    check.status = 'pending';
    if (!opts.skipHash) jobs.push({ platform: def.name, check, stat: st, reasons });
  }
  return { reasons, files, manager, managers, jobs };
}

function sha256Mismatch(name: string, actual: string, expected: string): Reason {
  return { code: 'FILE_SHA256_MISMATCH', message: `file "${name}" has sha256 ${actual}; the definition says ${expected} (damaged or replaced)` };
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

function isExecutable(p: string, st: fs.Stats): boolean {
  if (isWindows) {
    const ext = p.slice(p.lastIndexOf('.')).toUpperCase();
    const exts = (process.env.PATHEXT ?? '.COM;.EXE;.BAT;.CMD').split(';').map((e) => e.toUpperCase());
    return exts.includes(ext);
  }
  if ((st.mode & 0o111) === 0) return false;
  // The answers access(2) would give, without the system call, where the mode bits settle it.
  if (uid === 0) return true;
  if (uid === st.uid) return (st.mode & 0o100) !== 0;
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Files up to this size are read and hashed in one synchronous step. */
const SYNC_HASH_MAX = 256 * 1024;

/** Hash a small file of (expected) `size` bytes: open, one read, close. */
function sha256Small(file: string, size: number): { sha256: string; nbytes: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(size + 1);
    let n = fs.readSync(fd, buf, 0, buf.length, 0);
    const h = createHash('sha256').update(buf.subarray(0, n));
    if (n === buf.length) {
      // It grew since it was listed: hash the rest too.
      for (let got = n; got > 0; n += got) {
        got = fs.readSync(fd, buf, 0, buf.length, n);
        h.update(buf.subarray(0, got));
      }
    }
    return { sha256: h.digest('hex'), nbytes: n };
  } finally {
    fs.closeSync(fd);
  }
}

/** Progress of the sha256 pass: bytes over all jobs of one run. */
export interface HashProgress {
  platform: string;
  file: string;
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
}

export interface RunHashJobsOptions {
  cache: HashCache;
  onProgress?: (p: HashProgress) => void;
  signal?: AbortSignal;
  /** Files hashed at the same time (default 2). */
  concurrency?: number;
}

/**
 * Compute the sha256 of every job, record results in the cache and add FILE_SHA256_MISMATCH /
 * FILE_UNREADABLE reasons to the job's platform.
 */
export async function runHashJobs(jobs: HashJob[], opts: RunHashJobsOptions): Promise<void> {
  const bytesTotal = jobs.reduce((n, j) => n + j.stat.size, 0);
  let bytesDone = 0;
  let filesDone = 0;
  let next = 0;
  let syncSince = performance.now();
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      const { check } = job;
      const path = check.path as string;
      const progress = (n: number) => {
        bytesDone += n;
        opts.onProgress?.({ platform: job.platform, file: check.name, bytesDone, bytesTotal, filesDone, filesTotal: jobs.length });
      };
      try {
        // Small files are hashed synchronously (an async read costs more than the hash); the event loop
        // gets a turn every 20 ms of that.
        let r: { sha256: string; nbytes: number };
        if (job.stat.size <= SYNC_HASH_MAX) {
          r = sha256Small(path, job.stat.size);
          progress(r.nbytes);
          if (performance.now() - syncSince > 20) {
            await new Promise<void>((res) => setImmediate(res));
            opts.signal?.throwIfAborted();
            syncSince = performance.now();
          }
        } else {
          r = await sha256File(path, progress, opts.signal);
        }
        const { sha256, nbytes } = r;
        check.sha256 = sha256;
        // Remembered under the stat taken before reading. Safe even if the file changed meanwhile: a
        // changed file has another mtime (or size) now, so this entry will not match it.
        if (nbytes === job.stat.size) opts.cache.store(path, job.stat, sha256);
        if (sha256 === check.expectedSha256) {
          check.status = 'ok';
        } else {
          check.status = 'sha256-mismatch';
          job.reasons.push(sha256Mismatch(check.name, sha256, check.expectedSha256 as string));
        }
      } catch (e) {
        if (opts.signal?.aborted) throw e;
        check.status = 'unreadable';
        job.reasons.push({ code: 'FILE_UNREADABLE', message: `file "${check.name}" could not be read: ${(e as Error).message}` });
      }
      filesDone++;
    }
  };
  const n = Math.max(1, Math.min(opts.concurrency ?? 2, jobs.length));
  await Promise.all(Array.from({ length: n }, worker));
}
