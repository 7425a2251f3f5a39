import { describe, expect, it } from 'vitest';
import { shQuote, splitCommandLine } from '../src/manager/cmdline.js';
import { checkOpenName } from '../src/manager/guest-job.js';
import { parseManagerArgs } from '../src/manager/manager.js';
import { parseVmConfig } from '../src/manager/vm-config.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

describe('command line handling (BOINC parse_command_line, then the guest shell)', () => {
  it('splits on whitespace and keeps double-quoted stretches whole', () => {
    expect(splitCommandLine('  --rounds 3\n "two words"  x ')).toEqual(['--rounds', '3', 'two words', 'x']);
    expect(splitCommandLine('')).toEqual([]);
    // Single quotes group too, a closing quote ends the argument, an unclosed one runs to the end.
    expect(splitCommandLine(`--name "hello world" 'single q' a\\"b $HOME *`)).toEqual(['--name', 'hello world', 'single q', 'a\\"b', '$HOME', '*']);
    expect(splitCommandLine('"a b"c')).toEqual(['a b', 'c']);
    expect(splitCommandLine('a "b')).toEqual(['a', 'b']);
    expect(splitCommandLine(`'' x`)).toEqual(["' x"]);
    expect(splitCommandLine('x "')).toEqual(['x', '']);
  });
  it('gives the same argv as the real BOINC library\'s parse_command_line (libboinc 7.20)', () => {
    // Compiled against Debian's libboinc (scripts/setup.sh installs libboinc-app-dev): the reference.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'altplat-pcl-'));
    try {
      const src = path.join(dir, 'pcl.cpp');
      writeFileSync(src, `#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>
int parse_command_line(char*, char**);
int main() {
  std::string s((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  char* buf = strdup(s.c_str()); static char* argv[8192];
  int n = parse_command_line(buf, argv);
  for (int i = 0; i < n; i++) { fputs(argv[i], stdout); fputc(0, stdout); }
}
`);
      const exe = path.join(dir, 'pcl');
      execFileSync('g++', ['-o', exe, src, '-lboinc']);
      const boinc = (line: string) => execFileSync(exe, { input: line, encoding: 'utf8' }).split('\0').slice(0, -1);
      const cases = [
        `--name "hello world" 'single q' a\\"b $HOME *`, '"a b"c', "x 'unclosed rest", 'a"b"c', 'tab\there\nnl\r\v\fend',
        `'' "" x`, `it's "a 'b' c"`, '   ', `a "" b`, `"'x'"`,
      ];
      // and random mixes of the characters that matter
      const alphabet = [' ', '\t', '\n', '"', "'", 'a', 'b', '\\', '$'];
      let seed = 7;
      for (let n = 0; n < 300; n++) {
        let s = '';
        for (let k = 0; k < 12; k++) { seed = (seed * 1103515245 + 12345) & 0x7fffffff; s += alphabet[seed % alphabet.length]; }
        // (never ending in an opening quote: BOINC then reads past the end of its buffer)
        cases.push(`${s}z`);
      }
      for (const c of cases) expect(splitCommandLine(c), JSON.stringify(c)).toEqual(boinc(c));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
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

describe('vm_config.xml <personality>', () => {
  const cfg = (extra: string) => `<qemu_vm><kernel>k</kernel><initrd>i</initrd><base_disk>b</base_disk>${extra}</qemu_vm>`;
  it('defaults to native, accepts linux32, refuses anything else by name', () => {
    expect(parseVmConfig(cfg(''), '/p').personality).toBe('native');
    expect(parseVmConfig(cfg('<personality>linux32</personality>'), '/p').personality).toBe('linux32');
    expect(() => parseVmConfig(cfg('<personality>win32</personality>'), '/p')).toThrow(expect.objectContaining({ code: 'VMCONFIG_BAD_VALUE' }));
  });
  it('is linux32 for the reference i686 platform only', () => {
    const dir = path.join(__dirname, '..', 'alt_platforms');
    const load = (p: string) => parseVmConfig(readFileSync(path.join(dir, p, 'vm_config.xml'), 'utf8'), path.join(dir, p));
    expect(load('i686-pc-linux-gnu').personality).toBe('linux32');
    expect(load('x86_64-pc-linux-gnu').personality).toBe('native');
  });
});

describe('issue 10 pieces that need no VM', () => {
  it('a sparse file counts its allocated blocks toward the disk-usage limit, a dense one its size', async () => {
    const { countedBytes } = await import('../src/tasks/rsc-limits.js');
    const { statSync, truncateSync } = await import('node:fs');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'altplat-sparse-'));
    try {
      const sparse = path.join(dir, 'job.raw');
      writeFileSync(sparse, Buffer.alloc(1 << 20, 1));
      truncateSync(sparse, 16 * 2 ** 30);
      const dense = path.join(dir, 'dense');
      writeFileSync(dense, Buffer.alloc(1000, 1));
      expect(countedBytes(statSync(sparse))).toBeLessThan(4 << 20);
      expect(countedBytes(statSync(sparse))).toBeGreaterThanOrEqual(1 << 20);
      expect(countedBytes(statSync(dense))).toBe(1000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the saved state is used only in the BOINC layout (<data>/slots/N with <data>/alt_platforms_working/slotN)', async () => {
    const { dataDirOf } = await import('../src/manager/boot-state.js');
    expect(dataDirOf('/d/slots/3', '/d/alt_platforms_working/slot3')).toBe('/d');
    expect(dataDirOf('/d/other/3', '/d/alt_platforms_working/slot3')).toBeUndefined();
    expect(dataDirOf('/d/slots/3', '/e/alt_platforms_working/slot3')).toBeUndefined();
  });

  it('the QEMU command line: the job disk second, the state disk below the overlay, -incoming quoted for the shell', async () => {
    const { qemuArgs } = await import('../src/manager/qemu.js');
    const cfg = parseVmConfig('<qemu_vm><kernel>k</kernel><initrd>i</initrd><base_disk>b.qcow2</base_disk></qemu_vm>', '/p');
    const a = qemuArgs({ config: cfg, runDir: '/r', overlay: '/r/o.qcow2', task: 't', accel: 'tcg', jobDisk: '/r/j.qcow2', stateDisk: "/v/k/disk.qcow2", incoming: "/v/it's/memory" }, '/s');
    const j = a.join(' ');
    expect(j).toContain('node-name=state,backing=base,read-only=on');
    expect(j).toContain('node-name=disk0,backing=state');
    expect(j.indexOf('id=vblk0')).toBeLessThan(j.indexOf('id=vblk1'));
    expect(a[a.indexOf('-incoming') + 1]).toBe(`exec:cat '/v/it'\\''s/memory'`);
  });
});
