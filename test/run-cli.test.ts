import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildBoincProgram } from './helpers/boinc-c.js';
import { installAltPlatform, makeReply, PROJECT, tempDataDir, writeReply, startCli, runCli, CLI } from './lifecycle-helpers.js';

const LINUX = 'x86_64-pc-linux-gnu';


/** Wait until the journal says the task's manager is running, then a little longer. */
async function whenLaunched(dataDir: string, name: string, extraMs = 300): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const text = await fsp.readFile(path.join(dataDir, 'altplat', 'tasks.json'), 'utf8').catch(() => '');
    const t = text ? JSON.parse(text).tasks.find((x: { resultName: string }) => x.resultName === name) : undefined;
    if (t?.step === 'launched') { await new Promise((r) => setTimeout(r, extraMs)); return; }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`task ${name} never launched`);
}

let app: string;
beforeAll(async () => {
  await fsp.access(CLI);
  app = await buildBoincProgram(path.resolve('test/c/lifecycle_app.c'));
});

describe('altplat run', () => {
  it('--json has the documented shape; a host-platform result runs its main program directly', async () => {
    const dataDir = await tempDataDir();
    const reply = makeReply({ platform: LINUX, mainProgram: await fsp.readFile(app), results: [{ name: 'n1', input: 'success 2' }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const r = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(Object.keys(json)).toEqual(['results']);
    const res = json.results[0];
    expect(res).toMatchObject({ name: 'n1', platform: LINUX, kind: 'native', slot: 0, outcome: 'success', exitStatus: 0 });
    for (const k of ['name', 'platform', 'slot', 'outcome', 'exitStatus', 'outputs', 'stderr', 'elapsed']) expect(res).toHaveProperty(k);
    expect(res.outputs[0]).toEqual({ name: 'n1_out', path: path.join(dataDir, 'projects', PROJECT, 'n1_out'), nbytes: 23, md5: expect.any(String), status: 0 });
    // Natively there is no manager: argv is the task's command line (workunit + app version).
    expect(res.stderr).toContain('arg 1: --rounds\narg 2: 3\n');
    expect(res.stderr).not.toContain('--working-dir');
  });

  it('rejected results carry a reason; missing inputs are a named error; the exit code is 1', async () => {
    const dataDir = await tempDataDir();
    const r = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, path.resolve('fixtures/replies/unsupported-platform/reply.xml')]);
    expect(r.code).toBe(1);
    const byName = Object.fromEntries(JSON.parse(r.stdout).results.map((x: { name: string }) => [x.name, x]));
    expect(byName.r_sparc).toMatchObject({ outcome: 'rejected', code: 'REPLY_NO_APP_VERSION', slot: null });
    expect(byName.r_missing_wu).toMatchObject({ outcome: 'rejected', code: 'REPLY_MISSING_WORKUNIT' });
    // Its files were never supplied (no --files, nothing downloaded): not taken on, not journaled …
    expect(byName.r_default_platform).toMatchObject({ outcome: 'rejected', code: 'INPUT_MISSING', exitStatus: null });
    expect(await fsp.readdir(path.join(dataDir, 'slots')).catch(() => [])).toEqual([]); // no slot was taken
    const journal = JSON.parse(await fsp.readFile(path.join(dataDir, 'altplat', 'tasks.json'), 'utf8').catch(() => '{"tasks":[]}'));
    expect(journal.tasks).toEqual([]);
    // … so the same reply runs once the files are there.
    const files = await tempDataDir();
    await fsp.writeFile(path.join(files, 'sum_linux'), '#!/bin/sh\necho 0 > boinc_finish_called\n'); // 39 bytes, as the reply says
    await fsp.writeFile(path.join(files, 'in1'), 'x');
    const again = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', files, path.resolve('fixtures/replies/unsupported-platform/reply.xml')]);
    expect(JSON.parse(again.stdout).results.find((x: { name: string }) => x.name === 'r_default_platform')).toMatchObject({ outcome: 'success' });
  });

  it('human-readable report and usage errors (exit 2)', async () => {
    const dataDir = await tempDataDir();
    const ok = await runCli(['run', '--data-dir', dataDir, '--host-platform', LINUX, '--files', path.resolve('fixtures/replies/basic/files'), path.resolve('fixtures/replies/basic/reply.xml')]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^sum_wu_0007_r19_0: success, exit status 0, platform x86_64-pc-linux-gnu \(native\), slot 0/);
    expect(await fsp.readFile(path.join(dataDir, 'projects/example.org_demo/sum_wu_0007_r19_0'), 'utf8')).toBe('sum of squares: 30 (args: --rounds 10 --fast)\n');
    expect((await runCli(['run', '--data-dir', dataDir, '--max-tasks', '0', 'x.xml'])).code).toBe(2);
    expect((await runCli(['task', '--data-dir', dataDir, 'explode', 'x'])).code).toBe(2);
    const noRunner = await runCli(['task', '--data-dir', dataDir, 'quit', 'x']);
    expect(noRunner.code).toBe(1);
    expect(noRunner.stderr).toContain('TASK_NO_RUNNER');
    expect((await runCli(['run', '--data-dir', path.join(dataDir, 'typo'), 'x.xml'])).code).toBe(2);
    expect(await fsp.stat(path.join(dataDir, 'typo')).catch(() => 'absent')).toBe('absent');
    const badReply = await runCli(['run', '--data-dir', dataDir, path.resolve('package.json')]);
    expect(badReply.code).toBe(1);
    expect(badReply.stderr).toContain('REPLY_NOT_WELL_FORMED');
  });
});

describe('every exit path through altplat run', () => {
  it('the BOINC-API manager of an installed alt platform: outcomes follow BOINC exit rules; slots and working copies gone', async () => {
    const dataDir = await tempDataDir();
    await installAltPlatform(dataDir, { name: LINUX, manager: app });
    const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [
      { name: 'ok', input: 'success 2' }, { name: 'code', input: 'error' }, { name: 'premature', input: 'premature_once' },
      { name: 'temporary', input: 'temporary_once' }, { name: 'segv', input: 'signal' },
    ] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const r = await runCli(['run', '--json', '--max-tasks', '2', '--data-dir', dataDir, '--host-platform', 'windows_x86_64', '--files', filesDir, replyFile]);
    expect(r.code).toBe(1); // some results failed, as they should
    const got = JSON.parse(r.stdout).results.map((x: { name: string; outcome: string; exitStatus: number; restarts: number }) =>
      [x.name, x.outcome, x.exitStatus, x.restarts]);
    expect(got).toEqual([
      ['ok', 'success', 0, 0], ['code', 'compute_error', 3, 0], ['premature', 'success', 0, 1],
      ['temporary', 'success', 0, 1], ['segv', 'compute_error', 11, 0],
    ]);
    expect(await fsp.readFile(path.join(dataDir, 'projects', PROJECT, 'ok_out'), 'utf8')).toBe('done 2 steps in 1 runs\n');
    expect(await fsp.readdir(path.join(dataDir, 'slots'))).toEqual([]);
    expect(await fsp.readdir(path.join(dataDir, 'alt_platforms_working'))).toEqual([]);
  });
});

describe('stopping tasks', () => {
  it('SIGINT quits every task cleanly; the next run resumes it from its checkpoint', async () => {
    const dataDir = await tempDataDir();
    await installAltPlatform(dataDir, { name: LINUX, manager: app });
    const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 's1', input: 'success 40' }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const args = ['run', '--json', '--data-dir', dataDir, '--host-platform', 'windows_x86_64', '--files', filesDir, replyFile];
    const first = startCli(args);
    await whenLaunched(dataDir, 's1', 600);
    first.child.kill('SIGINT');
    const r1 = await first.done;
    expect(r1.code, r1.stderr).toBe(0);
    expect(JSON.parse(r1.stdout).results[0]).toMatchObject({ name: 's1', outcome: 'quit', reason: 'client exiting' });
    const r2 = await runCli(args);
    const res = JSON.parse(r2.stdout).results[0];
    expect(res).toMatchObject({ outcome: 'success', restarts: 1 });
    expect(res.stderr).toContain('run 2');
    expect(await fsp.readFile(path.join(dataDir, 'projects', PROJECT, 's1_out'), 'utf8')).toBe('done 40 steps in 2 runs\n');
  });

  it('altplat task suspend/resume/quit: a task quit this way is not restarted in the same run', async () => {
    const dataDir = await tempDataDir();
    await installAltPlatform(dataDir, { name: LINUX, manager: app });
    const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 't1', input: 'success 60' }, { name: 't2', input: 'success 1' }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const run = startCli(['run', '--json', '--data-dir', dataDir, '--host-platform', 'windows_x86_64', '--files', filesDir, replyFile]);
    await whenLaunched(dataDir, 't1');
    const task = (op: string) => runCli(['task', '--data-dir', dataDir, op, 't1']);
    const s = await task('suspend');
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toBe('t1: suspend requested (state SUSPENDED)\n');
    expect((await task('resume')).stdout).toContain('state EXECUTING');
    expect((await task('quit')).stdout).toContain('state QUIT_PENDING');
    const r = await run.done;
    const byName = Object.fromEntries(JSON.parse(r.stdout).results.map((x: { name: string }) => [x.name, x]));
    expect(byName.t1).toMatchObject({ outcome: 'quit', reason: 'quit by altplat task' });
    expect(byName.t2).toMatchObject({ outcome: 'success' });
    expect(await fsp.readdir(path.join(dataDir, 'slots'))).toEqual(['0']); // t1's slot, kept for resuming
  });
});

describe('altplat task on the client API', () => {
  it('--project names the task; a queued task can be aborted (203, never started); --version', async () => {
    const version = await runCli(['--version']);
    expect(version.stdout.trim()).toBe(JSON.parse(await fsp.readFile('package.json', 'utf8')).version);
    const dataDir = await tempDataDir();
    await installAltPlatform(dataDir, { name: LINUX, manager: app });
    const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 'k1', input: 'success 40' }, { name: 'k2', input: 'success 1' }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const run = startCli(['run', '--json', '--data-dir', dataDir, '--host-platform', 'windows_x86_64', '--files', filesDir, replyFile]);
    await whenLaunched(dataDir, 'k1');
    const task = (...args: string[]) => runCli(['task', '--data-dir', dataDir, ...args]);
    const other = await task('--project', 'https://other.example.net/', 'quit', 'k1');
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('TASK_UNKNOWN');
    const queued = await task('abort', 'k2'); // --max-tasks 1: k2 has not started
    expect(queued.code, queued.stderr).toBe(0);
    expect((await task('--project', 'https://example.org/lctest/', 'quit', 'k1')).stdout).toContain('state QUIT_PENDING');
    const r = await run.done;
    const byName = Object.fromEntries(JSON.parse(r.stdout).results.map((x: { name: string }) => [x.name, x]));
    expect(byName.k1).toMatchObject({ outcome: 'quit' });
    expect(byName.k2).toMatchObject({ outcome: 'aborted', exitStatus: 203, slot: null, reason: 'aborted by user' });
  });
});
