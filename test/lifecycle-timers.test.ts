import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { sendTaskCommand } from '../src/cli/control-socket.js';
import { buildBoincProgram } from './helpers/boinc-c.js';
import { Batch, fastLifecycle, setupAltTask, treeStamp, type ResultSpec } from './lifecycle-helpers.js';

/**
 * BOINC's 60 s quit/abort and 300 s finish-file rules, with real processes and a fast clock: the
 * lifecycle's clock runs 200x real time (time itself cannot be sped up; the processes are real).
 */
let app: string;
beforeAll(async () => {
  app = await buildBoincProgram(path.resolve('test/c/lifecycle_app.c'));
});

const setup = (results: ResultSpec[], sharedBytes?: number) => setupAltTask(app, results, sharedBytes);
const lifecycle = fastLifecycle;

/**
 * Resolve `ms` after the task's manager has printed its mode line to stderr.txt (it is then past
 * boinc_init and entering its main loop), however slow the machine is.
 */
function whenRunning(lc: Batch, name: string, ms = 200): Promise<void> {
  return new Promise((resolve) => {
    lc.on('state', (s) => {
      if (s.task !== name || s.step !== 'launched') return;
      const stderr = path.join(lc.paths.slotDir(0), 'stderr.txt');
      const poll = async () => {
        const text = await fsp.readFile(stderr, 'utf8').catch(() => '');
        if (/mode \S+ run \d+/.test(text.split('\n').slice(-12).join('\n'))) setTimeout(resolve, ms);
        else setTimeout(poll, 20);
      };
      void poll();
    });
  });
}

describe('timers of client/app_control.cpp with a fast clock', () => {
  it('a process still alive 300 s after writing its finish file is aborted with 194', async () => {
    const s = await setup([{ name: 'hang', input: 'finish_hang' }]);
    const { results } = await lifecycle(s.dataDir).run({ replyFile: s.replyFile, filesDir: s.filesDir });
    expect(results[0]).toMatchObject({
      outcome: 'aborted', exitStatus: 194, reason: 'Process still present 5 min after writing finish file; aborting',
    });
    expect(await fsp.readdir(s.p.slots)).toEqual([]);
    expect(await treeStamp(s.platformDir)).toEqual(s.before);
  });

  it('quit: a manager that ignores it is SIGKILLed (with its group) after 60 s; the task stays resumable; abort ends it', async () => {
    const s = await setup([{ name: 'stubborn', input: 'ignore_quit' }]);
    const lc = lifecycle(s.dataDir);
    const exits: Array<{ signal: string | null }> = [];
    lc.on('exit', (e) => exits.push(e));
    void whenRunning(lc, 'stubborn').then(() => sendTaskCommand(s.p.state, { op: 'quit', result: 'stubborn' }));
    const first = await lc.run({ replyFile: s.replyFile, filesDir: s.filesDir });
    expect(first.results[0]).toMatchObject({ outcome: 'quit', reason: 'quit by altplat task', slot: 0 });
    expect(exits.map((e) => e.signal)).toEqual(['SIGKILL']);
    // Resumable: slot and working copy are still there, the journal says not finished.
    expect(await fsp.readdir(s.p.slots)).toEqual(['0']);
    expect(await fsp.readdir(s.p.altPlatformsWorking)).toEqual(['slot0']);

    const lc2 = lifecycle(s.dataDir);
    void whenRunning(lc2, 'stubborn').then(async () => {
      const answer = await sendTaskCommand(s.p.state, { op: 'abort', result: 'stubborn' });
      expect(answer).toMatchObject({ ok: true, state: 'ABORT_PENDING' });
    });
    const second = await lc2.run({}); // no reply: resume the journal's unfinished task
    expect(second.results[0]).toMatchObject({ name: 'stubborn', outcome: 'aborted', exitStatus: 203, reason: 'aborted by user', restarts: 1 });
    expect(await fsp.readdir(s.p.slots)).toEqual([]);
    expect(await fsp.readdir(s.p.altPlatformsWorking)).toEqual([]);
    expect(await treeStamp(s.platformDir)).toEqual(s.before);
  });

  it('suspend and resume reach the BOINC-API app (leave_apps_in_memory); it then finishes', async () => {
    const s = await setup([{ name: 'long', input: 'success 30' }]);
    // In memory because the volunteer says so: BOINC's default would remove a checkpointed app (see lifecycle-control).
    const lc = lifecycle(s.dataDir, { prefs: { leaveAppsInMemory: true } });
    const fractions: number[] = [];
    let suspended = false;
    lc.on('progress', (p) => { if (suspended) fractions.push(p.fractionDone); });
    void whenRunning(lc, 'long', 200).then(async () => {
      expect(await sendTaskCommand(s.p.state, { op: 'suspend', result: 'long' })).toMatchObject({ ok: true, state: 'SUSPENDED' });
      await new Promise((r) => setTimeout(r, 500)); // let the app stop and its last status arrive
      suspended = true;
      await new Promise((r) => setTimeout(r, 1200));
      suspended = false;
      expect(await sendTaskCommand(s.p.state, { op: 'resume', result: 'long' })).toMatchObject({ ok: true, state: 'EXECUTING' });
    });
    const { results } = await lc.run({ replyFile: s.replyFile, filesDir: s.filesDir });
    expect(results[0]).toMatchObject({ outcome: 'success', restarts: 0 });
    expect(fractions.length).toBeGreaterThan(5);
    expect(new Set(fractions).size).toBe(1); // no progress while suspended
    expect(fractions[0]).toBeLessThan(1);
  });

  it('control requests name errors clearly', async () => {
    const s = await setup([{ name: 'quick', input: 'success 20' }]);
    const lc = lifecycle(s.dataDir);
    void whenRunning(lc, 'quick', 100).then(async () => {
      expect(await sendTaskCommand(s.p.state, { op: 'quit', result: 'nope' })).toMatchObject({ ok: false, code: 'TASK_UNKNOWN' });
      // A second client on the same data dir is refused while this one has it open (its fcntl lock).
      await expect(lifecycle(s.dataDir).run({})).rejects.toMatchObject({ code: 'DATA_DIR_IN_USE' });
    });
    await lc.run({ replyFile: s.replyFile, filesDir: s.filesDir });
    await expect(sendTaskCommand(s.p.state, { op: 'quit', result: 'quick' })).rejects.toMatchObject({ code: 'TASK_NO_RUNNER' });
  });
});
