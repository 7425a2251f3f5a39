import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDefinition } from '../src/definition/parse.js';
import { chooseBackend } from '../src/discovery/backend.js';
import { discoverPlatforms, discoveryToJson } from '../src/discovery/discover.js';
import { probeHypervisor, type HostInfo, type HypervisorInfo } from '../src/host/probes.js';
import { installReferencePlatform } from './qemu-fixture.js';

/**
 * Several backends per platform: the repeatable <manager> with its own <requires>, the first backend
 * whose requirements hold, the volunteer's order, and what `altplat list --json` says about it. The
 * hosts here are injected where a backend cannot run on these machines (KVM is not usable here —
 * /dev/kvm opens but is a slow emulator, docs/REFERENCE_PLATFORM.md —, and docker has no daemon);
 * podman and QEMU are probed for real where the test says so.
 */
const run = promisify(execFile);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'altplat-backend-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const THREE = `<alt_platform>
    <name>p</name>
    <version>1.0.0</version>
    <manager>
        <name>qemu-kvm</name>
        <file_name>manager</file_name>
        <cmdline>--config vm_config.xml</cmdline>
        <requires><hypervisor><name>qemu</name><version>&gt;=7.2.0</version></hypervisor><hw_accel/></requires>
    </manager>
    <manager>
        <name>podman</name>
        <file_name>container_manager</file_name>
        <cmdline>--config container_config.xml</cmdline>
        <cleanup_cmdline>--cleanup</cleanup_cmdline>
        <requires><hypervisor><name>podman</name><version>&gt;=4.0.0</version></hypervisor><arch>x86_64</arch></requires>
    </manager>
    <manager>
        <name>qemu-tcg</name>
        <file_name>manager</file_name>
        <cmdline>--config vm_config.xml</cmdline>
        <requires><hypervisor><name>qemu</name></hypervisor></requires>
    </manager>
    <requires><min_ram_mb>512</min_ram_mb></requires>
</alt_platform>`;

const hv = (name: HypervisorInfo['name'], version: string | null, extra: Partial<HypervisorInfo> = {}): HypervisorInfo =>
  ({ name, path: version ? `/usr/bin/${name}` : null, version, raw: version ? `${name} version ${version}` : '', ...extra });

function host(o: { kvm?: boolean; qemu?: boolean; podman?: boolean; docker?: boolean; ram?: number }): HostInfo {
  return {
    os: 'linux', arch: 'x86_64', ramMb: o.ram ?? 8192,
    hwAccel: o.kvm ? { usable: true, detail: 'injected: /dev/kvm works' } : { usable: false, detail: 'injected: no usable KVM' },
    hypervisors: [hv('qemu', o.qemu === false ? null : '7.2.0'), hv('virtualbox', null), hv('vmware', null),
      o.docker ? hv('docker', '26.1.3') : hv('docker', null), hv('podman', o.podman === false ? null : '4.3.1')],
  };
}

describe('the definition with several managers', () => {
  it('reads each backend: name, file, cmdline, cleanup_cmdline, its own requires; the first is `manager`', () => {
    const parsed = parseDefinition(THREE, { dir: '/d/p', folderName: 'p' });
    expect(parsed.reasons).toEqual([]);
    const def = parsed.definition!;
    expect(def.managers!.map((m) => m.name)).toEqual(['qemu-kvm', 'podman', 'qemu-tcg']);
    expect(def.manager).toBe(def.managers![0]);
    expect(def.managers![1]).toMatchObject({ fileName: 'container_manager', cmdline: '--config container_config.xml', cleanupCmdline: '--cleanup' });
    expect(def.managers![1]!.requires).toEqual({ hypervisors: [{ name: 'podman', versionRange: '>=4.0.0' }], arch: ['x86_64'], hwAccel: false });
    expect(def.managers![0]!.requires!.hwAccel).toBe(true);
    expect(def.requires).toEqual({ hypervisors: [], arch: [], hwAccel: false, minRamMb: 512 });
  });

  it('a single manager reads as before (one backend, its name derived from the required hypervisor)', () => {
    const one = `<alt_platform><name>p</name><version>1.0.0</version><manager><file_name>m</file_name><cmdline>-x</cmdline></manager>
      <requires><hypervisor><name>qemu</name></hypervisor></requires></alt_platform>`;
    const def = parseDefinition(one, { dir: '/d/p', folderName: 'p' }).definition!;
    expect(def.manager).toEqual({ fileName: 'm', cmdline: '-x' });
    expect(def.managers).toEqual([def.manager]);
    expect(chooseBackend(def, host({})).choice).toEqual({ chosen: 'qemu', candidates: [{ name: 'qemu', status: 'chosen', reasons: [] }] });
    const bare = parseDefinition('<alt_platform><name>p</name><version>1.0.0</version><manager><file_name>m</file_name></manager></alt_platform>', { dir: '/d/p' });
    expect(bare.managerNames).toEqual(['default']);
  });

  it('refuses two backends of one name and a bad per-backend requirement', () => {
    const dup = THREE.replace('<name>qemu-tcg</name>', '<name>podman</name>');
    expect(parseDefinition(dup, { dir: '/d/p' }).reasons.map((r) => r.code)).toEqual(['DEF_DUPLICATE_ELEMENT']);
    const badRange = THREE.replace('&gt;=4.0.0', 'four');
    expect(parseDefinition(badRange, { dir: '/d/p' }).reasons.map((r) => r.code)).toEqual(['DEF_BAD_RANGE']);
    const noFile = THREE.replace('<file_name>container_manager</file_name>', '');
    expect(parseDefinition(noFile, { dir: '/d/p' }).reasons.map((r) => r.code)).toEqual(['DEF_MISSING_ELEMENT']);
  });
});

describe('choosing the backend', () => {
  const def = parseDefinition(THREE, { dir: '/d/p', folderName: 'p' }).definition!;
  const pick = (h: HostInfo, order?: string[]) => chooseBackend(def, h, order).choice;

  it('the first whose requirements hold: KVM where usable, else Podman, else QEMU under TCG', () => {
    expect(pick(host({ kvm: true })).chosen).toBe('qemu-kvm');
    const here = pick(host({ kvm: false }));
    expect(here.chosen).toBe('podman');
    expect(here.candidates).toEqual([
      { name: 'qemu-kvm', status: 'unsupported', reasons: [expect.objectContaining({ code: 'REQ_HW_ACCEL' })] },
      { name: 'podman', status: 'chosen', reasons: [] },
      { name: 'qemu-tcg', status: 'ok', reasons: [] },
    ]);
    expect(pick(host({ podman: false })).chosen).toBe('qemu-tcg');
    const none = pick(host({ podman: false, qemu: false }));
    expect(none.chosen).toBeNull();
    expect(none.candidates.map((c) => [c.name, c.status, c.reasons.map((r) => r.code)])).toEqual([
      ['qemu-kvm', 'unsupported', ['REQ_HYPERVISOR_MISSING', 'REQ_HW_ACCEL']],
      ['podman', 'unsupported', ['REQ_HYPERVISOR_MISSING']],
      ['qemu-tcg', 'unsupported', ['REQ_HYPERVISOR_MISSING']],
    ]);
    // An old podman is named with the version found.
    const old = host({});
    old.hypervisors[4] = hv('podman', '3.4.4');
    expect(pick(old).candidates[1]!.reasons[0]!.message).toMatch(/found podman 3\.4\.4/);
  });

  it('the volunteer order puts named backends first; a backend that cannot run stays out; unknown names are ignored', () => {
    expect(pick(host({ kvm: false }), ['qemu-tcg']).chosen).toBe('qemu-tcg');
    expect(pick(host({ kvm: false }), ['qemu-tcg']).candidates.map((c) => c.name)).toEqual(['qemu-tcg', 'qemu-kvm', 'podman']);
    expect(pick(host({ kvm: false }), ['qemu-kvm', 'nonesuch']).chosen).toBe('podman');
    expect(chooseBackend(def, host({ kvm: true }), { p: ['podman'], '*': ['qemu-tcg'] }).choice.chosen).toBe('podman');
    expect(chooseBackend(def, host({ kvm: true }), { other: ['podman'], '*': ['qemu-tcg'] }).choice.chosen).toBe('qemu-tcg');
  });

  it('a docker backend is chosen where a docker daemon answers (injected: no daemon on these machines)', () => {
    const withDocker = parseDefinition(THREE.replace('<name>podman</name>\n        <file_name>', '<name>docker</name>\n        <file_name>')
      .replace('<name>podman</name><version>&gt;=4.0.0</version>', '<name>docker</name>'), { dir: '/d/p' }).definition!;
    expect(chooseBackend(withDocker, host({ docker: true, podman: false }), undefined).choice.chosen).toBe('docker');
    expect(chooseBackend(withDocker, host({ docker: false, podman: true, qemu: false }), undefined).choice.chosen).toBeNull();
  });
});

describe('the real probes and discovery of the reference platform', () => {
  it('podman is found and answers here; docker without a daemon is found but cannot be used', async () => {
    const podman = await probeHypervisor('podman', 'x86_64', 10_000);
    expect(podman).toMatchObject({ name: 'podman', version: expect.stringMatching(/^4\./) });
    expect(podman.error).toBeUndefined();
    const docker = await probeHypervisor('docker', 'x86_64', 10_000);
    // (a docker client exists on some of these machines, never a daemon)
    if (docker.path !== null) expect(docker.error).toBeDefined();
  });

  it('discovery picks Podman for the x86-64 reference platform here; the order file reorders; list --json shows it', async () => {
    const dataDir = path.join(tmp, 'ref');
    installReferencePlatform(dataDir, 'x86_64-pc-linux-gnu', null);
    // The one injected probe: KVM is unusable on these machines (see the file comment).
    const probes = { hwAccel: async () => ({ usable: false, detail: 'injected: KVM here is an emulator' }) };
    const r = await discoverPlatforms({ dataDir, hostPlatforms: ['windows_x86_64'], probes, probeCache: false });
    const p = r.platforms.find((x) => x.name === 'x86_64-pc-linux-gnu')!;
    expect(p.status).toBe('ok');
    expect(p.backend!.chosen).toBe('podman');
    expect(p.definition!.manager.fileName).toBe('container_manager');
    expect(p.manager).toBe(path.join(fs.realpathSync(dataDir), 'alt_platforms', 'x86_64-pc-linux-gnu', 'container_manager'));
    const json = discoveryToJson(r).platforms.find((x) => x.name === 'x86_64-pc-linux-gnu')!;
    expect(json.backend).toEqual({
      chosen: 'podman',
      candidates: [
        { name: 'qemu-kvm', status: 'unsupported', reasons: [{ code: 'REQ_HW_ACCEL', message: expect.stringContaining('injected') }] },
        { name: 'podman', status: 'chosen', reasons: [] },
        { name: 'qemu-tcg', status: 'ok', reasons: [] },
      ],
    });

    fs.mkdirSync(path.join(dataDir, 'altplat'), { recursive: true });
    fs.writeFileSync(path.join(dataDir, 'altplat', 'backend_order.json'), '{"x86_64-pc-linux-gnu": ["qemu-tcg"]}\n');
    const r2 = await discoverPlatforms({ dataDir, hostPlatforms: ['windows_x86_64'], probes, probeCache: false });
    expect(r2.platforms.find((x) => x.name === 'x86_64-pc-linux-gnu')!.backend!.chosen).toBe('qemu-tcg');
    expect(r2.platforms.find((x) => x.name === 'x86_64-pc-linux-gnu')!.definition!.manager.fileName).toBe('manager');
    // The API option wins over the file.
    const r3 = await discoverPlatforms({ dataDir, hostPlatforms: ['windows_x86_64'], probes, probeCache: false, backendOrder: ['podman'] });
    expect(r3.platforms.find((x) => x.name === 'x86_64-pc-linux-gnu')!.backend!.chosen).toBe('podman');

    // The CLI reads the same file (its probes are the real ones: whatever it chooses, it says so).
    const { stdout } = await run(process.execPath, ['--import', 'tsx', path.resolve('src/cli/main.ts'), 'list', '--json', '--data-dir', dataDir, '--host-platform', 'windows_x86_64']);
    const listed = JSON.parse(stdout).platforms.find((x: { name: string }) => x.name === 'x86_64-pc-linux-gnu');
    expect(listed.backend.chosen).toBe('qemu-tcg');
    expect(listed.backend.candidates.map((c: { name: string }) => c.name)).toEqual(['qemu-tcg', 'qemu-kvm', 'podman']);

    fs.writeFileSync(path.join(dataDir, 'altplat', 'backend_order.json'), 'podman first please');
    const r4 = await discoverPlatforms({ dataDir, hostPlatforms: ['windows_x86_64'], probes, probeCache: false });
    expect(r4.platforms.find((x) => x.name === 'x86_64-pc-linux-gnu')!.backend!.chosen).toBe('podman');
    expect(r4.warnings.join('\n')).toMatch(/backend_order\.json is not a JSON list/);
  }, 60_000);

  it('a platform none of whose backends can run is unsupported, each backend named in the reasons', async () => {
    const dataDir = path.join(tmp, 'none');
    installReferencePlatform(dataDir, 'x86_64-pc-linux-gnu', null);
    const r = await discoverPlatforms({ dataDir, hostPlatforms: ['windows_x86_64'], host: host({ qemu: false, podman: false }) });
    const p = r.platforms.find((x) => x.name === 'x86_64-pc-linux-gnu')!;
    expect(p.status).toBe('unsupported');
    expect(p.backend!.chosen).toBeNull();
    expect(p.reasons.map((x) => x.message)).toEqual([
      expect.stringMatching(/^backend qemu-kvm: needs qemu/), expect.stringMatching(/^backend qemu-kvm: needs hardware/),
      expect.stringMatching(/^backend podman: needs podman/), expect.stringMatching(/^backend qemu-tcg: needs qemu/),
    ]);
    expect(r.advertised).toEqual([]);
  }, 60_000);
});
