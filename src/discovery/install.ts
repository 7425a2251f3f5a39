import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AltplatError } from '../errors.js';
import { ALT_PLATFORMS_DIR, resolveDataDir } from '../paths.js';
import { fsyncDir } from '../util/atomic.js';
import { HashCache, HASH_CACHE_FILE } from '../definition/hash.js';
import { parseDefinition } from '../definition/parse.js';
import { isInside } from '../definition/paths.js';
import { readDefinition } from '../definition/read.js';
import type { PlatformDefinition, Reason } from '../definition/types.js';
import { checkPlatformFiles } from '../definition/validate.js';
import { checkDataDir } from './discover.js';

export interface InstallOptions {
  dataDir?: string;
  /** Replace an installed platform of the same name. */
  force?: boolean;
  /** Told the total before copying starts (for a progress display). */
  onStart?: (totalBytes: number, files: number) => void;
  onProgress?: (bytesDone: number, file: string) => void;
}

export interface InstallResult {
  name: string;
  version: string;
  /** Where it was installed: `<data>/alt_platforms/<name>`. */
  dir: string;
  files: number;
  bytes: number;
  /** Listed files whose size and sha256 were checked while copying. */
  verified: number;
  replaced: boolean;
  warnings: string[];
}

const TMP_PREFIX = '.altplat-install-';
const OLD_PREFIX = '.altplat-old-';
const CHUNK = 1 << 20;

/**
 * Install a platform folder into `<data>/alt_platforms/<name>/`, `name` being its definition's <name>.
 * The source is validated first (definition, paths, manager, listed files and sizes); then the whole
 * folder is copied into a scratch folder next to the target (`.altplat-install-<pid>-…`, which discovery
 * ignores), every file hashed while it is copied and compared with its <nbytes>/<sha256>, the copy
 * checked again, fsynced, and renamed into place — so a crash or a mismatch never leaves a half-installed
 * platform. An installed platform of the same name is only replaced with `force`. The hashes computed
 * while copying are put in the hash cache, so the next scan does not read the files again.
 *
 * Errors (AltplatError): INSTALL_SOURCE (PATH is not a folder), INSTALL_INVALID (the definition or its
 * files are broken; `details.reasons`), INSTALL_EXISTS, FILE_SIZE_MISMATCH / FILE_SHA256_MISMATCH,
 * PATH_ESCAPES / PATH_ABSOLUTE (a symbolic link in the folder leads outside it), DATA_DIR_*.
 *
 * @example
 * const r = await installPlatform('build/x86_64-pc-linux-gnu', { dataDir: '/var/lib/boinc-client' });
 */
export async function installPlatform(source: string, opts: InstallOptions = {}): Promise<InstallResult> {
  let srcReal: string;
  try {
    srcReal = fs.realpathSync.native(path.resolve(source));
  } catch (e) {
    throw new AltplatError('INSTALL_SOURCE', `${source} cannot be opened: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!fs.statSync(srcReal).isDirectory()) throw new AltplatError('INSTALL_SOURCE', `${source} is not a folder; install takes a platform folder`);

  // 1. The source must be a sound platform (bar the folder name, which becomes the definition's name).
  const def = validateSource(srcReal);

  const dataDir = resolveDataDir(opts.dataDir, {});
  checkDataDir(dataDir);
  const altDir = path.join(dataDir, ALT_PLATFORMS_DIR);
  await fs.promises.mkdir(altDir, { recursive: true });
  const altReal = fs.realpathSync.native(altDir);
  const target = path.join(altDir, def.name);
  const targetReal = path.join(altReal, def.name);
  if (srcReal === targetReal || isInside(targetReal, srcReal)) {
    throw new AltplatError('INSTALL_SOURCE', `${source} is the installed platform itself; nothing to do`);
  }
  const exists = fs.existsSync(target) || isSymlink(target);
  if (exists && !opts.force) {
    throw new AltplatError('INSTALL_EXISTS', `platform ${def.name} is already installed in ${target}; use --force to replace it`);
  }
  await removeStaleScratch(altDir);

  // 2. Copy everything into a scratch folder, hashing on the way.
  const plan = planCopy(srcReal);
  opts.onStart?.(plan.bytes, plan.files.length);
  const tmp = await fs.promises.mkdtemp(path.join(altDir, `${TMP_PREFIX}${process.pid}-`));
  const hashes = new Map<string, string>(); // relative path -> sha256
  try {
    let done = 0;
    for (const d of plan.dirs) await fs.promises.mkdir(path.join(tmp, d), { recursive: true });
    for (const f of plan.files) {
      const sha = await copyFileHashing(path.join(srcReal, f.rel), path.join(tmp, f.rel), f.mode, (n) => {
        done += n;
        opts.onProgress?.(done, f.rel);
      });
      hashes.set(f.rel, sha.sha256);
      if (sha.nbytes !== f.size) {
        throw new AltplatError('INSTALL_CHANGED', `${f.rel} changed while it was copied (${f.size} bytes before, ${sha.nbytes} read)`);
      }
    }
    for (const l of plan.links) await fs.promises.symlink(l.target, path.join(tmp, l.rel));

    // 3. Compare with the definition: sizes and sha256 of what was written.
    let verified = 0;
    for (const f of def.files) {
      const rel = path.relative(srcReal, fs.realpathSync.native(path.join(srcReal, f.name))).split(path.sep).join('/');
      const got = hashes.get(rel);
      const size = plan.files.find((x) => x.rel === rel)?.size;
      if (f.nbytes !== undefined && size !== f.nbytes) {
        throw new AltplatError('FILE_SIZE_MISMATCH', `file "${f.name}" is ${size} bytes; the definition says ${f.nbytes}`);
      }
      if (f.sha256 !== undefined && got !== f.sha256) {
        throw new AltplatError('FILE_SHA256_MISMATCH', `file "${f.name}" has sha256 ${got}; the definition says ${f.sha256} (damaged or replaced)`);
      }
      verified++;
    }

    // 4. The copy must pass the same checks discovery applies (the known hashes spare a second read).
    const tmpReal = fs.realpathSync.native(tmp);
    const known = new Map([...hashes].map(([rel, sha]) => [path.join(tmpReal, ...rel.split('/')), sha]));
    const check = checkPlatformFiles({ ...def, dir: target }, tmpReal, { cache: HashCache.memory(), known });
    if (check.reasons.length > 0) throw invalidError(def.name, 'the copy', check.reasons);
    // Folders get their source modes last (a read-only source folder must not stop the copy into it).
    for (let i = plan.dirs.length - 1; i >= 0; i--) {
      await fs.promises.chmod(path.join(tmp, plan.dirs[i]), plan.dirModes[i] | 0o100);
      await fsyncDir(path.join(tmp, plan.dirs[i]));
    }
    await fs.promises.chmod(tmp, plan.mode | 0o100);
    await fsyncDir(tmp);

    // 5. Into place.
    if (exists) {
      const old = path.join(altDir, `${OLD_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
      await fs.promises.rename(target, old);
      try {
        await fs.promises.rename(tmp, target);
      } catch (e) {
        await fs.promises.rename(old, target).catch(() => undefined);
        throw e;
      }
      await fsyncDir(altDir);
      await fs.promises.rm(old, { recursive: true, force: true });
    } else {
      try {
        await fs.promises.rename(tmp, target);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new AltplatError('INSTALL_EXISTS', `platform ${def.name} was installed by someone else meanwhile`);
        throw e;
      }
      await fsyncDir(altDir);
    }

    // 6. Remember the hashes for the installed paths.
    const warnings: string[] = [...plan.warnings];
    const cache = HashCache.load(path.join(dataDir, HASH_CACHE_FILE));
    for (const [rel, sha] of hashes) {
      const p = path.join(targetReal, ...rel.split('/'));
      try {
        cache.store(p, fs.statSync(p), sha);
      } catch { /* gone already */ }
    }
    const err = await cache.save();
    if (err) warnings.push(err);
    return { name: def.name, version: def.version, dir: target, files: plan.files.length, bytes: plan.bytes, verified, replaced: exists, warnings };
  } catch (e) {
    await fs.promises.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}

function invalidError(name: string, what: string, reasons: Reason[]): AltplatError {
  return new AltplatError('INSTALL_INVALID',
    `${what} of platform ${name} is not sound:\n${reasons.map((r) => `  ${r.code}: ${r.message}`).join('\n')}`, { reasons });
}

function validateSource(srcReal: string): PlatformDefinition {
  const read = readDefinition(srcReal);
  if ('reason' in read) throw invalidError(path.basename(srcReal), 'the folder', [read.reason]);
  const parsed = parseDefinition(read.text, { dir: srcReal });
  if (!parsed.definition) throw invalidError(parsed.name ?? path.basename(srcReal), 'the definition', parsed.reasons);
  const check = checkPlatformFiles(parsed.definition, srcReal, { cache: HashCache.memory(), skipHash: true });
  if (check.reasons.length > 0) throw invalidError(parsed.definition.name, 'the folder', check.reasons);
  return parsed.definition;
}

function isSymlink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

interface CopyPlan {
  /** Mode of the source folder itself. */
  mode: number;
  dirs: string[];
  dirModes: number[];
  files: { rel: string; size: number; mode: number }[];
  links: { rel: string; target: string }[];
  bytes: number;
  warnings: string[];
}

/** Everything under the source folder; symbolic links must stay inside it and be relative. */
function planCopy(srcReal: string): CopyPlan {
  const plan: CopyPlan = { mode: fs.statSync(srcReal).mode & 0o777, dirs: [], dirModes: [], files: [], links: [], bytes: 0, warnings: [] };
  const walk = (relDir: string) => {
    const abs = path.join(srcReal, relDir);
    for (const e of fs.readdirSync(abs, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const rel = relDir === '' ? e.name : `${relDir}/${e.name}`;
      const p = path.join(abs, e.name);
      if (e.isDirectory()) {
        plan.dirs.push(rel);
        plan.dirModes.push(fs.statSync(p).mode & 0o777);
        walk(rel);
      } else if (e.isFile()) {
        const st = fs.statSync(p);
        plan.files.push({ rel, size: st.size, mode: st.mode & 0o777 });
        plan.bytes += st.size;
      } else if (e.isSymbolicLink()) {
        const target = fs.readlinkSync(p);
        if (path.isAbsolute(target)) {
          throw new AltplatError('PATH_ABSOLUTE', `${rel} is a symbolic link to the absolute path ${target}; links in a platform folder must be relative`);
        }
        let real: string | undefined;
        try {
          real = fs.realpathSync.native(p);
        } catch { /* dangling */ }
        const lexical = path.resolve(path.dirname(p), target);
        if (!isInside(srcReal, lexical) || (real !== undefined && !isInside(srcReal, real))) {
          throw new AltplatError('PATH_ESCAPES', `${rel} is a symbolic link to ${target}, outside the platform folder`);
        }
        plan.links.push({ rel, target });
      } else {
        plan.warnings.push(`${rel} is not a file, folder or link; not copied`);
      }
    }
  };
  walk('');
  return plan;
}

async function copyFileHashing(from: string, to: string, mode: number, onBytes: (n: number) => void): Promise<{ sha256: string; nbytes: number }> {
  const h = createHash('sha256');
  const src = await fs.promises.open(from, 'r');
  let nbytes = 0;
  try {
    const dst = await fs.promises.open(to, 'wx', mode | 0o200);
    try {
      const buf = Buffer.allocUnsafe(CHUNK);
      for (;;) {
        const { bytesRead } = await src.read(buf, 0, CHUNK, null);
        if (bytesRead === 0) break;
        const chunk = buf.subarray(0, bytesRead);
        h.update(chunk);
        let off = 0;
        while (off < bytesRead) off += (await dst.write(chunk, off, bytesRead - off)).bytesWritten;
        nbytes += bytesRead;
        onBytes(bytesRead);
      }
      await dst.sync();
    } finally {
      await dst.close();
    }
    await fs.promises.chmod(to, mode);
  } finally {
    await src.close();
  }
  return { sha256: h.digest('hex'), nbytes };
}

/** Remove scratch folders of installs whose process is gone (a crash mid-install leaves one). */
async function removeStaleScratch(altDir: string): Promise<void> {
  let names: string[] = [];
  try {
    names = await fs.promises.readdir(altDir);
  } catch {
    return;
  }
  for (const n of names) {
    const m = new RegExp(`^(?:${TMP_PREFIX.replace(/\./g, '\\.')}|${OLD_PREFIX.replace(/\./g, '\\.')})(\\d+)-`).exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && isAlive(pid)) continue;
    if (pid === process.pid) continue;
    await fs.promises.rm(path.join(altDir, n), { recursive: true, force: true }).catch(() => undefined);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
