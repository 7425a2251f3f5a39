import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOutcome } from '../src/manager/guest-job.js';
import type { JobDescription } from '../src/job/jobfile.js';

/**
 * The guest's start helper (scripts/guest/altplat-resume.c) starts the task's program as busybox sh
 * did before (`cd DIR && LD_LIBRARY_PATH=... exec ./prog ARGS >OUT 2>ERR`). It is a static Linux
 * program, so its start-up half runs here for real, built from the same source as the image's copy;
 * the clock, reseed and mount options need the guest's root and are covered by test/qemu-fast.test.ts.
 * A path that does not exist stands in for -R's mount point: the remount must fail here, never touch
 * the host's mounts.
 */
let dir: string;
let helper: string;
const NO_MOUNT = '/nonexistent-altplat-helper-test';

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'altplat-helper-'));
  helper = path.join(dir, 'altplat-resume');
  execFileSync('gcc', ['-static', '-O2', '-o', helper, path.join(__dirname, '..', 'scripts', 'guest', 'altplat-resume.c')]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[], env: Record<string, string> = { PATH: '/usr/bin:/bin', PWD: '/', SHLVL: '1', HOME: '/' }) {
  // detached: its own process group, so a program signalling its group reaches only the helper and itself
  const p = spawn(helper, args, { cwd: '/', env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
  p.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  return new Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    p.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}
const file = (name: string) => readFileSync(path.join(dir, name), 'utf8');
const prog = (name: string, text: string) => {
  writeFileSync(path.join(dir, name), text);
  chmodSync(path.join(dir, name), 0o755);
};

describe('altplat-resume starts the program as the shell did', () => {
  it('same environment, working directory, stdin /dev/null, stdout and stderr to the files, exit status kept', async () => {
    prog('envprog', '#!/bin/sh\nenv | LC_ALL=C sort\npwd\ncat\necho err >&2\nexit 7\n');
    const r = await run(['-c', dir, '-o', 'out', '-E', 'err', '--', './envprog', 'a b']);
    expect(r).toMatchObject({ status: 7, stdout: 'started\n', stderr: '' });
    const lines = file('out').split('\n');
    expect(lines).toEqual(expect.arrayContaining(['LD_LIBRARY_PATH=.', 'OLDPWD=/', `PWD=${dir}`, 'SHLVL=2', 'HOME=/', dir]));
    expect(file('err')).toBe('err\n');
    // An inherited library path keeps its place after the job directory's.
    await run(['-c', dir, '-o', 'out2', '-E', 'err2', '--', './envprog'], { PATH: '/usr/bin:/bin', LD_LIBRARY_PATH: '/opt/lib' });
    expect(file('out2')).toContain('LD_LIBRARY_PATH=.:/opt/lib\n');
  });

  it('a file without #! runs under /bin/sh; not found is 127, not executable 126, with the shell\'s kind of message', async () => {
    prog('noshebang', 'echo "ran as a script: $1"\n');
    expect((await run(['-c', dir, '-o', 'o1', '-E', 'e1', '--', './noshebang', 'x'])).status).toBe(0);
    expect(file('o1')).toBe('ran as a script: x\n');
    expect((await run(['-c', dir, '-o', 'o2', '-E', 'e2', '--', './missing'])).status).toBe(127);
    expect(file('e2')).toBe('sh: ./missing: not found\n');
    writeFileSync(path.join(dir, 'noexec'), 'x');
    chmodSync(path.join(dir, 'noexec'), 0o644);
    expect((await run(['-c', dir, '-o', 'o3', '-E', 'e3', '--', './noexec'])).status).toBe(126);
    expect(file('e3')).toContain('./noexec: Permission denied');
  });

  it('a missing loader (-i) stops before anything starts: exit 3, the reason on its own stderr, no "started"', async () => {
    prog('never', '#!/bin/sh\ntouch ran\n');
    const r = await run(['-i', '/lib/ld-nothing.so.9', '-c', dir, '-o', 'o4', '-E', 'e4', '--', './never']);
    expect(r).toMatchObject({ status: 3, stdout: '' });
    expect(r.stderr).toBe('altplat-resume: no interpreter /lib/ld-nothing.so.9\n');
    expect(() => file('ran')).toThrow();
  });

  it('with -R it waits for the program: its exit status, its killing signal re-raised, a signal to the group does not end it first', async () => {
    prog('five', '#!/bin/sh\nexit 5\n');
    const a = await run(['-R', NO_MOUNT, '-c', dir, '-o', 'o5', '-E', 'e5', '--', './five']);
    // The remount fails here (no such mount point): no "readonly", the reason on stderr, the status kept.
    expect(a).toMatchObject({ status: 5, stdout: 'started\n' });
    expect(a.stderr).toContain('altplat-resume: remount read-only');
    prog('selfkill', '#!/bin/sh\nkill -TERM $$\n');
    expect(await run(['-R', NO_MOUNT, '-c', dir, '-o', 'o6', '-E', 'e6', '--', './selfkill'])).toMatchObject({ status: null, signal: 'SIGTERM' });
    prog('group', '#!/bin/sh\ntrap "" TERM\nkill -TERM 0\nsleep 0.2\necho survived\nexit 4\n');
    expect(await run(['-R', NO_MOUNT, '-c', dir, '-o', 'o7', '-E', 'e7', '--', './group'])).toMatchObject({ status: 4, signal: null });
    expect(file('o7')).toBe('survived\n');
  });
});

describe('startOutcome reads what the helper said', () => {
  const job = { mainProgram: 'prog' } as JobDescription;
  const st = (exitCode: number, stdout: string, stderr = '') => ({ exited: true, exitCode, stdout: Buffer.from(stdout), stderr: Buffer.from(stderr) });
  it('the program ran (its status is its own), with or without the remount; an old start without captured output ran too', () => {
    expect(startOutcome(st(3, 'started\nreadonly\n'), job)).toEqual({ kind: 'ran', diskReadOnly: true });
    expect(startOutcome(st(0, 'started\n', 'altplat-resume: remount read-only: Device or resource busy'), job)).toEqual({ kind: 'ran', diskReadOnly: false });
    expect(startOutcome({ exited: true, exitCode: 1 }, job)).toEqual({ kind: 'ran', diskReadOnly: false });
  });
  it('a missing loader is a clear cannot-start message; any other helper failure is VM_GUEST_PREPARE_FAILED', () => {
    const c = startOutcome(st(3, '', 'altplat-resume: no interpreter /lib/ld-linux.so.2\n'), job);
    expect(c).toMatchObject({ kind: 'cannot-start' });
    expect((c as { message: string }).message).toMatch(/needs \/lib\/ld-linux\.so\.2, which the guest image does not have.*gcc -static/);
    const f = startOutcome(st(1, '', 'altplat-resume: mount: Invalid argument\n'), job);
    expect(f).toMatchObject({ kind: 'prepare-failed', error: { code: 'VM_GUEST_PREPARE_FAILED' } });
    expect((f as { error: Error }).error.message).toContain('mount: Invalid argument');
  });
});
