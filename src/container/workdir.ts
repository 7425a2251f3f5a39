import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError } from '../errors.js';

/** The task's job folder in the slot, bound at guest_dir: the program's cwd, outputs and checkpoints. */
export const WORK_DIR = 'altplat_container';

/** Makes `<slot>/altplat_container` as a real folder (a link or file the program left there is removed). */
export async function ensureWorkDir(slotDir: string): Promise<string> {
  const dir = path.join(slotDir, WORK_DIR);
  const st = await fsp.lstat(dir).catch(() => undefined);
  if (st && !st.isDirectory()) await fsp.rm(dir, { force: true });
  await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
  if (!(await fsp.lstat(dir)).isDirectory()) throw new AltplatError('CONTAINER_WORK_DIR', `${dir} is not a folder`);
  return dir;
}

/**
 * An empty regular file at `rel` below `root`, for an input's bind mount to cover. The folder was
 * writable by an earlier run of the program, so whatever it left at that name (a symbolic link to a
 * host path, a folder, a fifo) is removed first — never followed — and so is any link on the way.
 */
export async function placeholder(root: string, rel: string): Promise<void> {
  const parts = rel.split('/');
  let dir = root;
  for (const p of parts.slice(0, -1)) {
    dir = path.join(dir, p);
    const st = await fsp.lstat(dir).catch(() => undefined);
    if (st && !st.isDirectory()) await fsp.rm(dir, { force: true });
    if (!st || !st.isDirectory()) await fsp.mkdir(dir);
  }
  const file = path.join(root, rel);
  const st = await fsp.lstat(file).catch(() => undefined);
  if (st?.isFile()) return;
  if (st) await fsp.rm(file, { recursive: true, force: true });
  await fsp.writeFile(file, '', { flag: 'wx', mode: 0o644 });
}

/** CPU seconds a container's cgroup has used (cgroup v1 cpuacct or v2 cpu.stat); undefined if unreadable. */
export async function cgroupCpuSeconds(cgroupPath: string | undefined): Promise<number | undefined> {
  if (!cgroupPath) return undefined;
  for (const base of ['/sys/fs/cgroup/cpuacct', '/sys/fs/cgroup/cpu,cpuacct']) {
    const t = await fsp.readFile(path.join(base, cgroupPath, 'cpuacct.usage'), 'utf8').catch(() => undefined);
    if (t !== undefined && /^\d+/.test(t)) return Number(t.trim()) / 1e9;
  }
  const v2 = await fsp.readFile(path.join('/sys/fs/cgroup', cgroupPath, 'cpu.stat'), 'utf8').catch(() => undefined);
  const m = v2 ? /^usage_usec (\d+)/m.exec(v2) : null;
  return m ? Number(m[1]) / 1e6 : undefined;
}

/** Has the container's memory cgroup reached its limit (v1 memory.failcnt, v2 memory.events max/oom)? */
export async function cgroupMemoryLimitHit(cgroupPath: string | undefined): Promise<boolean> {
  if (!cgroupPath) return false;
  const v1 = await fsp.readFile(path.join('/sys/fs/cgroup/memory', cgroupPath, 'memory.failcnt'), 'utf8').catch(() => undefined);
  if (v1 !== undefined) return Number(v1.trim()) > 0;
  const v2 = await fsp.readFile(path.join('/sys/fs/cgroup', cgroupPath, 'memory.events'), 'utf8').catch(() => undefined);
  return v2 !== undefined && /^(oom|oom_kill|max) [1-9]/m.test(v2);
}
