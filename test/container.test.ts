import { spawn } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Batch } from './lifecycle-helpers.js';
import { sweepOrphans } from '../src/container/cleanup.js';
import { Engine } from '../src/container/engine.js';
import { CONTAINERS_CONF, containersOf, PODMAN_FIRST, podman } from './container-fixture.js';
import { installReferencePlatform, makeQemuReply, QEMU_PROJECT, sha256File, writeQemuReply } from './qemu-fixture.js';

/**
 * The container backend end to end with real Podman (runc), the real reference rootfs and the real
 * BOINC control channel: a work unit through `altplat run`; suspend/resume; quit and resume; abort;
 * SIGKILL of the client, the manager and the container; hostile programs. Every test ends with no
 * container of its data dir left.
 */
const dataDirs: string[] = [];
const PLATFORM = 'x86_64-pc-linux-gnu';

afterAll(async () => {
  for (const d of dataDirs) {
    expect(containersOf(d), d).toEqual([]);
    await fsp.rm(d, { recursive: true, force: true });
  }
});

async function dataDir(): Promise<string> {
  const d = await fsp.realpath(await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-ct-')));
  dataDirs.push(d);
  installReferencePlatform(d, PLATFORM, PODMAN_FIRST);
  return d;
}

/** Counts `$1` steps of 0.1 s, checkpointing its step in `ckpt`; restarts continue from there. */
const COUNTER = Buffer.from(`#!/bin/sh
n=\${1:-40}; i=0
[ -f ckpt ] && i=$(cat ckpt)
echo "counter: start at $i of $n" >&2
while [ $i -lt $n ]; do
  i=$((i+1))
  echo $i > ckpt.new && mv ckpt.new ckpt
  echo "$i $n" | awk '{printf "%.4f\\n", $1/$2}' > fraction_done
  usleep 100000
done
seq 1 $n
echo done
`);
const expectedCounter = (n: number) => `${Array.from({ length: n }, (_, i) => String(i + 1)).join('\n')}\ndone\n`;

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function state(d: string): { name: string; status: string; pid: number } | undefined {
  const [name] = containersOf(d);
  if (!name) return undefined;
  const s = JSON.parse(podman(['container', 'inspect', name]))[0].State as { Status: string; Pid: number };
  return { name, status: s.Status, pid: s.Pid };
}

const stderrOf = (slot: string) => fsp.readFile(path.join(slot, 'stderr.txt'), 'utf8').catch(() => '');

async function startCounter(result: string, steps: number, extra: Partial<Parameters<typeof makeQemuReply>[0][0]> = {}) {
  const d = await dataDir();
  const reply = makeQemuReply([{ result, platform: PLATFORM, program: COUNTER, commandLine: String(steps), ...extra }]);
  const { replyFile, filesDir } = writeQemuReply(d, reply);
  const lc = new Batch({ dataDir: d, hostPlatforms: ['windows_x86_64'], pollMs: 200 });
  let fraction = 0;
  lc.on('progress', (p: { fractionDone: number }) => { fraction = p.fractionDone; });
  const done = lc.run({ replyFile, filesDir });
  const slot = path.join(d, 'slots', '0');
  const running = () => until('the container', () => { const s = state(d); return s?.status === 'running' ? s : undefined; });
  return { d, lc, done, slot, running, fraction: () => fraction, output: () => fsp.readFile(path.join(d, 'projects', QEMU_PROJECT, `${result}_stdout_txt`), 'utf8') };
}

function cli(d: string, args: string[]) {
  return spawn(process.execPath, ['--import', 'tsx', path.resolve('src/cli/main.ts'), 'run', '--data-dir', d, '--host-platform', 'windows_x86_64', ...args], {
    env: process.env, stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function cliJson(d: string, args: string[]): Promise<{ code: number | null; report: { results: Array<Record<string, unknown> & { stderr: string }> } }> {
  const p = cli(d, ['--json', ...args]);
  let out = '';
  p.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  const code = await new Promise<number | null>((r) => p.once('exit', r));
  return { code, report: JSON.parse(out) };
}

describe('a work unit on the container backend', () => {
  it('runs through `altplat run`: inputs by open name, arguments intact, outputs back, no container left', async () => {
    const d = await dataDir();
    const program = Buffer.from('#!/bin/sh\ntr a-z A-Z < in.txt > out.txt\nprintf "%s|" "$@"\necho "uname $(uname -m)" >&2\n');
    const reply = makeQemuReply([{
      result: 'ct_files', platform: PLATFORM, program, commandLine: 'one "two words" $HOME',
      inputs: [{ openName: 'in.txt', content: Buffer.from('hello container\n') }], outputs: ['stdout.txt', 'out.txt'],
    }]);
    const { replyFile, filesDir } = writeQemuReply(d, reply);
    const { code, report } = await cliJson(d, ['--files', filesDir, replyFile]);
    expect(code, JSON.stringify(report)).toBe(0);
    expect(report.results[0]).toMatchObject({ name: 'ct_files', outcome: 'success', exitStatus: 0, kind: 'alt' });
    const project = path.join(d, 'projects', QEMU_PROJECT);
    expect(await fsp.readFile(path.join(project, 'ct_files_out_txt'), 'utf8')).toBe('HELLO CONTAINER\n');
    expect(await fsp.readFile(path.join(project, 'ct_files_stdout_txt'), 'utf8')).toBe('one|two words|$HOME|');
    expect(report.results[0]!.stderr).toMatch(/started vmt_\S+ .* in container boinc__example\.org_vmtest__ct_files__[0-9a-f]{8}/);
    expect(report.results[0]!.stderr).toContain('uname x86_64');
    expect(containersOf(d)).toEqual([]);
  }, 120_000);

  it('the program runs isolated and at the lowest priority: no network, read-only root, no capabilities, nice 19, SCHED_IDLE', async () => {
    const d = await dataDir();
    const program = Buffer.from(`#!/bin/sh
echo "nice $(cut -d' ' -f19 /proc/self/stat)"
echo "policy $(sed -n 's/^policy *: *//p' /proc/self/sched)"
grep CapEff /proc/self/status
echo "ifaces $(ls /sys/class/net | tr '\\n' ' ')"
touch /rootfile 2>/dev/null && echo "root writable" || echo "root read-only"
echo x > in.txt 2>/dev/null && echo "input writable" || echo "input read-only"
echo "pwd $(pwd)"
`);
    const reply = makeQemuReply([{ result: 'ct_iso', platform: PLATFORM, program, inputs: [{ openName: 'in.txt', content: Buffer.from('keep\n') }] }]);
    const { replyFile, filesDir } = writeQemuReply(d, reply);
    const { report } = await cliJson(d, ['--files', filesDir, replyFile]);
    expect(report.results[0]).toMatchObject({ outcome: 'success' });
    const out = await fsp.readFile(path.join(d, 'projects', QEMU_PROJECT, 'ct_iso_stdout_txt'), 'utf8');
    expect(out).toContain('nice 19\n');
    expect(out).toContain('policy 5\n'); // SCHED_IDLE
    expect(out).toContain('CapEff:\t0000000000000000');
    expect(out).toMatch(/ifaces lo \n/);
    expect(out).toContain('root read-only');
    expect(out).toContain('input read-only');
    expect(out).toContain('pwd /work/job');
    expect(await fsp.readFile(path.join(d, 'projects', QEMU_PROJECT, 'ct_iso_in.txt'), 'utf8')).toBe('keep\n');
  }, 120_000);
});

describe('the container manager follows the client', () => {
  it('suspend pauses the container (no progress, no CPU) and resume continues it', async () => {
    const t = await startCounter('ct_suspend', 40);
    await t.running();
    await until('progress', () => t.fraction() > 0.1 || undefined);
    await t.lc.control('ct_suspend', 'suspend');
    await until('the pause', async () => (await stderrOf(t.slot)).includes('suspended: container paused') || undefined);
    expect(state(t.d)?.status).toBe('paused');
    const ckpt = () => readFileSync(path.join(t.slot, 'altplat_container', 'ckpt'), 'utf8');
    const step0 = ckpt();
    const f0 = t.fraction();
    await new Promise((r) => setTimeout(r, 1500));
    expect(ckpt()).toBe(step0);
    expect(t.fraction()).toBe(f0);
    await t.lc.control('ct_suspend', 'resume');
    await until('progress after resume', () => ckpt() !== step0 || undefined);
    const { results } = await t.done;
    expect(results[0]).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(await t.output()).toBe(expectedCounter(40));
    expect(results[0]!.stderr).toContain('resumed: container running');
    expect(results[0]!.stderr).toContain('counter: start at 0 of 40\n');
  }, 120_000);

  it('quit leaves the container paused; the next run takes it over and the program continues', async () => {
    const t = await startCounter('ct_quit', 40);
    await t.running();
    await until('progress', () => t.fraction() > 0.1 || undefined);
    await t.lc.control('ct_quit', 'quit');
    const first = await t.done;
    expect(first.results[0]).toMatchObject({ outcome: 'quit' });
    expect(state(t.d)?.status).toBe('paused');
    const again = new Batch({ dataDir: t.d, hostPlatforms: ['windows_x86_64'], pollMs: 200 });
    const { results } = await again.run({});
    expect(results[0]).toMatchObject({ name: 'ct_quit', outcome: 'success', exitStatus: 0 });
    expect(await t.output()).toBe(expectedCounter(40));
    const log = results[0]!.stderr;
    expect(log).toMatch(/attached to the paused container boinc__\S+ of an earlier start/);
    expect(log.match(/counter: start at/g)).toHaveLength(1);
    expect(containersOf(t.d)).toEqual([]);
  }, 120_000);

  it('abort removes the container and the manager exits 194', async () => {
    const t = await startCounter('ct_abort', 1000);
    await t.running();
    await t.lc.control('ct_abort', 'abort');
    const { results } = await t.done;
    expect(results[0]).toMatchObject({ outcome: 'aborted' });
    expect(results[0]!.stderr).toContain('abort requested: removing container');
    expect(containersOf(t.d)).toEqual([]);
  }, 120_000);
});

describe('SIGKILL at every level', () => {
  it('of the container: it is started again and the program resumes from its checkpoint', async () => {
    const t = await startCounter('ct_kill_ct', 30);
    const s = await t.running();
    await until('progress', () => t.fraction() > 0.2 || undefined);
    process.kill(s.pid, 'SIGKILL');
    const { results } = await t.done;
    expect(results[0], results[0]!.stderr).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(await t.output()).toBe(expectedCounter(30));
    expect(results[0]!.stderr).toMatch(/the container ended unexpectedly \(killed by SIGKILL\); starting it again \(1\/3\)/);
    expect(results[0]!.stderr).toMatch(/counter: start at [1-9]\d* of 30/);
  }, 120_000);

  it('of the manager: the client restarts it and the new manager takes the running container over', async () => {
    const t = await startCounter('ct_kill_mgr', 30);
    const s = await t.running();
    await until('progress', () => t.fraction() > 0.1 || undefined);
    const stat = readFileSync(`/proc/${s.pid}/stat`, 'utf8');
    expect(stat).toBeTruthy();
    // The manager is the process in the slot whose argv names the container manager bundle.
    const mgr = (await fsp.readdir('/proc')).filter((p) => /^\d+$/.test(p)).find((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('container-manager.mjs') && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(t.d);
      } catch { return false; }
    });
    expect(mgr).toBeDefined();
    process.kill(Number(mgr), 'SIGKILL');
    const { results } = await t.done;
    expect(results[0], results[0]!.stderr).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(await t.output()).toBe(expectedCounter(30));
    // The new manager takes the running container over — or, where the client ran the cleanup hook after
    // the manager died (docs/MANAGER_CONTRACT.md), starts a new one that resumes from the checkpoint.
    const log = results[0]!.stderr;
    if (/attached to the running container/.test(log)) expect(log.match(/counter: start at/g)).toHaveLength(1);
    else expect(log).toMatch(/counter: start at [1-9]\d* of 30/);
  }, 120_000);

  it('of the client (`altplat run`): the manager leaves the container paused; the next run finishes it', async () => {
    const d = await dataDir();
    const reply = makeQemuReply([{ result: 'ct_client', platform: PLATFORM, program: COUNTER, commandLine: '150' }]);
    const { replyFile, filesDir } = writeQemuReply(d, reply);
    const first = cli(d, ['--files', filesDir, replyFile]);
    await until('the container', () => state(d)?.status === 'running' || undefined);
    first.kill('SIGKILL');
    // BoincApp notices the client is gone (client_pid checked every 10 s) and exits, pausing its container.
    await until('the container paused', () => state(d)?.status === 'paused' || undefined, 30_000);
    const { code, report } = await cliJson(d, []);
    expect(code).toBe(0);
    expect(report.results[0]).toMatchObject({ name: 'ct_client', outcome: 'success' });
    expect(await fsp.readFile(path.join(d, 'projects', QEMU_PROJECT, 'ct_client_stdout_txt'), 'utf8')).toBe(expectedCounter(150));
    expect(containersOf(d)).toEqual([]);
  }, 180_000);
});

describe('hostile programs are contained', () => {
  it('outputs that are links to host paths are never followed; nothing outside the slot changes', async () => {
    const d = await dataDir();
    const passwd = sha256File('/etc/passwd');
    const program = Buffer.from(`#!/bin/sh
ln -s /etc/passwd out.txt
mkdir -p real; ln -s /etc sub
ln -s /etc/hostname stdout_link
echo written > /etc/passwd 2>/dev/null
echo hi
`);
    const reply = makeQemuReply([{ result: 'ct_links', platform: PLATFORM, program, outputs: ['stdout.txt', 'out.txt', 'sub/passwd'] }]);
    const { replyFile, filesDir } = writeQemuReply(d, reply);
    const { report } = await cliJson(d, ['--files', filesDir, replyFile]);
    // The declared outputs are links: missing as far as the client is concerned.
    expect(report.results[0]!.outcome).toBe('compute_error');
    expect(report.results[0]!.stderr).toMatch(/missing: out\.txt, sub\/passwd/);
    const project = path.join(d, 'projects', QEMU_PROJECT);
    for (const f of await fsp.readdir(project)) {
      expect((await fsp.lstat(path.join(project, f))).isSymbolicLink(), f).toBe(false);
      expect(await fsp.readFile(path.join(project, f), 'utf8'), f).not.toContain('root:x:0:0');
    }
    expect(sha256File('/etc/passwd')).toBe(passwd);
  }, 120_000);

  it('a fork bomb stops at the pids limit; a memory hog is killed at rsc_memory_bound; both end as compute errors or success, contained', async () => {
    const d = await dataDir();
    const bomb = Buffer.from(`#!/bin/sh
( i=0; while [ $i -lt 1000 ]; do sleep 60 & i=$((i+1)); done ) 2>/dev/null
n=0; for p in /proc/[0-9]*; do n=$((n+1)); done
echo "procs $n"
`);
    const hog = Buffer.from(`#!/bin/sh
awk 'BEGIN { s = "x"; for (;;) s = s s }'
`);
    const reply = makeQemuReply([
      { result: 'ct_bomb', platform: PLATFORM, program: bomb },
      { result: 'ct_hog', platform: PLATFORM, program: hog },
    ]);
    reply.xml = reply.xml.replace(/<name>ct_hog_wu<\/name>/, '<name>ct_hog_wu</name>\n    <rsc_memory_bound>67108864</rsc_memory_bound>');
    const { replyFile, filesDir } = writeQemuReply(d, reply);
    const { report } = await cliJson(d, ['--max-tasks', '2', '--files', filesDir, replyFile]);
    const by = Object.fromEntries(report.results.map((r) => [r.name, r]));
    expect(by.ct_bomb).toMatchObject({ outcome: 'success' });
    const procs = Number(/procs (\d+)/.exec(await fsp.readFile(path.join(d, 'projects', QEMU_PROJECT, 'ct_bomb_stdout_txt'), 'utf8'))![1]);
    expect(procs).toBeLessThanOrEqual(256);
    expect(by.ct_hog).toMatchObject({ outcome: 'compute_error', exitStatus: 137 });
    expect(by.ct_hog!.stderr).toContain('over its memory limit');
  }, 180_000);

  it('a program that never exits is aborted: the container is gone', async () => {
    const t = await startCounter('ct_forever', 1, { program: Buffer.from('#!/bin/sh\nwhile :; do :; done\n') });
    await t.running();
    await t.lc.control('ct_forever', 'abort');
    const { results } = await t.done;
    expect(results[0]).toMatchObject({ outcome: 'aborted' });
    expect(containersOf(t.d)).toEqual([]);
  }, 120_000);
});

describe('cleanup of containers left behind', () => {
  /** A container labelled as the manager labels its own (created, never started). */
  function labelled(name: string, dataDir: string, slot: string, result: string): void {
    const image = podman(['images', '--format', '{{.Repository}}:{{.Tag}}']).split('\n').find((l) => l.startsWith('localhost/altplat-rootfs:'))!;
    podman(['create', '--name', name, '--label', `altplat.data_dir=${dataDir}`, '--label', `altplat.slot=${slot}`,
      '--label', `altplat.result=${result}`, '--network=none', image, '/bin/sh', '-c', 'sleep 600']);
  }

  it('`container_manager --cleanup` (cwd = the slot) removes exactly that slot\'s container; the start-up sweep exactly the orphans of its data dir', async () => {
    const u = `ct_sweep_${process.pid}_`;
    const d = await dataDir();
    const other = await fsp.realpath(await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-ct-other-')));
    dataDirs.push(other);
    const slot = (dd: string, n: number) => path.join(dd, 'slots', String(n));
    // slot 1 still holds its task (its job file names it): not an orphan. Slot 2's job is another result's.
    const jobXml = (result: string) => `<altplat_job>\n<platform>${PLATFORM}</platform>\n<result_name>${result}</result_name>\n<wu_name>w</wu_name>\n<app_name>a</app_name>\n<working_dir>/x</working_dir>\n<main_program>m</main_program>\n<command_line></command_line>\n<rsc_fpops_est>1</rsc_fpops_est>\n<flops>1</flops>\n</altplat_job>\n`;
    // (a first run imports the rootfs)
    const first = makeQemuReply([{ result: 'ct_sweep_import', platform: PLATFORM, program: Buffer.from('#!/bin/sh\ntrue\n') }]);
    const w = writeQemuReply(d, first);
    expect((await cliJson(d, ['--files', w.filesDir, w.replyFile])).report.results[0]).toMatchObject({ outcome: 'success' });
    for (const n of [0, 1, 2]) await fsp.mkdir(slot(d, n), { recursive: true });
    await fsp.mkdir(slot(other, 0), { recursive: true });
    await fsp.writeFile(path.join(slot(d, 1), 'altplat_job.xml'), jobXml('r1'));
    await fsp.writeFile(path.join(slot(d, 2), 'altplat_job.xml'), jobXml('someone_else'));
    labelled(`${u}0`, d, slot(d, 0), 'r0');
    labelled(`${u}1`, d, slot(d, 1), 'r1');
    labelled(`${u}2`, d, slot(d, 2), 'r2');
    labelled(`${u}other`, other, slot(other, 0), 'r0');
    podman(['create', '--name', `${u}foreign`, podman(['images', '--format', '{{.Repository}}:{{.Tag}}']).split('\n').find((l) => l.startsWith('localhost/altplat-rootfs:'))!, 'true']);
    try {
      const manager = path.join(d, 'alt_platforms', PLATFORM, 'container_manager');
      const { stderr } = await new Promise<{ stderr: string }>((resolve, reject) => {
        const p = spawn(manager, ['--cleanup'], { cwd: slot(d, 0), stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        p.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
        p.once('error', reject);
        p.once('exit', (code) => (code === 0 ? resolve({ stderr: err }) : reject(new Error(`cleanup exited ${code}: ${err}`))));
      });
      expect(stderr).toContain(`cleanup: removed ${u}0`);
      expect(containersOf(d).sort()).toEqual([`${u}1`, `${u}2`]);

      // A manager's start-up sweep (the same function) removes the orphans of its data dir: slot 2's
      // container (its slot holds another task), not slot 1's (its slot still holds its task).
      const removed = await sweepOrphans(new Engine('podman', CONTAINERS_CONF), d);
      expect(removed).toEqual([`${u}2`]);
      expect(containersOf(d)).toEqual([`${u}1`]);
      expect(containersOf(other)).toEqual([`${u}other`]);
      expect(podman(['ps', '-a', '--format', '{{.Names}}'])).toContain(`${u}foreign`);
    } finally {
      for (const n of ['1', '2', 'other', 'foreign']) podman(['rm', '-f', '--ignore', `${u}${n}`]);
    }
  }, 120_000);
});
