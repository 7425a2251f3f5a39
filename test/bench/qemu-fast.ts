import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { prepareBootState, type BootState } from '../../src/manager/boot-state.js';
import { buildJobDisk, copyOutDisk, createPlaceholderJobDisk, diskTools, JOB_DEVICE, JOB_DISK } from '../../src/manager/job-disk.js';
import { startInGuest, startOutcome } from '../../src/manager/guest-job.js';
import { createOverlay, QemuVm } from '../../src/manager/qemu.js';
import type { VmConfig } from '../../src/manager/vm-config.js';
import type { JobDescription } from '../../src/job/jobfile.js';
import { writeReply, type RunResult } from '../helpers/wu-reply.js';
import { installReferencePlatform, platformConfig, REPO } from '../qemu-fixture.js';
import { printLine, type BenchSection } from './harness.js';

/**
 * Issue 10's figures, each beside a baseline from the same run: boot -> agent cold vs resumed from the
 * saved booted state, a trivial task end to end through `altplat run` (and where its time goes), the
 * job disk's copy in/out vs a host copy.
 */
let dir: string;
let config: VmConfig;
let state: BootState;
let coldMs = 0;
const live: QemuVm[] = [];
process.on('exit', () => { for (const vm of live) if (!vm.hasExited) try { process.kill(vm.pid, 'SIGKILL'); } catch { /* gone */ } });

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function setup(): Promise<void> {
  if (dir) return;
  config = await platformConfig();
  dir = mkdtempSync(path.join(os.tmpdir(), 'altplat-bench-fast-'));
  const t0 = performance.now();
  const r = await prepareBootState({ dataDir: dir, config, log: () => undefined });
  if (!('state' in r)) throw new Error(`no saved booted state: ${r.reason}`);
  state = r.state;
  console.log(`   saved booted state built in ${(performance.now() - t0).toFixed(0)} ms (once per host and platform)`);
}

async function startFrom(tag: string, jobDisk: string, resume: boolean): Promise<{ vm: QemuVm; ms: number }> {
  const run = path.join(dir, tag);
  mkdirSync(run, { recursive: true });
  const overlay = path.join(run, 'task.qcow2');
  await createOverlay(overlay, resume ? state.disk : config.baseDisk);
  const t0 = performance.now();
  const vm = await QemuVm.start({ config, runDir: run, overlay, task: `bench-fast-${tag}`, accel: state.accel, jobDisk,
    ...(resume ? { stateDisk: state.disk, incoming: state.memory } : {}) });
  live.push(vm);
  await vm.waitAgent();
  return { vm, ms: performance.now() - t0 };
}

const cli = path.join(REPO, 'dist', 'src', 'cli', 'main.js');

function runTask(data: string, files: string, reply: string, env: Record<string, string> = {}): { ms: number; r: RunResult } {
  const t0 = performance.now();
  const p = spawnSync(process.execPath, [cli, 'run', '--data-dir', data, '--host-platform', 'windows_x86_64', '--files', files, '--json', reply],
    { encoding: 'utf8', env: { ...process.env, ...env } });
  const ms = performance.now() - t0;
  if (p.status !== 0) throw new Error(`altplat run failed: ${p.stderr}`);
  const r = (JSON.parse(p.stdout) as { results: RunResult[] }).results[0]!;
  if (r.outcome !== 'success') throw new Error(`task failed: ${JSON.stringify(r)}`);
  return { ms, r };
}

export const fastSections: BenchSection[] = [
  {
    title: 'boot -> agent ready: cold boot vs resumed from the saved booted state (issue 10)',
    run: async () => {
      await setup();
      const placeholder = path.join(dir, 'placeholder.qcow2');
      await createPlaceholderJobDisk(placeholder);
      const cold: number[] = [];
      for (let i = 0; i < 3; i++) {
        const { vm, ms } = await startFrom(`cold${i}`, placeholder, false);
        cold.push(ms);
        await vm.kill();
      }
      const warm: number[] = [];
      const prep: number[] = [];
      for (let i = 0; i < 5; i++) {
        const { vm, ms } = await startFrom(`warm${i}`, placeholder, true);
        warm.push(ms);
        const t0 = performance.now();
        // The placeholder has no file system: time the clock + RNG part of the preparation only.
        await vm.qga.waitExec(await vm.qga.exec('/sbin/altplat-resume', { args: ['-t', String(Math.floor(Date.now() / 1000)), '0', '-e'], input: randomBytes(64) }));
        prep.push(performance.now() - t0);
        await vm.kill();
      }
      coldMs = median(cold);
      printLine({ name: 'boot -> agent, resumed (median of 5)', value: median(warm), baseline: coldMs, goal: '<= 500 ms', note: 'baseline: cold boot, same devices (median of 3)' });
      printLine({ name: 'then clock set + RNG reseed in the guest (median of 5)', value: median(prep), note: 'first guest program after a resume' });
    },
  },
  {
    title: 'trivial task end to end through `altplat run` (a windows_x86_64 host, the x86_64 Linux platform)',
    run: async () => {
      await setup();
      const data = path.join(dir, 'data');
      mkdirSync(data, { recursive: true });
      installReferencePlatform(data, 'x86_64-pc-linux-gnu');
      const src = path.join(dir, 'hello.c');
      writeFileSync(src, '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n');
      execFileSync('gcc', ['-O2', '-static', '-o', path.join(dir, 'hello'), src]);
      let n = 0;
      const task = (env: Record<string, string> = {}) => {
        const { reply, files } = writeReply(path.join(dir, `reply${n}`), [{ result: `bench_t${n++}`, platform: 'x86_64-pc-linux-gnu', program: path.join(dir, 'hello') }]);
        return runTask(data, files, reply, env);
      };
      task(); // builds this data dir's saved booted state
      const runs = Array.from({ length: 5 }, () => task());
      const wall = median(runs.map((x) => x.ms));
      const old = [task({ ALTPLAT_BOOT_STATE: 'off', ALTPLAT_DATA_PATH: 'agent' }), task({ ALTPLAT_BOOT_STATE: 'off', ALTPLAT_DATA_PATH: 'agent' })];
      const hostT0 = performance.now();
      execFileSync(path.join(dir, 'hello'));
      const native = performance.now() - hostT0;
      printLine({ name: 'trivial VM task end to end (median of 5)', value: wall, baseline: median(old.map((x) => x.ms)), goal: '<= 1500 ms', note: 'baseline: cold boot + agent copies (the previous path), median of 2' });
      const resumeMs = runs.map((x) => Number(/guest resumed from saved booted state \w+ in (\d+) ms/.exec(x.r.stderr)?.[1] ?? NaN));
      printLine({ name: 'end to end minus boot -> agent (median of 5)', value: median(runs.map((x, i) => x.ms - resumeMs[i]!)), baseline: native, goal: '<= 300 ms', note: 'baseline: the program run natively' });
      const last = runs[runs.length - 1]!;
      const breakdown = /time breakdown \(ms\): (.*); total (\d+)/.exec(last.r.stderr);
      if (breakdown) {
        console.log(`   manager (last run): ${breakdown[1]}; manager total ${breakdown[2]} ms`);
        console.log(`   client side (CLI start, slot, working copy, manager start, collect): ${(last.ms - Number(breakdown[2])).toFixed(0)} ms of ${last.ms.toFixed(0)} ms`);
      }
      const oldBreak = /time breakdown \(ms\): (.*); total (\d+)/.exec(old[0]!.r.stderr);
      if (oldBreak) console.log(`   previous path, manager: ${oldBreak[1]}; total ${oldBreak[2]} ms`);
    },
  },
  {
    title: 'copy in and out through the job disk (mke2fs -d in, debugfs out) vs a host copy',
    run: async () => {
      await setup();
      const tools = await diskTools();
      if (!tools) {
        console.log('   not measured: mke2fs/debugfs missing');
        return;
      }
      for (const mib of [16, 256]) {
        const size = mib << 20;
        const slot = path.join(dir, `copy${mib}`);
        mkdirSync(slot, { recursive: true });
        const input = path.join(slot, 'in.bin');
        writeFileSync(input, randomBytes(size));
        let t0 = performance.now();
        copyFileSync(input, path.join(slot, 'host-copy.bin'));
        const host = performance.now() - t0;
        rmSync(path.join(slot, 'host-copy.bin'));
        writeFileSync(path.join(slot, 'prog'), '#!/bin/sh\ncat in.bin > out.bin\n', { mode: 0o755 });
        const job = { mainProgram: 'prog', commandLine: '', appFiles: [], inputs: [{ openName: 'in.bin', fileName: 'in.bin' }],
          outputs: [{ openName: 'out.bin', fileName: 'out.bin', maxNbytes: 2 * size }], resultName: `copy${mib}` } as unknown as JobDescription;
        t0 = performance.now();
        await buildJobDisk(tools, slot, job);
        const inMs = performance.now() - t0;
        const { vm } = await startFrom(`copyvm${mib}`, path.join(slot, JOB_DISK), true);
        t0 = performance.now();
        // As a task starts: one guest program sets the clock, reseeds, mounts, runs, remounts read-only.
        const st = await vm.qga.waitExec(await startInGuest(vm.qga, slot, job, { guestDir: config.guestDir, entropy: randomBytes(64), jobDevice: JOB_DEVICE }), 600_000);
        const how = startOutcome(st, job);
        if (how.kind !== 'ran' || st.exitCode !== 0) throw new Error(`the program failed: ${JSON.stringify(how)} ${st.exitCode}`);
        const guestMs = performance.now() - t0;
        t0 = performance.now();
        const rep = await copyOutDisk(tools, vm.qga, slot, job, config.guestDir, async () => undefined, () => undefined, how.diskReadOnly);
        const outMs = performance.now() - t0;
        await vm.kill();
        if (!rep || rep.copied[0] !== 'out.bin') throw new Error(`copy out failed: ${JSON.stringify(rep)}`);
        const mbs = (ms: number) => `${(size / 1e6 / (ms / 1000)).toFixed(0)} MB/s`;
        printLine({ name: `copy in ${mib} MiB (job disk made on the host)`, value: inMs, baseline: host, goal: mib === 256 ? '>= 100 MB/s' : undefined, note: `${mbs(inMs)}; baseline: host copyFile` });
        printLine({ name: `copy out ${mib} MiB (qemu-img convert, debugfs dump)`, value: outMs, baseline: host, goal: mib === 256 ? '>= 100 MB/s' : undefined, note: `${mbs(outMs)}` });
        console.log(`   (in the guest: mount, the program's own cat of ${mib} MiB, remount read-only: ${guestMs.toFixed(0)} ms)`);
        rmSync(slot, { recursive: true, force: true });
      }
      for (const vm of live) await vm.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  },
];
