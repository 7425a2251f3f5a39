import { promises as fsp, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TaskLifecycle } from '../src/tasks/runner.js';
import {
  buildPi, installReferencePlatform, makeQemuReply, PI_BUILDS, PLATFORM_DIR, QEMU_PROJECT, qemuPidsTagged, sha256File, writeQemuReply,
} from './qemu-fixture.js';

/**
 * The QEMU manager end to end through the task lifecycle (what `altplat run` does), with real QEMU
 * under TCG, the real image and the real BOINC control channel: the paper's program gives the native
 * value inside the VM; suspend/resume; quit and restart from the checkpoint; kills; abort.
 */
const baseImage = path.join(PLATFORM_DIR, 'image', 'base.qcow2');
let baseSha: string;
const dataDirs: string[] = [];

beforeAll(() => {
  baseSha = sha256File(baseImage);
});

afterAll(async () => {
  expect(qemuPidsTagged('mt_')).toEqual([]);
  expect(sha256File(baseImage)).toBe(baseSha);
  for (const d of dataDirs) await fsp.rm(d, { recursive: true, force: true });
});

async function dataDir(platforms: string[]): Promise<string> {
  const d = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-mt-'));
  dataDirs.push(d);
  for (const p of platforms) installReferencePlatform(d, p);
  return d;
}

describe('the paper\'s program through the alt platforms (Windows host playing the paper\'s role)', () => {
  it('x87 and SSE builds give in the VM exactly what they give natively', async () => {
    const d = await dataDir(['x86_64-pc-linux-gnu', 'i686-pc-linux-gnu']);
    const sse = buildPi('sse');
    const x87 = buildPi('x87');
    const reply = makeQemuReply([
      { result: 'mt_pi_sse', platform: PI_BUILDS.sse.platform, program: readFileSync(sse) },
      { result: 'mt_pi_x87', platform: PI_BUILDS.x87.platform, program: readFileSync(x87) },
    ]);
    const { replyFile, filesDir } = writeQemuReply(d, reply);
    const lc = new TaskLifecycle({ dataDir: d, hostPlatforms: ['windows_x86_64'], pollMs: 200, maxTasks: 2 });
    const { results } = await lc.run({ replyFile, filesDir });
    const by = Object.fromEntries(results.map((r) => [r.name, r]));
    for (const [kind, file] of [['sse', sse], ['x87', x87]] as const) {
      const r = by[`mt_pi_${kind}`]!;
      expect(r, JSON.stringify(r)).toMatchObject({ outcome: 'success', exitStatus: 0, kind: 'alt', platform: PI_BUILDS[kind].platform });
      const vmOut = await fsp.readFile(path.join(d, 'projects', QEMU_PROJECT, `mt_pi_${kind}_stdout_txt`), 'utf8');
      const native = execFileSync(file, { encoding: 'utf8' });
      expect(vmOut).toBe(native);
      expect(vmOut.trimEnd().split('\n').at(-1)).toContain(`est pi: ${PI_BUILDS[kind].expected}`);
    }
  }, 120_000);
});
