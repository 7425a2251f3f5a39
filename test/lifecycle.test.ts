import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseJob } from '../src/job/jobfile.js';
import { dataPaths } from '../src/paths.js';
import type { Spawner } from '../src/tasks/system.js';
import { buildBoincProgram } from './helpers/boinc-c.js';
import {
  Batch, type BatchOptions, exists, installAltPlatform, makeReply, PROJECT, tempDataDir, treeStamp, writeReply, type ResultSpec,
} from './lifecycle-helpers.js';

const LINUX = 'x86_64-pc-linux-gnu';
let app: string;
beforeAll(async () => {
  app = await buildBoincProgram(path.resolve('test/c/lifecycle_app.c'));
});

/** Install the BOINC-API test program as the alt platform's manager and run a reply through it. */
async function runThroughAltPlatform(results: ResultSpec[], extra: Partial<BatchOptions> = {}, manager?: string) {
  const dataDir = await tempDataDir();
  const platformDir = await installAltPlatform(dataDir, { name: LINUX, manager: manager ?? app });
  const before = await treeStamp(platformDir);
  const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\necho research app\n'), results });
  const { replyFile, filesDir } = await writeReply(dataDir, reply);
  const lc = new Batch({
    dataDir, hostPlatforms: ['windows_x86_64'], pollMs: 50, maxTasks: 2, ...extra,
  });
  const steps: string[] = [];
  // Step changes only (a state event also reports scheduling changes at the same step).
  lc.on('state', (s) => { if (steps.at(-1) !== `${s.task}:${s.step}`) steps.push(`${s.task}:${s.step}`); });
  const { results: reports } = await lc.run({ replyFile, filesDir });
  const byName = Object.fromEntries(reports.map((r) => [r.name, r]));
  const p = dataPaths(dataDir);
  return { dataDir, platformDir, before, byName, reports, steps, p };
}

async function assertClean(r: Awaited<ReturnType<typeof runThroughAltPlatform>>) {
  expect(await fsp.readdir(r.p.slots)).toEqual([]);
  expect(await fsp.readdir(r.p.altPlatformsWorking)).toEqual([]);
  expect(await treeStamp(r.platformDir)).toEqual(r.before);
}

describe('a BOINC-API program as an alt platform manager, through every exit path', () => {
  it('success: resolves input/output via soft links, output reaches the project dir, nothing left behind', async () => {
    const r = await runThroughAltPlatform([{ name: 'ok', input: 'success 3' }, { name: 'copied', input: 'success 1', copyOutput: true }]);
    const ok = r.byName.ok;
    expect(ok).toMatchObject({ outcome: 'success', exitStatus: 0, platform: LINUX, kind: 'alt', restarts: 0, warnings: [] });
    const outPath = path.join(r.dataDir, 'projects', PROJECT, 'ok_out');
    expect(ok.outputs).toEqual([{ name: 'ok_out', path: outPath, nbytes: 23, md5: expect.stringMatching(/^[0-9a-f]{32}$/), status: 0 }]);
    expect(await fsp.readFile(outPath, 'utf8')).toBe('done 3 steps in 1 runs\n');
    // The manager contract: argv and the tail of stderr.txt.
    expect(ok.stderr).toContain('mode success run 1');
    expect(ok.stderr).toMatch(/arg 1: --config\narg 2: vm_config.xml\narg 3: --working-dir\narg 4: .*alt_platforms_working\/slot\d\narg 5: --platform\narg 6: x86_64-pc-linux-gnu/);
    expect(ok.stderr).toContain('called boinc_finish(0)');
    expect(r.byName.copied).toMatchObject({ outcome: 'success', outputs: [{ name: "copied_out", nbytes: 23 }] });
    await assertClean(r);
    expect(r.steps.filter((s) => s.startsWith('ok:'))).toEqual(['ok:slot_chosen', 'ok:slot_ready', 'ok:working_copy', 'ok:launched', 'ok:exited', 'ok:finished', 'ok:done']);
  });

  it('error code, crash by signal, missing and oversized outputs are compute errors', async () => {
    const r = await runThroughAltPlatform([
      { name: 'err', input: 'error' }, { name: 'sig', input: 'signal' },
      { name: 'noout', input: 'no_output' }, { name: 'big', input: 'big_output', maxNbytes: 1000 },
      { name: 'noout_opt', input: 'no_output', optionalOutput: true },
    ]);
    expect(r.byName.err).toMatchObject({ outcome: 'compute_error', exitStatus: 3, reason: 'process exited with code 3 (0x3, -253)' });
    expect(r.byName.sig).toMatchObject({ outcome: 'compute_error', exitStatus: 11, reason: 'process got signal 11' });
    expect(r.byName.noout).toMatchObject({ outcome: 'compute_error', exitStatus: 0, outputs: [{ name: 'noout_out', status: -161, path: null }] });
    expect(r.byName.big).toMatchObject({ outcome: 'compute_error', outputs: [{ name: 'big_out', status: -131, nbytes: 4096 }] });
    expect(await exists(path.join(r.dataDir, 'projects', PROJECT, 'big_out'))).toBe(false);
    expect(r.byName.noout_opt).toMatchObject({ outcome: 'success', outputs: [{ status: -161 }] });
    await assertClean(r);
  });

  it('premature exit and temporary exit restart the task, which then succeeds', async () => {
    const r = await runThroughAltPlatform([{ name: 'pre', input: 'premature_once' }, { name: 'tmp', input: 'temporary_once' }]);
    expect(r.byName.pre).toMatchObject({ outcome: 'success', restarts: 1 });
    expect(r.byName.pre.stderr).toContain('run 2');
    expect(r.byName.tmp).toMatchObject({ outcome: 'success', restarts: 1 });
    expect(r.byName.tmp.elapsed).toBeGreaterThan(0.9); // waited out the 1 s delay
    await assertClean(r);
  });

  it('more than 100 exit(0)s without a checkpoint abort with ERR_TOO_MANY_EXITS (-226)', async () => {
    const noop = path.join(await tempDataDir(), 'noop-manager.sh');
    await fsp.writeFile(noop, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const r = await runThroughAltPlatform([{ name: 'loop', input: 'x' }], { pollMs: 1000 }, noop);
    expect(r.byName.loop).toMatchObject({ outcome: 'aborted', exitStatus: -226, reason: 'too many exit(0)s', restarts: 100 });
    await assertClean(r);
  });
});

describe('trickle-up messages', () => {
  it('the app\'s trickle_up.xml is moved to the project dir (client/app.cpp move_trickle_file)', async () => {
    const r = await runThroughAltPlatform([{ name: 'tr', input: 'trickle' }]);
    expect(r.byName.tr.outcome).toBe('success');
    const projectDir = path.join(r.dataDir, 'projects', PROJECT);
    const trickles = (await fsp.readdir(projectDir)).filter((n) => /^trickle_up_tr_\d+\.xml$/.test(n));
    expect(trickles).toHaveLength(1);
    const text = await fsp.readFile(path.join(projectDir, trickles[0]), 'utf8');
    expect(text).toContain('lc_progress');
    expect(text).toContain('<steps>1</steps>');
  });
});

describe('the manager cannot change the platform original', () => {
  it('a manager that edits, adds and replaces files in its working copy leaves the original byte-identical', async () => {
    const dir = await tempDataDir();
    const mgr = path.join(dir, 'writer.sh');
    await fsp.writeFile(mgr, `#!/bin/sh
set -e
wd="$ALTPLAT_WORKING_DIR"
echo "job file: $ALTPLAT_JOB_FILE platform: $ALTPLAT_PLATFORM" >&2
cat "$ALTPLAT_JOB_FILE" >&2
echo changed > "$wd/vm_config.xml"
echo overlay > "$wd/image/overlay.qcow2"
echo new > "$wd/image/base.img.tmp" && mv "$wd/image/base.img.tmp" "$wd/image/base.img"
printf '0\\n' > boinc_finish_called
`, { mode: 0o755 });
    const r = await runThroughAltPlatform([{ name: 'w', input: 'x', optionalOutput: true }], {}, mgr);
    expect(r.byName.w).toMatchObject({ outcome: 'success', warnings: [] });
    expect(r.byName.w.stderr).toMatch(/job file: .*slots\/0\/altplat_job.xml platform: x86_64-pc-linux-gnu/);
    const job = parseJob(r.byName.w.stderr.slice(r.byName.w.stderr.indexOf('<altplat_job>')));
    expect(job).toMatchObject({
      platform: LINUX, resultName: 'w', wuName: 'w_wu', appName: 'lc', mainProgram: 'lc_app_100', commandLine: '--rounds 3',
      workingDir: path.join(r.dataDir, 'alt_platforms_working', 'slot0'), appFiles: [],
      inputs: [{ openName: 'in', fileName: 'w_in', copyFile: false }],
      outputs: [{ openName: 'out', fileName: 'w_out', copyFile: false, optional: true, maxNbytes: 100000 }],
    });
    await assertClean(r);
  });
});

describe('process group', () => {
  it('everything the manager started (its "VM") is killed when the manager exits', async () => {
    const dir = await tempDataDir();
    const mgr = path.join(dir, 'vm-manager.sh');
    await fsp.writeFile(mgr, `#!/bin/sh
sleep 300 &
echo "vm pid $!" >&2
printf '0\\n' > boinc_finish_called
exit 0
`, { mode: 0o755 });
    const r = await runThroughAltPlatform([{ name: 'vm', input: 'x', optionalOutput: true }], {}, mgr);
    expect(r.byName.vm.outcome).toBe('success');
    const pid = Number(/vm pid (\d+)/.exec(r.byName.vm.stderr)![1]);
    let alive = true;
    for (let i = 0; i < 100 && alive; i++) {
      try {
        process.kill(pid, 0);
        const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
        if (stat === '' || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) alive = false;
        else await new Promise((res) => setTimeout(res, 20));
      } catch {
        alive = false;
      }
    }
    expect(alive).toBe(false);
    await assertClean(r);
  });
});

describe('a lifecycle failure', () => {
  it('is reported with a code, loses nothing, and the next run carries the task on', async () => {
    const dataDir = await tempDataDir();
    const platformDir = await installAltPlatform(dataDir, { name: LINUX, manager: app });
    const before = await treeStamp(platformDir);
    // A file where the working-copy folder should be: staging cannot proceed.
    await fsp.writeFile(path.join(dataDir, 'alt_platforms_working'), 'in the way');
    const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 'f1', input: 'success 1' }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const lc = () => new Batch({ dataDir, hostPlatforms: ['windows_x86_64'], pollMs: 50 });
    const first = await lc().run({ replyFile, filesDir });
    expect(first.results[0]).toMatchObject({ name: 'f1', outcome: 'compute_error', code: 'OWNED_DIR_NOT_REAL', slot: 0 });
    expect(first.results[0].reason).toContain('retried by the next run');
    expect(await fsp.readFile(path.join(dataDir, 'alt_platforms_working'), 'utf8')).toBe('in the way'); // not deleted
    await fsp.rm(path.join(dataDir, 'alt_platforms_working'));
    const second = await lc().run({ replyFile, filesDir });
    expect(second.results[0]).toMatchObject({ name: 'f1', outcome: 'success', slot: 0 });
    expect(await fsp.readdir(path.join(dataDir, 'slots'))).toEqual([]);
    expect(await treeStamp(platformDir)).toEqual(before);
  });
});

describe('host probes reach discovery', () => {
  it('work for a platform the pinned probes make unsupported is not taken; with them satisfied it runs', async () => {
    const dataDir = await tempDataDir();
    await installAltPlatform(dataDir, { name: LINUX, manager: app, requires: '<hw_accel/>' });
    const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 'hw', input: 'success 1' }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const lc = (usable: boolean) => new Batch({
      dataDir, hostPlatforms: ['windows_x86_64'], pollMs: 50,
      probes: { hwAccel: async () => ({ usable, detail: 'pinned by the test' }) },
    });
    const without = await lc(false).run({ replyFile, filesDir });
    expect(without.results[0]).toMatchObject({ name: 'hw', outcome: 'rejected', code: 'REPLY_NO_APP_VERSION' });
    expect(without.results[0].reason).toContain('App version has unsupported platform x86_64-pc-linux-gnu');
    const withAccel = await lc(true).run({ replyFile, filesDir });
    expect(withAccel.results[0]).toMatchObject({ name: 'hw', outcome: 'success' });
  });
});

describe('launch', () => {
  it('the manager runs at nice 19 with SCHED_IDLE, in its own process group, through the injected spawner', async () => {
    const dir = await tempDataDir();
    const mgr = path.join(dir, 'prio.sh');
    await fsp.writeFile(mgr, `#!/bin/sh
echo "nice $(cut -d' ' -f19 /proc/$$/stat)" >&2
chrt -p $$ >&2
echo "pgid $(ps -o pgid= -p $$ | tr -d ' ') pid $$" >&2
printf '0\\n' > boinc_finish_called
`, { mode: 0o755 });
    const calls: Array<{ command: string; args: readonly string[]; detached?: boolean }> = [];
    const spawner: Spawner = (command, args, options) => {
      calls.push({ command, args, detached: options.detached });
      return spawn(command, args, options);
    };
    const r = await runThroughAltPlatform([{ name: 'prio', input: 'x', optionalOutput: true }], { spawner }, mgr);
    expect(r.byName.prio.outcome).toBe('success');
    expect(calls).toHaveLength(1);
    expect(calls[0].detached).toBe(true);
    expect(calls[0].args.at(-7)).toBe(path.join(r.dataDir, 'alt_platforms_working', 'slot0', 'manager'));
    const err = r.byName.prio.stderr;
    expect(err).toContain('nice 19');
    expect(err).toMatch(/scheduling policy: SCHED_IDLE/);
    const m = /pgid (\d+) pid (\d+)/.exec(err)!;
    expect(m[1]).toBe(m[2]); // leads its own group
  });
});
