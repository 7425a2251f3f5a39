import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, promises as fsp, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOOT_STATE_DIR, keyMaterial, keyOf, prepareBootState } from '../src/manager/boot-state.js';
import { loadVmConfig } from '../src/manager/vm-config.js';
import { Batch } from './lifecycle-helpers.js';
import {
  buildPi, installReferencePlatform, makeQemuReply, PI_BUILDS, PLATFORM_DIR, QEMU_PROJECT, qemuPidsTagged, REPO, sha256File, writeQemuReply, type QemuJobSpec,
} from './qemu-fixture.js';

/**
 * Issue 10 with real QEMU: tasks resumed from the saved booted state (same output as a cold boot,
 * fresh RNG and clock each), a stale or broken state rebuilt or refused, kills during the first build
 * of the state, the job disk data path (256 MiB each way, hostile outputs).
 */
const baseImage = path.join(PLATFORM_DIR, 'image', 'base.qcow2');
let baseSha: string;
const dirs: string[] = [];
let root: string;
const X64 = 'x86_64-pc-linux-gnu';

beforeAll(() => {
  execFileSync('bash', [path.join(REPO, 'scripts', 'build-image.sh')], { stdio: 'ignore' });
  baseSha = sha256File(baseImage);
  root = mkdtempSync(path.join(os.tmpdir(), 'altplat-qf-'));
  dirs.push(root);
}, 180_000);

afterAll(async () => {
  expect(qemuPidsTagged('qf_', root)).toEqual([]);
  expect(qemuPidsTagged('bootstate-', root)).toEqual([]);
  expect(sha256File(baseImage)).toBe(baseSha);
  for (const d of dirs) await fsp.rm(d, { recursive: true, force: true });
});

async function dataDir(): Promise<string> {
  const d = await fsp.mkdtemp(path.join(root, 'd-'));
  installReferencePlatform(d, X64);
  return d;
}

interface Run { results: Array<{ name: string; outcome: string; exitStatus: number | null; stderr: string; outputs: Array<{ name: string; status: number; nbytes: number }> }> }

async function run(d: string, jobs: QemuJobSpec[], env: Record<string, string> = {}, maxTasks = 1, replyName = `reply-${jobs[0]!.result}.xml`): Promise<Run> {
  const { replyFile, filesDir } = writeQemuReply(d, makeQemuReply(jobs), replyName);
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const lc = new Batch({ dataDir: d, hostPlatforms: ['windows_x86_64'], pollMs: 100, maxTasks });
    return (await lc.run({ replyFile, filesDir })) as unknown as Run;
  } finally {
    for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
  }
}

const output = (d: string, result: string, open = 'stdout.txt') =>
  readFileSync(path.join(d, 'projects', QEMU_PROJECT, `${result}_${open.replace(/[^A-Za-z0-9]/g, '_')}`));

const stateDirs = (d: string) => (existsSync(path.join(d, BOOT_STATE_DIR)) ? readdirSync(path.join(d, BOOT_STATE_DIR)).sort() : []);

/** Nothing of a task or a build may be left: slots, working copies, half-made states, lock files. */
function expectNoStrays(d: string): void {
  expect(existsSync(path.join(d, 'slots')) ? readdirSync(path.join(d, 'slots')) : []).toEqual([]);
  expect(existsSync(path.join(d, 'alt_platforms_working')) ? readdirSync(path.join(d, 'alt_platforms_working')) : []).toEqual([]);
  for (const n of stateDirs(d)) expect(n).toMatch(/^([0-9a-f]{32}|file-hashes\.json)$/);
}

// getrandom and the clock as the guest program sees them at its start.
const RNG_C = `#include <stdio.h>
#include <sys/random.h>
#include <time.h>
int main(void) { unsigned char b[16]; if (getrandom(b, 16, 0) != 16) return 2;
  for (int i = 0; i < 16; i++) printf("%02x", b[i]); printf(" %lld\\n", (long long)time(NULL)); return 0; }
`;

function gccStatic(dir: string, name: string, source: string): Buffer {
  const src = path.join(dir, `${name}.c`);
  execFileSync('mkdir', ['-p', dir]);
  writeFileSync(src, source);
  execFileSync('gcc', ['-O2', '-static', '-o', path.join(dir, name), src]);
  return readFileSync(path.join(dir, name));
}

describe('the saved booted state', () => {
  it('a resumed task gives the cold-booted output byte for byte; two resumed tasks get different RNG and the host\'s clock', async () => {
    const d = await dataDir();
    const pi = readFileSync(buildPi('sse'));
    const cold = await run(d, [{ result: 'qf_pi_cold', platform: X64, program: pi }], { ALTPLAT_BOOT_STATE: 'off' });
    expect(cold.results[0], cold.results[0]!.stderr).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(cold.results[0]!.stderr).toContain('booting cold');
    expect(stateDirs(d)).toEqual([]);

    const warm = await run(d, [{ result: 'qf_pi_warm', platform: X64, program: pi }]);
    expect(warm.results[0], warm.results[0]!.stderr).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(warm.results[0]!.stderr).toMatch(/saved booted state [0-9a-f]{32} built/);
    expect(warm.results[0]!.stderr).toMatch(/guest resumed from saved booted state/);
    expect(output(d, 'qf_pi_warm').toString()).toBe(output(d, 'qf_pi_cold').toString());
    expect(output(d, 'qf_pi_warm').toString()).toBe(execFileSync(buildPi('sse'), { encoding: 'utf8' }));
    expect(output(d, 'qf_pi_warm').toString()).toContain(`est pi: ${PI_BUILDS.sse.expected}`);

    const rng = gccStatic(path.join(d, 'build'), 'rng', RNG_C);
    const t0 = Math.floor(Date.now() / 1000);
    const two = await run(d, [{ result: 'qf_rng_a', platform: X64, program: rng }, { result: 'qf_rng_b', platform: X64, program: rng }], {}, 2);
    const t1 = Math.ceil(Date.now() / 1000);
    const lines = ['qf_rng_a', 'qf_rng_b'].map((r) => {
      const res = two.results.find((x) => x.name === r)!;
      expect(res, res.stderr).toMatchObject({ outcome: 'success', exitStatus: 0 });
      expect(res.stderr).toMatch(/guest resumed from saved booted state/);
      return output(d, r).toString().trim().split(' ');
    });
    expect(lines[0]![0]).toMatch(/^[0-9a-f]{32}$/);
    expect(lines[0]![0]).not.toBe(lines[1]![0]);
    for (const l of lines) {
      expect(Number(l[1])).toBeGreaterThanOrEqual(t0 - 2);
      expect(Number(l[1])).toBeLessThanOrEqual(t1 + 2);
    }
    expect(stateDirs(d).filter((n) => n !== 'file-hashes.json')).toHaveLength(1);
    expectNoStrays(d);
  }, 240_000);

  it('a stale state (another memory size) gets its own key and the old one goes; a broken one is discarded and the task boots cold', async () => {
    const d = await dataDir();
    const config = await loadVmConfig(path.join(d, 'alt_platforms', X64, 'vm_config.xml'));
    const log: string[] = [];
    const a = await prepareBootState({ dataDir: d, config, platform: X64, log: (s) => log.push(s) });
    expect('state' in a, JSON.stringify(a)).toBe(true);
    const keyA = (a as { state: { key: string } }).state.key;
    const bigger = { ...config, memoryMb: config.memoryMb + 64 };
    expect(keyOf(await keyMaterial(bigger, 'tcg'))).not.toBe(keyA);
    const b = await prepareBootState({ dataDir: d, config: bigger, platform: X64, log: (s) => log.push(s) });
    const keyB = (b as { state: { key: string } }).state.key;
    expect(keyB).not.toBe(keyA);
    // The old state of this platform is deleted: no task uses it.
    expect(stateDirs(d)).toEqual([keyB, 'file-hashes.json']);

    // The platform as installed (the first memory size): its state is missing again, rebuilt by the task.
    const prog = Buffer.from('#!/bin/sh\necho stale-ok\n');
    const r1 = await run(d, [{ result: 'qf_stale', platform: X64, program: prog }]);
    expect(r1.results[0], r1.results[0]!.stderr).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(r1.results[0]!.stderr).toContain(`saved booted state ${keyA} built`);
    expect(output(d, 'qf_stale').toString()).toBe('stale-ok\n');

    // A state QEMU cannot load (its memory image cut short): the reason in stderr.txt, a cold boot, the
    // right output, and the state gone so that the next task builds a good one.
    await fsp.truncate(path.join(d, BOOT_STATE_DIR, keyA, 'memory'), 4096);
    const r2 = await run(d, [{ result: 'qf_broken', platform: X64, program: prog }]);
    expect(r2.results[0], r2.results[0]!.stderr).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(r2.results[0]!.stderr).toMatch(new RegExp(`resuming saved booted state ${keyA} failed \\([\\s\\S]*\\); discarding it, booting cold`));
    expect(output(d, 'qf_broken').toString()).toBe('stale-ok\n');
    expect(stateDirs(d)).not.toContain(keyA);
    expectNoStrays(d);
  }, 240_000);

  it('SIGKILL of QEMU during the first cold boot, then of the manager while it saves the state: the task finishes right, nothing stray', async () => {
    const d = await dataDir();
    const prog = Buffer.from('#!/bin/sh\necho survived\n');
    const { replyFile, filesDir } = writeQemuReply(d, makeQemuReply([{ result: 'qf_kill', platform: X64, program: prog }]));
    const lc = new Batch({ dataDir: d, hostPlatforms: ['windows_x86_64'], pollMs: 100 });
    const done = lc.run({ replyFile, filesDir }) as unknown as Promise<Run>;
    const until = async <T>(what: string, fn: () => T | undefined, ms = 90_000): Promise<T> => {
      const end = Date.now() + ms;
      for (;;) {
        const v = fn();
        if (v !== undefined) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    // 1. The builder's QEMU, while it boots.
    const builder1 = await until('the builder VM', () => qemuPidsTagged('bootstate-', d)[0]);
    process.kill(builder1, 'SIGKILL');
    // The task boots cold instead.
    const res = await done;
    expect(res.results[0], res.results[0]!.stderr).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(res.results[0]!.stderr).toMatch(/saved booted state not used: .*; booting cold/);
    expect(output(d, 'qf_kill').toString()).toBe('survived\n');
    expect(stateDirs(d).filter((n) => n !== 'file-hashes.json')).toEqual([]);
    expectNoStrays(d);

    // 2. The manager, while the memory image is being written.
    const { replyFile: r2 } = writeQemuReply(d, makeQemuReply([{ result: 'qf_kill2', platform: X64, program: prog }]), 'reply2.xml');
    const lc2 = new Batch({ dataDir: d, hostPlatforms: ['windows_x86_64'], pollMs: 100 });
    const done2 = lc2.run({ replyFile: r2, filesDir }) as unknown as Promise<Run>;
    const root = path.join(d, BOOT_STATE_DIR);
    const builder2 = await until('the builder VM', () => qemuPidsTagged('bootstate-', d)[0]);
    await until('the memory image', () => readdirSync(root).filter((n) => n.startsWith('.build-')).find((n) => existsSync(path.join(root, n, 'memory'))));
    const managerPid = Number(readFileSync(`/proc/${builder2}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    process.kill(managerPid, 'SIGKILL');
    const res2 = await done2;
    expect(res2.results[0], res2.results[0]!.stderr).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(output(d, 'qf_kill2').toString()).toBe('survived\n');
    // The restarted manager removed the half-made build and made a complete state.
    const keys = stateDirs(d).filter((n) => n !== 'file-hashes.json');
    expect(keys).toHaveLength(1);
    expect(readdirSync(path.join(root, keys[0]!)).sort()).toEqual(['disk.qcow2', 'memory', 'meta.json']);
    expectNoStrays(d);
  }, 240_000);
});

describe('the job disk', () => {
  it('256 MiB in and 256 MiB out byte for byte; symlinks followed only inside the guest, special files refused, too big refused by size', async () => {
    const d = await dataDir();
    const big = randomBytes(256 << 20);
    const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
    const copy = Buffer.from('#!/bin/sh\ncat in.bin > out.bin && echo copied\n');
    const hostile = Buffer.from(`#!/bin/sh
ln -s /etc/shadow shadow.out
ln -s /etc/passwd passwd.out
mkfifo fifo.out
mknod dev.out c 1 3
mkdir dir.out
head -c 2000000 /dev/zero > big.out
echo small > ok.out
`);
    const outs = ['shadow.out', 'passwd.out', 'fifo.out', 'dev.out', 'dir.out', 'big.out', 'ok.out'];
    const jobs: QemuJobSpec[] = [
      { result: 'qf_big', platform: X64, program: copy, inputs: [{ openName: 'in.bin', content: big }], outputs: ['stdout.txt', 'out.bin'], maxNbytes: 300 << 20 },
      // one result per hostile output, so that each one's fate is seen on its own
      ...outs.map((o) => ({ result: `qf_h_${o.replace('.', '_')}`, platform: X64, program: hostile, outputs: [o], maxNbytes: 1_000_000 })),
    ];
    const res = await run(d, jobs, {}, 2);
    const by = Object.fromEntries(res.results.map((r) => [r.name, r]));
    expect(by.qf_big, by.qf_big!.stderr).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(by.qf_big!.stderr).toContain('outputs copied from the job disk');
    const back = output(d, 'qf_big', 'out.bin');
    expect(back.length).toBe(big.length);
    expect(md5(back)).toBe(md5(big));

    // The guest's /etc/passwd (not the host's), as a small regular file; the guest has no /etc/shadow.
    expect(by.qf_h_passwd_out).toMatchObject({ outcome: 'success' });
    const passwd = path.join(d, 'projects', QEMU_PROJECT, 'qf_h_passwd_out_passwd_out');
    expect((await fsp.lstat(passwd)).isFile()).toBe(true);
    expect(readFileSync(passwd, 'utf8')).toBe('root:x:0:0:root:/root:/bin/sh\n');
    expect(by.qf_h_ok_out).toMatchObject({ outcome: 'success' });
    for (const bad of ['shadow_out', 'fifo_out', 'dev_out', 'dir_out', 'big_out']) {
      expect(by[`qf_h_${bad}`]!.outcome, `${bad}: ${JSON.stringify(by[`qf_h_${bad}`])}`).not.toBe('success');
    }
    // Too big: refused by size as before (the client sees the real size), never copied.
    expect(by.qf_h_big_out!.outputs[0]).toMatchObject({ nbytes: 2_000_000 });
    expect(by.qf_h_shadow_out!.outputs[0]!.status).toBe(by.qf_h_fifo_out!.outputs[0]!.status);
    expect(by.qf_h_big_out!.outputs[0]!.status).not.toBe(by.qf_h_shadow_out!.outputs[0]!.status);
    expectNoStrays(d);
  }, 300_000);
});

describe('SIGKILL of the client (altplat run) while the saved state is first built', () => {
  const CLI = path.join(REPO, 'dist', 'src', 'cli', 'main.js');
  interface Cli { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }
  /** The real CLI; `killWhen` polled every 20 ms, the client SIGKILLed (it alone, not its manager) once it holds. */
  function cli(args: string[], killWhen?: () => boolean): Promise<Cli> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ALTPLAT_POLL_MS: '100' } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b) => { stdout += b; });
      child.stderr.on('data', (b) => { stderr += b; });
      const end = Date.now() + 120_000;
      const timer = killWhen && setInterval(() => {
        if (killWhen()) child.kill('SIGKILL');
        else if (Date.now() > end) { child.kill('SIGKILL'); reject(new Error('kill point never reached')); }
      }, 20);
      child.on('close', (code, signal) => { if (timer) clearInterval(timer); resolve({ code, signal, stdout, stderr }); });
    });
  }
  const buildsWith = (d: string, file?: string) => {
    const r = path.join(d, BOOT_STATE_DIR);
    return (existsSync(r) ? readdirSync(r) : []).filter((n) => n.startsWith('.build-') && (!file || existsSync(path.join(r, n, file))));
  };

  it('killed during the first cold boot, then during the save of the state: each next run finishes the task, builds the state and resumes from it, nothing stray', async () => {
    await fsp.access(CLI); // built by `npm test` (scripts/setup.sh runs tsc)
    const d = await dataDir();
    const prog = Buffer.from('#!/bin/sh\necho client-survived\n');
    for (const [result, killWhen] of [
      // 1. while the builder's QEMU boots (before any memory image exists)
      ['qf_ck_boot', () => qemuPidsTagged('bootstate-', d).length > 0 && buildsWith(d).length > 0],
      // 2. while the builder writes the memory image
      ['qf_ck_save', () => buildsWith(d, 'memory').length > 0],
    ] as const) {
      // Each round starts with no saved state, so that the task's manager builds one.
      for (const n of stateDirs(d)) if (/^[0-9a-f]{32}$/.test(n)) await fsp.rm(path.join(d, BOOT_STATE_DIR, n), { recursive: true });
      const { replyFile, filesDir } = writeQemuReply(d, makeQemuReply([{ result, platform: X64, program: prog }]), `reply-${result}.xml`);
      const args = ['run', '--json', '--data-dir', d, '--host-platform', 'windows_x86_64', '--files', filesDir, replyFile];
      const killed = await cli(args, killWhen);
      expect(killed.signal, killed.stderr).toBe('SIGKILL');

      const again = await cli(args);
      expect(again.code, again.stderr).toBe(0);
      const [rep] = JSON.parse(again.stdout).results as Run['results'];
      expect(rep, rep!.stderr).toMatchObject({ name: result, outcome: 'success', exitStatus: 0 });
      // No stale lock or half-made build kept the restarted manager from building and using the state.
      expect(rep!.stderr).toMatch(/saved booted state [0-9a-f]{32} built/);
      expect(rep!.stderr).toMatch(/guest resumed from saved booted state/);
      expect(output(d, result).toString()).toBe('client-survived\n');
      expect(buildsWith(d)).toEqual([]);
      expect(stateDirs(d).filter((n) => n !== 'file-hashes.json')).toHaveLength(1);
      const key = stateDirs(d).find((n) => n !== 'file-hashes.json')!;
      expect(readdirSync(path.join(d, BOOT_STATE_DIR, key)).sort()).toEqual(['disk.qcow2', 'memory', 'meta.json']);
      expect(qemuPidsTagged('bootstate-', d)).toEqual([]);
      expect(qemuPidsTagged('qf_', d)).toEqual([]);
      expectNoStrays(d);
    }
  }, 300_000);
});
