import { execFile, spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { PlatformDefinition } from '../../src/definition/types.js';
import { dataPaths } from '../../src/paths.js';
import { Batch } from '../lifecycle-helpers.js';
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

export const sections: BenchSection[] = [stagingSection, overheadSection];
