import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { discoverPlatforms } from '../src/discovery/discover.js';
import { installPlatform } from '../src/discovery/install.js';
import { verifyPlatforms } from '../src/discovery/verify.js';
import { isAltplatError, type AltplatErrorCode } from '../src/errors.js';
import type { HostInfo } from '../src/host/probes.js';

// The built CLI (npm test builds first): a tsx start costs ~1 s of CPU per call on these machines.
const MAIN = path.resolve('dist/src/cli/main.js');
const FIXTURES = path.resolve('fixtures/platforms');
const host = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')).host as HostInfo;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'altplat-inst-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function altplat(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: out, stderr: err }));
  });
}

let n = 0;
function dataDir(): string {
  const d = path.join(tmp, `data${n++}`);
  fs.mkdirSync(d);
  return d;
}

/** A platform folder outside any data dir, made from a fixture, optionally with a big image. */
function source(fixture: string, name = `src${n++}`, imageBytes = 0): string {
  const d = path.join(tmp, 'sources', name);
  fs.cpSync(path.join(FIXTURES, fixture), d, { recursive: true, verbatimSymlinks: true });
  if (imageBytes > 0) {
    const img = Buffer.alloc(imageBytes);
    for (let i = 0; i < img.length; i += 4096) img.writeUInt32LE(i, i);
    fs.writeFileSync(path.join(d, 'image.img'), img, { mode: 0o444 });
    const xml = path.join(d, 'alt_platform.xml');
    fs.writeFileSync(xml, fs.readFileSync(xml, 'utf8').replace('</alt_platform>',
      `<file><name>image.img</name><nbytes>${img.length}</nbytes><sha256>${createHash('sha256').update(img).digest('hex')}</sha256><shared/></file>\n</alt_platform>`));
  }
  return d;
}

const scratch = (data: string) => fs.readdirSync(path.join(data, 'alt_platforms')).filter((e) => e.startsWith('.'));

describe('installPlatform', () => {
  it('copies a sound folder under its definition name, modes and links kept, hashes checked and cached', async () => {
    const data = dataDir();
    const src = source('good-full', 'some-download-folder', 5 * 1024 * 1024);
    fs.symlinkSync('vm_config.xml', path.join(src, 'config-link'));
    const r = await installPlatform(src, { dataDir: data });
    expect(r).toMatchObject({ name: 'good-full', version: '2.1.0-beta.1+build.5', dir: path.join(data, 'alt_platforms', 'good-full'), replaced: false, verified: 4 });
    expect(r.files).toBe(5);
    const dst = r.dir;
    expect(fs.statSync(path.join(dst, 'bin', 'manager')).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(dst, 'image.img')).mode & 0o777).toBe(0o444);
    expect(fs.readlinkSync(path.join(dst, 'config-link'))).toBe('vm_config.xml');
    expect(Buffer.compare(fs.readFileSync(path.join(dst, 'image.img')), fs.readFileSync(path.join(src, 'image.img')))).toBe(0);
    expect(scratch(data)).toEqual([]);
    // The hashes computed while copying are in the cache: the next scan reads nothing.
    const d = await discoverPlatforms({ dataDir: data, host, hostPlatforms: [] });
    expect(d.platforms.map((p) => [p.name, p.status])).toEqual([['good-full', 'ok']]);
    expect(d.stats.hashedFiles).toBe(0);
  });

  it('refuses to overwrite an installed platform unless forced', async () => {
    const data = dataDir();
    await installPlatform(source('good-minimal', 'good-minimal'), { dataDir: data });
    await expect(installPlatform(source('good-minimal', 'good-minimal-2'), { dataDir: data })).rejects.toSatisfy((e) => isAltplatError(e, 'INSTALL_EXISTS'));
    fs.writeFileSync(path.join(data, 'alt_platforms', 'good-minimal', 'old-file'), 'from the old install');
    const r = await installPlatform(source('good-minimal', 'good-minimal-3'), { dataDir: data, force: true });
    expect(r.replaced).toBe(true);
    expect(fs.existsSync(path.join(r.dir, 'old-file'))).toBe(false);
    expect(scratch(data)).toEqual([]);
  });

  it.each([
    ['bad-file-sha256', 'FILE_SHA256_MISMATCH'], // found by the hash computed while copying
    ['bad-manager-not-executable', 'INSTALL_INVALID'],
    ['bad-not-well-formed', 'INSTALL_INVALID'],
    ['bad-no-definition', 'INSTALL_INVALID'],
    ['bad-path-symlink', 'INSTALL_INVALID'],
  ])('refuses %s (%s) and installs nothing', async (fixture, code) => {
    const data = dataDir();
    const err = await installPlatform(source(fixture), { dataDir: data }).catch((e) => e);
    expect(isAltplatError(err, code as AltplatErrorCode), String(err)).toBe(true);
    expect(fs.existsSync(path.join(data, 'alt_platforms')) ? fs.readdirSync(path.join(data, 'alt_platforms')) : []).toEqual([]);
  });

  it('detects a sha256 mismatch while copying and leaves no half-installed platform', async () => {
    const data = dataDir();
    const src = source('good-minimal', 'good-minimal', 2 * 1024 * 1024);
    // Same size, other content: only the hash computed while copying can tell.
    const img = fs.readFileSync(path.join(src, 'image.img'));
    img[123456] ^= 0xff;
    fs.chmodSync(path.join(src, 'image.img'), 0o644);
    fs.writeFileSync(path.join(src, 'image.img'), img);
    const err = await installPlatform(src, { dataDir: data }).catch((e) => e);
    expect(isAltplatError(err, 'FILE_SHA256_MISMATCH'), String(err)).toBe(true);
    expect(fs.readdirSync(path.join(data, 'alt_platforms'))).toEqual([]);
  });

  it('refuses symbolic links that are absolute or lead outside the folder, even when unlisted', async () => {
    for (const [target, code] of [['/etc/hostname', 'PATH_ABSOLUTE'], ['../../elsewhere', 'PATH_ESCAPES']]) {
      const data = dataDir();
      const src = source('good-minimal', 'good-minimal');
      fs.symlinkSync(target, path.join(src, 'extra'));
      const err = await installPlatform(src, { dataDir: data }).catch((e) => e);
      expect(isAltplatError(err, code as AltplatErrorCode), String(err)).toBe(true);
      expect(fs.readdirSync(path.join(data, 'alt_platforms'))).toEqual([]);
      fs.rmSync(src, { recursive: true });
    }
  });

  it('removes the scratch folder a crashed install left behind', async () => {
    const data = dataDir();
    const stale = path.join(data, 'alt_platforms', '.altplat-install-999999999-abcdef');
    fs.mkdirSync(path.join(stale, 'image'), { recursive: true });
    await installPlatform(source('good-minimal', 'good-minimal'), { dataDir: data });
    expect(scratch(data)).toEqual([]);
  });

  it('reports progress over all bytes', async () => {
    const data = dataDir();
    const seen: number[] = [];
    let total = 0;
    await installPlatform(source('good-minimal', 'good-minimal', 3 * 1024 * 1024), {
      dataDir: data, onStart: (t) => (total = t), onProgress: (done) => seen.push(done),
    });
    expect(total).toBeGreaterThan(3 * 1024 * 1024);
    expect(seen[seen.length - 1]).toBe(total);
  });
});

describe('verifyPlatforms', () => {
  it('re-hashes everything, bypassing the cache, and names each damaged file', async () => {
    const data = dataDir();
    const r = await installPlatform(source('good-full', 'x', 1024 * 1024), { dataDir: data });
    const img = path.join(r.dir, 'image.img');
    const when = new Date(1_700_000_000_000); // a whole second, so it can be set back exactly
    fs.utimesSync(img, when, when);
    await discoverPlatforms({ dataDir: data, host, hostPlatforms: [] }); // fill the cache
    const ok = await verifyPlatforms({ dataDir: data, host });
    expect(ok.ok).toBe(true);
    expect(ok.hashedFiles).toBe(3);
    // Damage the image but keep size and mtime: only a real re-hash can see it.
    fs.chmodSync(img, 0o644);
    const b = fs.readFileSync(img);
    b[10] ^= 1;
    fs.writeFileSync(img, b);
    fs.utimesSync(img, when, when);
    expect((await discoverPlatforms({ dataDir: data, host, hostPlatforms: [] })).platforms[0].status).toBe('ok'); // the cache trusts size+mtime+inode
    const bad = await verifyPlatforms({ dataDir: data, host });
    expect(bad.ok).toBe(false);
    expect(bad.platforms[0]).toMatchObject({ name: 'good-full', verdict: 'mismatch' });
    expect(bad.platforms[0].reasons.map((x) => x.code)).toEqual(['FILE_SHA256_MISMATCH']);
    // ... and the fresh hash replaced the stale cache entry.
    expect((await discoverPlatforms({ dataDir: data, host, hostPlatforms: [] })).platforms[0].status).toBe('invalid');
  });

  it('VERIFY_NOT_FOUND for an unknown name', async () => {
    await expect(verifyPlatforms({ dataDir: dataDir(), host, name: 'nope' })).rejects.toSatisfy((e) => isAltplatError(e, 'VERIFY_NOT_FOUND'));
  });
});

describe('altplat install / verify (CLI)', () => {
  it('install, refuse again (exit 1), --force, verify (exit 0), damage, verify (exit 1), unknown name (exit 2)', async () => {
    const data = dataDir();
    const src = source('good-minimal', 'good-minimal', 1024 * 1024);
    const first = await altplat(['install', '--data-dir', data, src]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^installed good-minimal 1\.0\.0 in .*alt_platforms\/good-minimal: 3 files, 1\.0 MiB, 1 listed file verified/m);
    expect(first.stdout).toMatch(/^status on this host: ok/m);
    const again = await altplat(['install', '--data-dir', data, src]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already installed.*--force.*\[INSTALL_EXISTS\]/);
    expect((await altplat(['install', '--force', '--data-dir', data, src])).stdout).toMatch(/^replaced good-minimal/m);

    const v = await altplat(['verify', '--data-dir', data, '--json']);
    expect(v.code).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ ok: true, platforms: [{ name: 'good-minimal', verdict: 'ok' }] });

    const img = path.join(data, 'alt_platforms', 'good-minimal', 'image.img');
    fs.chmodSync(img, 0o644);
    fs.appendFileSync(img, 'x');
    const bad = await altplat(['verify', '--data-dir', data, 'good-minimal']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^good-minimal: MISMATCH$/m);
    expect(bad.stdout).toMatch(/FILE_SIZE_MISMATCH: file "image.img"/);
    expect((await altplat(['verify', '--data-dir', data, 'nope'])).code).toBe(2);
  });

  it('install: exit 2 for a missing source or data dir, 1 for an invalid folder', async () => {
    expect((await altplat(['install', '--data-dir', dataDir(), path.join(tmp, 'no-such-folder')])).code).toBe(2);
    expect((await altplat(['install', '--data-dir', path.join(tmp, 'no-data'), source('good-minimal')])).code).toBe(2);
    const invalid = await altplat(['install', '--data-dir', dataDir(), source('bad-file-size')]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/FILE_SIZE_MISMATCH: file "data.bin" is 18 bytes/);
  });
});
