import { execFile } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Engine } from '../../src/container/engine.js';
import { Batch } from '../lifecycle-helpers.js';
import { CONTAINERS_CONF, containersOf, PODMAN_FIRST } from '../container-fixture.js';
import { buildPlainC } from '../helpers/boinc-c.js';
import { installReferencePlatform, makeQemuReply, QEMU_FIRST, QEMU_PROJECT, REPO, writeQemuReply } from '../qemu-fixture.js';
import { printLine, type BenchSection } from './harness.js';

/**
 * The container backend: a task end to end through the lifecycle on Podman vs the same task natively
 * (the client runs the program itself) vs on the QEMU backend (TCG here); pause latency; a CPU-bound
 * work unit in the container vs natively. Every figure comes with a baseline measured in this run.
 */
const X64 = 'x86_64-pc-linux-gnu';
const execFileP = promisify(execFile);
const dirs: string[] = [];
process.on('exit', () => { for (const d of dirs) void fsp.rm(d, { recursive: true, force: true }); });

type Mode = 'podman' | 'qemu';

/** One task through the lifecycle; returns the wall time and the program's output. */
async function runTask(mode: Mode, program: Buffer, commandLine = '', tag = 'b'): Promise<{ ms: number; out: string }> {
  const d = await fsp.realpath(await fsp.mkdtemp(path.join(os.tmpdir(), `altplat-bench-ct-${mode}-`)));
  dirs.push(d);
  installReferencePlatform(d, X64, mode === 'podman' ? PODMAN_FIRST : QEMU_FIRST);
  const result = `bench_${mode}_${tag}`;
  const reply = makeQemuReply([{ result, platform: X64, program, commandLine }]);
  const { replyFile, filesDir } = writeQemuReply(d, reply);
  const lc = new Batch({ dataDir: d, hostPlatforms: ['windows_x86_64'], pollMs: 100 });
  const t0 = performance.now();
  const { results } = await lc.run({ replyFile, filesDir });
  const ms = performance.now() - t0;
  if (results[0]?.outcome !== 'success') throw new Error(`${mode} task: ${results[0]?.outcome}: ${results[0]?.stderr.slice(-500)}`);
  return { ms, out: readFileSync(path.join(d, 'projects', QEMU_PROJECT, `${result}_stdout_txt`), 'utf8') };
}

/**
 * The same program natively, as the client starts a native app: its own process at nice 19 and SCHED_IDLE
 * (a program without the BOINC API cannot go through the native lifecycle: it never calls boinc_finish).
 */
async function runNative(file: string, args: string[] = []): Promise<{ ms: number; out: string }> {
  const t0 = performance.now();
  const { stdout } = await execFileP('chrt', ['--idle', '0', 'nice', '-n', '19', file, ...args], { encoding: 'utf8' });
  return { ms: performance.now() - t0, out: stdout };
}

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const field = (out: string, name: string) => Number(new RegExp(`^${name} ([0-9.]+)$`, 'm').exec(out)?.[1] ?? NaN);

export const sections: BenchSection[] = [
  {
    title: 'a short task end to end (slot, working copy, manager, program, outputs): container vs native vs VM',
    run: async () => {
      const prog = Buffer.from('#!/bin/sh\necho hello\n');
      const script = path.join(await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-bench-ct-native-')), 'hello');
      dirs.push(path.dirname(script));
      await fsp.writeFile(script, prog, { mode: 0o755 });
      await runTask('podman', prog, '', 'warm'); // first use imports the rootfs into podman
      const nat: number[] = [];
      const ct: number[] = [];
      for (let i = 0; i < 3; i++) {
        nat.push((await runNative(script)).ms);
        ct.push((await runTask('podman', prog, '', `c${i}`)).ms);
      }
      const vm = (await runTask('qemu', prog, '', 'vm')).ms;
      printLine({ name: 'task on the container backend (median of 3)', value: median(ct), baseline: median(nat), note: 'baseline: the same program run natively (no slot)' });
      printLine({ name: 'task on the QEMU backend (TCG here; 1 run)', value: vm, baseline: median(ct), note: 'baseline: the container task' });
    },
  },
  {
    title: 'pause latency (suspend -> container frozen) and the engine verbs alone',
    run: async () => {
      const engine = new Engine('podman', CONTAINERS_CONF);
      const d = await fsp.realpath(await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-bench-ct-pause-')));
      dirs.push(d);
      installReferencePlatform(d, X64, PODMAN_FIRST);
      const reply = makeQemuReply([{ result: 'bench_pause', platform: X64, program: Buffer.from('#!/bin/sh\nwhile :; do usleep 10000; done\n') }]);
      const { replyFile, filesDir } = writeQemuReply(d, reply);
      const lc = new Batch({ dataDir: d, hostPlatforms: ['windows_x86_64'], pollMs: 100 });
      const done = lc.run({ replyFile, filesDir });
      const status = async () => { const n = containersOf(d)[0]; return n ? (await engine.inspect(n))?.status : undefined; };
      while ((await status()) !== 'running') await new Promise((r) => setTimeout(r, 50));
      const name = containersOf(d)[0]!;
      const e2e: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        await lc.control('bench_pause', 'suspend');
        while ((await status()) !== 'paused') await new Promise((r) => setTimeout(r, 10));
        e2e.push(performance.now() - t0);
        await lc.control('bench_pause', 'resume');
        while ((await status()) !== 'running') await new Promise((r) => setTimeout(r, 10));
      }
      await lc.control('bench_pause', 'abort');
      await done;
      // The engine's own verbs, on a container of their own.
      const image = (await engine.must(['images', '--format', '{{.Repository}}:{{.Tag}}'])).split('\n').find((l) => l.startsWith('localhost/altplat-rootfs:'))!;
      const own = `altplat_bench_pause_${process.pid}`;
      await engine.must(['run', '-d', '--name', own, '--network=none', '--log-driver', 'none', image, '/bin/sleep', '600']);
      const verbs: number[] = [];
      const inspect: number[] = [];
      for (let i = 0; i < 5; i++) {
        let t0 = performance.now();
        await engine.must(['pause', own]);
        verbs.push(performance.now() - t0);
        await engine.must(['unpause', own]);
        t0 = performance.now();
        await engine.inspect(own);
        inspect.push(performance.now() - t0);
      }
      await engine.remove(own);
      printLine({ name: 'client suspend -> container paused (median of 3)', value: median(e2e), baseline: median(verbs), note: 'baseline: `podman pause` alone' });
      printLine({ name: '`podman pause` (median of 5)', value: median(verbs), baseline: median(inspect), note: 'baseline: `podman container inspect`' });
    },
  },
  {
    title: 'CPU-bound work unit: in the container (through the lifecycle) vs natively, both at nice 19 / SCHED_IDLE',
    run: async () => {
      const bin = await buildPlainC(path.join(REPO, 'test', 'c', 'cpu_spin.c'), ['-O2', '-static']);
      const prog = await fsp.readFile(bin);
      const rounds = '400000000';
      const nat: string[] = [];
      const ct: string[] = [];
      for (let i = 0; i < 3; i++) {
        nat.push((await runNative(bin, [rounds])).out);
        ct.push((await runTask('podman', prog, rounds, `spin_c${i}`)).out);
      }
      if (new Set([...nat, ...ct].map((o) => /^result .*$/m.exec(o)?.[0])).size !== 1) console.log('   note: the results differ between runs!');
      const cpu = (xs: string[]) => median(xs.map((o) => field(o, 'cpu')));
      const wall = (xs: string[]) => median(xs.map((o) => field(o, 'wall')));
      printLine({ name: 'CPU seconds of the work unit in the container (median of 3)', value: cpu(ct), baseline: cpu(nat), unit: 's', goal: '<= 1.02x', note: 'baseline: natively' });
      printLine({ name: 'its wall seconds in the container (median of 3)', value: wall(ct), baseline: wall(nat), unit: 's', goal: '<= 1.02x', note: 'shared machine: wall time includes other load' });
    },
  },
];
