import { describe, expect, it } from 'vitest';
import { shQuote, splitCommandLine } from '../src/manager/cmdline.js';
import { checkOpenName } from '../src/manager/guest-job.js';
import { parseManagerArgs } from '../src/manager/manager.js';
import { execFileSync } from 'node:child_process';

describe('command line handling (BOINC parse_command_line, then the guest shell)', () => {
  it('splits on whitespace and keeps double-quoted stretches whole', () => {
    expect(splitCommandLine('  --rounds 3\n "two words"  x ')).toEqual(['--rounds', '3', 'two words', 'x']);
    expect(splitCommandLine('')).toEqual([]);
    expect(() => splitCommandLine('a "b')).toThrow(expect.objectContaining({ code: 'JOB_BAD_COMMAND_LINE' }));
  });
  it('quotes every argument so the shell passes it through unchanged', () => {
    const args = ["it's", '$HOME', '`id`', 'a b', '*', ''];
    const out = execFileSync('/bin/sh', ['-c', `printf '%s\\n' ${args.map(shQuote).join(' ')}`], { encoding: 'utf8' });
    expect(out).toBe(args.map((a) => `${a}\n`).join(''));
  });
  it('refuses open names that could leave the guest job directory', () => {
    expect(checkOpenName('in.dat')).toBe('in.dat');
    expect(checkOpenName('sub/in.dat')).toBe('sub/in.dat');
    for (const bad of ['', '/etc/passwd', '../x', 'a/../../x', 'a//b', './x']) {
      expect(() => checkOpenName(bad), bad).toThrow(expect.objectContaining({ code: 'JOB_BAD_OPEN_NAME' }));
    }
  });
});

describe('manager arguments (the lifecycle contract)', () => {
  it('reads --config, --working-dir, --platform and the job file from the environment', () => {
    const a = parseManagerArgs(['--config', 'vm.xml', '--working-dir', '/w/slot0', '--platform', 'p'], { ALTPLAT_JOB_FILE: '/s/altplat_job.xml' });
    expect(a).toEqual({ configFile: 'vm.xml', workingDir: '/w/slot0', platform: 'p', jobFile: '/s/altplat_job.xml' });
    expect(parseManagerArgs([], { ALTPLAT_WORKING_DIR: '/w' }).workingDir).toBe('/w');
    expect(() => parseManagerArgs([], {})).toThrow(expect.objectContaining({ code: 'MANAGER_USAGE' }));
    expect(() => parseManagerArgs(['--config'], { ALTPLAT_WORKING_DIR: '/w' })).toThrow(expect.objectContaining({ code: 'MANAGER_USAGE' }));
  });
});

describe('the cached KVM verdict', () => {
  it('is found again only for the same host kernel and QEMU binary', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const { readVerdict, verdictKey, writeVerdict } = await import('../src/manager/accel.js');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'altplat-verdict-'));
    try {
      const file = path.join(dir, 'v.json');
      const key = await verdictKey('/usr/bin/qemu-system-x86_64');
      expect(key).toContain(os.release());
      await writeVerdict({ works: false, reason: 'emulation failure', key, at: 'now' }, file);
      expect(await readVerdict(key, file)).toMatchObject({ works: false, reason: 'emulation failure' });
      expect(await readVerdict(`${key}-other`, file)).toBeUndefined();
      expect(await readVerdict(key, path.join(dir, 'missing.json'))).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
