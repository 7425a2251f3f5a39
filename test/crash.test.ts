import { execFile, spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildBoincProgram } from './helpers/boinc-c.js';
import { installAltPlatform, makeReply, PROJECT, tempDataDir, treeStamp, writeReply } from './lifecycle-helpers.js';

/**
 * The kill-at-every-step test: the real CLI (dist build) runs a reply; ALTPLAT_TEST_CRASH_AT makes it
 * SIGKILL itself right after the journal records that step (or mid-step for *_partial/_unjournaled);
 * a second run must finish the task exactly once and leave nothing behind.
 */
const CLI = path.resolve('dist/src/cli/main.js');
const LINUX = 'x86_64-pc-linux-gnu';
const STEPS = [
  'assigned', 'slot_chosen', 'setup_partial', 'slot_ready', 'working_copy_unjournaled', 'working_copy',
  'spawned_unjournaled', 'launched', 'exited', 'outputs_moved', 'finished', 'done',
];

interface CliRun { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }
function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ALTPLAT_POLL_MS: '50', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Processes whose cwd is inside `dir` (a leftover manager would be one). */
async function processesIn(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const n of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    const cwd = await fsp.readlink(`/proc/${n}/cwd`).catch(() => '');
    if (cwd.startsWith(dir)) out.push(Number(n));
  }
  return out;
}

let app: string;
beforeAll(async () => {
  await fsp.access(CLI); // built by `npm test` (scripts/setup.sh runs tsc)
  app = await buildBoincProgram(path.resolve('test/c/lifecycle_app.c'));
});

describe('SIGKILL of altplat run at every lifecycle step, then run again', () => {
  it.each(STEPS)('crash at %s', async (step) => {
    const dataDir = await tempDataDir('altplat-crash-');
    const platformDir = await installAltPlatform(dataDir, { name: LINUX, manager: app });
    const before = await treeStamp(platformDir);
    const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 'c1', input: 'success 4', copyOutput: true }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const args = ['run', '--json', '--data-dir', dataDir, '--host-platform', 'windows_x86_64', '--files', filesDir, replyFile];

    const crashed = await runCli(args, { ALTPLAT_TEST_CRASH_AT: step });
    expect(crashed.signal, crashed.stderr).toBe('SIGKILL');

    const again = await runCli(args);
    expect(again.code, again.stderr).toBe(0);
    const [report] = JSON.parse(again.stdout).results;
    expect(report).toMatchObject({ name: 'c1', outcome: 'success', exitStatus: 0, platform: LINUX });
    const out = await fsp.readFile(path.join(dataDir, 'projects', PROJECT, 'c1_out'), 'utf8');
    // Ran to the end exactly once; only a crash while the manager ran may cost it one restart.
    expect(out).toEqual(['spawned_unjournaled', 'launched'].includes(step) ? expect.stringMatching(/^done 4 steps in [12] runs\n$/) : 'done 4 steps in 1 runs\n');
    if (['finished', 'done'].includes(step)) expect(report.previouslyFinished).toBe(true);

    // Nothing left: no slot, no working copy, no process, original unchanged, journal done.
    expect(await fsp.readdir(path.join(dataDir, 'slots'))).toEqual([]);
    expect(await fsp.readdir(path.join(dataDir, 'alt_platforms_working'))).toEqual([]);
    expect(await processesIn(dataDir)).toEqual([]);
    expect(await treeStamp(platformDir)).toEqual(before);
    const journal = JSON.parse(await fsp.readFile(path.join(dataDir, 'altplat', 'tasks.json'), 'utf8'));
    expect(journal.tasks.map((t: { step: string }) => t.step)).toEqual(['done']);

    // A third run never runs the finished task again.
    const third = await runCli(args);
    expect(JSON.parse(third.stdout).results[0]).toMatchObject({ outcome: 'success', previouslyFinished: true });
    expect(await fsp.readFile(path.join(dataDir, 'projects', PROJECT, 'c1_out'), 'utf8')).toBe(out);
  });
});

describe('orphan manager', () => {
  it('a manager left running by a killed client is killed before the task restarts (never two at once)', async () => {
    const dataDir = await tempDataDir('altplat-crash-');
    await installAltPlatform(dataDir, { name: LINUX, manager: app });
    const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 'o1', input: 'success 60' }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const args = ['run', '--json', '--data-dir', dataDir, '--host-platform', 'windows_x86_64', '--files', filesDir, replyFile];
    const crashed = await runCli(args, { ALTPLAT_TEST_CRASH_AT: 'launched' });
    expect(crashed.signal).toBe('SIGKILL');
    const journal = JSON.parse(await fsp.readFile(path.join(dataDir, 'altplat', 'tasks.json'), 'utf8'));
    const orphanPgid: number = journal.tasks[0].pgid;
    expect(orphanPgid).toBeGreaterThan(0);
    const again = await runCli(args);
    expect(JSON.parse(again.stdout).results[0]).toMatchObject({ outcome: 'success', restarts: 0 });
    await new Promise<void>((resolve) => execFile('true', () => resolve()));
    expect(() => process.kill(-orphanPgid, 0)).toThrow(); // the old group is gone
  });
});
