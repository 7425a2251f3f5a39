import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOverlay, killOrphanVm, listSnapshots, PIDFILE, QemuVm, qemuArgs, startVm } from '../src/manager/qemu.js';
import { parseVmConfig, type VmConfig } from '../src/manager/vm-config.js';
import { kvmPrecheck } from '../src/manager/accel.js';
import { platformConfig, qemuPidsTagged, sha256File } from './qemu-fixture.js';

/**
 * The QEMU driver, QMP and guest-agent clients against a real QEMU (TCG) booting the real reference
 * image. One VM is shared by the sequential tests of the first block to keep the file fast (~3.5 s per boot).
 */
const TAG = `qemutest-${process.pid}`;
let config: VmConfig;
let baseSha: string;
let dir: string;

beforeAll(async () => {
  config = await platformConfig();
  baseSha = sha256File(config.baseDisk);
  dir = mkdtempSync(path.join(os.tmpdir(), 'altplat-qemutest-'));
});

afterAll(() => {
  expect(qemuPidsTagged(TAG)).toEqual([]);
  expect(sha256File(config.baseDisk)).toBe(baseSha);
  rmSync(dir, { recursive: true, force: true });
});

describe('vm_config.xml', () => {
  const base = '/plat';
  const xml = (extra: string) => `<qemu_vm><kernel>image/vmlinuz</kernel><initrd>image/i.gz</initrd><base_disk>image/b.qcow2</base_disk>${extra}</qemu_vm>`;
  it('resolves paths inside the platform folder and applies defaults', () => {
    const c = parseVmConfig(xml(''), base);
    expect(c.kernel).toBe('/plat/image/vmlinuz');
    expect(c).toMatchObject({ memoryMb: 256, cpus: 1, accel: 'auto', machine: 'pc-q35-7.2', cpuModel: 'Nehalem-v1', guestDir: '/work/job' });
  });
  it('refuses paths leaving the folder, bad numbers and unknown accelerators with named errors', () => {
    expect(() => parseVmConfig(xml('').replace('image/vmlinuz', '../../etc/passwd'), base)).toThrow(expect.objectContaining({ code: 'VMCONFIG_BAD_PATH' }));
    expect(() => parseVmConfig(xml('<memory_mb>lots</memory_mb>'), base)).toThrow(expect.objectContaining({ code: 'VMCONFIG_BAD_VALUE' }));
    expect(() => parseVmConfig(xml('<accel>hvf</accel>'), base)).toThrow(expect.objectContaining({ code: 'VMCONFIG_BAD_VALUE' }));
    expect(() => parseVmConfig('<qemu_vm><kernel>k</kernel></qemu_vm>', base)).toThrow(expect.objectContaining({ code: 'VMCONFIG_MISSING_ELEMENT' }));
  });
  it('builds a headless command line without a NIC unless asked, with the read-only base under the task overlay', () => {
    const c = parseVmConfig(xml(''), base);
    const args = qemuArgs({ config: c, runDir: '/slot', overlay: '/slot/o.qcow2', task: 't1', accel: 'tcg' }, '/tmp/s').join(' ');
    expect(args).toContain('-nodefaults');
    expect(args).toContain('-display none');
    expect(args).not.toContain('-nic');
    expect(args).toMatch(/filename=\/plat\/image\/b\.qcow2,node-name=base-file,read-only=on/);
    expect(args).toContain('node-name=disk0,backing=base');
    const withNet = qemuArgs({ config: c, runDir: '/slot', overlay: '/slot/o.qcow2', task: 't1', accel: 'tcg', network: true }, '/tmp/s');
    expect(withNet).toContain('-nic');
  });
});

describe('a real VM (TCG)', () => {
  let vm: QemuVm;
  const overlay = () => path.join(dir, 'task.qcow2');

  it('boots the reference image to a ready guest agent, owned through a tagged pidfile', async () => {
    await createOverlay(overlay(), config.baseDisk);
    const logs: string[] = [];
    // accel auto: KVM only if the pre-check passes (and a timed boot works), else TCG with the reason logged.
    const r = await startVm({ config: { ...config, accel: 'auto' }, runDir: dir, overlay: overlay(), task: TAG, log: (l) => logs.push(l) });
    vm = r.vm;
    expect(r.bootMs).toBeGreaterThan(0);
    const pre = await kvmPrecheck();
    if (!pre.usable) {
      expect(vm.opts.accel).toBe('tcg');
      expect(logs.join('\n')).toContain(pre.reason);
    }
    const pidfile = JSON.parse(readFileSync(path.join(dir, PIDFILE), 'utf8'));
    expect(pidfile).toMatchObject({ pid: vm.pid, task: TAG });
    expect(qemuPidsTagged(TAG)).toEqual([vm.pid]);
    expect(await vm.status()).toBe('running');
  });

  it('runs guest programs with arguments and reports exit codes and stderr', async () => {
    const st = await vm.qga.run('/bin/sh', ['-c', 'echo "$1|$2"; mount | grep " /work "', 'sh', "it's", 'a b']);
    expect(st.stdout!.toString()).toMatch(/^it's\|a b\n\/dev\/vda on \/work type ext4/);
    const pid = await vm.qga.exec('/bin/sh', { args: ['-c', 'echo oops >&2; exit 3'] });
    const done = await vm.qga.waitExec(pid);
    expect(done).toMatchObject({ exited: true, exitCode: 3 });
    expect(done.stderr!.toString()).toBe('oops\n');
  });

  it('runs a dynamically linked x86-64 program too (the guest has glibc for the agent) and 32-bit static ones', async () => {
    const src = path.join(dir, 'hello.c');
    writeFileSync(src, '#include <stdio.h>\n#include <math.h>\nint main(int c, char **v){printf("%s %.3f %zu\\n", v[1], sqrt(2.0), sizeof(void*));return 7;}\n');
    execFileSync('gcc', ['-O2', '-o', path.join(dir, 'hello64'), src, '-lm']);
    execFileSync('gcc', ['-m32', '-O2', '-static', '-o', path.join(dir, 'hello32'), src, '-lm']);
    for (const [name, bits] of [['hello64', '8'], ['hello32', '4']] as const) {
      await vm.qga.pushFile(path.join(dir, name), `/work/${name}`, 0o755);
      const st = await vm.qga.waitExec(await vm.qga.exec(`/work/${name}`, { args: ['hi'] }));
      expect(st).toMatchObject({ exited: true, exitCode: 7 });
      expect(st.stdout!.toString()).toBe(`hi 1.414 ${bits}\n`);
    }
  });

  it('copies files in and out in chunks, byte for byte', async () => {
    const data = randomBytes(2.5 * (1 << 20));
    const src = path.join(dir, 'in.bin');
    writeFileSync(src, data);
    expect(await vm.qga.pushFile(src, '/work/in.bin', 0o640)).toBe(data.length);
    const mode = await vm.qga.run('/bin/stat', ['-c', '%a', '/work/in.bin']);
    expect(mode.stdout!.toString().trim()).toBe('640');
    await vm.qga.pullFile('/work/in.bin', path.join(dir, 'out.bin'));
    expect(readFileSync(path.join(dir, 'out.bin')).equals(data)).toBe(true);
    await expect(vm.qga.readFile('/work/in.bin', 1000)).rejects.toMatchObject({ code: 'QGA_FILE_TOO_LARGE' });
    // Size without reading, and the tail of a file across chunk boundaries (a flooded stderr keeps its end).
    expect(await vm.qga.fileSize('/work/in.bin')).toBe(data.length);
    const tailLen = (1 << 20) + 12345;
    expect((await vm.qga.readFileTail('/work/in.bin', tailLen)).equals(data.subarray(data.length - tailLen))).toBe(true);
    expect((await vm.qga.readFileTail('/work/in.bin', data.length + 10)).equals(data)).toBe(true);
  });

  it('names the failed command and QEMU\'s answer in its errors', async () => {
    await expect(vm.qga.readFile('/no/such/file')).rejects.toMatchObject({
      code: 'QGA_COMMAND_FAILED', message: expect.stringMatching(/guest-file-open.*No such file/),
    });
    await expect(vm.qmp.execute('no-such-command')).rejects.toMatchObject({
      code: 'QMP_COMMAND_FAILED', message: expect.stringMatching(/'no-such-command'.*CommandNotFound/),
    });
    // HMP reports failure inside a successful QMP reply.
    await expect(vm.qmp.hmp('loadvm no-such-snapshot')).rejects.toMatchObject({ code: 'QMP_HMP_ERROR' });
    // (HMP loadvm stops the VM and restarts it only on success)
    await vm.resume();
    await expect(vm.loadSnapshot('nope')).rejects.toMatchObject({ code: 'QMP_JOB_FAILED', message: expect.stringContaining('snapshot-load') });
    expect(await vm.status()).toBe('running');
    // The agent still answers afterwards.
    await vm.qga.ping();
  });

  it('stop freezes the guest and cont lets it go on', async () => {
    const pid = await vm.qga.exec('/bin/sh', { args: ['-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; usleep 50000; done'], captureOutput: false });
    expect(pid).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 500));
    const before = Number((await vm.qga.readFile('/tmp/count')).toString());
    await vm.pause();
    expect(await vm.status()).toBe('paused');
    const cpu0 = await vm.cpuSeconds();
    await new Promise((r) => setTimeout(r, 800));
    await vm.resume();
    const a = Number((await vm.qga.readFile('/tmp/count')).toString());
    // Guest time did not run while paused: right after cont the counter is where it was.
    await new Promise((r) => setTimeout(r, 600));
    const b = Number((await vm.qga.readFile('/tmp/count')).toString());
    expect(before).toBeGreaterThan(0);
    // 0.8 s paused would be ~16 iterations of the loop; frozen, it moved by at most the read's own time.
    expect(a - before).toBeLessThanOrEqual(3);
    expect(b).toBeGreaterThan(a);
    expect(await vm.cpuSeconds()).toBeGreaterThanOrEqual(cpu0);
  });

  it('resynchronises the agent stream after a request timed out while the guest was paused', async () => {
    await vm.pause();
    // The request is queued in the paused guest; its late answer must not be taken for the next reply.
    await expect(vm.qga.execute('guest-info', undefined, 300)).rejects.toMatchObject({ code: 'QGA_TIMEOUT', message: expect.stringContaining('guest-info') });
    await vm.resume();
    const out = await vm.qga.run('/bin/echo', ['after-resync']);
    expect(out.stdout!.toString()).toBe('after-resync\n');
    expect(await vm.qga.execute<{ version: string }>('guest-info')).toMatchObject({ version: expect.stringMatching(/^7\./) });
  });

  it('snapshot-save/-load roll RAM and disk back together, and a new QEMU process restores it', async () => {
    await vm.qga.writeFile('/work/before.txt', Buffer.from('kept'));
    await vm.qga.writeFile('/tmp/ram-before.txt', Buffer.from('kept'));
    await vm.saveSnapshot('ck1');
    expect(await listSnapshots(overlay())).toContain('ck1');
    await vm.qga.writeFile('/work/after.txt', Buffer.from('lost'));
    await vm.qga.writeFile('/tmp/ram-after.txt', Buffer.from('lost'));
    await vm.loadSnapshot('ck1');
    const ls = (await vm.qga.run('/bin/ls', ['/work', '/tmp'])).stdout!.toString();
    expect(ls).toContain('before.txt');
    expect(ls).toContain('ram-before.txt');
    expect(ls).not.toContain('after.txt');
    // A fresh process with the same command line plus -loadvm continues from the snapshot, also after
    // a SIGKILL: the overlay (lazy refcounts) is left marked dirty and QEMU repairs it as it opens it.
    await vm.kill();
    // qcow2 header: incompatible_features (8 bytes big-endian at offset 72), bit 0 = dirty.
    expect(readFileSync(overlay()).readBigUInt64BE(72) & 1n).toBe(1n);
    const r = await startVm({ config: { ...config, accel: 'tcg' }, runDir: dir, overlay: overlay(), task: TAG, loadvm: 'ck1' });
    vm = r.vm;
    expect((await vm.qga.readFile('/tmp/ram-before.txt')).toString()).toBe('kept');
    await expect(vm.qga.readFile('/tmp/ram-after.txt')).rejects.toMatchObject({ code: 'QGA_COMMAND_FAILED' });
    await vm.deleteSnapshot('ck1');
    expect(await listSnapshots(overlay())).not.toContain('ck1');
    // Checked once QEMU has closed the image: with lazy refcounts the file's refcounts are only right
    // after a clean close (a check of the live image with -U raced the guest's writes).
    await vm.quit();
    expect(JSON.parse(execFileSync('qemu-img', ['check', '--output=json', overlay()], { encoding: 'utf8' }))).toMatchObject({ 'check-errors': 0 });
    vm = (await startVm({ config: { ...config, accel: 'tcg' }, runDir: dir, overlay: overlay(), task: TAG })).vm;
  });

  it('finds and ends a VM left behind by a crashed manager, only for its own task', async () => {
    // As if the manager had died: the pidfile stays, the process runs on.
    expect(await killOrphanVm(dir, 'some-other-task')).toBeUndefined();
    expect(qemuPidsTagged(TAG)).toEqual([vm.pid]);
    // (the pidfile of the other task's query was consumed; write ours back as the crashed manager left it)
    writeFileSync(path.join(dir, PIDFILE), JSON.stringify({ pid: vm.pid, task: TAG, socketDir: vm.socketDir, startedAt: '' }));
    expect(await killOrphanVm(dir, TAG)).toBe(vm.pid);
    expect((await vm.exited).signal).toBe('SIGKILL');
    expect(qemuPidsTagged(TAG)).toEqual([]);
    await vm.kill(); // releases the client side; idempotent once exited
  });

  it('powers off cleanly through the guest agent', async () => {
    const r = await startVm({ config: { ...config, accel: 'tcg' }, runDir: dir, overlay: overlay(), task: TAG });
    const exit = await r.vm.powerOff();
    expect(exit).toEqual({ code: 0, signal: null });
    expect(r.vm.qmp.seenEvents().some((e) => e.event === 'SHUTDOWN' && e.data.reason === 'guest-shutdown')).toBe(true);
    expect(existsSync(path.join(dir, PIDFILE))).toBe(false);
    expect(existsSync(r.vm.socketDir)).toBe(false);
  });

  it('layers an app-version overlay between the base and the task overlay, leaving it unchanged', async () => {
    // The app version's overlay: made here by booting on it once and leaving a file behind.
    const app = path.join(dir, 'app.qcow2');
    await createOverlay(app, config.baseDisk);
    let r = await startVm({ config: { ...config, accel: 'tcg' }, runDir: dir, overlay: app, task: TAG });
    await r.vm.qga.writeFile('/work/from-app.txt', Buffer.from('shipped with the app'));
    await r.vm.powerOff();
    const appSha = sha256File(app);
    const task = path.join(dir, 'task2.qcow2');
    await createOverlay(task, config.baseDisk, app);
    r = await startVm({ config: { ...config, accel: 'tcg', appOverlay: app }, runDir: dir, overlay: task, task: TAG });
    expect((await r.vm.qga.readFile('/work/from-app.txt')).toString()).toBe('shipped with the app');
    await r.vm.qga.writeFile('/work/from-task.txt', Buffer.from('task'));
    await r.vm.saveSnapshot('t1');
    await r.vm.powerOff();
    expect(sha256File(app)).toBe(appSha);
    expect(await listSnapshots(task)).toEqual(['t1']);
  });

  it('classifies a guest that cannot boot: kernel panic seen on the console', async () => {
    // No initramfs and no root: the kernel panics ("VFS: Unable to mount root fs"); panic=-1 would
    // reboot, and -no-reboot turns that into an exit, which is classified from the console as well.
    writeFileSync(path.join(dir, 'empty.cpio'), '');
    const broken = { ...config, accel: 'tcg' as const, initrd: path.join(dir, 'empty.cpio'), bootTimeoutSec: 60 };
    await expect(startVm({ config: broken, runDir: dir, overlay: overlay(), task: TAG }))
      .rejects.toMatchObject({ code: 'VM_KERNEL_PANIC' });
    expect(qemuPidsTagged(TAG)).toEqual([]);
  });

  it('classifies QEMU refusing to start (VM_EXITED with its message)', async () => {
    const bad = { ...config, accel: 'tcg' as const, machine: 'no-such-machine' };
    await expect(startVm({ config: bad, runDir: dir, overlay: overlay(), task: TAG }))
      .rejects.toMatchObject({ code: 'VM_EXITED', message: expect.stringContaining('unsupported machine type') });
    expect(existsSync(path.join(dir, PIDFILE))).toBe(false);
  });
});
