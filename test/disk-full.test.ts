/*
 * Issue 9 item 5: a full disk while staging --files. The data dir is a real 30 MiB tmpfs (mounted here,
 * as root; unmounted afterwards), the reply's first result needs a 40 MB input: that result is rejected
 * with IO_ENOSPC, no temp file is left, the other result still runs, and the JSON report is printed.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeReply, PROJECT, runCli, writeReply } from './lifecycle-helpers.js';

const LINUX = 'x86_64-pc-linux-gnu';
const isRoot = process.getuid?.() === 0;
let base = '';
let mountPoint = '';
let mounted = false;
let mountError = '';

beforeAll(async () => {
  if (!isRoot) return;
  base = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-diskfull-'));
  mountPoint = path.join(base, 'small');
  await fsp.mkdir(mountPoint);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=30m', 'tmpfs', mountPoint], { stdio: 'pipe' });
    mounted = true;
  } catch (e) {
    // Root without CAP_SYS_ADMIN (an unprivileged container): said so, and the test is skipped.
    mountError = String((e as { stderr?: Buffer }).stderr ?? e).trim();
  }
});

afterAll(async () => {
  if (!base) return;
  try {
    if (mounted) execFileSync('umount', [mountPoint]);
  } finally {
    await fsp.rm(base, { recursive: true, force: true });
  }
});

describe('disk full while staging --files', () => {
  // Mounting needs root (CI runs the suite as root, as scripts/setup.sh does).
  it.skipIf(!isRoot)('the result that needs the big file is rejected with IO_ENOSPC; the JSON is printed; the rest still runs', async (ctx) => {
    if (!mounted) {
      console.warn(`disk-full test skipped: cannot mount a tmpfs here (${mountError})`);
      ctx.skip();
    }
    const dataDir = path.join(mountPoint, 'data');
    await fsp.mkdir(dataDir);
    const reply = makeReply({
      platform: LINUX,
      mainProgram: readFileSync('fixtures/hostile/files/h_app'),
      results: [{ name: 'big', input: 'x'.repeat(40_000_000) }, { name: 'small', input: 'small input\n' }],
    });
    // The reply and --files live outside the small file system.
    const { replyFile, filesDir } = await writeReply(path.join(base, 'in'), reply);
    const run = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    expect(run.stderr).not.toMatch(/\n\s+at .*:\d+:\d+/); // no stack trace
    const report = JSON.parse(run.stdout) as { results: Array<{ name: string; outcome: string; code?: string; reason?: string }> };
    const big = report.results.find((r) => r.name === 'big')!;
    expect(big).toMatchObject({ outcome: 'rejected', code: 'IO_ENOSPC' });
    expect(big.reason).toContain('no space left');
    expect(report.results.find((r) => r.name === 'small')).toMatchObject({ outcome: 'success' });
    expect(run.code).toBe(1);
    const projectDir = path.join(dataDir, 'projects', PROJECT);
    const left = await fsp.readdir(projectDir);
    expect(left.filter((n) => n.includes('.staging.'))).toEqual([]); // the partial copy is gone
    expect(left).not.toContain('big_in');
    expect(await fsp.readFile(path.join(projectDir, 'small_out'), 'utf8')).toBe('small input\n');
  }, 120_000);
});
