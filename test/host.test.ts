import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { normaliseArch, qemuSystemArch } from '../src/host/arch.js';
import { detectHostPlatforms, resolveHostPlatforms, scanFor32BitElf, type PlatformDetectProbes } from '../src/host/platforms.js';
import { findExecutable, probeHost, probeHypervisor, ProbeCache } from '../src/host/probes.js';
import { parseHypervisorVersion } from '../src/host/version.js';
import { isAltplatError } from '../src/errors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'altplat-host-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('parseHypervisorVersion (the strings of shared/docs/design.md and more)', () => {
  it.each([
    ['QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)\nCopyright (c) 2003-2022 Fabrice Bellard', '7.2.22'],
    ['7.0.14_SUSEr161095', '7.0.14'],
    ['7.1.4r165100', '7.1.4'],
    ['Docker version 26.1.3, build b72abbb', '26.1.3'],
    ['podman version 4.3.1', '4.3.1'],
    ['vmrun version 1.17.0 build-21581411\n\nUsage: vmrun [AUTHENTICATION-FLAGS] COMMAND [PARAMETERS]', '1.17.0'],
    ['WARNING: The vboxdrv kernel module is not loaded. Either there is no module\n         available for the current kernel (6.1.0-28-amd64) or it failed to\n\n6.1.50_Debianr161033', '6.1.50'],
    ['QEMU emulator version 8.2', '8.2.0'],
    ['Docker version 20.10.07, build 1234', '20.10.7'],
    ['podman version 5.0.0-dev', '5.0.0'],
    ['v1.2.3', '1.2.3'],
  ])('%j -> %s', (raw, want) => expect(parseHypervisorVersion(raw)).toBe(want));
  it.each(['', 'command not found', 'Oracle VM VirtualBox Command Line Management Interface', 'build 2024'])('%j is unparseable', (raw) => {
    expect(parseHypervisorVersion(raw)).toBeNull();
  });
});

describe('architectures', () => {
  it.each([['x64', 'x86_64'], ['AMD64', 'x86_64'], ['i386', 'i686'], ['ia32', 'i686'], ['arm64', 'aarch64'], ['armv7l', 'arm'], ['riscv64', 'riscv64']])(
    '%s -> %s', (a, want) => expect(normaliseArch(a)).toBe(want));
  it('maps to qemu-system-* names', () => {
    expect(qemuSystemArch('x86_64')).toBe('x86_64');
    expect(qemuSystemArch('i686')).toBe('i386');
    expect(qemuSystemArch('aarch64')).toBe('aarch64');
  });
});

describe('detectHostPlatforms (client/cs_platforms.cpp rules)', () => {
  const pin = (p: Partial<PlatformDetectProbes>): Partial<PlatformDetectProbes> => ({
    machine: () => 'x86_64', release: () => '6.1.0', has32BitLibraries: () => false, wow64: () => false, rosetta: () => false, ...p,
  });
  it.each<[string, Partial<PlatformDetectProbes>, string[]]>([
    ['Windows x64', { platform: () => 'win32', nodeArch: () => 'x64' }, ['windows_x86_64', 'windows_intelx86']],
    ['Windows 32-bit under WOW64', { platform: () => 'win32', nodeArch: () => 'ia32', wow64: () => true }, ['windows_x86_64', 'windows_intelx86']],
    ['Windows 32-bit', { platform: () => 'win32', nodeArch: () => 'ia32' }, ['windows_intelx86']],
    ['Windows 11 ARM64', { platform: () => 'win32', nodeArch: () => 'arm64', release: () => '10.0.22631' }, ['windows_arm64', 'windows_intelx86', 'windows_x86_64']],
    ['Windows 10 ARM64', { platform: () => 'win32', nodeArch: () => 'arm64', release: () => '10.0.19045' }, ['windows_arm64', 'windows_intelx86']],
    ['macOS x86-64 10.14', { platform: () => 'darwin', nodeArch: () => 'x64', release: () => '18.7.0' }, ['x86_64-apple-darwin', 'i686-apple-darwin']],
    ['macOS x86-64 14', { platform: () => 'darwin', nodeArch: () => 'x64', release: () => '23.1.0' }, ['x86_64-apple-darwin']],
    ['macOS arm64 with Rosetta', { platform: () => 'darwin', nodeArch: () => 'arm64', rosetta: () => true }, ['arm64-apple-darwin', 'x86_64-apple-darwin']],
    ['macOS arm64', { platform: () => 'darwin', nodeArch: () => 'arm64' }, ['arm64-apple-darwin']],
    ['Linux x86-64 without 32-bit libraries', { platform: () => 'linux', nodeArch: () => 'x64' }, ['x86_64-pc-linux-gnu']],
    ['Linux x86-64 with 32-bit libraries', { platform: () => 'linux', nodeArch: () => 'x64', has32BitLibraries: () => true }, ['x86_64-pc-linux-gnu', 'i686-pc-linux-gnu']],
    ['Linux: 32-bit Node on a 64-bit kernel', { platform: () => 'linux', nodeArch: () => 'ia32' }, ['x86_64-pc-linux-gnu', 'i686-pc-linux-gnu']],
    ['Linux: 32-bit kernel', { platform: () => 'linux', nodeArch: () => 'ia32', machine: () => 'i686' }, ['i686-pc-linux-gnu']],
    ['Linux without uname', { platform: () => 'linux', nodeArch: () => 'x64', machine: () => null }, ['x86_64-pc-linux-gnu', 'i686-pc-linux-gnu']],
    ['Linux arm64', { platform: () => 'linux', nodeArch: () => 'arm64', machine: () => 'aarch64' }, ['aarch64-unknown-linux-gnu', 'arm-unknown-linux-gnueabihf']],
    ['Linux armhf', { platform: () => 'linux', nodeArch: () => 'arm', machine: () => 'armv7l' }, ['arm-unknown-linux-gnueabihf']],
    ['Android arm64', { platform: () => 'android', nodeArch: () => 'arm64', machine: () => 'aarch64' }, ['aarch64-android-linux-gnu', 'arm-android-linux-gnu']],
    ['FreeBSD amd64', { platform: () => 'freebsd', nodeArch: () => 'x64', machine: () => 'amd64' }, ['x86_64-pc-freebsd']],
  ])('%s', (_what, probes, want) => expect(detectHostPlatforms(pin(probes))).toEqual(want));

  it('finds 32-bit ELF files the way `file -L` would, links followed', () => {
    const d = path.join(tmp, 'lib');
    fs.mkdirSync(path.join(d, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(d, 'libc.so.6'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]));
    fs.writeFileSync(path.join(d, 'notes.txt'), 'ELF 32-bit? no, text');
    fs.symlinkSync('missing', path.join(d, 'dangling'));
    expect(scanFor32BitElf([path.join(tmp, 'nope'), d])).toBe(false);
    fs.writeFileSync(path.join(tmp, 'ld-linux.so.2'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]));
    fs.symlinkSync(path.join(tmp, 'ld-linux.so.2'), path.join(d, 'ld.so'));
    expect(scanFor32BitElf([d])).toBe(true);
  });

  it('agrees with `file -L` on this machine', () => {
    // Debian with gcc-multilib (set-up installs it) has /usr/lib32 full of 32-bit ELF objects.
    const has32 = fs.existsSync('/usr/lib32') && fs.readdirSync('/usr/lib32').some((e) => e.endsWith('.o') || e.endsWith('.so'));
    if (process.platform === 'linux' && process.arch === 'x64') {
      expect(detectHostPlatforms()).toEqual(has32 ? ['x86_64-pc-linux-gnu', 'i686-pc-linux-gnu'] : expect.arrayContaining(['x86_64-pc-linux-gnu']));
    }
  });

  it('--host-platform replaces the detected list; a bad name is refused', () => {
    expect(resolveHostPlatforms({ hostPlatform: 'windows_x86_64' })).toEqual({ platforms: ['windows_x86_64'], source: 'host-platform' });
    expect(resolveHostPlatforms({ hostPlatforms: ['a', 'b'], hostPlatform: 'c' }).platforms).toEqual(['a', 'b']);
    expect(resolveHostPlatforms({ platformProbes: { platform: () => 'win32', nodeArch: () => 'x64' } }).source).toBe('detected');
    try {
      resolveHostPlatforms({ hostPlatform: 'win dows' });
      expect.unreachable();
    } catch (e) {
      expect(isAltplatError(e, 'BAD_PLATFORM_NAME')).toBe(true);
    }
  });
});

describe('host probes', () => {
  it('probes this machine: qemu 7.2 is installed, missing tools are not found, nothing throws', async () => {
    const host = await probeHost();
    expect(host.os).toBe(process.platform);
    expect(host.ramMb).toBeGreaterThan(100);
    expect(typeof host.hwAccel.usable).toBe('boolean');
    expect(host.hwAccel.detail.length).toBeGreaterThan(5);
    expect(host.hypervisors.map((h) => h.name)).toEqual(['qemu', 'virtualbox', 'vmware', 'docker', 'podman']);
    const qemu = host.hypervisors[0];
    expect(qemu.path).toMatch(/qemu-system-x86_64$/);
    expect(qemu.version).toMatch(/^7\.2\.\d+$/);
    expect(qemu.raw).toMatch(/^QEMU emulator version 7\.2/);
    expect(qemu.error).toBeUndefined();
    for (const h of host.hypervisors) if (h.path === null) expect(h.version).toBeNull();
  });

  it('on Linux, hardware virtualization means /dev/kvm opens read-write and the CPU advertises vmx/svm (the manager\'s pre-check)', async () => {
    if (process.platform !== 'linux') return;
    const host = await probeHost({ hypervisors: [] });
    let opens = false;
    try {
      fs.closeSync(fs.openSync('/dev/kvm', 'r+'));
      opens = true;
    } catch { /* not usable */ }
    const vmx = /\b(vmx|svm)\b/.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    expect(host.hwAccel.usable).toBe(opens && vmx && process.arch === 'x64');
  });

  function fakeTool(dir: string, name: string, script: string): void {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, name), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  }

  it('a tool that hangs is found with an error after the time limit; one that prints junk has no version', async () => {
    const bin = path.join(tmp, 'bin1');
    fakeTool(bin, 'VBoxManage', 'sleep 5');
    fakeTool(bin, 'podman', 'echo "podman: something odd"');
    fakeTool(bin, 'docker', 'echo "Docker version 26.1.3, build b72abbb"; exit 3');
    fakeTool(bin, 'vmrun', 'echo "vmrun version 1.17.0 build-21581411"; echo Usage; exit 255');
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath}`;
    try {
      const [vbox, podman, docker, vmware] = await Promise.all([
        probeHypervisor('virtualbox', 'x86_64', 300),
        probeHypervisor('podman', 'x86_64', 300),
        probeHypervisor('docker', 'x86_64', 300),
        probeHypervisor('vmware', 'x86_64', 300),
      ]);
      expect(vbox).toMatchObject({ path: path.join(bin, 'VBoxManage'), version: null, error: 'did not answer within 300 ms' });
      expect(podman).toMatchObject({ version: null, error: expect.stringMatching(/no version/) });
      expect(docker).toMatchObject({ version: '26.1.3', error: 'exited with status 3' });
      expect(vmware).toMatchObject({ version: '1.17.0', raw: 'vmrun version 1.17.0 build-21581411' });
      expect(vmware.error).toBeUndefined();
    } finally {
      process.env.PATH = oldPath;
    }
  });

  it('findExecutable looks on PATH and in extra folders, never starting anything', () => {
    const bin = path.join(tmp, 'bin2');
    fakeTool(bin, 'qemu-system-riscv64', 'exit 0');
    fs.writeFileSync(path.join(bin, 'not-executable'), 'x', { mode: 0o644 });
    expect(findExecutable('qemu-system-riscv64', [bin], { PATH: '/nonexistent' })).toBe(path.join(bin, 'qemu-system-riscv64'));
    expect(findExecutable('not-executable', [bin], { PATH: '' })).toBeNull();
    expect(findExecutable('surely-not-installed-anywhere', [], process.env)).toBeNull();
  });

  it('remembers versions per unchanged executable, so a later probe starts nothing', async () => {
    const bin = path.join(tmp, 'bin3');
    const counter = path.join(tmp, 'runs');
    fakeTool(bin, 'podman', `echo x >> ${counter}; echo "podman version 4.3.1"`);
    const cacheFile = path.join(tmp, 'probe-cache.json');
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath}`;
    try {
      const a = await probeHost({ hypervisors: ['podman'], cacheFile });
      const b = await probeHost({ hypervisors: ['podman'], cacheFile });
      expect(a.hypervisors[0].version).toBe('4.3.1');
      expect(b.hypervisors[0]).toEqual(a.hypervisors[0]);
      expect(fs.readFileSync(counter, 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
      // A new binary (another size) is probed again.
      fakeTool(bin, 'podman', `echo x >> ${counter}; echo "podman version 5.0.1"`);
      const c = await probeHost({ hypervisors: ['podman'], cacheFile });
      expect(c.hypervisors[0].version).toBe('5.0.1');
      expect(fs.readFileSync(counter, 'utf8').split('\n').filter(Boolean)).toHaveLength(2);
      // Entries expire after a day.
      const pc = ProbeCache.load(cacheFile);
      const real = fs.realpathSync(path.join(bin, 'podman'));
      expect(pc.get(real)).toBeDefined();
      expect(pc.get(real, Date.now() + ProbeCache.MAX_AGE_MS + 1000)).toBeUndefined();
    } finally {
      process.env.PATH = oldPath;
    }
  });

  it('injected probes replace the real ones', async () => {
    const host = await probeHost({
      probes: {
        machine: () => 'arm64',
        ramMb: () => 1024,
        hwAccel: async () => ({ usable: true, detail: 'pinned' }),
        hypervisor: async (name) => ({ name, path: null, version: null, raw: '' }),
      },
    });
    expect(host).toMatchObject({ arch: 'aarch64', ramMb: 1024, hwAccel: { usable: true, detail: 'pinned' } });
    expect(host.hypervisors.every((h) => h.path === null)).toBe(true);
  });
});
