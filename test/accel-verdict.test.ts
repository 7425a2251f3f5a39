/*
 * Issue 9 item 9: one hardware-acceleration verdict shared by discovery and the QEMU manager. Working KVM
 * cannot run here (these hosts are nested, without vmx/svm), so the manager's timed boot is represented
 * by what it records; everything else is real (files, discovery, the CLI).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { discoverPlatforms } from '../src/discovery/discover.js';
import { ACCEL_VERDICT_FILE, kvmPrecheck, managerVerdictForHost, readAccelVerdict, recordAccelVerdict, verdictKeyParts } from '../src/host/accel-verdict.js';
import { probeHwAccel, withManagerVerdict, type HostInfo } from '../src/host/probes.js';
import { verdictStore } from '../src/manager/accel.js';

const run = promisify(execFile);
const CLI = path.resolve('dist/src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'altplat-accel-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A data dir with one platform that `<requires><hw_accel/>`. */
function dataDirWithKvmPlatform(name: string): string {
  const d = path.join(tmp, name);
  const p = path.join(d, 'alt_platforms', 'kvm-only');
  fs.mkdirSync(p, { recursive: true });
  fs.writeFileSync(path.join(p, 'manager'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  fs.writeFileSync(path.join(p, 'alt_platform.xml'),
    '<alt_platform>\n    <name>kvm-only</name>\n    <version>1.0.0</version>\n    <requires>\n        <hw_accel/>\n    </requires>\n'
    + '    <manager>\n        <file_name>manager</file_name>\n    </manager>\n</alt_platform>\n');
  return d;
}

const usableHost: HostInfo = { os: 'linux', arch: 'x86_64', ramMb: 4096, hwAccel: { usable: true, detail: 'vmx/svm present and /dev/kvm opens read-write' }, hypervisors: [] };

describe('the pre-check discovery and the manager share', () => {
  it('/dev/kvm that opens is not enough: without vmx/svm the host has no usable hardware virtualization', async () => {
    const noVmx = await kvmPrecheck({ arch: 'x64', kvmOpens: async () => true, cpuinfo: async () => 'flags\t\t: fpu sse2 hypervisor avx2\n' });
    expect(noVmx).toEqual({ usable: false, reason: expect.stringMatching(/does not expose vmx\/svm/) });
    const vmx = await kvmPrecheck({ arch: 'x64', kvmOpens: async () => true, cpuinfo: async () => 'flags\t\t: fpu vmx sse2\n' });
    expect(vmx.usable).toBe(true);
    expect((await kvmPrecheck({ arch: 'x64', kvmOpens: async () => 'no /dev/kvm', cpuinfo: async () => 'flags: svm' })).usable).toBe(false);
  });

  it("discovery's probe on this host agrees with the manager's pre-check", async () => {
    if (process.platform !== 'linux') return;
    const probe = await probeHwAccel();
    const pre = await kvmPrecheck();
    expect(probe).toEqual({ usable: pre.usable, detail: pre.reason });
    const vmx = /\b(vmx|svm)\b/.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (!vmx) expect(probe.usable).toBe(false);
  });

  it('`altplat list` does not advertise a hw_accel platform on a host whose CPU lacks vmx/svm, whatever /dev/kvm does', async () => {
    if (process.platform !== 'linux' || /\b(vmx|svm)\b/.test(fs.readFileSync('/proc/cpuinfo', 'utf8'))) return;
    const d = dataDirWithKvmPlatform('list');
    const r = await run(process.execPath, [CLI, 'list', '--json', '--data-dir', d]);
    const j = JSON.parse(r.stdout);
    expect(j.advertised).not.toContain('kvm-only');
    const p = j.platforms.find((x: { name: string }) => x.name === 'kvm-only');
    expect(p.status).toBe('unsupported');
    expect(p.reasons[0].code).toBe('REQ_HW_ACCEL');
  });
});

describe("the manager's recorded verdict under <data>/altplat/", () => {
  it('is written atomically, keyed by kernel, QEMU and CPU model, and read back per key', async () => {
    const d = path.join(tmp, 'rec');
    fs.mkdirSync(d);
    const qemu = process.execPath; // any real file: the key takes its size and mtime
    const a = await verdictKeyParts(qemu, 'Nehalem-v1');
    const b = await verdictKeyParts(qemu, 'max');
    expect(a.kernel).toBe(os.release());
    expect(a.qemu).toMatch(new RegExp(`^${qemu.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}@\\d+:\\d+$`));
    await recordAccelVerdict(d, { works: false, reason: 'VM_BOOT_TIMEOUT: no agent in 30 s', ...a });
    await recordAccelVerdict(d, { works: true, reason: 'timed boot succeeded', bootSec: 3.2, ...b });
    expect(await readAccelVerdict(d, a)).toMatchObject({ works: false, cpuModel: 'Nehalem-v1' });
    expect(await readAccelVerdict(d, b)).toMatchObject({ works: true, bootSec: 3.2 });
    expect(fs.readdirSync(path.join(d, 'altplat'))).toEqual(['hw_accel.json']); // no temp file left
    const store = await verdictStore(qemu, d, 'Nehalem-v1', () => undefined);
    expect(await store.read()).toMatchObject({ works: false });
  });

  it('discovery reads it: a failed timed boot makes hw_accel unusable; list never boots a VM', async () => {
    const d = dataDirWithKvmPlatform('disc');
    expect((await withManagerVerdict(usableHost, d)).hwAccel.usable).toBe(true); // nothing recorded yet
    await recordAccelVerdict(d, { works: false, reason: 'VM_BOOT_TIMEOUT: the guest agent did not answer within 30 s (accel kvm)', ...await verdictKeyParts('qemu-system-x86_64', 'Nehalem-v1') });
    const h = await withManagerVerdict(usableHost, d);
    expect(h.hwAccel).toEqual({ usable: false, detail: expect.stringMatching(/QEMU manager found KVM not usable .*VM_BOOT_TIMEOUT/) });
    // A later success on the same kernel (e.g. after a fix) wins.
    await recordAccelVerdict(d, { works: true, reason: 'timed boot succeeded', ...await verdictKeyParts('qemu-system-x86_64', 'max'), at: new Date(Date.now() + 1000).toISOString() });
    expect((await managerVerdictForHost(d))?.works).toBe(true);
    expect((await withManagerVerdict(usableHost, d)).hwAccel.usable).toBe(true);
    // Another kernel's verdict says nothing about this one.
    const other = path.join(tmp, 'other-kernel');
    fs.mkdirSync(other);
    await recordAccelVerdict(other, { works: false, reason: 'x', kernel: 'another-kernel', qemu: 'q', cpuModel: '' });
    expect((await withManagerVerdict(usableHost, other)).hwAccel.usable).toBe(true);
  });

  it('through discovery: the platform is unsupported with the manager\'s reason (hw probe as found here, verdict applied)', async () => {
    const d = dataDirWithKvmPlatform('disc2');
    await recordAccelVerdict(d, { works: false, reason: 'KVM_BROKEN: QEMU aborted', ...await verdictKeyParts('qemu-system-x86_64') });
    const r = await discoverPlatforms({ dataDir: d, probeHypervisors: [] });
    const p = r.platforms.find((x) => x.name === 'kvm-only')!;
    expect(p.status).toBe('unsupported');
    expect(r.advertised).not.toContain('kvm-only');
  });

  it('is never written through a planted link at <data>/altplat', async () => {
    const d = path.join(tmp, 'link');
    const outside = path.join(tmp, 'outside');
    fs.mkdirSync(d);
    fs.mkdirSync(outside);
    fs.symlinkSync(outside, path.join(d, 'altplat'));
    await expect(recordAccelVerdict(d, { works: true, reason: 'x', kernel: 'k', qemu: 'q', cpuModel: '' })).rejects.toMatchObject({ code: 'OWNED_DIR_NOT_REAL' });
    expect(fs.readdirSync(outside)).toEqual([]);
    const logs: string[] = [];
    const store = await verdictStore('qemu-system-x86_64', d, '', (s) => logs.push(s));
    await store.write({ works: false, reason: 'y' });
    expect(logs[0]).toMatch(/verdict not recorded/);
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(ACCEL_VERDICT_FILE).toBe(path.join('altplat', 'hw_accel.json'));
  });
});
