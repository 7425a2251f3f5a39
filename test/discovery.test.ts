import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HashCache } from '../src/definition/hash.js';
import { INVALID_CODES, UNSUPPORTED_CODES } from '../src/definition/reasons.js';
import { discoverPlatforms, discoveryToJson, type DiscoveryResult } from '../src/discovery/discover.js';
import { evaluateRequirements } from '../src/discovery/requirements.js';
import type { HostInfo } from '../src/host/probes.js';
import { isAltplatError, type AltplatErrorCode } from '../src/errors.js';

const run = promisify(execFile);
const FIXTURES = path.resolve('fixtures/platforms');
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as {
  host: HostInfo;
  hostPlatforms: string[];
  platforms: Record<string, { status: string; codes: string[]; native?: boolean; warnings?: number }>;
};
const host = expected.host;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'altplat-disc-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A fresh data dir whose alt_platforms/ is a copy of fixtures/platforms (links and modes kept). */
function dataDirWithFixtures(name: string): string {
  const dataDir = path.join(tmp, name);
  fs.mkdirSync(dataDir, { recursive: true });
  fs.cpSync(FIXTURES, path.join(dataDir, 'alt_platforms'), { recursive: true, verbatimSymlinks: true });
  return dataDir;
}

describe('fixtures/platforms: every case gets its status and reason codes', () => {
  let dataDir: string;
  let result: DiscoveryResult;
  beforeAll(async () => {
    dataDir = dataDirWithFixtures('all');
    result = await discoverPlatforms({ dataDir, host, hostPlatforms: expected.hostPlatforms });
  });

  it('lists exactly the fixture folders, in code-point order', () => {
    const folders = fs.readdirSync(FIXTURES, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    expect(result.platforms.map((p) => p.name)).toEqual([...folders].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(Object.keys(expected.platforms).sort()).toEqual([...folders].sort());
  });

  for (const [name, want] of Object.entries(expected.platforms)) {
    it(`${name}: ${want.status}${want.codes.length ? ` (${want.codes.join(', ')})` : ''}`, () => {
      const p = result.platforms.find((x) => x.name === name);
      expect(p, name).toBeDefined();
      expect({ status: p!.status, codes: p!.reasons.map((r) => r.code) }).toEqual({ status: want.status, codes: want.codes });
      expect(p!.native).toBe(want.native ?? false);
      expect(p!.advertised).toBe(want.status === 'ok' && !want.native);
      expect(p!.warnings).toHaveLength(want.warnings ?? 0);
      expect(p!.dir).toBe(path.join(dataDir, 'alt_platforms', name));
      for (const r of p!.reasons) expect(r.message).not.toBe('');
    });
  }

  it('every reason code has a fixture folder (FILE_UNREADABLE: see the test below)', () => {
    const seen = new Set(Object.values(expected.platforms).flatMap((p) => p.codes));
    for (const code of [...Object.keys(INVALID_CODES), ...Object.keys(UNSUPPORTED_CODES)]) {
      if (code !== 'FILE_UNREADABLE') expect(seen.has(code), code).toBe(true);
    }
  });

  it('advertises exactly the good ones that are not native', () => {
    const good = Object.entries(expected.platforms).filter(([, w]) => w.status === 'ok' && !w.native).map(([n]) => n).sort();
    expect(result.advertised).toEqual(good);
  });

  it('keeps what a broken definition still says (version, friendly name) for the listing', () => {
    const p = result.platforms.find((x) => x.name === 'bad-file-sha256')!;
    expect(p.version).toBe('1.0.0');
    expect(p.manager).toMatch(/bad-file-sha256\/manager$/);
    const broken = result.platforms.find((x) => x.name === 'bad-not-well-formed')!;
    expect(broken.version).toBeNull();
    expect(broken.manager).toBeNull();
  });

  it('JSON has the shape of the issue', () => {
    const j = discoveryToJson(result);
    expect(Object.keys(j)).toEqual(['dataDir', 'platforms', 'advertised', 'hypervisors']);
    expect(j.dataDir).toBe(dataDir);
    expect(j.hypervisors).toEqual([
      { name: 'qemu', version: '7.2.22', path: '/usr/bin/qemu-system-x86_64' },
      { name: 'virtualbox', version: '7.0.14', path: '/usr/bin/VBoxManage' },
      { name: 'docker', version: '26.1.3', path: '/usr/bin/docker' },
    ]);
    for (const p of j.platforms) {
      expect(Object.keys(p).slice(0, 5)).toEqual(['name', 'dir', 'status', 'version', 'reasons']);
      for (const r of p.reasons) expect(Object.keys(r)).toEqual(['code', 'message']);
    }
  });
});

describe('discovery rules', () => {
  it('a missing alt_platforms/ means no platforms, not an error', async () => {
    const dataDir = path.join(tmp, 'empty');
    fs.mkdirSync(dataDir);
    const r = await discoverPlatforms({ dataDir, host, hostPlatforms: [] });
    expect(r.platforms).toEqual([]);
    expect(r.advertised).toEqual([]);
  });

  it('a missing or non-folder data dir is an error with a code', async () => {
    for (const [dir, code] of [[path.join(tmp, 'nope'), 'DATA_DIR_MISSING'], [path.join(FIXTURES, 'expected.json'), 'DATA_DIR_NOT_A_FOLDER']]) {
      await expect(discoverPlatforms({ dataDir: dir, host })).rejects.toSatisfy((e) => isAltplatError(e, code as AltplatErrorCode));
    }
  });

  it('ignores files, dot-folders and dangling links in alt_platforms/; follows a linked platform folder', async () => {
    const dataDir = path.join(tmp, 'mixed');
    const alt = path.join(dataDir, 'alt_platforms');
    fs.mkdirSync(alt, { recursive: true });
    fs.cpSync(path.join(FIXTURES, 'good-minimal'), path.join(alt, 'good-minimal'), { recursive: true });
    fs.writeFileSync(path.join(alt, 'notes.txt'), 'not a platform');
    fs.writeFileSync(path.join(alt, 'alt_platform.xml'), '<alt_platform/>');
    fs.mkdirSync(path.join(alt, '.altplat-install-1-abc'));
    fs.symlinkSync('nowhere', path.join(alt, 'dangling'));
    const elsewhere = path.join(tmp, 'elsewhere', 'good-full');
    fs.cpSync(path.join(FIXTURES, 'good-full'), elsewhere, { recursive: true });
    fs.symlinkSync(elsewhere, path.join(alt, 'good-full'));
    const r = await discoverPlatforms({ dataDir, host, hostPlatforms: [] });
    expect(r.platforms.map((p) => [p.name, p.status])).toEqual([['good-full', 'ok'], ['good-minimal', 'ok']]);
    expect(r.platforms[0].dir).toBe(path.join(alt, 'good-full'));
    expect(r.platforms[0].manager).toBe(path.join(fs.realpathSync(elsewhere), 'bin', 'manager'));
  });

  it('a platform named like one of the host platforms is listed ok but not advertised', async () => {
    const dataDir = dataDirWithFixtures('native');
    const detected = await discoverPlatforms({ dataDir, host, hostPlatforms: ['x86_64-pc-linux-gnu'], only: ['x86_64-pc-linux-gnu', 'good-minimal'] });
    expect(detected.platforms.map((p) => [p.name, p.status, p.native, p.advertised])).toEqual([
      ['good-minimal', 'ok', false, true], ['x86_64-pc-linux-gnu', 'ok', true, false],
    ]);
    // --host-platform windows_x86_64: the Linux platform is now an alternate one.
    const asWindows = await discoverPlatforms({ dataDir, host, hostPlatform: 'windows_x86_64', only: ['x86_64-pc-linux-gnu'] });
    expect(asWindows.hostPlatforms).toEqual(['windows_x86_64']);
    expect(asWindows.hostPlatformsSource).toBe('host-platform');
    expect(asWindows.advertised).toEqual(['x86_64-pc-linux-gnu']);
  });

  it('a second scan answers sha256 checks from <data>/altplat/hash-cache.json; a changed file is hashed again', async () => {
    const dataDir = dataDirWithFixtures('cache');
    const first = await discoverPlatforms({ dataDir, host, hostPlatforms: [] });
    expect(first.stats.hashedFiles).toBeGreaterThan(0);
    const cacheFile = path.join(dataDir, 'altplat', 'hash-cache.json');
    const entries = JSON.parse(fs.readFileSync(cacheFile, 'utf8')).entries as Record<string, { size: number; mtimeMs: number; ino: number; sha256: string }>;
    expect(Object.keys(entries)).toHaveLength(first.stats.hashedFiles); // a mismatching file's hash is remembered too
    for (const [file, e] of Object.entries(entries)) {
      const st = fs.statSync(file);
      expect(e).toMatchObject({ size: st.size, mtimeMs: st.mtimeMs, ino: st.ino });
    }
    const second = await discoverPlatforms({ dataDir, host, hostPlatforms: [] });
    expect(second.stats.hashedFiles).toBe(0);
    expect(second.stats.cachedHashes).toBe(first.stats.hashedFiles);
    expect(second.platforms.map((p) => [p.name, p.status])).toEqual(first.platforms.map((p) => [p.name, p.status]));
    const f = path.join(dataDir, 'alt_platforms', 'good-full', 'vm_config.xml');
    fs.appendFileSync(f, 'x');
    const third = await discoverPlatforms({ dataDir, host, hostPlatforms: [] });
    expect(third.platforms.find((p) => p.name === 'good-full')!.reasons.map((r) => r.code)).toEqual(['FILE_SIZE_MISMATCH']);
    fs.writeFileSync(f, fs.readFileSync(path.join(FIXTURES, 'good-full', 'vm_config.xml')));
    fs.utimesSync(f, new Date(), new Date(Date.now() + 10_000));
    const fourth = await discoverPlatforms({ dataDir, host, hostPlatforms: [] });
    expect(fourth.stats.hashedFiles).toBe(1);
    expect(fourth.platforms.find((p) => p.name === 'good-full')!.status).toBe('ok');
  });

  it('reports (does not throw) when the hash cache cannot be written', async () => {
    const dataDir = dataDirWithFixtures('ro-cache');
    fs.writeFileSync(path.join(dataDir, 'altplat'), 'a file where the state folder should be');
    const r = await discoverPlatforms({ dataDir, host, hostPlatforms: [], only: ['good-full'] });
    expect(r.platforms[0].status).toBe('ok');
    expect(r.warnings.join('\n')).toMatch(/could not save the hash cache/);
  });

  it('FILE_UNREADABLE: a listed file this user cannot read', async () => {
    const dataDir = dataDirWithFixtures('unreadable');
    const file = path.join(dataDir, 'alt_platforms', 'bad-file-unreadable', 'data.bin');
    fs.chmodSync(file, 0o000);
    const script = `import { discoverPlatforms } from ${JSON.stringify(path.resolve('src/discovery/discover.ts'))};
      const r = await discoverPlatforms({ dataDir: ${JSON.stringify(dataDir)}, host: ${JSON.stringify(host)}, hostPlatforms: [], only: ['bad-file-unreadable'], hashCache: false });
      console.log(JSON.stringify(r.platforms[0].reasons));`;
    let reasons: { code: string; message: string }[];
    if (process.getuid?.() === 0) {
      // root reads everything: look as an ordinary user (nobody), in a child process.
      for (let d = dataDir; d !== path.dirname(d); d = path.dirname(d)) if (d.startsWith(tmp)) fs.chmodSync(d, 0o755);
      fs.chmodSync(tmp, 0o755);
      const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { uid: 65534, gid: 65534, cwd: process.cwd(), env: { ...process.env, HOME: tmp } });
      reasons = JSON.parse(stdout.trim().split('\n').pop()!);
    } else {
      reasons = (await discoverPlatforms({ dataDir, host, hostPlatforms: [], only: ['bad-file-unreadable'], hashCache: false })).platforms[0].reasons;
    }
    expect(reasons.map((r) => r.code)).toEqual(['FILE_UNREADABLE']);
    expect(reasons[0].message).toMatch(/data\.bin.*EACCES/);
  });

  // How fast this is: `npm run bench -- discovery` (speed goals are benchmarked, never asserted).
  it('scans every fixture with the real host probes, entity bomb included', async () => {
    const dataDir = dataDirWithFixtures('timed');
    const r = await discoverPlatforms({ dataDir, hashCache: HashCache.memory(), probeCache: false });
    expect(r.platforms.find((p) => p.name === 'bad-entity-bomb')!.reasons[0].code).toBe('DEF_DOCTYPE');
    expect(r.host.hypervisors.find((h) => h.name === 'qemu')!.version).toMatch(/^7\.2\./);
  });
});

describe('evaluateRequirements', () => {
  const none = { hypervisors: [], arch: [], hwAccel: false };
  it('holds with no requirements', () => expect(evaluateRequirements(none, host)).toEqual([]));
  it('any one hypervisor alternative satisfies', () => {
    expect(evaluateRequirements({ ...none, hypervisors: [{ name: 'podman' }, { name: 'docker', versionRange: '>=26' }] }, host)).toEqual([]);
  });
  it('says what was needed and what was found', () => {
    const r = evaluateRequirements({ ...none, hypervisors: [{ name: 'qemu', versionRange: '>=8' }, { name: 'vmware' }] }, host);
    expect(r).toEqual([{ code: 'REQ_HYPERVISOR_VERSION', message: 'needs one of: qemu >=8, vmware; found qemu 7.2.22 at /usr/bin/qemu-system-x86_64; vmware was not found' }]);
  });
  it('a found hypervisor whose probe failed or whose version is unreadable does not hold', () => {
    const broken: HostInfo = { ...host, hypervisors: [
      { name: 'qemu', path: '/usr/bin/qemu-system-x86_64', version: null, raw: '', error: 'did not answer within 3000 ms' },
      { name: 'docker', path: '/usr/bin/docker', version: null, raw: 'Docker version ???' },
    ] };
    expect(evaluateRequirements({ ...none, hypervisors: [{ name: 'qemu' }] }, broken)[0].message).toMatch(/could not be checked: did not answer/);
    expect(evaluateRequirements({ ...none, hypervisors: [{ name: 'docker', versionRange: '>=1' }] }, broken)[0].message).toMatch(/unreadable \("Docker version \?\?\?"\)/);
    expect(evaluateRequirements({ ...none, hypervisors: [{ name: 'docker' }] }, broken)).toEqual([]);
  });
  it('matches arch spellings', () => {
    expect(evaluateRequirements({ ...none, arch: ['amd64'] }, host)).toEqual([]);
    expect(evaluateRequirements({ ...none, arch: ['x64'] }, host)).toEqual([]);
    expect(evaluateRequirements({ ...none, arch: ['i386'] }, host)[0].code).toBe('REQ_ARCH');
  });
  it('hw_accel and RAM', () => {
    expect(evaluateRequirements({ ...none, hwAccel: true }, { ...host, hwAccel: { usable: true, detail: '' } })).toEqual([]);
    expect(evaluateRequirements({ ...none, minRamMb: 4096 }, host)).toEqual([]);
    expect(evaluateRequirements({ ...none, minRamMb: 4097 }, host)[0].code).toBe('REQ_RAM');
  });
  it('prerelease hypervisor versions satisfy plain ranges', () => {
    const pre: HostInfo = { ...host, hypervisors: [{ name: 'podman', path: '/p', version: '5.0.0-dev', raw: '' }] };
    expect(evaluateRequirements({ ...none, hypervisors: [{ name: 'podman', versionRange: '>=4' }] }, pre)).toEqual([]);
  });
});
