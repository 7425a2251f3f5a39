import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError } from '../errors.js';
import { SlotLock } from '../ipc/lockfile.js';
import { ensureOwnedDir, OWNED_DIR_NOT_REAL, realDataRoot } from '../util/owned-dir.js';
import { fsyncDir, writeFileAtomic } from '../util/atomic.js';
import { kvmPrecheck, readVerdict, verdictKey } from './accel.js';
import { findTool, createPlaceholderJobDisk, JOB_DISK_BYTES } from './job-disk.js';
import { createOverlay, QEMU_BINARY, qemuArgs, QemuVm } from './qemu.js';
import { STATE_FILE } from './state.js';
import type { VmConfig } from './vm-config.js';

/**
 * Saved booted guests (issue 10 item 1): `<data>/altplat/vm/<key>/` holds a guest booted once cold and
 * stopped with its agent ready — `memory` (QEMU's migration stream, RAM and device state) and
 * `disk.qcow2` (its system disk at that moment, an overlay of the base). A task's system disk is then a
 * qcow2 overlay on `disk.qcow2` and QEMU starts with `-incoming` from `memory`: no firmware, no kernel
 * boot. The folder holds nothing of any task (the job disk attached at save time is an empty
 * placeholder of the fixed capacity; each task attaches its own) and never changes once in place.
 *
 * The key is a hash of everything that must match for a resume to be valid: the QEMU binary (path, size,
 * mtime: a version), the accelerator, the full QEMU command line with the task's paths taken out
 * (machine type, CPU model, memory, CPUs, devices, kernel command line), and the sha256 of the kernel,
 * initrd and base disk. Anything else changed = another key = a state built afresh; the old one is
 * deleted once no task's state file in `<data>/slots/` names it (its disk is their backing file).
 */
export const BOOT_STATE_DIR = path.join('altplat', 'vm');
const MEMORY = 'memory';
const DISK = 'disk.qcow2';
const META = 'meta.json';
const FAILED_SUFFIX = '.failed';

export interface BootState {
  key: string;
  dir: string;
  disk: string;
  memory: string;
  accel: 'kvm' | 'tcg';
}

interface Meta {
  version: 1;
  key: string;
  material: KeyMaterial;
  platform?: string;
  builtAt: string;
  bootMs: number;
}

interface KeyMaterial {
  qemu: string;
  accel: 'kvm' | 'tcg';
  args: string[];
  files: Record<string, string>;
  jobDiskBytes: number;
}

/** `<data>` from the manager's layout (`<data>/slots/N`, `<data>/alt_platforms_working/slotN`); undefined otherwise. */
export function dataDirOf(slotDir: string, workingDir: string): string | undefined {
  const data = path.dirname(path.dirname(path.resolve(slotDir)));
  if (path.basename(path.dirname(path.resolve(slotDir))) !== 'slots') return undefined;
  if (path.dirname(path.dirname(path.resolve(workingDir))) !== data) return undefined;
  return data;
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * The platform files' hashes, remembered in `<data>/altplat/vm/file-hashes.json` by device, inode, size
 * and mtime (a working copy's shared files are hard links of the platform's: same inode), so a task
 * does not hash 20 MB before it starts. A miss (reflink copies, a changed file) hashes and records.
 */
async function cachedHashes(root: string | undefined, files: Record<string, string>): Promise<Record<string, string>> {
  const cacheFile = root ? path.join(root, 'file-hashes.json') : undefined;
  let cache: Record<string, string> = {};
  if (cacheFile) {
    try {
      cache = JSON.parse(await fsp.readFile(cacheFile, 'utf8')) as Record<string, string>;
    } catch { /* none yet */ }
  }
  let changed = false;
  const out: Record<string, string> = {};
  await Promise.all(Object.entries(files).map(async ([name, file]) => {
    const st = await fsp.stat(file);
    const id = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
    if (!cache[id]) {
      cache[id] = await sha256File(file);
      changed = true;
    }
    out[name] = cache[id]!;
  }));
  if (cacheFile && changed) {
    // Small and bounded: only this host's platform files (at most a few hundred entries ever).
    const entries = Object.entries(cache).slice(-256);
    await writeFileAtomic(cacheFile, JSON.stringify(Object.fromEntries(entries)) + '\n');
  }
  return out;
}

async function qemuStamp(): Promise<string> {
  const bin = QEMU_BINARY.includes('/') ? QEMU_BINARY : (await findTool(QEMU_BINARY)) ?? QEMU_BINARY;
  return verdictKey(await fsp.realpath(bin).catch(() => bin));
}

/**
 * The accelerator a resume would run under, without probing: the configured one, or for `auto` the
 * cached KVM verdict (TCG when the pre-check fails). Undefined while KVM is unproven: the task's cold
 * boot decides it first.
 */
export async function accelWithoutProbe(config: VmConfig): Promise<'kvm' | 'tcg' | undefined> {
  const forced = process.env.ALTPLAT_ACCEL;
  const choice = forced === 'kvm' || forced === 'tcg' || forced === 'auto' ? forced : config.accel;
  if (choice !== 'auto') return choice;
  const pre = await kvmPrecheck();
  if (!pre.usable) return 'tcg';
  const v = await readVerdict(await verdictKey(QEMU_BINARY));
  return v === undefined ? undefined : v.works ? 'kvm' : 'tcg';
}

export async function keyMaterial(config: VmConfig, accel: 'kvm' | 'tcg', root?: string): Promise<KeyMaterial> {
  // The command line as a task would run it, with its paths replaced by fixed names.
  const args = qemuArgs({ config, runDir: '/R', overlay: '/R/overlay', task: 'T', accel, jobDisk: '/R/job', stateDisk: '/S/disk', incoming: '/S/memory' }, '/SOCK')
    .map((a) => a.split(path.resolve(config.kernel)).join('KERNEL').split(path.resolve(config.initrd)).join('INITRD').split(path.resolve(config.baseDisk)).join('BASE'));
  const [files, qemu] = await Promise.all([cachedHashes(root, { kernel: config.kernel, initrd: config.initrd, base: config.baseDisk }), qemuStamp()]);
  return { qemu, accel, args, files: { kernel: files.kernel!, initrd: files.initrd!, base: files.base! }, jobDiskBytes: JOB_DISK_BYTES };
}

export function keyOf(m: KeyMaterial): string {
  return createHash('sha256').update(JSON.stringify(m)).digest('hex').slice(0, 32);
}

export interface PrepareOptions {
  dataDir: string;
  config: VmConfig;
  platform?: string;
  log: (s: string) => void;
  /** Called once a build has begun (tests: kill points). */
  onBuildStep?: (step: 'booting' | 'saving' | 'saved') => void;
}

export type PrepareResult = { state: BootState } | { reason: string };

/**
 * The saved booted state for this VM, built now (cold boot + save, under a lock) when missing. Never
 * throws for a state that cannot be had: the reason comes back and the caller boots cold.
 */
export async function prepareBootState(o: PrepareOptions): Promise<PrepareResult> {
  try {
    if (o.config.appOverlay) return { reason: 'the app version ships its own disk overlay' };
    // A real folder inside the data dir, made one level at a time (a planted link is refused).
    let root: string;
    try {
      root = await ensureOwnedDir(realDataRoot(o.dataDir), BOOT_STATE_DIR);
    } catch (e) {
      if ((e as AltplatError).code === OWNED_DIR_NOT_REAL) return { reason: (e as Error).message };
      throw e;
    }
    if (o.config.appOverlay) return { reason: 'the app version ships its own disk overlay' };
    const accel = await accelWithoutProbe(o.config);
    if (!accel) return { reason: 'KVM not proven yet on this host' };
    const material = await keyMaterial(o.config, accel, root);
    const key = keyOf(material);
    const dir = path.join(root, key);
    const state: BootState = { key, dir, disk: path.join(dir, DISK), memory: path.join(dir, MEMORY), accel };
    if (await exists(`${dir}${FAILED_SUFFIX}`)) {
      // Failed to load once: not used again; rebuilt once no task's disk is layered on it any more.
      if ((await referencedKeys(o.dataDir)).has(key)) return { reason: `saved state ${key} failed before and is still in use by a task` };
      await fsp.rm(dir, { recursive: true, force: true });
      await fsp.rm(`${dir}${FAILED_SUFFIX}`, { force: true });
    }
    const meta = await readMeta(dir);
    if (meta) {
      if (meta.key !== key || JSON.stringify(meta.material) !== JSON.stringify(material)) return { reason: `saved state ${key} does not match its key` };
      return { state };
    }
    const lock = await SlotLock.tryLock(root, `${key}.lock`);
    if (!lock) return { reason: 'another task is saving the booted state now' };
    try {
      if (await readMeta(dir)) return { state }; // built meanwhile
      await removeStale(o.dataDir, root, key, o.platform);
      await build(o, material, state);
      o.log(`saved booted state ${key} built in ${dir}`);
      return { state };
    } finally {
      await lock.unlock();
    }
  } catch (e) {
    return { reason: `${(e as AltplatError).code ?? 'ERROR'}: ${(e as Error).message}` };
  }
}

async function exists(p: string): Promise<boolean> {
  return fsp.lstat(p).then(() => true, () => false);
}

async function readMeta(dir: string): Promise<Meta | undefined> {
  try {
    const m = JSON.parse(await fsp.readFile(path.join(dir, META), 'utf8')) as Meta;
    if (m.version !== 1) return undefined;
    // Complete only with both files (the folder is renamed into place whole, but be strict).
    await Promise.all([fsp.access(path.join(dir, MEMORY)), fsp.access(path.join(dir, DISK))]);
    return m;
  } catch {
    return undefined;
  }
}

/** Keys of saved states some task's system disk is layered on (its state file in a slot says so). */
async function referencedKeys(dataDir: string): Promise<Set<string>> {
  const keys = new Set<string>();
  const slots = path.join(dataDir, 'slots');
  const names = await fsp.readdir(slots).catch(() => [] as string[]);
  for (const n of names) {
    try {
      const s = JSON.parse(await fsp.readFile(path.join(slots, n, STATE_FILE), 'utf8')) as { bootState?: string };
      if (typeof s.bootState === 'string') keys.add(s.bootState);
    } catch { /* no manager state there */ }
  }
  return keys;
}

/**
 * Before a build: half-made builds of this key (a killed builder) go, and so do other states of the
 * same platform that no task uses any more (they can never match again: their key is not current).
 */
async function removeStale(dataDir: string, root: string, key: string, platform: string | undefined): Promise<void> {
  const used = await referencedKeys(dataDir);
  for (const n of await fsp.readdir(root)) {
    const p = path.join(root, n);
    if (n.startsWith(`.build-${key}-`)) {
      await fsp.rm(p, { recursive: true, force: true });
      continue;
    }
    if (n.startsWith('.build-')) {
      const pid = Number(n.split('-').at(-1));
      if (Number.isInteger(pid) && !alive(pid)) await fsp.rm(p, { recursive: true, force: true });
      continue;
    }
    const k = n.endsWith(FAILED_SUFFIX) ? n.slice(0, -FAILED_SUFFIX.length) : n;
    if (k === key || used.has(k) || !/^[0-9a-f]{32}$/.test(k)) continue;
    const meta = await readMeta(path.join(root, k));
    if (n.endsWith(FAILED_SUFFIX) || !meta || meta.platform === platform) await fsp.rm(p, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Cold boot in a private folder, drop the guest's caches, save with a migration to a file, rename into place. */
async function build(o: PrepareOptions, material: KeyMaterial, st: BootState): Promise<void> {
  const root = path.dirname(st.dir);
  const tmp = path.join(root, `.build-${st.key}-${process.pid}`);
  await fsp.rm(tmp, { recursive: true, force: true });
  await fsp.mkdir(tmp);
  let vm: QemuVm | undefined;
  try {
    await createOverlay(path.join(tmp, DISK), o.config.baseDisk);
    const placeholder = path.join(tmp, 'job-placeholder.qcow2');
    await createPlaceholderJobDisk(placeholder);
    o.onBuildStep?.('booting');
    const t0 = Date.now();
    vm = await QemuVm.start({ config: o.config, runDir: tmp, overlay: path.join(tmp, DISK), jobDisk: placeholder, task: `bootstate-${st.key.slice(0, 12)}`, accel: st.accel });
    await vm.waitAgent();
    const bootMs = Date.now() - t0;
    // Fewer pages to save and load; nothing of the guest's boot is needed again.
    await vm.qga.run('/bin/sh', ['-c', 'sync && echo 3 > /proc/sys/vm/drop_caches']);
    o.onBuildStep?.('saving');
    await vm.saveMemory(path.join(tmp, MEMORY));
    await vm.quit();
    vm = undefined;
    for (const f of ['qemu_console.log', 'qemu_stderr.log', 'job-placeholder.qcow2']) await fsp.rm(path.join(tmp, f), { force: true });
    for (const f of [MEMORY, DISK]) {
      const fh = await fsp.open(path.join(tmp, f), 'r');
      await fh.sync();
      await fh.close();
    }
    const meta: Meta = { version: 1, key: st.key, material, platform: o.platform, builtAt: new Date().toISOString(), bootMs };
    await writeFileAtomic(path.join(tmp, META), JSON.stringify(meta, null, 1) + '\n');
    await fsyncDir(tmp);
    await fsp.rename(tmp, st.dir);
    await fsyncDir(root);
    o.onBuildStep?.('saved');
  } catch (e) {
    await vm?.kill();
    await fsp.rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * A resume from this state failed: it is not used again. Deleted at once when no task's disk is
 * layered on it, else marked (`<key>.failed`) and deleted by a later build once unused.
 */
export async function discardBootState(dataDir: string, st: BootState): Promise<void> {
  const used = await referencedKeys(dataDir);
  if (!used.has(st.key)) {
    await fsp.rm(st.dir, { recursive: true, force: true });
    return;
  }
  await writeFileAtomic(`${st.dir}${FAILED_SUFFIX}`, `${new Date().toISOString()}\n`);
}

