import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AltplatError } from '../errors.js';
import { PLATFORM_NAME } from '../definition/parse.js';
import { normaliseArch } from './arch.js';

/**
 * The host's own BOINC platforms, primary first, decided as the BOINC client does
 * (client/cs_platforms.cpp detect_platforms; shared/docs/boinc-protocol.md §1.2):
 *
 * - Windows (by Node's process.platform/arch): x64 → windows_x86_64, windows_intelx86; ARM64 →
 *   windows_arm64, then windows_intelx86 (Windows 10+), then windows_x86_64 (build ≥ 22000); 32-bit
 *   Node → windows_x86_64 first when running under WOW64, then windows_intelx86.
 * - macOS: x86_64 → x86_64-apple-darwin (+ i686-apple-darwin before 10.15); arm64 → arm64-apple-darwin
 *   (+ x86_64-apple-darwin when Rosetta runs x86-64 code).
 * - Linux on x86: the kernel decides (`uname -m` contains x86_64 → x86_64-pc-linux-gnu); 32-bit support
 *   (→ i686-pc-linux-gnu) when Node itself is 32-bit, or when the first 32-bit ELF file is found among
 *   the entries of /lib, /lib32, /lib/32, /usr/lib, /usr/lib32, /usr/lib/32 — BOINC runs `file -L` on each
 *   entry until its output says "ELF" and "32-bit"; altplat reads the same answer from the ELF header
 *   (byte 4, EI_CLASS = 1), following links like -L, without starting a process per entry.
 * - Everything else: BOINC's configure mapping of the target triple (m4/boinc_platform.m4):
 *   aarch64-unknown-linux-gnu + arm-unknown-linux-gnueabihf, arm-unknown-linux-gnueabihf,
 *   aarch64-android-linux-gnu + arm-android-linux-gnu, x86_64-pc-freebsd, x86_64-pc-solaris + i686-pc-solaris,
 *   and `<arch>-unknown-<os>` otherwise.
 */
export interface PlatformDetectProbes {
  platform(): NodeJS.Platform;
  /** Node's own build architecture (process.arch): the "client binary" BOINC's rules speak of. */
  nodeArch(): string;
  /** `uname -m` (os.machine()); null when unknown. */
  machine(): string | null;
  /** The OS release (os.release()): Darwin kernel version on macOS, "10.0.22631" on Windows. */
  release(): string;
  /** Any 32-bit ELF among the library folders BOINC scans. */
  has32BitLibraries(): boolean;
  /** Running as a 32-bit process on 64-bit Windows. */
  wow64(): boolean;
  /** Apple silicon can run x86-64 code (Rosetta 2 installed). */
  rosetta(): boolean;
}

export const LIB_DIRS_32 = ['/lib', '/lib32', '/lib/32', '/usr/lib', '/usr/lib32', '/usr/lib/32'];

export const realPlatformProbes: PlatformDetectProbes = {
  platform: () => process.platform,
  nodeArch: () => process.arch,
  machine: () => (typeof os.machine === 'function' ? os.machine() : null),
  release: () => os.release(),
  has32BitLibraries: () => scanFor32BitElf(LIB_DIRS_32),
  wow64: () => process.platform === 'win32' && process.arch === 'ia32' && process.env.PROCESSOR_ARCHITEW6432 !== undefined,
  rosetta: () => fs.existsSync('/Library/Apple/usr/libexec/oah/libRosettaRuntime'),
};

/** Is there a 32-bit ELF file (links followed) directly in one of `dirs`? Stops at the first one. */
export function scanFor32BitElf(dirs: readonly string[]): boolean {
  const head = Buffer.alloc(5);
  for (const dir of dirs) {
    let entries: string[];
    try {
      entries = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const e of entries) {
      let fd: number | undefined;
      try {
        fd = fs.openSync(path.join(dir, e), fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
        if (fs.readSync(fd, head, 0, 5, 0) === 5 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46 && head[4] === 1) {
          return true;
        }
      } catch {
        // folders, dangling links, unreadable entries: `file` would not say "ELF 32-bit" either
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
    }
  }
  return false;
}

/**
 * Detect the host's platforms (primary first). Pure apart from the probes, which tests pin.
 *
 * @example
 * detectHostPlatforms();  // on Debian x86-64 with gcc-multilib: ['x86_64-pc-linux-gnu', 'i686-pc-linux-gnu']
 */
export function detectHostPlatforms(probes: Partial<PlatformDetectProbes> = {}): string[] {
  const p: PlatformDetectProbes = { ...realPlatformProbes, ...probes };
  const platform = p.platform();
  const nodeArch = p.nodeArch();
  if (platform === 'win32') {
    if (nodeArch === 'arm64') {
      const [major, , build] = p.release().split('.').map(Number);
      const out = ['windows_arm64'];
      if (major >= 10) out.push('windows_intelx86');
      if (build >= 22000) out.push('windows_x86_64');
      return out;
    }
    if (nodeArch === 'x64') return ['windows_x86_64', 'windows_intelx86'];
    return p.wow64() ? ['windows_x86_64', 'windows_intelx86'] : ['windows_intelx86'];
  }
  if (platform === 'darwin') {
    if (nodeArch === 'arm64') return p.rosetta() ? ['arm64-apple-darwin', 'x86_64-apple-darwin'] : ['arm64-apple-darwin'];
    // Darwin 19 = macOS 10.15, which dropped 32-bit programs.
    const darwinMajor = Number(p.release().split('.')[0]);
    return darwinMajor < 19 ? ['x86_64-apple-darwin', 'i686-apple-darwin'] : ['x86_64-apple-darwin'];
  }
  if (platform === 'linux' && (nodeArch === 'x64' || nodeArch === 'ia32')) {
    const machine = p.machine();
    if (machine === null) {
      // BOINC without uname: the compile-time HOSTTYPE (+ HOSTTYPEALT).
      return nodeArch === 'x64' ? ['x86_64-pc-linux-gnu', 'i686-pc-linux-gnu'] : ['i686-pc-linux-gnu'];
    }
    const support64 = machine.includes('x86_64');
    const support32 = !support64 || nodeArch === 'ia32' || p.has32BitLibraries();
    const out: string[] = [];
    if (support64) out.push('x86_64-pc-linux-gnu');
    if (support32) out.push('i686-pc-linux-gnu');
    return out;
  }
  const arch = normaliseArch(p.machine() ?? nodeArch);
  if (platform === 'android') {
    if (arch === 'aarch64') return ['aarch64-android-linux-gnu', 'arm-android-linux-gnu'];
    if (arch === 'x86_64') return ['x86_64-android-linux-gnu', 'x86-android-linux-gnu'];
    if (arch === 'i686') return ['x86-android-linux-gnu'];
    return ['arm-android-linux-gnu'];
  }
  if (platform === 'linux') {
    if (arch === 'aarch64') return ['aarch64-unknown-linux-gnu', 'arm-unknown-linux-gnueabihf'];
    if (arch === 'arm') return ['arm-unknown-linux-gnueabihf'];
    if (arch === 'ppc64le') return ['powerpc64le-unknown-linux-gnu'];
    return [`${arch}-unknown-linux-gnu`];
  }
  if (platform === 'sunos') {
    return arch === 'x86_64' ? ['x86_64-pc-solaris', 'i686-pc-solaris'] : ['sparc64-sun-solaris', 'sparc-sun-solaris'];
  }
  if (platform === 'freebsd' || platform === 'openbsd' || platform === 'netbsd') {
    return [`${arch}-${arch === 'x86_64' || arch === 'i686' ? 'pc' : 'unknown'}-${platform}`];
  }
  return [`${arch}-unknown-${platform}`];
}

export interface HostPlatformOptions {
  /** `--host-platform NAME`: act as a host whose only platform is NAME (replaces detection). */
  hostPlatform?: string;
  /** The full list (primary first), e.g. a client's own; wins over hostPlatform and detection. */
  hostPlatforms?: readonly string[];
  platformProbes?: Partial<PlatformDetectProbes>;
}

/**
 * The platforms the host counts as its own: `hostPlatforms`, else `[hostPlatform]`, else detected.
 * Lets a Linux machine play the paper's Windows host: `{ hostPlatform: 'windows_x86_64' }`.
 */
export function resolveHostPlatforms(opts: HostPlatformOptions = {}): { platforms: string[]; source: 'given' | 'host-platform' | 'detected' } {
  if (opts.hostPlatforms) return { platforms: [...opts.hostPlatforms], source: 'given' };
  if (opts.hostPlatform !== undefined) {
    checkPlatformName(opts.hostPlatform);
    return { platforms: [opts.hostPlatform], source: 'host-platform' };
  }
  return { platforms: detectHostPlatforms(opts.platformProbes), source: 'detected' };
}

/** A BOINC platform name must be a plain token (same rule as alt platform names). */
export function checkPlatformName(name: string): void {
  if (!PLATFORM_NAME.test(name)) {
    throw new AltplatError('BAD_PLATFORM_NAME', `"${name}" is not a platform name (1 to 64 of A-Z a-z 0-9 . _ -, not starting with ".")`);
  }
}
