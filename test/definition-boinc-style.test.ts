/**
 * Definitions written the way real BOINC tooling writes XML (review cases): byte order mark, XML
 * declaration and CRLF, CDATA values, white space around values, `%f` numbers, 0/1 booleans read as
 * BOINC's XML_PARSER::parse_bool reads them (lib/parse.cpp), entity-escaped semver ranges of every
 * shape, architecture spellings, and hypervisor alternatives judged against pinned hosts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDefinition } from '../src/definition/parse.js';
import { evaluateRequirements } from '../src/discovery/requirements.js';
import type { HostInfo } from '../src/host/probes.js';
import { parseHypervisorVersion } from '../src/host/version.js';

const FIXTURES = path.resolve('fixtures/platforms');

function def(requires: string, extra = ''): string {
  return `<alt_platform><name>p</name><version>1.0.0</version><manager><file_name>manager</file_name></manager><requires>${requires}</requires>${extra}</alt_platform>`;
}
const parse = (text: string) => parseDefinition(text, { dir: '/d/alt_platforms/p', folderName: 'p' });

/** A host with only the given hypervisors found (injected: these tools cannot all run here). */
function host(over: Partial<HostInfo> & { found?: Record<string, string | null> } = {}): HostInfo {
  const found = over.found ?? { qemu: '7.2.22' };
  return {
    os: 'linux', arch: over.arch ?? 'x86_64', ramMb: over.ramMb ?? 4096,
    hwAccel: over.hwAccel ?? { usable: false, detail: 'pinned: no /dev/kvm' },
    hypervisors: (['qemu', 'virtualbox', 'vmware', 'docker', 'podman'] as const).map((name) =>
      name in found
        ? { name, path: `/usr/bin/${name}`, version: found[name], raw: String(found[name]) }
        : { name, path: null, version: null, raw: '' }),
  };
}

describe('a definition written BOINC style (fixtures/platforms/good-boinc-style)', () => {
  it('reads BOM, prolog, CRLF, tabs, CDATA, %f numbers, 0/1 booleans and entity-escaped ranges', () => {
    const dir = path.join(FIXTURES, 'good-boinc-style');
    const text = fs.readFileSync(path.join(dir, 'alt_platform.xml'), 'utf8');
    expect(text.charCodeAt(0)).toBe(0xfeff);
    expect(text).toContain('\r\n');
    const p = parseDefinition(text, { dir, folderName: 'good-boinc-style' });
    expect(p.reasons).toEqual([]);
    const d = p.definition!;
    expect(d.name).toBe('good-boinc-style');
    expect(d.version).toBe('1.4.0');
    expect(d.userFriendlyName).toBe('Linux "x86-64" <QEMU> & co');
    expect(d.manager).toEqual({ fileName: 'manager', cmdline: '--config "vm config.xml"' });
    expect(d.requires).toEqual({
      hypervisors: [{ name: 'firecracker' }, { name: 'virtualbox', versionRange: '>=6.1 <7 || ^7.0.10' }],
      arch: ['AMD64', 'aarch64'],
      hwAccel: false,
      minRamMb: 512,
    });
    expect(d.files).toEqual([{ name: 'image/disk/base.img', nbytes: 16, sha256: expect.stringMatching(/^[0-9a-f]{64}$/), shared: true }]);
    expect(p.warnings).toHaveLength(3);
  });
});

describe('BOINC booleans (lib/parse.cpp XML_PARSER::parse_bool: <x/> or a strtol integer)', () => {
  it.each([
    ['<hw_accel/>', true], ['<hw_accel />', true], ['<hw_accel></hw_accel>', true],
    ['<hw_accel>1</hw_accel>', true], ['<hw_accel> 1 </hw_accel>', true], ['<hw_accel>2</hw_accel>', true],
    ['<hw_accel>0x1</hw_accel>', true], ['<hw_accel>0</hw_accel>', false], ['<hw_accel>\n 0\n</hw_accel>', false],
    ['<hw_accel>00</hw_accel>', false], ['<hw_accel>0x0</hw_accel>', false], ['<hw_accel>-0</hw_accel>', false], ['', false],
  ])('%s → %s', (xml, want) => {
    const p = parse(def(xml));
    expect(p.reasons).toEqual([]);
    expect(p.definition!.requires.hwAccel).toBe(want);
  });

  it.each(['false', 'true', 'yes', '1.0', '08'])('<hw_accel>%s</hw_accel> is DEF_BAD_VALUE, never read as "required"', (v) => {
    const p = parse(def(`<hw_accel>${v}</hw_accel>`));
    expect(p.definition).toBeUndefined();
    expect(p.reasons.map((r) => r.code)).toEqual(['DEF_BAD_VALUE']);
    expect(p.reasons[0].message).toContain('<hw_accel/>');
  });

  it('<shared>0</shared> and <shared>1</shared> in a <file>', () => {
    const p = parse(def('', '<file><name>a</name><shared>0</shared></file><file><name>b</name><shared>1</shared></file>'));
    expect(p.definition!.files.map((f) => f.shared)).toEqual([false, true]);
  });
});

describe('numbers as BOINC writes them (%f)', () => {
  it('<min_ram_mb>512.000000</min_ram_mb> is 512; 512.5 is refused', () => {
    expect(parse(def('<min_ram_mb>512.000000</min_ram_mb>')).definition!.requires.minRamMb).toBe(512);
    expect(parse(def('<min_ram_mb> 512 </min_ram_mb>')).definition!.requires.minRamMb).toBe(512);
    expect(parse(def('<min_ram_mb>512.5</min_ram_mb>')).reasons.map((r) => r.code)).toEqual(['DEF_BAD_VALUE']);
  });
});

describe('semver ranges of every shape, entity-escaped or in CDATA, against a found hypervisor', () => {
  const cases: [string, string, boolean][] = [
    ['&gt;=7.2.0 &lt;9', '7.2.22', true],
    ['<![CDATA[>=7.2.0 <9]]>', '9.0.0', false],
    ['^7', '7.2.22', true],
    ['^7', '8.0.0', false],
    ['7.x', '7.0.14', true],
    ['7.2.*', '7.1.4', false],
    ['~7.2', '7.2.22', true],
    ['&gt;=6 &lt;7 || &gt;=7.2', '6.2.0', true],
    ['&gt;=6 &lt;7 || &gt;=7.2', '7.1.0', false],
    ['7.0 - 7.9', '7.9.5', true],
    ['&gt;= 7.2.0', '7.2.22', true],
    ['*', '1.0.0', true],
  ];
  it.each(cases)('qemu <version>%s</version> with qemu %s found: holds = %s', (range, found, holds) => {
    const p = parse(def(`<hypervisor><name>qemu</name><version>${range}</version></hypervisor>`));
    expect(p.reasons).toEqual([]);
    const r = evaluateRequirements(p.definition!.requires, host({ found: { qemu: found } }));
    expect(r.map((x) => x.code)).toEqual(holds ? [] : ['REQ_HYPERVISOR_VERSION']);
    if (!holds) expect(r[0].message).toContain(`found qemu ${found}`);
  });

  it.each(['&gt;=7.2.0,&lt;9', 'latest', '&gt;=7 &amp;&amp; &lt;9'])('<version>%s</version> is DEF_BAD_RANGE', (range) => {
    expect(parse(def(`<hypervisor><name>qemu</name><version>${range}</version></hypervisor>`)).reasons.map((r) => r.code)).toEqual(['DEF_BAD_RANGE']);
  });

  it('hypervisor alternatives: any one found in range satisfies; the message names every one', () => {
    const req = parse(def('<hypervisor><name>VirtualBox</name><version>&gt;=7.1</version></hypervisor><hypervisor><name>docker</name></hypervisor>')).definition!.requires;
    expect(evaluateRequirements(req, host({ found: { virtualbox: '7.0.14', docker: '26.1.3' } }))).toEqual([]);
    const r = evaluateRequirements(req, host({ found: { virtualbox: '7.0.14' } }));
    expect(r.map((x) => x.code)).toEqual(['REQ_HYPERVISOR_VERSION']);
    expect(r[0].message).toMatch(/virtualbox >=7\.1.*docker.*found virtualbox 7\.0\.14.*docker was not found/);
  });
});

describe('architecture spellings', () => {
  it.each([
    ['x86_64', 'x86_64'], ['amd64', 'x86_64'], ['x64', 'x86_64'], ['X86-64', 'x86_64'],
    ['aarch64', 'aarch64'], ['arm64', 'aarch64'],
    ['i686', 'i686'], ['i386', 'i686'], ['x86', 'i686'], ['ia32', 'i686'],
  ])('<arch>%s</arch> holds on a %s host, and on the same host spelled differently', (spelling, hostArch) => {
    const req = parse(def(`<arch>${spelling}</arch>`)).definition!.requires;
    expect(evaluateRequirements(req, host({ arch: hostArch }))).toEqual([]);
    // A client injecting its own HostInfo may spell the host's arch its own way.
    const other = { x86_64: 'amd64', aarch64: 'arm64', i686: 'i386' }[hostArch]!;
    expect(evaluateRequirements(req, host({ arch: other }))).toEqual([]);
  });

  it('x86_64 does not hold on an i686 or aarch64 host', () => {
    const req = parse(def('<arch>amd64</arch>')).definition!.requires;
    for (const a of ['i686', 'aarch64']) expect(evaluateRequirements(req, host({ arch: a })).map((r) => r.code)).toEqual(['REQ_ARCH']);
  });
});

describe('hypervisor versions as real tools print them', () => {
  it.each([
    ['QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1.4)\nCopyright (c) 2003-2023 Fabrice Bellard and the QEMU Project developers\n', '8.2.2'],
    ['QEMU emulator version 6.2.0 (qemu-kvm-6.2.0-11.el9_0.3)\n', '6.2.0'],
    ['QEMU emulator version 2.11.1(Debian 1:2.11+dfsg-1ubuntu7.42)\n', '2.11.1'],
    ['WARNING: The vboxdrv kernel module is not loaded. Either there is no module\n         available for the current kernel (5.15.0-91-generic) or it failed to\n         load.\n\n7.0.14r161095\n', '7.0.14'],
    ['6.1.50_Ubuntur161033\n', '6.1.50'],
    ['7.1.0_BETA2r164697\n', '7.1.0'],
    ['Docker version 20.10.24+dfsg1, build 297e128\n', '20.10.24'],
    ['Client: Docker Engine - Community\n Version:           24.0.7\n API version:       1.43\n', '24.0.7'],
    ['podman version 5.0.0-dev\n', '5.0.0'],
    ['vmrun version 1.17.0 build-21581411\nUsage: vmrun [AUTHENTICATION-FLAGS] COMMAND [PARAMETERS]\n', '1.17.0'],
  ])('%j → %s', (out, want) => {
    expect(parseHypervisorVersion(out)).toBe(want);
  });

  it('output without a version is unreadable, not guessed', () => {
    expect(parseHypervisorVersion('Usage: vmrun [AUTHENTICATION-FLAGS] COMMAND\n')).toBeNull();
  });
});
