import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HYPERVISOR_NAMES, type HypervisorName } from '../definition/types.js';
import { writeFileAtomic } from '../util/atomic.js';
import { kvmPrecheck, managerVerdictForHost } from './accel-verdict.js';
import { normaliseArch, qemuSystemArch } from './arch.js';
import { parseHypervisorVersion } from './version.js';
import { ensureOwnedDir, readStateFileSync, realDataRoot } from '../util/owned-dir.js';

/** What a probe found for one hypervisor. `path === null` means not found (not an error). */
export interface HypervisorInfo {
  name: HypervisorName;
  path: string | null;
  /** Semantic version read from its output, or null when not found or unparseable. */
  version: string | null;
  /** The output line the version was read from (or the whole first line), for messages. */
  raw: string;
  /** The tool exists but its probe failed (timed out, crashed, printed no version). */
  error?: string;
}

export interface HwAccel {
  usable: boolean;
  /** How this was decided, for messages ("/dev/kvm opens read-write", "no /dev/kvm", ...). */
  detail: string;
}

export interface HostInfo {
  os: NodeJS.Platform;
  /** Canonical architecture (normaliseArch of the kernel's machine name). */
  arch: string;
  /** Total RAM in MiB. */
  ramMb: number;
  hwAccel: HwAccel;
  /** One entry per probed hypervisor, found or not, in the order of HYPERVISOR_NAMES. */
  hypervisors: HypervisorInfo[];
}

/**
 * The probes, one function each, so tests and embedding clients can pin any of them
 * (`probeHost({ probes: { hwAccel: async () => ({ usable: false, detail: 'pinned' }) } })`).
 */
export interface HostProbes {
  os(): NodeJS.Platform;
  /** Machine name as `uname -m` prints it (any spelling; it is normalised). */
  machine(): string;
  ramMb(): number;
  hwAccel(): Promise<HwAccel>;
  hypervisor(name: HypervisorName, hostArch: string): Promise<HypervisorInfo>;
}

export interface ProbeHostOptions {
  probes?: Partial<HostProbes>;
  /** Per-probe time limit in ms (default 3000). */
  timeoutMs?: number;
  /** Only these hypervisors (default all). */
  hypervisors?: readonly HypervisorName[];
  /**
   * Remember hypervisor versions in this JSON file, keyed by the executable's real path, size, mtime and
   * inode (like the hash cache), for at most a day: a later probe of an unchanged binary starts nothing.
   */
  cacheFile?: string;
}

/**
 * Probe the host once: architecture, RAM, hardware virtualization and every hypervisor, all in parallel,
 * each with a short time limit. A missing tool is `path: null`; a tool that hangs or fails is found with
 * an `error`. Never throws.
 *
 * @example
 * const host = await probeHost();
 * console.log(host.arch, host.hypervisors.filter((h) => h.path).map((h) => `${h.name} ${h.version}`));
 */
export async function probeHost(opts: ProbeHostOptions = {}): Promise<HostInfo> {
  const cache = opts.cacheFile && !opts.probes?.hypervisor ? ProbeCache.load(opts.cacheFile) : undefined;
  const p: HostProbes = { ...realProbes(opts.timeoutMs ?? 3000, cache), ...opts.probes };
  const arch = normaliseArch(p.machine());
  const names = opts.hypervisors ?? HYPERVISOR_NAMES;
  const [hwAccel, ...hypervisors] = await Promise.all([
    p.hwAccel().catch((e: Error): HwAccel => ({ usable: false, detail: `probe failed: ${e.message}` })),
    ...names.map((n) => p.hypervisor(n, arch).catch((e: Error): HypervisorInfo => ({ name: n, path: null, version: null, raw: '', error: e.message }))),
  ]);
  await cache?.save();
  return { os: p.os(), arch, ramMb: p.ramMb(), hwAccel, hypervisors };
}

/** The probes that look at the real machine. */
export function realProbes(timeoutMs = 3000, cache?: ProbeCache): HostProbes {
  return {
    os: () => process.platform,
    machine: () => (typeof os.machine === 'function' ? os.machine() : process.arch),
    ramMb: () => Math.floor(os.totalmem() / (1024 * 1024)),
    hwAccel: () => probeHwAccel(timeoutMs),
    hypervisor: (name, hostArch) => probeHypervisor(name, hostArch, timeoutMs, cache),
  };
}

interface ProbeCacheEntry { size: number; mtimeMs: number; ino: number; at: number; version: string; raw: string }

/** Hypervisor versions remembered per executable (see ProbeHostOptions.cacheFile). */
export class ProbeCache {
  static readonly MAX_AGE_MS = 24 * 3600 * 1000;
  private dirty = false;
  private constructor(readonly file: string, private readonly entries: Record<string, ProbeCacheEntry>) {}

  static load(file: string): ProbeCache {
    let entries: Record<string, ProbeCacheEntry> = {};
    try {
      const doc = JSON.parse(readStateFileSync(file)) as { version?: number; entries?: Record<string, ProbeCacheEntry> };
      if (doc?.version === 1 && doc.entries && typeof doc.entries === 'object') entries = doc.entries;
    } catch {
      // none yet, or unreadable: probe
    }
    return new ProbeCache(file, entries);
  }

  get(exe: string, now = Date.now()): { version: string; raw: string } | undefined {
    const e = this.entries[exe];
    if (!e || typeof e.version !== 'string' || now - e.at > ProbeCache.MAX_AGE_MS || now < e.at) return undefined;
    try {
      const st = fs.statSync(exe);
      if (st.size === e.size && st.mtimeMs === e.mtimeMs && st.ino === e.ino) return { version: e.version, raw: String(e.raw) };
    } catch {
      // gone
    }
    return undefined;
  }

  set(exe: string, version: string, raw: string): void {
    try {
      const st = fs.statSync(exe);
      this.entries[exe] = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, at: Date.now(), version, raw };
      this.dirty = true;
    } catch {
      // vanished meanwhile: nothing to remember
    }
  }

  async save(): Promise<void> {
    if (!this.dirty) return;
    try {
      await ensureOwnedDir(realDataRoot(path.dirname(path.dirname(this.file))), path.basename(path.dirname(this.file)));
      await writeFileAtomic(this.file, JSON.stringify({ version: 1, entries: this.entries }, null, 1) + '\n');
      this.dirty = false;
    } catch {
      // a read-only data dir: probe again next time
    }
  }
}

/** The executable (and arguments) that reports each hypervisor's version. */
export function hypervisorCommand(name: HypervisorName, hostArch: string): { exe: string; args: string[]; anyExitCode: boolean } {
  switch (name) {
    case 'qemu':
      return { exe: `qemu-system-${qemuSystemArch(hostArch)}`, args: ['--version'], anyExitCode: false };
    case 'virtualbox':
      return { exe: 'VBoxManage', args: ['--version'], anyExitCode: false };
    case 'docker':
      // The server's version: a docker client without a reachable daemon cannot run anything.
      return { exe: 'docker', args: ['version', '--format', 'Docker version {{.Server.Version}}'], anyExitCode: false };
    case 'podman':
      return { exe: 'podman', args: ['--version'], anyExitCode: false };
    case 'vmware':
      // vmrun has no --version: without arguments it prints its usage, headed "vmrun version 1.17.0 build-…",
      // and exits non-zero.
      return { exe: 'vmrun', args: [], anyExitCode: true };
  }
}

/** Folders searched after PATH, where installers put these tools without touching PATH. */
function extraDirs(name: HypervisorName): string[] {
  if (process.platform === 'win32') {
    const pf = process.env.ProgramFiles ?? 'C:\\Program Files';
    const pf86 = process.env['ProgramFiles(x86)'] ?? 'C:\\Program Files (x86)';
    switch (name) {
      case 'qemu': return [path.join(pf, 'qemu')];
      case 'virtualbox': return [process.env.VBOX_MSI_INSTALL_PATH ?? '', path.join(pf, 'Oracle', 'VirtualBox')].filter(Boolean);
      case 'vmware': return [path.join(pf86, 'VMware', 'VMware Workstation'), path.join(pf, 'VMware', 'VMware Workstation')];
      case 'docker': return [path.join(pf, 'Docker', 'Docker', 'resources', 'bin')];
      case 'podman': return [path.join(pf, 'RedHat', 'Podman')];
    }
  }
  const common = ['/usr/local/bin', '/usr/bin', '/bin', '/opt/homebrew/bin', '/usr/local/sbin', '/usr/sbin'];
  switch (name) {
    case 'virtualbox': return [...common, '/Applications/VirtualBox.app/Contents/MacOS'];
    case 'vmware': return [...common, '/Applications/VMware Fusion.app/Contents/Library'];
    case 'docker': return [...common, '/Applications/Docker.app/Contents/Resources/bin'];
    default: return common;
  }
}

/** Find an executable on PATH, then in `extra`; null when absent. Stat-only: nothing is started. */
export function findExecutable(exe: string, extra: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): string | null {
  const dirs = [...(env.PATH ?? env.Path ?? '').split(path.delimiter).filter(Boolean), ...extra];
  const exts = process.platform === 'win32' ? (env.PATHEXT ?? '.EXE;.CMD;.BAT;.COM').split(';') : [''];
  const seen = new Set<string>();
  for (const d of dirs) {
    if (seen.has(d)) continue;
    seen.add(d);
    for (const ext of exts) {
      const p = path.join(d, exe + ext);
      try {
        const st = fs.statSync(p);
        if (!st.isFile()) continue;
        if (process.platform !== 'win32') fs.accessSync(p, fs.constants.X_OK);
        return p;
      } catch {
        // not here
      }
    }
  }
  return null;
}

export async function probeHypervisor(name: HypervisorName, hostArch: string, timeoutMs: number, cache?: ProbeCache): Promise<HypervisorInfo> {
  const { exe, args, anyExitCode } = hypervisorCommand(name, hostArch);
  const found = findExecutable(exe, extraDirs(name));
  if (!found) return { name, path: null, version: null, raw: '' };
  let real = found;
  try {
    real = fs.realpathSync.native(found);
  } catch { /* keep the PATH name */ }
  const cached = cache?.get(real);
  if (cached) return { name, path: found, version: cached.version, raw: cached.raw };
  const r = await run(found, args, timeoutMs);
  const output = `${r.stdout}\n${r.stderr}`;
  const version = parseHypervisorVersion(output);
  const raw = versionLine(output);
  if (r.error && !(anyExitCode && r.exitCode !== null && version !== null)) {
    return { name, path: found, version, raw, error: r.error };
  }
  if (version === null) return { name, path: found, version, raw, error: `no version in its output: "${raw}"` };
  cache?.set(real, version, raw);
  return { name, path: found, version, raw };
}

function versionLine(output: string): string {
  const lines = output.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  return (lines.find((l) => /\bversion\b/i.test(l)) ?? lines.find((l) => /^v?\d+\.\d+/.test(l)) ?? lines[0] ?? '').slice(0, 200);
}

interface RunResult { stdout: string; stderr: string; exitCode: number | null; error?: string }

function run(file: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, {
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: 256 * 1024,
      windowsHide: true,
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
    }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, stderr, exitCode: 0 });
      const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string; signal?: string };
      const exitCode = typeof e.code === 'number' ? e.code : null;
      const error = e.killed || e.signal === 'SIGKILL'
        ? `did not answer within ${timeoutMs} ms`
        : exitCode !== null ? `exited with status ${exitCode}` : `could not be started: ${e.message}`;
      resolve({ stdout: String(stdout ?? ''), stderr: String(stderr ?? ''), exitCode, error });
    });
  });
}

/**
 * Is hardware virtualization usable? Linux: the QEMU manager's own pre-check (src/host/accel-verdict.ts
 * kvmPrecheck: /dev/kvm opens read-write and the CPU advertises vmx/svm), so discovery never promises
 * what the manager then refuses; discoverPlatforms also applies the manager's recorded timed-boot
 * verdict (withManagerVerdict). macOS: `sysctl kern.hv_support` is 1. Elsewhere: not checked, reported unusable.
 */
export async function probeHwAccel(timeoutMs = 3000, platform: NodeJS.Platform = process.platform): Promise<HwAccel> {
  if (platform === 'linux') {
    const pre = await kvmPrecheck();
    return { usable: pre.usable, detail: pre.reason };
  }
  if (platform === 'darwin') {
    const r = await run('/usr/sbin/sysctl', ['-n', 'kern.hv_support'], timeoutMs);
    if (r.stdout.trim() === '1') return { usable: true, detail: 'kern.hv_support = 1 (Hypervisor.framework)' };
    return { usable: false, detail: r.error ? `sysctl kern.hv_support: ${r.error}` : 'kern.hv_support is not 1' };
  }
  return { usable: false, detail: `not checked on ${platform}` };
}

/**
 * The host facts with the QEMU manager's recorded verdict for this kernel applied: a failed timed KVM
 * boot (or a failed pre-check the manager met) makes hardware virtualization unusable for discovery too.
 */
export async function withManagerVerdict(host: HostInfo, dataDir: string): Promise<HostInfo> {
  if (!host.hwAccel.usable) return host;
  const v = await managerVerdictForHost(dataDir);
  if (!v || v.works) return host;
  return { ...host, hwAccel: { usable: false, detail: `the QEMU manager found KVM not usable here on ${v.at}: ${v.reason}` } };
}
