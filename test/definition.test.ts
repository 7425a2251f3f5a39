import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HashCache, sha256File } from '../src/definition/hash.js';
import { MAX_DEFINITION_BYTES, parseDefinition, parseDefinitionOrThrow } from '../src/definition/parse.js';
import { checkRelativePath } from '../src/definition/paths.js';
import { INVALID_CODES, UNSUPPORTED_CODES } from '../src/definition/reasons.js';
import { checkPlatformFiles, runHashJobs } from '../src/definition/validate.js';
import { isAltplatError } from '../src/errors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'altplat-def-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function def(body: string, name = 'p'): string {
  return `<alt_platform>\n<name>${name}</name>\n<version>1.0.0</version>\n<manager><file_name>manager</file_name></manager>\n${body}</alt_platform>\n`;
}
/** `folderName` null: no folder-name check (as install does). */
const parse = (text: string, folderName: string | null = 'p') =>
  parseDefinition(text, { dir: '/data/alt_platforms/p', ...(folderName !== null ? { folderName } : {}) });
const codes = (text: string, folderName: string | null = 'p') => parse(text, folderName).reasons.map((r) => r.code);

describe('parseDefinition: the elements of shared/docs/design.md', () => {
  it('reads every element, BOINC style', () => {
    const p = parse(`<?xml version="1.0"?>
<alt_platform>
    <name>p</name>
    <user_friendly_name> Linux &amp; friends </user_friendly_name>
    <version>1.2.3</version>
    <manager>
        <file_name>./bin/manager</file_name>
        <cmdline>--config qemu_job.xml</cmdline>
    </manager>
    <requires>
        <hypervisor><name>QEMU</name><version>&gt;=7.2.0</version></hypervisor>
        <hypervisor><name>virtualbox</name></hypervisor>
        <arch>x86_64</arch>
        <arch>arm64</arch>
        <hw_accel/>
        <min_ram_mb>512</min_ram_mb>
    </requires>
    <file>
        <name>image/base.qcow2</name>
        <nbytes>16777216</nbytes>
        <sha256>${'AB'.repeat(32)}</sha256>
        <shared/>
    </file>
    <file><name>vm.xml</name><shared>0</shared></file>
</alt_platform>`);
    expect(p.reasons).toEqual([]);
    expect(p.definition).toEqual({
      name: 'p',
      userFriendlyName: 'Linux & friends',
      version: '1.2.3',
      manager: { fileName: 'bin/manager', cmdline: '--config qemu_job.xml' },
      managers: [{ fileName: 'bin/manager', cmdline: '--config qemu_job.xml' }],
      requires: {
        hypervisors: [{ name: 'qemu', versionRange: '>=7.2.0' }, { name: 'virtualbox' }],
        arch: ['x86_64', 'arm64'],
        hwAccel: true,
        minRamMb: 512,
      },
      files: [
        { name: 'image/base.qcow2', nbytes: 16777216, sha256: 'ab'.repeat(32), shared: true },
        { name: 'vm.xml', shared: false },
      ],
      dir: '/data/alt_platforms/p',
      ignoredElements: [],
    });
  });

  it('needs only name, version and manager', () => {
    const d = parseDefinitionOrThrow(def(''), { dir: '/x', folderName: 'p' });
    expect(d.requires).toEqual({ hypervisors: [], arch: [], hwAccel: false });
    expect(d.files).toEqual([]);
    expect(d.manager.cmdline).toBe('');
  });

  it('ignores unknown elements with a warning, at any level', () => {
    const p = parse(def('<signature>x</signature><requires><gpu/></requires><file><name>a</name><zip/></file><manager2/>'));
    expect(p.reasons).toEqual([]);
    expect(p.definition?.ignoredElements).toEqual(['signature', 'manager2', 'requires/gpu', 'file/zip']);
    expect(p.warnings).toHaveLength(4);
  });

  it('keeps an unknown hypervisor (it never holds) with a warning', () => {
    const p = parse(def('<requires><hypervisor><name>firecracker</name></hypervisor></requires>'));
    expect(p.definition?.requires.hypervisors).toEqual([{ name: 'firecracker' }]);
    expect(p.warnings[0]).toMatch(/unknown hypervisor "firecracker"/);
  });

  it('treats an empty hypervisor <version> as any version', () => {
    expect(parse(def('<requires><hypervisor><name>qemu</name><version/></hypervisor></requires>')).definition?.requires.hypervisors)
      .toEqual([{ name: 'qemu' }]);
  });
});

describe('parseDefinition: every rejection has a code and a volunteer-readable message', () => {
  it.each([
    ['not well-formed', '<alt_platform><name>p</name>', 'DEF_NOT_WELL_FORMED'],
    ['DOCTYPE', '<!DOCTYPE alt_platform><alt_platform/>', 'DEF_DOCTYPE'],
    ['ENTITY', '<alt_platform><!ENTITY x "y"></alt_platform>', 'DEF_DOCTYPE'],
    ['undefined entity', def('<user_friendly_name>&copy;</user_friendly_name>'), 'DEF_NOT_WELL_FORMED'],
    ['wrong root', '<platform><name>p</name></platform>', 'DEF_MISSING_ELEMENT'],
    ['no name', '<alt_platform><version>1.0.0</version><manager><file_name>m</file_name></manager></alt_platform>', 'DEF_MISSING_ELEMENT'],
    ['empty name', def('').replace('<name>p</name>', '<name> </name>'), 'DEF_MISSING_ELEMENT'],
    ['no version', def('').replace('<version>1.0.0</version>', ''), 'DEF_MISSING_ELEMENT'],
    ['no manager', def('').replace('<manager><file_name>manager</file_name></manager>', ''), 'DEF_MISSING_ELEMENT'],
    ['no manager file_name', def('').replace('<file_name>manager</file_name>', '<cmdline>x</cmdline>'), 'DEF_MISSING_ELEMENT'],
    ['file without name', def('<file><nbytes>1</nbytes></file>'), 'DEF_MISSING_ELEMENT'],
    ['hypervisor without name', def('<requires><hypervisor><version>1</version></hypervisor></requires>'), 'DEF_MISSING_ELEMENT'],
    ['two versions', def('<version>2.0.0</version>'), 'DEF_DUPLICATE_ELEMENT'],
    ['two managers of one name', def('').replace('<manager><file_name>manager</file_name></manager>', '<manager><name>a</name><file_name>manager</file_name></manager><manager><name>a</name><file_name>m2</file_name></manager>'), 'DEF_DUPLICATE_ELEMENT'],
    ['file listed twice', def('<file><name>a/b</name></file><file><name>./a//b</name></file>'), 'DEF_DUPLICATE_ELEMENT'],
    ['element in a text element', def('').replace('<version>1.0.0</version>', '<version><major>1</major></version>'), 'DEF_BAD_VALUE'],
    ['nbytes not a number', def('<file><name>a</name><nbytes>1e3</nbytes></file>'), 'DEF_BAD_VALUE'],
    ['nbytes negative', def('<file><name>a</name><nbytes>-1</nbytes></file>'), 'DEF_BAD_VALUE'],
    ['sha256 too short', def('<file><name>a</name><sha256>abcd</sha256></file>'), 'DEF_BAD_VALUE'],
    ['sha256 not hex', def(`<file><name>a</name><sha256>${'g'.repeat(64)}</sha256></file>`), 'DEF_BAD_VALUE'],
    ['min_ram_mb not a number', def('<requires><min_ram_mb>1.5</min_ram_mb></requires>'), 'DEF_BAD_VALUE'],
    ['empty arch', def('<requires><arch></arch></requires>'), 'DEF_BAD_VALUE'],
    ['empty path', def('<file><name>.</name></file>'), 'DEF_BAD_VALUE'],
    ['backslash path', def('<file><name>image\\base.qcow2</name></file>'), 'DEF_BAD_VALUE'],
    ['bad name characters', def('', 'a b'), 'DEF_BAD_NAME'],
    ['name starting with a dot', def('', '.hidden'), 'DEF_BAD_NAME'],
    ['name too long', def('', 'x'.repeat(65)), 'DEF_BAD_NAME'],
    ['version not semver', def('').replace('1.0.0', '1.0'), 'DEF_BAD_VERSION'],
    ['version text', def('').replace('1.0.0', 'latest'), 'DEF_BAD_VERSION'],
    ['range not semver', def('<requires><hypervisor><name>qemu</name><version>newest</version></hypervisor></requires>'), 'DEF_BAD_RANGE'],
    ['absolute manager', def('').replace('<file_name>manager</file_name>', '<file_name>/usr/bin/qemu</file_name>'), 'PATH_ABSOLUTE'],
    ['drive-letter path', def('<file><name>C:\\boinc\\x</name></file>'), 'PATH_ABSOLUTE'],
    ['.. in a file path', def('<file><name>image/../../../etc/passwd</name></file>'), 'PATH_PARENT'],
    ['.. with backslashes', def('<file><name>..\\x</name></file>'), 'PATH_PARENT'],
  ])('%s', (_what, text, code) => {
    const folder = /<name>([^<]*)<\/name>/.exec(text)?.[1]?.trim() || 'p';
    const p = parse(text, folder);
    expect(p.definition).toBeUndefined();
    expect(p.reasons.map((r) => r.code)).toContain(code);
    for (const r of p.reasons) expect(r.message.length).toBeGreaterThan(15);
  });

  it('checks the name against the folder name', () => {
    expect(codes(def('', 'other'), 'p')).toEqual(['DEF_NAME_MISMATCH']);
    expect(codes(def('', 'other'), null)).toEqual([]); // install: the folder name does not matter
  });

  it('reports every problem at once', () => {
    expect(codes(def('<file><name>/abs</name></file><file><name>a</name><nbytes>x</nbytes></file>', 'p').replace('1.0.0', 'one'), 'p'))
      .toEqual(['DEF_BAD_VERSION', 'PATH_ABSOLUTE', 'DEF_BAD_VALUE']);
  });

  it('refuses a definition over 1 MiB before parsing it', () => {
    // Also malformed: had it been parsed, DEF_NOT_WELL_FORMED would be reported too.
    const big = def(`<!-- ${'x'.repeat(MAX_DEFINITION_BYTES)} -->`) + '<unclosed';
    expect(codes(big, 'p')).toEqual(['DEF_TOO_LARGE']);
    expect(codes(def('') + '<unclosed', 'p')).toEqual(['DEF_NOT_WELL_FORMED']);
  });

  it('refuses the billion-laughs entity bomb fast, without expanding anything', () => {
    const bomb = fs.readFileSync('fixtures/platforms/bad-entity-bomb/alt_platform.xml', 'utf8');
    expect(codes(bomb, 'bad-entity-bomb')).toEqual(['DEF_DOCTYPE']);
  });

  it('parseDefinitionOrThrow throws an AltplatError with the first code and all reasons', () => {
    try {
      parseDefinitionOrThrow('<x/>', { dir: '/x' });
      expect.unreachable();
    } catch (e) {
      expect(isAltplatError(e, 'DEF_MISSING_ELEMENT')).toBe(true);
    }
  });

  it('documents every code it can produce', () => {
    const documented = fs.readFileSync('docs/PLATFORM_FORMAT.md', 'utf8');
    for (const c of [...Object.keys(INVALID_CODES), ...Object.keys(UNSUPPORTED_CODES)]) expect(documented).toContain(c);
  });
});

describe('checkRelativePath', () => {
  it.each([
    ['manager', 'manager'],
    ['./a//b/./c', 'a/b/c'],
    ['image/base.qcow2', 'image/base.qcow2'],
    ['a/', 'a'],
  ])('%s -> %s', (raw, want) => expect(checkRelativePath(raw, 'x')).toEqual({ ok: true, path: want }));
  it.each([
    ['', 'DEF_BAD_VALUE'], ['/etc/passwd', 'PATH_ABSOLUTE'], ['\\\\server\\share', 'PATH_ABSOLUTE'], ['D:x', 'PATH_ABSOLUTE'],
    ['..', 'PATH_PARENT'], ['a/../b', 'PATH_PARENT'], ['a\\..\\b', 'PATH_PARENT'], ['a\\b', 'DEF_BAD_VALUE'], ['a\0b', 'DEF_BAD_VALUE'], ['./', 'DEF_BAD_VALUE'],
  ])('%j is refused with %s', (raw, code) => {
    const r = checkRelativePath(raw, 'x');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason.code).toBe(code);
  });
});

describe('sha256 and the hash cache', () => {
  const dir = path.join(tmp, 'p');
  fs.mkdirSync(path.join(dir, 'image'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'manager'), '#!/bin/sh\n', { mode: 0o755 });
  const data = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
  fs.writeFileSync(path.join(dir, 'image', 'disk.img'), data);
  const sha = createHash('sha256').update(data).digest('hex');
  const d = parseDefinitionOrThrow(def(`<file><name>image/disk.img</name><nbytes>${data.length}</nbytes><sha256>${sha}</sha256></file>`), { dir, folderName: 'p' });

  it('sha256File reads in chunks and reports progress', async () => {
    const seen: number[] = [];
    const r = await sha256File(path.join(dir, 'image', 'disk.img'), (n) => seen.push(n));
    expect(r).toEqual({ sha256: sha, nbytes: data.length });
    expect(seen.length).toBe(4);
  });

  it('a second check answers from the cache without reading; a changed file is hashed again', async () => {
    const file = path.join(tmp, 'cache.json');
    const cache = HashCache.load(file);
    const first = checkPlatformFiles(d, fs.realpathSync(dir), { cache });
    expect(first.jobs).toHaveLength(1);
    await runHashJobs(first.jobs, { cache });
    expect(first.files[0]).toMatchObject({ status: 'ok', sha256: sha });
    expect(await cache.save()).toBeUndefined();

    const again = HashCache.load(file);
    const second = checkPlatformFiles(d, fs.realpathSync(dir), { cache: again });
    expect(second.jobs).toHaveLength(0);
    expect(second.files[0]).toMatchObject({ status: 'ok', fromCache: true });

    // Same size, new content and mtime: the key no longer matches.
    const f = path.join(dir, 'image', 'disk.img');
    const changed = Buffer.from(data);
    changed[5] = 8;
    fs.writeFileSync(f, changed);
    fs.utimesSync(f, new Date(), new Date(Date.now() + 5000));
    const third = checkPlatformFiles(d, fs.realpathSync(dir), { cache: again });
    expect(third.jobs).toHaveLength(1);
    await runHashJobs(third.jobs, { cache: again });
    expect(third.reasons.map((r) => r.code)).toEqual(['FILE_SHA256_MISMATCH']);
    fs.writeFileSync(f, data);
  });

  it('rehash ignores the cache', () => {
    const cache = HashCache.memory();
    const st = fs.statSync(path.join(dir, 'image', 'disk.img'));
    cache.store(fs.realpathSync(path.join(dir, 'image', 'disk.img')), st, 'f'.repeat(64));
    expect(checkPlatformFiles(d, fs.realpathSync(dir), { cache }).reasons.map((r) => r.code)).toEqual(['FILE_SHA256_MISMATCH']);
    expect(checkPlatformFiles(d, fs.realpathSync(dir), { cache, rehash: true }).jobs).toHaveLength(1);
  });

  it('a corrupt or foreign cache file is an empty cache', () => {
    for (const junk of ['not json', '{"version":2,"entries":{}}', '{"version":1,"entries":{"/x":{"sha256":"zz"}}}', 'null']) {
      const f = path.join(tmp, 'junk.json');
      fs.writeFileSync(f, junk);
      expect(HashCache.load(f).size).toBe(0);
    }
  });

  it('a cache that cannot be written is reported, not thrown', async () => {
    const cache = HashCache.load(path.join(tmp, 'manager-is-a-file', 'x', 'cache.json'));
    fs.writeFileSync(path.join(tmp, 'manager-is-a-file'), '');
    cache.store('/nope', fs.statSync(tmp), 'a'.repeat(64));
    expect(await cache.save()).toMatch(/could not save the hash cache/);
  });

  it('FILE_UNREADABLE when a file cannot be read while hashing', async () => {
    const f = path.join(tmp, 'vanishing');
    fs.writeFileSync(f, 'x');
    const st = fs.statSync(f);
    const reasons: { code: string; message: string }[] = [];
    const check = { name: 'vanishing', path: f, status: 'pending' as const, expectedSha256: 'a'.repeat(64) };
    fs.rmSync(f);
    await runHashJobs([{ platform: 'p', check, stat: st, reasons }], { cache: HashCache.memory() });
    expect(reasons.map((r) => r.code)).toEqual(['FILE_UNREADABLE']);
  });
});
