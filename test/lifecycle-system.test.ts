/*
 * Effects are injectable (AltplatClient.open({ system })), apps get BOINC's environment rather than the
 * embedding process's, and the opt-in manager cleanup (<cleanup_cmdline>) runs after a kill and at
 * recovery of a journaled task.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AltplatClient, defaultAppEnv, type Spawner } from '../src/index.js';
import { parseSchedulerReply } from '../src/scheduler/reply.js';
import { Journal } from '../src/tasks/journal.js';
import { runManagerCleanup } from '../src/tasks/manager-cleanup.js';
import { defaultSystem } from '../src/tasks/system.js';
import { makeReply, MASTER_URL, PROJECT, tempDataDir } from './lifecycle-helpers.js';

const LINUX = 'x86_64-pc-linux-gnu';
const ENV_APP = Buffer.from('#!/bin/sh\nenv | sort >&2\necho 0 > boinc_finish_called\n');

describe('injected effects', () => {
  it('the app gets the system\'s env plus LD_LIBRARY_PATH, never the embedding process\'s whole environment; spawn, log are the system\'s', async () => {
    process.env.SECRET_TOKEN_OF_THE_EMBEDDER = 'hunter2';
    expect(defaultAppEnv()).not.toHaveProperty('SECRET_TOKEN_OF_THE_EMBEDDER');
    expect(defaultAppEnv()).toHaveProperty('PATH');
    const dataDir = await tempDataDir('altplat-sys-');
    const reply = makeReply({ platform: LINUX, mainProgram: ENV_APP, results: [{ name: 'env1', input: 'x', optionalOutput: true }] });
    const proj = path.join(dataDir, 'projects', PROJECT);
    await fsp.mkdir(proj, { recursive: true });
    for (const [n, b] of Object.entries(reply.files)) await fsp.writeFile(path.join(proj, n), b, { mode: 0o755 });
    const spawned: string[] = [];
    const spawner: Spawner = (cmd, args, opts) => { spawned.push([cmd, ...args].join(' ')); return spawn(cmd, args, opts); };
    const logs: string[] = [];
    const client = await AltplatClient.open({
      dataDir, hostPlatforms: [LINUX], pollMs: 50,
      system: { env: { PATH: process.env.PATH!, GIVEN_BY_EMBEDDER: 'yes' }, spawn: spawner, log: (level, m) => logs.push(`${level} ${m}`), lowPriorityPrefix: () => [] },
    });
    await client.discover();
    const { tasks: [t] } = await client.accept(reply.xml, { masterUrl: MASTER_URL });
    await t!.start();
    const r = await t!.result;
    expect(r.outcome).toBe('success');
    expect(r.stderr).toContain('GIVEN_BY_EMBEDDER=yes\n');
    expect(r.stderr).toMatch(new RegExp(`^LD_LIBRARY_PATH=${proj}:\\.:${dataDir}\n`, 'm')); // client/app_start.cpp
    expect(r.stderr).not.toContain('SECRET_TOKEN_OF_THE_EMBEDDER');
    expect(spawned).toEqual([`${path.join(proj, 'lc_app_100')} --rounds 3`]); // through the injected spawner, without nice/chrt
    await client.close();
  });
});

describe('manager cleanup (<cleanup_cmdline>, opt-in)', () => {
  async function journaledAltTask(dataDir: string, step: 'launched' | 'working_copy') {
    const wc = path.join(dataDir, 'alt_platforms_working', 'slot0');
    const slot = path.join(dataDir, 'slots', '0');
    await fsp.mkdir(wc, { recursive: true });
    await fsp.mkdir(slot, { recursive: true });
    await fsp.writeFile(path.join(wc, 'manager'), '#!/bin/sh\necho "cleanup: $* in $(pwd) for $ALTPLAT_PLATFORM" >&2\ntouch cleaned\n', { mode: 0o755 });
    const a = parseSchedulerReply(makeReply({ platform: LINUX, mainProgram: Buffer.from('x'), results: [{ name: 'm1', input: 'x' }] }).xml,
      { host: ['windows_x86_64'], alt: [LINUX] }).assignments[0]!;
    const j = await Journal.open(path.join(dataDir, 'altplat'));
    const rec = { resultName: 'm1', masterUrl: MASTER_URL, assignment: a, step, slot: 0, prematureExits: 0, restarts: 0, checkpointCpuTime: 0,
      fractionDone: 0, elapsed: 0, workingCopy: { dir: wc, platformDir: path.join(dataDir, 'alt_platforms', LINUX), shared: [] },
      managerName: 'podman', managerFile: 'manager', managerCmdline: '', managerCleanupCmdline: '--cleanup --all' };
    await j.update(rec, {}, rec);
    return { slot, wc, rec: j.get(MASTER_URL, 'm1')! };
  }

  it('runs `<manager> <cleanup_cmdline>` in the slot, output appended to stderr.txt, with a bounded wait', async () => {
    const dataDir = await tempDataDir('altplat-sys-');
    const { slot, wc, rec } = await journaledAltTask(dataDir, 'working_copy');
    await fsp.writeFile(path.join(slot, 'stderr.txt'), 'earlier output\n');
    await runManagerCleanup(defaultSystem(), rec, slot);
    expect(await fsp.readFile(path.join(slot, 'stderr.txt'), 'utf8')).toBe(`earlier output\ncleanup: --cleanup --all in ${slot} for ${LINUX}\n`);
    expect(await fsp.stat(path.join(slot, 'cleaned')).then(() => true)).toBe(true);
    // A cleanup that hangs is killed after the bound.
    await fsp.writeFile(path.join(wc, 'manager'), '#!/bin/sh\nsleep 30\n', { mode: 0o755 });
    const logs: string[] = [];
    const t0 = Date.now();
    await runManagerCleanup(defaultSystem({ log: (_l, m) => logs.push(m) }), rec, slot, 300);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(logs[0]).toContain('did not end within 0.3 s; killed');
  });

  it('runs at recovery of a journaled task that had launched; the journal keeps which backend it ran on', async () => {
    const dataDir = await tempDataDir('altplat-sys-');
    const { slot } = await journaledAltTask(dataDir, 'launched');
    const client = await AltplatClient.open({ dataDir, hostPlatforms: ['windows_x86_64'] });
    expect(await fsp.readFile(path.join(slot, 'stderr.txt'), 'utf8')).toContain('cleanup: --cleanup --all');
    const journal = JSON.parse(await fsp.readFile(path.join(dataDir, 'altplat', 'tasks.json'), 'utf8'));
    expect(journal.tasks[0]).toMatchObject({ managerName: 'podman', managerFile: 'manager', managerCleanupCmdline: '--cleanup --all' });
    expect(client.task('m1')!.state).toBe('quit');
    await client.close();
  });
});
