import { execFile, spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { PlatformDefinition } from '../../src/definition/types.js';
import { dataPaths } from '../../src/paths.js';
import { Batch, MASTER_URL } from '../lifecycle-helpers.js';
import { AltplatClient } from '../../src/tasks/client.js';
import { parseSchedulerReply } from '../../src/scheduler/reply.js';
import { performance } from 'node:perf_hooks';
import { createWorkingCopy, removeWorkingCopy } from '../../src/slots/working-copy.js';
import { installAltPlatform, makeReply, tempDataDir, writeReply } from '../lifecycle-helpers.js';
import { medianMs, printLine, type BenchSection } from './harness.js';

const run = promisify(execFile);
const LINUX = 'x86_64-pc-linux-gnu';
const GiB = 1024 ** 3;

/** KiB of disk that `dirs` use together (du counts a hard-linked inode once). */
async function duKiB(...dirs: string[]): Promise<number> {
  const { stdout } = await run('du', ['-skc', ...dirs]);
  return Number(stdout.trim().split('\n').pop()!.split('\t')[0]);
}

/**
 * Staging the working copy of a platform whose `<shared/>` image is 2 GiB. The image is a sparse file
 * (its size is real, its blocks are not), so the baseline is `cp -r --sparse=never`, which copies the
 * 2 GiB as a real image would be copied; plain `cp -r` (sparse-aware, so unrealistically cheap here) is
 * printed too. Extra disk = du of original + copy together minus du of the original alone.
 */
const stagingSection: BenchSection = {
  title: 'working copy of a platform with a 2 GiB <shared/> image (sparse file) vs a recursive copy',
  run: async () => {
    const dataDir = await tempDataDir('altplat-bench-');
    try {
      const platformDir = await installAltPlatform(dataDir, { name: LINUX, manager: '/bin/true', sharedBytes: 2 * GiB });
      const def: PlatformDefinition = {
        name: LINUX, version: '1.0.0', manager: { fileName: 'manager', cmdline: '' }, dir: platformDir, ignoredElements: [],
        requires: { hypervisors: [], arch: [], hwAccel: false },
        files: [{ name: 'image/base.img', shared: true }, { name: 'vm_config.xml', shared: false }],
      };
      const p = dataPaths(dataDir);
      const dest = p.workingCopy(0);
      let method = '';
      const stage = await medianMs(async () => {
        const wc = await createWorkingCopy(def, p.altPlatformsWorking, dest);
        method = wc.shared[0].method;
      }, 5);
      const extraKiB = (await duKiB(platformDir, dest)) - (await duKiB(platformDir));
      await removeWorkingCopy(p.altPlatformsWorking, dest);
      const cpDest = path.join(dataDir, 'cp-copy');
      const cpFull = await medianMs(async () => {
        await fsp.rm(cpDest, { recursive: true, force: true });
        await run('cp', ['-r', '--sparse=never', platformDir, cpDest]);
      }, 1, false);
      const cpFullKiB = (await duKiB(platformDir, cpDest)) - (await duKiB(platformDir));
      await fsp.rm(cpDest, { recursive: true, force: true });
      const cpSparse = await medianMs(async () => {
        await fsp.rm(cpDest, { recursive: true, force: true });
        await run('cp', ['-r', platformDir, cpDest]);
      }, 3);
      await fsp.rm(cpDest, { recursive: true, force: true });
      printLine({ name: `stage working copy (shared file by ${method})`, value: stage, baseline: cpFull, goal: '<= 0.01x (>= 100x faster)',
        note: `${Math.round(cpFull / stage)}x faster than cp -r --sparse=never` });
      printLine({ name: 'extra disk of the working copy', value: extraKiB, unit: 'KiB', goal: '< 1024 KiB',
        note: `cp -r --sparse=never used ${cpFullKiB} KiB` });
      printLine({ name: 'stage working copy vs sparse-aware cp -r', value: stage, baseline: cpSparse, note: 'cp skips the holes of this sparse test file; a real image has none' });
    } finally {
      await fsp.chmod(path.join(dataDir, 'alt_platforms', LINUX, 'image', 'base.img'), 0o644).catch(() => undefined);
      await fsp.rm(dataDir, { recursive: true, force: true });
    }
  },
};

/**
 * Full task overhead for a no-op manager: reply parsing, discovery, journal, slot setup, working copy,
 * launch, exit rules, outputs, cleanup — against spawning the same no-op program directly.
 */
const overheadSection: BenchSection = {
  title: 'full task overhead, no-op manager (setup → exit → cleanup) vs spawning it directly',
  run: async () => {
    const root = await tempDataDir('altplat-bench-');
    try {
      const noop = path.join(root, 'noop-manager.sh');
      await fsp.writeFile(noop, "#!/bin/sh\nprintf '0\\n' > boinc_finish_called\n", { mode: 0o755 });
      const slotLike = path.join(root, 'direct');
      await fsp.mkdir(slotLike);
      const direct = await medianMs(() => new Promise<void>((resolve, reject) => {
        const c = spawn(noop, [], { cwd: slotLike, stdio: 'ignore' });
        c.on('error', reject);
        c.on('exit', () => resolve());
      }), 9);
      // One fresh data dir per run (warm-up + 5), prepared outside the timing.
      const prepared: Array<{ dataDir: string; replyFile: string; filesDir: string }> = [];
      for (let k = 0; k < 6; k++) {
        const dataDir = path.join(root, `d${k}`);
        await fsp.mkdir(dataDir);
        await installAltPlatform(dataDir, { name: LINUX, manager: noop });
        const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 'noop', input: 'x', optionalOutput: true }] });
        const files = await writeReply(dataDir, reply);
        prepared.push({ dataDir, ...files });
      }
      let i = 0;
      const task = await medianMs(async () => {
        const { dataDir, replyFile, filesDir } = prepared[i++];
        const lc = new Batch({ dataDir, hostPlatforms: ['windows_x86_64'], controlSocket: false });
        const { results } = await lc.run({ replyFile, filesDir });
        if (results[0]?.outcome !== 'success') throw new Error(`no-op task ended ${results[0]?.outcome}: ${results[0]?.reason}`);
      }, 5);
      printLine({ name: 'one no-op task through runBatch (open, discover, accept, run, close)', value: task, baseline: direct,
        note: `discovery, reply, journal fsyncs, slot, working copy, launch, cleanup; ${os.cpus().length} shared cores` });
    } finally {
      await fsp.rm(root, { recursive: true, force: true });
    }
  },
};

/**
 * The embedding API (issue 8): one no-op task through an open client (accept → start → result), and
 * accept() of a reply with 1,000 results, each against its baseline measured here.
 */
const apiSection: BenchSection = {
  title: 'client API: one no-op task, and accept() of 1,000 results',
  run: async () => {
    const root = await tempDataDir('altplat-bench-api-');
    try {
      const noop = Buffer.from("#!/bin/sh\nprintf '0\\n' > boinc_finish_called\n");
      const direct = await (async () => {
        const file = path.join(root, 'noop.sh');
        await fsp.writeFile(file, noop, { mode: 0o755 });
        await fsp.mkdir(path.join(root, 'direct'));
        return medianMs(() => new Promise<void>((resolve, reject) => {
          const c = spawn(file, [], { cwd: path.join(root, 'direct'), stdio: 'ignore' });
          c.on('error', reject);
          c.on('exit', () => resolve());
        }), 9);
      })();
      const dataDir = path.join(root, 'data');
      const proj = path.join(dataDir, 'projects', 'example.org_lctest');
      await fsp.mkdir(proj, { recursive: true });
      const replies: string[] = [];
      for (let k = 0; k < 8; k++) {
        const r = makeReply({ platform: LINUX, mainProgram: noop, results: [{ name: `noop${k}`, input: 'x', optionalOutput: true }] });
        for (const [n, b] of Object.entries(r.files)) await fsp.writeFile(path.join(proj, n), b, { mode: 0o755 });
        replies.push(r.xml);
      }
      const client = await AltplatClient.open({ dataDir, hostPlatforms: [LINUX] });
      await client.discover();
      let i = 0;
      const task = await medianMs(async () => {
        const { tasks } = await client.accept(replies[i++]!, { masterUrl: MASTER_URL });
        await tasks[0]!.start();
        const r = await tasks[0]!.result;
        if (r.outcome !== 'success') throw new Error(`no-op task ended ${r.outcome}: ${r.reason}`);
      }, 7);
      printLine({ name: 'one no-op task through the API (accept, start, result)', value: task, baseline: direct, goal: '<= 10x',
        note: 'native; journal fsyncs, slot set-up, init_data.xml, mmap, launch, exit rules, outputs, cleanup' });
      await client.close();

      // 1,000 results in one reply; their inputs are in the project dir (as after downloading).
      const big = makeReply({ platform: LINUX, mainProgram: noop, results: Array.from({ length: 1000 }, (_, k) => ({ name: `r${k}`, input: `in ${k}` })) });
      const dirs: string[] = [];
      for (let k = 0; k < 4; k++) {
        const d = path.join(root, `big${k}`);
        const p = path.join(d, 'projects', 'example.org_lctest');
        await fsp.mkdir(p, { recursive: true });
        for (const [n, b] of Object.entries(big.files)) await fsp.writeFile(path.join(p, n), b, { mode: 0o755 });
        dirs.push(d);
      }
      const parse = await medianMs(() => parseSchedulerReply(big.xml, { host: [LINUX], alt: [] }), 5);
      let j = 0;
      const accept = await medianMs(async () => {
        const c = await AltplatClient.open({ dataDir: dirs[j++]!, hostPlatforms: [LINUX] });
        await c.discover();
        const t0 = performance.now();
        const { tasks } = await c.accept(big.xml, { masterUrl: MASTER_URL });
        acceptOnly.push(performance.now() - t0);
        if (tasks.length !== 1000) throw new Error(`accepted ${tasks.length}`);
        await c.close();
      }, 3);
      acceptOnly.sort((a, b) => a - b);
      printLine({ name: 'accept() of a reply with 1,000 results', value: acceptOnly[Math.floor(acceptOnly.length / 2)]!, baseline: parse,
        note: `parse, identity, 1,000 input checks (md5), one journal write; with open+discover+close ${accept.toFixed(0)} ms` });
    } finally {
      await fsp.rm(root, { recursive: true, force: true });
    }
  },
};
const acceptOnly: number[] = [];

export const sections: BenchSection[] = [stagingSection, overheadSection, apiSection];
