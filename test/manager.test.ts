import { promises as fsp, readFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Batch } from './lifecycle-helpers.js';
import {
  buildPi, installReferencePlatform, makeQemuReply, seedBootStates, PI_BUILDS, PLATFORM_DIR, QEMU_PROJECT, qemuPidsTagged, sha256File, writeQemuReply,
} from './qemu-fixture.js';

/**
 * The QEMU manager end to end through the task lifecycle (what `altplat run` does), with real QEMU
 * under TCG, the real image and the real BOINC control channel: the paper's program gives the native
 * value inside the VM; suspend/resume; quit and restart from the checkpoint; kills; abort.
 */
const baseImage = path.join(PLATFORM_DIR, 'image', 'base.qcow2');
let baseSha: string;
const dataDirs: string[] = [];
/** Every data dir of this file is below it, so that VMs of other checkouts running the same tests are not ours. */
let root: string;

beforeAll(async () => {
  baseSha = sha256File(baseImage);
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-mt-'));
  dataDirs.push(root);
});

afterAll(async () => {
  expect(qemuPidsTagged('mt_', root)).toEqual([]);
  expect(sha256File(baseImage)).toBe(baseSha);
  for (const d of dataDirs) await fsp.rm(d, { recursive: true, force: true });
});

async function dataDir(platforms: string[]): Promise<string> {
  const d = await fsp.mkdtemp(path.join(root, 'd-'));
  dataDirs.push(d);
  for (const p of platforms) installReferencePlatform(d, p);
  await seedBootStates(d);
  // The volunteer's "checkpoint at most every N s" preference reaches the manager through init_data.xml.
  await fsp.writeFile(path.join(d, 'global_prefs_override.xml'),
    '<global_preferences>\n   <disk_interval>1</disk_interval>\n</global_preferences>\n');
  return d;
}

describe('the paper\'s program through the alt platforms (Windows host playing the paper\'s role)', () => {
  it('x87 and SSE builds give in the VM exactly what they give natively; inputs, outputs and arguments pass by open name', async () => {
    const d = await dataDir(['x86_64-pc-linux-gnu', 'i686-pc-linux-gnu']);
    const sse = buildPi('sse');
    const x87 = buildPi('x87');
    const reply = makeQemuReply([
      { result: 'mt_pi_sse', platform: PI_BUILDS.sse.platform, program: readFileSync(sse) },
      { result: 'mt_pi_x87', platform: PI_BUILDS.x87.platform, program: readFileSync(x87) },
      // Inputs in and declared outputs out by open name (both soft-link files in the slot), arguments intact.
      {
        result: 'mt_files', platform: 'x86_64-pc-linux-gnu', program: Buffer.from('#!/bin/sh\ntr a-z A-Z < in.txt > out.txt\nprintf "%s|" "$@"\n'),
        commandLine: 'one "two words" $HOME', inputs: [{ openName: 'in.txt', content: Buffer.from('hello vm\n') }], outputs: ['stdout.txt', 'out.txt'],
      },
    ]);
    const { replyFile, filesDir } = writeQemuReply(d, reply);
    const lc = new Batch({ dataDir: d, hostPlatforms: ['windows_x86_64'], pollMs: 200, maxTasks: 2 });
    const { results } = await lc.run({ replyFile, filesDir });
    const by = Object.fromEntries(results.map((r) => [r.name, r]));
    for (const [kind, file] of [['sse', sse], ['x87', x87]] as const) {
      const r = by[`mt_pi_${kind}`]!;
      expect(r, JSON.stringify(r)).toMatchObject({ outcome: 'success', exitStatus: 0, kind: 'alt', platform: PI_BUILDS[kind].platform });
      const vmOut = await fsp.readFile(path.join(d, 'projects', QEMU_PROJECT, `mt_pi_${kind}_stdout_txt`), 'utf8');
      const native = execFileSync(file, { encoding: 'utf8' });
      expect(vmOut).toBe(native);
      expect(vmOut.trimEnd().split('\n').at(-1)).toContain(`est pi: ${PI_BUILDS[kind].expected}`);
    }
    expect(by.mt_files).toMatchObject({ outcome: 'success', exitStatus: 0 });
    const project = path.join(d, 'projects', QEMU_PROJECT);
    expect(await fsp.readFile(path.join(project, 'mt_files_out_txt'), 'utf8')).toBe('HELLO VM\n');
    expect(await fsp.readFile(path.join(project, 'mt_files_stdout_txt'), 'utf8')).toBe('one|two words|$HOME|');
  }, 120_000);
});

/** A guest program that counts `$1` steps (0.1 s each), reporting progress in fraction_done. */
const COUNTER = Buffer.from(`#!/bin/sh
n=\${1:-40}; i=0
echo "counter: $n steps" >&2
while [ $i -lt $n ]; do
  i=$((i+1)); echo "step $i"
  echo "$i $n" | awk '{printf "%.4f\\n", $1/$2}' > fraction_done
  usleep 100000
done
echo done
`);
const expectedCounter = (n: number) => `${Array.from({ length: n }, (_, i) => `step ${i + 1}`).join('\n')}\ndone\n`;

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function checkpointTag(slot: string): Promise<string | undefined> {
  try {
    return JSON.parse(await fsp.readFile(path.join(slot, 'altplat_manager_state.json'), 'utf8')).checkpoint as string | undefined;
  } catch {
    return undefined;
  }
}

/** Starts one counter task through the lifecycle in this process; returns handles to steer it. */
async function startCounter(result: string, steps: number, prefs?: { leaveAppsInMemory: boolean }) {
  const d = await dataDir(['x86_64-pc-linux-gnu']);
  const reply = makeQemuReply([{ result, platform: 'x86_64-pc-linux-gnu', program: COUNTER, commandLine: String(steps), rscFpopsEst: 1e10 }]);
  const { replyFile, filesDir } = writeQemuReply(d, reply);
  const lc = new Batch({ dataDir: d, hostPlatforms: ['windows_x86_64'], pollMs: 200, prefs });
  let fraction = 0;
  lc.on('progress', (p) => { fraction = p.fractionDone; });
  const done = lc.run({ replyFile, filesDir });
  const slot = path.join(d, 'slots', '0');
  const qemuPid = () => until('the VM', () => qemuPidsTagged(result, root)[0]);
  return { d, lc, done, slot, qemuPid, fraction: () => fraction, output: () => fsp.readFile(path.join(d, 'projects', QEMU_PROJECT, `${result}_stdout_txt`), 'utf8') };
}

describe('the manager follows the client', () => {
  it('suspend (leave_apps_in_memory) stops the guest (no progress, no CPU) and resume continues it', async () => {
    // leave_apps_in_memory: with checkpoints every second the manager has checkpointed by now, and
    // BOINC's default would remove it from memory (quit + restore) instead of pausing it.
    const t = await startCounter('mt_suspend', 40, { leaveAppsInMemory: true });
    const pid = await t.qemuPid();
    await until('progress', () => t.fraction() > 0.1 || undefined);
    await t.lc.control('mt_suspend', 'suspend');
    await until('the pause', async () => (await fsp.readFile(path.join(t.slot, 'stderr.txt'), 'utf8')).includes('suspended: VM paused') || undefined);
    const cpu0 = cpuSecondsOf(pid);
    const f0 = t.fraction();
    await new Promise((r) => setTimeout(r, 1500));
    // Paused QEMU burns (almost) nothing; running TCG would use most of a core in 1.5 s.
    expect(cpuSecondsOf(pid) - cpu0).toBeLessThan(0.3);
    expect(t.fraction()).toBe(f0);
    await t.lc.control('mt_suspend', 'resume');
    await until('progress after resume', () => t.fraction() > f0 || undefined);
    const { results } = await t.done;
    expect(results[0]).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(await t.output()).toBe(expectedCounter(40));
    expect(results[0]!.stderr).toContain('resumed: VM running');
    // The program's own standard error lands in the slot's stderr.txt.
    expect(results[0]!.stderr).toContain('counter: 40 steps\n');
  }, 120_000);

  it('quit powers off keeping the checkpoint; the next run restores it and re-attaches to the program', async () => {
    const t = await startCounter('mt_quit', 50);
    await t.qemuPid();
    await until('a checkpoint', () => checkpointTag(t.slot), 60_000);
    await t.lc.control('mt_quit', 'quit');
    const first = await t.done;
    expect(first.results[0]).toMatchObject({ outcome: 'quit' });
    expect(qemuPidsTagged('mt_quit', root)).toEqual([]);
    const tag = await checkpointTag(t.slot);
    expect(tag).toMatch(/^altplat-ckpt-[ab]$/);

    const again = new Batch({ dataDir: t.d, hostPlatforms: ['windows_x86_64'], pollMs: 200 });
    const { results } = await again.run({});
    expect(results[0]).toMatchObject({ name: 'mt_quit', outcome: 'success', exitStatus: 0 });
    expect(await t.output()).toBe(expectedCounter(50));
    const log = results[0]!.stderr;
    expect(log).toMatch(/restored checkpoint altplat-ckpt-[ab] in \d+ ms; re-attaching to guest pid \d+/);
    // The program was started once, in the first run: the second run continued it.
    expect(log.match(/\] started vmt_/g)).toHaveLength(1);
  }, 120_000);

  it('SIGKILL of QEMU and then of the manager at random points: the task still finishes with the right output', async () => {
    // Random points (printed, so a failure can be replayed): during boot, copy-in, run or a checkpoint.
    const qemuDelay = Math.floor(Math.random() * 5000);
    const managerDelay = Math.floor(Math.random() * 5000);
    console.log(`kill points: QEMU ${qemuDelay} ms after it started, the manager ${managerDelay} ms after the next VM started`);
    const t = await startCounter('mt_kill', 40);
    const pid1 = await t.qemuPid();
    await new Promise((r) => setTimeout(r, qemuDelay));
    try { process.kill(pid1, 'SIGKILL'); } catch { /* finished already */ }
    const pid2 = await until('a new VM', () => qemuPidsTagged('mt_kill', root).find((p) => p !== pid1), 60_000).catch(() => undefined);
    if (pid2 !== undefined) {
      await new Promise((r) => setTimeout(r, managerDelay));
      try {
        const managerPid = Number(readFileSync(`/proc/${pid2}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
        process.kill(managerPid, 'SIGKILL');
      } catch { /* the VM (and its manager) ended meanwhile */ }
    }
    const { results } = await t.done;
    expect(results[0], results[0]!.stderr).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(await t.output()).toBe(expectedCounter(40));
    if (process.env.SHOWLOG) console.log(results[0]!.stderr);
  }, 180_000);

  it('abort kills the VM and the manager exits 194', async () => {
    const t = await startCounter('mt_abort', 100);
    await t.qemuPid();
    await until('progress', () => t.fraction() > 0.05 || undefined);
    await t.lc.control('mt_abort', 'abort');
    const { results } = await t.done;
    expect(results[0]).toMatchObject({ outcome: 'aborted' });
    expect(results[0]!.stderr).toContain('abort requested: killing the VM');
    expect(qemuPidsTagged('mt_abort', root)).toEqual([]);
  }, 120_000);
});

describe('a client killed with SIGKILL (through the real CLI)', () => {
  it('the orphaned manager ends itself and its VM; the next `altplat run` resumes from the checkpoint', async () => {
    const d = await dataDir(['x86_64-pc-linux-gnu']);
    // 100 steps (~15 s of program) so that the first run cannot finish between its first checkpoint and
    // the kill even when the test process is starved (a 40-step run once ended before the kill landed).
    const reply = makeQemuReply([{ result: 'mt_client', platform: 'x86_64-pc-linux-gnu', program: COUNTER, commandLine: '100' }]);
    const { replyFile, filesDir } = writeQemuReply(d, reply);
    const cli = (args: string[]) => spawn(process.execPath, ['--import', 'tsx', path.resolve('src/cli/main.ts'), 'run', '--data-dir', d, '--host-platform', 'windows_x86_64', ...args], {
      env: process.env, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const first = cli(['--files', filesDir, replyFile]);
    const slot = path.join(d, 'slots', '0');
    await until('a checkpoint', () => checkpointTag(slot), 90_000);
    first.kill('SIGKILL');
    // BoincApp notices the client is gone (client_pid checked every 10 s) and exits; its VM goes with it.
    await until('the orphaned VM to end', () => (qemuPidsTagged('mt_client', root).length === 0 ? true : undefined), 30_000);
    const second = cli(['--json']);
    let out = '';
    second.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    const code = await new Promise<number | null>((r) => second.once('exit', r));
    const report = JSON.parse(out) as { results: Array<{ name: string; outcome: string; stderr: string }> };
    expect(code).toBe(0);
    expect(report.results[0]).toMatchObject({ name: 'mt_client', outcome: 'success' });
    // The first run really was cut off mid-task: its orphaned manager noticed the client was gone.
    expect(report.results[0]!.stderr).toMatch(/BOINC client no longer exists - exiting/);
    expect(report.results[0]!.stderr).toMatch(/restored checkpoint altplat-ckpt-[ab]/);
    expect(await fsp.readFile(path.join(d, 'projects', QEMU_PROJECT, 'mt_client_stdout_txt'), 'utf8')).toBe(expectedCounter(100));
  }, 180_000);
});
