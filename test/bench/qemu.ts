import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, fsyncSync, closeSync, writeSync, rmSync, statSync, writeFileSync, copyFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { kvmPrecheck } from '../../src/manager/accel.js';
import { createOverlay, QemuVm, startVm } from '../../src/manager/qemu.js';
import type { VmConfig } from '../../src/manager/vm-config.js';
import { platformConfig } from '../qemu-fixture.js';
import { printLine, type BenchSection } from './harness.js';
import { fastSections } from './qemu-fast.js';

/**
 * The reference platform under real QEMU (TCG here; KVM where the pre-check passes): boot to agent,
 * pause latency, checkpoint save/load of a 256 MiB guest, copy-in throughput, CPU-bound work in the
 * VM vs natively. Every figure comes with a baseline measured in the same run.
 */
let dir: string;
let config: VmConfig;
let shared: QemuVm | undefined;
process.on('exit', () => { if (shared && !shared.hasExited) try { process.kill(shared.pid, 'SIGKILL'); } catch { /* gone */ } });

async function setup(): Promise<void> {
  if (dir) return;
  config = { ...(await platformConfig()), memoryMb: 256 };
  dir = mkdtempSync(path.join(os.tmpdir(), 'altplat-bench-qemu-'));
}

async function boot(accel: 'tcg' | 'kvm', tag: string): Promise<{ vm: QemuVm; ms: number }> {
  const overlay = path.join(dir, `${tag}.qcow2`);
  await createOverlay(overlay, config.baseDisk);
  const t0 = performance.now();
  const { vm } = await startVm({ config: { ...config, accel }, runDir: dir, overlay, task: `bench-${tag}` });
  return { vm, ms: performance.now() - t0 };
}

async function sharedVm(): Promise<QemuVm> {
  await setup();
  if (!shared) shared = (await boot('tcg', 'shared')).vm;
  return shared;
}

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const baseSections: BenchSection[] = [
  {
    title: 'boot to guest agent ready (linked clone + QEMU start + kernel + qemu-ga)',
    run: async () => {
      await setup();
      // Baseline: QEMU with the same machine but no guest (-M none style start-stop), i.e. the process itself.
      const base: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        execFileSync(process.env.ALTPLAT_QEMU ?? 'qemu-system-x86_64', ['-M', 'none', '-display', 'none', '-nodefaults', '-S', '-qmp', 'stdio'], { input: '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n', stdio: ['pipe', 'ignore', 'ignore'] });
        base.push(performance.now() - t0);
      }
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const { vm, ms } = await boot('tcg', `boot${i}`);
        times.push(ms);
        await vm.quit();
      }
      printLine({ name: 'boot -> agent ready, TCG (median of 3)', value: median(times), baseline: median(base), note: 'baseline: start+quit of an empty QEMU' });
      const pre = await kvmPrecheck();
      if (!pre.usable) {
        console.log(`   KVM: not measured — ${pre.reason}`);
      } else {
        try {
          const { vm, ms } = await boot('kvm', 'bootkvm');
          await vm.quit();
          printLine({ name: 'boot -> agent ready, KVM', value: ms, baseline: median(times), note: 'baseline: TCG boot' });
        } catch (e) {
          console.log(`   KVM: pre-check passed but the boot failed: ${(e as Error).message}`);
        }
      }
    },
  },
  {
    title: 'suspend -> paused latency (QMP stop until query-status says paused)',
    run: async () => {
      const vm = await sharedVm();
      const stop: number[] = [];
      const ping: number[] = [];
      for (let i = 0; i < 20; i++) {
        let t0 = performance.now();
        await vm.qmp.queryStatus();
        ping.push(performance.now() - t0);
        t0 = performance.now();
        await vm.pause();
        if ((await vm.status()) !== 'paused') throw new Error('not paused');
        stop.push(performance.now() - t0);
        await vm.resume();
      }
      printLine({ name: 'stop + confirmed paused (median of 20)', value: median(stop), baseline: median(ping), note: 'baseline: one QMP round trip' });
    },
  },
  {
    title: 'checkpoint save and load, 256 MiB guest with 64 MiB of live data',
    run: async () => {
      const vm = await sharedVm();
      // Dirty guest RAM the way a running program would: 64 MiB of random data in tmpfs.
      await vm.qga.run('/bin/sh', ['-c', 'head -c 67108864 /dev/urandom > /tmp/live.bin'], 120_000);
      const overlay = path.join(dir, 'shared.qcow2');
      const saves: number[] = [];
      const loads: number[] = [];
      const before = statSync(overlay).size;
      let state = 0;
      for (let i = 0; i < 3; i++) {
        let t0 = performance.now();
        await vm.saveSnapshot(`b${i}`);
        saves.push(performance.now() - t0);
        if (i === 0) state = statSync(overlay).size - before;
        t0 = performance.now();
        await vm.loadSnapshot(`b${i}`);
        loads.push(performance.now() - t0);
        if (i > 0) await vm.deleteSnapshot(`b${i - 1}`);
      }
      await vm.deleteSnapshot('b2');
      // Baseline: writing the same amount of data to a file on the same disk, with fsync.
      const chunk = randomBytes(1 << 20);
      const bytes = Math.max(state, 1 << 20);
      const t0 = performance.now();
      const fd = openSync(path.join(dir, 'baseline.bin'), 'w');
      for (let n = 0; n < bytes; n += chunk.length) writeSync(fd, chunk);
      fsyncSync(fd);
      closeSync(fd);
      const write = performance.now() - t0;
      rmSync(path.join(dir, 'baseline.bin'));
      printLine({ name: 'snapshot-save (median of 3)', value: median(saves), baseline: write, note: `baseline: write+fsync ${(bytes / 1e6).toFixed(0)} MB` });
      printLine({ name: 'snapshot-load (median of 3)', value: median(loads), baseline: write, note: 'same baseline' });
    },
  },
  {
    title: 'copy-in throughput (guest-file-write, 1 MiB chunks)',
    run: async () => {
      const vm = await sharedVm();
      const src = path.join(dir, 'copy.bin');
      const size = 16 << 20;
      writeFileSync(src, randomBytes(size));
      let t0 = performance.now();
      copyFileSync(src, path.join(dir, 'copy2.bin'));
      const host = performance.now() - t0;
      t0 = performance.now();
      await vm.qga.pushFile(src, '/work/copy.bin');
      const push = performance.now() - t0;
      t0 = performance.now();
      await vm.qga.readFile('/work/copy.bin', size);
      const pull = performance.now() - t0;
      printLine({ name: 'copy in 16 MiB', value: push, baseline: host, note: `${(size / 1e6 / (push / 1000)).toFixed(1)} MB/s; baseline: host copyFile` });
      printLine({ name: 'copy out 16 MiB', value: pull, baseline: host, note: `${(size / 1e6 / (pull / 1000)).toFixed(1)} MB/s` });
    },
  },
  {
    title: 'CPU-bound program in the VM (TCG) vs natively',
    run: async () => {
      try {
        await cpuBound();
      } finally {
        await shared?.kill();
        shared = undefined;
        rmSync(dir, { recursive: true, force: true });
      }
    },
  },
];

async function cpuBound(): Promise<void> {
      const vm = await sharedVm();
      const src = path.join(dir, 'leibniz.c');
      const exe = path.join(dir, 'leibniz');
      writeFileSync(src, '#include <stdio.h>\nint main(void){double s=0;for(long i=0;i<100000000L;i++)s+=(i%2?-4.0:4.0)/(2*i+1);printf("%.15f\\n",s);return 0;}\n');
      execFileSync('gcc', ['-O2', '-static', '-o', exe, src]);
      let t0 = performance.now();
      const native = execFileSync(exe, { encoding: 'utf8' });
      const nativeMs = performance.now() - t0;
      await vm.qga.pushFile(exe, '/work/leibniz', 0o755);
      t0 = performance.now();
      const st = await vm.qga.waitExec(await vm.qga.exec('/work/leibniz'), 600_000, 50);
      const vmMs = performance.now() - t0;
      const same = st.stdout?.toString() === native;
      printLine({ name: 'Leibniz 1e8 terms, static -O2', value: vmMs, baseline: nativeMs, note: `result ${same ? 'identical' : 'DIFFERENT'}; native = baseline` });
      await vm.powerOff();
}

/** The issue-10 figures first (they need no shared VM), then the earlier ones. */
export const sections: BenchSection[] = [...fastSections, ...baseSections];
