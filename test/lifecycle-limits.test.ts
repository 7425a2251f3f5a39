import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ProcessState } from '../src/ipc/contract.js';
import { sendTaskCommand } from '../src/cli/control-socket.js';
import { Journal } from '../src/tasks/journal.js';
import { DEFAULT_TIME_BOUND_S, elapsedLimitMessage, maxElapsedTime, taskDiskUsage } from '../src/tasks/rsc-limits.js';
import type { Assignment } from '../src/scheduler/reply-types.js';
import { buildBoincProgram } from './helpers/boinc-c.js';
import { fastLifecycle, setupAltTask, treeStamp, type ResultSpec } from './lifecycle-helpers.js';

/**
 * BOINC's elapsed-time (197) and disk-usage (196) limits (client/app_control.cpp
 * check_rsc_limits_exceeded) with the real BOINC-API app test/c/lifecycle_app.c as an alt platform's
 * manager. The lifecycle's clock runs 200x real time (the processes are real); the reply's flops is 1e9,
 * so an rsc_fpops_bound of 150e9 is a 150 s limit (0.75 s of real time).
 */
let app: string;
beforeAll(async () => {
  app = await buildBoincProgram(path.resolve('test/c/lifecycle_app.c'));
});

const setup = (results: ResultSpec[], sharedBytes?: number) => setupAltTask(app, results, sharedBytes);
const lifecycle = fastLifecycle;

async function expectCleaned(s: Awaited<ReturnType<typeof setup>>): Promise<void> {
  expect(await fsp.readdir(s.p.slots)).toEqual([]);
  expect(await fsp.readdir(s.p.altPlatformsWorking)).toEqual([]);
  expect(await treeStamp(s.platformDir)).toEqual(s.before);
}

describe('rsc limits of client/app_control.cpp with real processes', () => {
  it('max_elapsed_time is rsc_fpops_bound / flops, 12 h when that is under 120 s (client/app.cpp ACTIVE_TASK::init)', () => {
    expect(maxElapsedTime(150e9, 1e9)).toBe(150);
    expect(maxElapsedTime(120e9, 1e9)).toBe(120);
    expect(maxElapsedTime(119e9, 1e9)).toBe(DEFAULT_TIME_BOUND_S);
    expect(DEFAULT_TIME_BOUND_S).toBe(43200);
    expect(elapsedLimitMessage(150, 150e9, 1e9)).toBe('exceeded elapsed time limit 150.00 (150.00G/1.00G)');
  });

  it('an app running past rsc_fpops_bound / flops is aborted with 197; slot and working copy are removed', async () => {
    const s = await setup([{ name: 'slow', input: 'forever', rscFpopsBound: 150e9 }]);
    const lc = lifecycle(s.dataDir);
    const states: ProcessState[] = [];
    lc.on('progress', (p) => states.push(p.state));
    const { results } = await lc.run({ replyFile: s.replyFile, filesDir: s.filesDir });
    expect(results[0]).toMatchObject({
      name: 'slow', outcome: 'aborted', exitStatus: 197, restarts: 0,
      reason: 'exceeded elapsed time limit 150.00 (150.00G/1.00G)',
    });
    expect(results[0].elapsed).toBeGreaterThan(150);
    // abort_task's path: <abort/> was sent (ABORT_PENDING) and the API made the app exit.
    expect(states).toContain(ProcessState.ABORT_PENDING);
    await expectCleaned(s);
  });

  it('elapsed time survives a restart: a quit task resumes its limit from the journaled elapsed time', async () => {
    const s = await setup([{ name: 'resumed', input: 'forever', rscFpopsBound: 600e9 }]);
    const lc = lifecycle(s.dataDir);
    lc.on('state', (e) => {
      if (e.step === 'launched') setTimeout(() => void sendTaskCommand(s.p.state, { op: 'quit', result: 'resumed' }), 600);
    });
    const first = await lc.run({ replyFile: s.replyFile, filesDir: s.filesDir });
    expect(first.results[0]).toMatchObject({ outcome: 'quit' });
    const journaled = (await Journal.open(s.p.state)).byName('resumed')[0]!.elapsed;
    expect(journaled).toBeGreaterThan(100); // 0.6 s of real time at 200x
    expect(journaled).toBeLessThan(600);

    const lc2 = lifecycle(s.dataDir);
    const seen: number[] = [];
    lc2.on('progress', (p) => seen.push(p.elapsed));
    const second = await lc2.run({});
    expect(second.results[0]).toMatchObject({
      outcome: 'aborted', exitStatus: 197, restarts: 1, reason: 'exceeded elapsed time limit 600.00 (600.00G/1.00G)',
    });
    // The second run counted on from the first run's time, not from 0.
    expect(seen[0]).toBeGreaterThanOrEqual(journaled);
    expect(second.results[0].elapsed).toBeGreaterThan(600);
    await expectCleaned(s);
  });

  it('an app whose output grows past rsc_disk_bound is aborted with 196', async () => {
    const s = await setup([{ name: 'fat', input: 'disk 3000000', rscDiskBound: 2e6, rscFpopsBound: 1e15 }]);
    const { results } = await lifecycle(s.dataDir).run({ replyFile: s.replyFile, filesDir: s.filesDir });
    expect(results[0]).toMatchObject({ name: 'fat', outcome: 'aborted', exitStatus: 196, reason: 'Disk usage limit exceeded' });
    await expectCleaned(s);
  });

  it('a task within both limits is unaffected; its hard-linked 64 MiB shared image is not counted', async () => {
    const s = await setup([{ name: 'fine', input: 'success 10', rscDiskBound: 2e6, rscFpopsBound: 4000e9 }], 64 << 20);
    const { results } = await lifecycle(s.dataDir).run({ replyFile: s.replyFile, filesDir: s.filesDir });
    expect(results[0]).toMatchObject({ name: 'fine', outcome: 'success', exitStatus: 0, restarts: 0 });
    expect(results[0].outputs[0]).toMatchObject({ status: 0 });
    await expectCleaned(s);
  });
});

describe('taskDiskUsage', () => {
  it('counts slot files, outputs and the working copy; never follows a symlink; skips the shared original', async () => {
    const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-du-'));
    const slot = path.join(root, 'slots', '0');
    const project = path.join(root, 'projects', 'p');
    const platform = path.join(root, 'alt_platforms', 'x');
    const wc = path.join(root, 'alt_platforms_working', 'slot0');
    for (const d of [path.join(slot, 'sub'), project, platform, wc]) await fsp.mkdir(d, { recursive: true });
    const outside = path.join(root, 'outside');
    await fsp.writeFile(outside, Buffer.alloc(500_000));
    await fsp.writeFile(path.join(slot, 'a'), Buffer.alloc(100));
    await fsp.writeFile(path.join(slot, 'sub', 'b'), Buffer.alloc(20));
    await fsp.symlink(outside, path.join(slot, 'link_to_outside')); // not followed, not counted
    await fsp.symlink(root, path.join(slot, 'link_to_root')); // a folder link is not walked either
    await fsp.link(path.join(slot, 'a'), path.join(slot, 'a_again')); // one inode counts once
    await fsp.writeFile(path.join(project, 'r_out'), Buffer.alloc(3));
    await fsp.writeFile(path.join(platform, 'base.img'), Buffer.alloc(400_000));
    await fsp.link(path.join(platform, 'base.img'), path.join(wc, 'base.img'));
    await fsp.writeFile(path.join(wc, 'overlay'), Buffer.alloc(7));
    const assignment = { result: { fileRefs: [{ fileName: 'r_out' }, { fileName: 'missing_out' }] } } as unknown as Assignment;
    const workingCopy = { dir: wc, platformDir: platform, shared: [{ name: 'base.img', method: 'hardlink' as const, size: 400_000, mtimeMs: 0 }] };
    expect(await taskDiskUsage({ slotDir: slot, projectDir: project, assignment, workingCopy })).toBe(100 + 20 + 3 + 7);
    // A shared file the manager replaced by its own (a new inode) is the task's and counts.
    await fsp.rm(path.join(wc, 'base.img'));
    await fsp.writeFile(path.join(wc, 'base.img'), Buffer.alloc(1000));
    expect(await taskDiskUsage({ slotDir: slot, projectDir: project, assignment, workingCopy })).toBe(100 + 20 + 3 + 7 + 1000);
    await fsp.rm(root, { recursive: true, force: true });
  });
});
