/*
 * Issue 9 item 11: `altplat request --host-platform NAME`, as `list` and `run` take it. NAME replaces the
 * request's platforms in deciding what is native; the request's own <platform_name> is never rewritten.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const CLI = path.resolve('dist/src/cli/main.js');
const REQUESTS = path.resolve('fixtures/requests');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'altplat-reqhp-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function altplat(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

function example(name: string): string {
  const d = path.join(tmp, name);
  fs.cpSync(path.resolve('fixtures/example-data'), d, { recursive: true });
  fs.rmSync(path.join(d, 'altplat'), { recursive: true, force: true });
  return d;
}

const altNames = (xml: string) => [...xml.matchAll(/<alt_platform>\s*<name>([^<]*)<\/name>/g)].map((m) => m[1]);

describe('altplat request --host-platform', () => {
  it('decides what is native for NAME, keeps the request\'s <platform_name>, and warns that they differ', async () => {
    const file = path.join(REQUESTS, 'windows-x86_64.xml');
    const input = fs.readFileSync(file, 'utf8');
    const plain = await altplat(['request', '--data-dir', example('a'), file]);
    expect(plain.code).toBe(0);
    expect(altNames(plain.stdout)).toEqual(['windows_intelx86', 'i686-pc-linux-gnu', 'x86_64-pc-linux-gnu']);
    // As a Linux x86-64 host, x86_64-pc-linux-gnu is native: not offered as an alternate.
    const r = await altplat(['request', '--data-dir', example('b'), '--host-platform', 'x86_64-pc-linux-gnu', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(altNames(r.stdout)).toEqual(['windows_intelx86', 'i686-pc-linux-gnu']);
    expect(r.stdout).toContain('<platform_name>windows_x86_64</platform_name>');
    expect(r.stderr).toMatch(/warning: --host-platform x86_64-pc-linux-gnu differs from the request's <platform_name> windows_x86_64/);
    // Everything else byte for byte: only the alt_platform element was inserted.
    const ins = '    <alt_platform>\n        <name>i686-pc-linux-gnu</name>\n    </alt_platform>\n';
    expect(r.stdout.replace(ins, '')).toBe(input);
  });

  it('the same NAME as the request\'s platform: no warning', async () => {
    const file = path.join(REQUESTS, 'linux-x86_64.xml');
    const r = await altplat(['request', '--data-dir', example('c'), '--host-platform', 'x86_64-pc-linux-gnu', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/warning/);
    expect(r.stdout).toContain('<platform_name>x86_64-pc-linux-gnu</platform_name>');
  });

  it('a Windows NAME on a Linux request: the Linux platforms become alternates, but one the request names is not added again', async () => {
    const file = path.join(REQUESTS, 'linux-x86_64.xml');
    const r = await altplat(['request', '--data-dir', example('d'), '--host-platform', 'windows_x86_64', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('<platform_name>x86_64-pc-linux-gnu</platform_name>');
    expect(altNames(r.stdout).filter((n) => n === 'x86_64-pc-linux-gnu')).toEqual([]);
    expect(altNames(r.stdout)).toContain('i686-pc-linux-gnu');
    expect(r.stderr).toMatch(/warning: --host-platform windows_x86_64 differs/);
  });
});
