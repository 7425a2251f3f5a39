import { execFileSync } from 'node:child_process';
import { promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  baselineEnvFor, DEFAULT_CPU_MODEL, DEFAULT_MACHINE_TYPE, GLIBC_BASELINE_TUNABLES, cpuModelProblem, glibcTunablesFor, machineTypeProblem,
} from '../src/definition/cpu-baseline.js';
import { parseDefinition } from '../src/definition/parse.js';
import { parseJob, serializeJob, type JobDescription } from '../src/job/jobfile.js';
import { createOverlay, qemuArgs, startVm, type StartOptions } from '../src/manager/qemu.js';
import { parseVmConfig } from '../src/manager/vm-config.js';
import { Batch } from './lifecycle-helpers.js';
import { installReferencePlatform, makeQemuReply, seedBootStates, platformConfig, QEMU_PROJECT, qemuPidsTagged, REPO, writeQemuReply } from './qemu-fixture.js';

/**
 * The platform's one virtual CPU (docs/HOMOGENEITY.md): declared in alt_platform.xml, checked, carried in
 * the job file, and given to QEMU as `-cpu MODEL,enforce` and `-M TYPE` whatever the accelerator. KVM
 * cannot run here, so its arguments are checked as built; TCG refusing a model it cannot provide runs for
 * real (QEMU exits before booting anything).
 */
let tmp: string;
beforeAll(async () => { tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-cpu-')); });
afterAll(async () => { await fsp.rm(tmp, { recursive: true, force: true }); });

const def = (manager: string) => `<alt_platform>\n<name>p</name>\n<version>1.0.0</version>\n<manager><file_name>manager</file_name>${manager}</manager>\n</alt_platform>\n`;
const parse = (manager: string) => parseDefinition(def(manager), { dir: '/d/alt_platforms/p', folderName: 'p' });

describe('<manager><cpu_model> and <machine_type> in alt_platform.xml', () => {
  it('are read (trimmed) into the manager definition and the listing fields', () => {
    const p = parse('<cpu_model> Nehalem-v1 </cpu_model><machine_type>pc-q35-7.2</machine_type>');
    expect(p.reasons).toEqual([]);
    expect(p.definition?.manager).toEqual({ fileName: 'manager', cmdline: '', cpuModel: 'Nehalem-v1', machineType: 'pc-q35-7.2' });
    expect([p.cpuModel, p.machineType]).toEqual(['Nehalem-v1', 'pc-q35-7.2']);
    expect(p.warnings).toEqual([]);
  });

  it('are optional: absent means the manager\'s default', () => {
    const p = parse('');
    expect(p.definition?.manager).toEqual({ fileName: 'manager', cmdline: '' });
  });

  it.each([
    ['Nehalem-v1,+avx2', 'options'], ['Nehalem-v1,enforce=off', 'options'], ['a=b', 'options'], ['', '1 to 64'],
    ['-cpu', 'starting with a letter'], ['Nehalem v1', 'options'], ['x'.repeat(65), '1 to 64'],
    ['host', 'not one fixed CPU'], ['MAX', 'not one fixed CPU'],
  ])('cpu_model "%s" is DEF_BAD_CPU_MODEL (%s)', (value, says) => {
    const p = parse(`<cpu_model>${value}</cpu_model>`);
    expect(p.definition).toBeUndefined();
    expect(p.reasons.map((r) => r.code)).toEqual(['DEF_BAD_CPU_MODEL']);
    expect(p.reasons[0]!.message).toContain(says);
  });

  it.each(['pc-q35-7.2,accel=kvm', 'q35 ', '', 'help', '=x'])('machine_type "%s" is DEF_BAD_MACHINE_TYPE', (value) => {
    const p = parse(`<machine_type>${value}</machine_type>`);
    expect(p.reasons.map((r) => r.code)).toEqual(value === 'q35 ' ? [] : ['DEF_BAD_MACHINE_TYPE']);
  });

  it('a repeated or nested one is refused like any element', () => {
    expect(parse('<cpu_model>Nehalem-v1</cpu_model><cpu_model>qemu64</cpu_model>').reasons.map((r) => r.code)).toEqual(['DEF_DUPLICATE_ELEMENT']);
    expect(parse('<cpu_model><x/></cpu_model>').reasons.map((r) => r.code)).toEqual(['DEF_BAD_VALUE']);
  });

  it('named QEMU models of every vendor pass; the problem helpers agree with the parser', () => {
    for (const m of ['Nehalem-v1', 'qemu64', 'EPYC-Rome-v2', 'Skylake-Client-IBRS', 'core2duo-v1', 'Westmere']) expect(cpuModelProblem(m)).toBeUndefined();
    for (const m of ['pc-q35-7.2', 'pc-i440fx-7.2', 'q35']) expect(machineTypeProblem(m)).toBeUndefined();
  });

  it('the reference platforms declare Nehalem-v1 on pc-q35-7.2, both x86-64 and i686', () => {
    for (const p of ['x86_64-pc-linux-gnu', 'i686-pc-linux-gnu']) {
      const text = readFileSync(path.join(REPO, 'alt_platforms', p, 'alt_platform.xml.in'), 'utf8').replace('@FILES@', '');
      const parsed = parseDefinition(text, { dir: '/x', folderName: p });
      expect(parsed.reasons).toEqual([]);
      expect(parsed.definition?.manager).toMatchObject({ cpuModel: 'Nehalem-v1', machineType: 'pc-q35-7.2' });
      const vm = parseVmConfig(readFileSync(path.join(REPO, 'alt_platforms', p, 'vm_config.xml'), 'utf8'), '/x');
      expect([vm.cpuModel, vm.machine]).toEqual(['Nehalem-v1', 'pc-q35-7.2']);
    }
  });
});

describe('the job file carries the model to the manager', () => {
  const job: JobDescription = {
    platform: 'p', resultName: 'r', wuName: 'w', appName: 'a', workingDir: '/wc', mainProgram: 'main', commandLine: '',
    appFiles: [], inputs: [], outputs: [], rscFpopsEst: 1, flops: 1,
  };
  it('<cpu_model> and <machine_type> round-trip, and are absent when the definition gives none', () => {
    const text = serializeJob({ ...job, cpuModel: 'Nehalem-v1', machineType: 'pc-q35-7.2' });
    expect(text).toContain('    <cpu_model>Nehalem-v1</cpu_model>\n    <machine_type>pc-q35-7.2</machine_type>\n</altplat_job>');
    expect(parseJob(text)).toEqual({ ...job, cpuModel: 'Nehalem-v1', machineType: 'pc-q35-7.2' });
    expect(serializeJob(job)).not.toContain('cpu_model');
    expect(parseJob(serializeJob(job))).toEqual(job);
  });
});

describe('vm_config.xml: only a fallback, with the documented defaults', () => {
  const base = '<qemu_vm><kernel>k</kernel><initrd>i</initrd><base_disk>b</base_disk>';
  it('defaults to Nehalem-v1 and pc-q35-7.2', () => {
    const c = parseVmConfig(`${base}</qemu_vm>`, '/x');
    expect([c.cpuModel, c.machine]).toEqual([DEFAULT_CPU_MODEL, DEFAULT_MACHINE_TYPE]);
    expect([DEFAULT_CPU_MODEL, DEFAULT_MACHINE_TYPE]).toEqual(['Nehalem-v1', 'pc-q35-7.2']);
  });
  it('refuses a model QEMU would read as options', () => {
    expect(() => parseVmConfig(`${base}<cpu_model>max,+avx</cpu_model></qemu_vm>`, '/x')).toThrow(expect.objectContaining({ code: 'VMCONFIG_BAD_VALUE' }));
    expect(() => parseVmConfig(`${base}<machine>q35,accel=kvm</machine></qemu_vm>`, '/x')).toThrow(expect.objectContaining({ code: 'VMCONFIG_BAD_VALUE' }));
  });
});

describe('qemuArgs: the same -cpu and -M under KVM and TCG', () => {
  const opt = (cfg: Awaited<ReturnType<typeof platformConfig>>, accel: 'kvm' | 'tcg'): StartOptions =>
    ({ config: cfg, runDir: tmp, overlay: path.join(tmp, 'o.qcow2'), task: 't', accel });
  const value = (args: string[], flag: string) => args.filter((_, i) => args[i - 1] === flag);

  it('-cpu Nehalem-v1,enforce and -M pc-q35-7.2 for accel kvm and tcg; only -accel differs', async () => {
    const cfg = await platformConfig();
    const kvm = qemuArgs(opt(cfg, 'kvm'), '/s');
    const tcg = qemuArgs(opt(cfg, 'tcg'), '/s');
    for (const args of [kvm, tcg]) {
      expect(value(args, '-cpu')).toEqual(['Nehalem-v1,enforce']);
      expect(value(args, '-M')).toEqual(['pc-q35-7.2']);
      expect(args).not.toContain('host');
      expect(args).not.toContain('max');
    }
    expect(value(kvm, '-accel')).toEqual(['kvm']);
    expect(value(tcg, '-accel')).toEqual(['tcg']);
    expect(kvm.map((a) => (a === 'kvm' ? 'tcg' : a))).toEqual(tcg);
  });

  it('another model and machine type from the definition are used as they are, still enforced', async () => {
    const cfg = { ...(await platformConfig()), cpuModel: 'EPYC-Rome-v2', machine: 'pc-q35-7.1' };
    for (const accel of ['kvm', 'tcg'] as const) {
      const args = qemuArgs(opt(cfg, accel), '/s');
      expect([value(args, '-cpu'), value(args, '-M')]).toEqual([['EPYC-Rome-v2,enforce'], ['pc-q35-7.1']]);
    }
  });
});

describe('a model the accelerator cannot provide: a clear reason, never another model', () => {
  it.each([
    ['Skylake-Client-v1', DEFAULT_MACHINE_TYPE, 'VM_CPU_MODEL_UNAVAILABLE', /TCG cannot provide the platform's CPU model Skylake-Client-v1 \(CPUID\.\w+:\w+\.[\w.-]+ \[bit \d+\]/],
    // A QEMU without the model or machine type says so itself (quoted in VM_EXITED).
    ['Bogus-v9', DEFAULT_MACHINE_TYPE, 'VM_EXITED', /unable to find CPU model 'Bogus-v9'/],
    [DEFAULT_CPU_MODEL, 'pc-q35-99.0', 'VM_EXITED', /unsupported machine type/],
  ])('-cpu %s,enforce -M %s under TCG: %s', async (cpuModel, machine, code, message) => {
    const cfg = { ...(await platformConfig()), cpuModel, machine };
    const overlay = path.join(tmp, `${cpuModel}_${machine}.qcow2`);
    await createOverlay(overlay, cfg.baseDisk);
    const err = await startVm({ config: cfg, runDir: tmp, overlay, task: `cpu_${cpuModel}`, accelOverride: 'tcg' }).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code });
    expect((err as Error).message).toMatch(message);
    expect(qemuPidsTagged(`cpu_${cpuModel}`)).toEqual([]);
  });

  it('through `altplat run`: the definition\'s model reaches QEMU through the job file; the task fails saying why', async () => {
    const d = path.join(tmp, 'run');
    const dir = installReferencePlatform(d, 'x86_64-pc-linux-gnu');
    const defFile = path.join(dir, 'alt_platform.xml');
    writeFileSync(defFile, readFileSync(defFile, 'utf8').replaceAll('<cpu_model>Nehalem-v1</cpu_model>', '<cpu_model>Skylake-Client-v1</cpu_model>'));
    const reply = makeQemuReply([{ result: 'cpu_skylake', platform: 'x86_64-pc-linux-gnu', program: Buffer.from('#!/bin/sh\necho hi\n') }]);
    const { replyFile, filesDir } = writeQemuReply(d, reply);
    const list = JSON.parse(execFileSync('node', [path.join(REPO, 'dist/src/cli/main.js'), 'list', '--json', '--data-dir', d, '--host-platform', 'windows_x86_64'], { encoding: 'utf8' })) as
      { platforms: Array<{ name: string; cpuModel: string | null; machineType: string | null }> };
    expect(list.platforms.find((p) => p.name === 'x86_64-pc-linux-gnu')).toMatchObject({ cpuModel: 'Skylake-Client-v1', machineType: 'pc-q35-7.2' });
    let stdout: string;
    try {
      stdout = execFileSync('node', [path.join(REPO, 'dist/src/cli/main.js'), 'run', '--json', '--data-dir', d, '--host-platform', 'windows_x86_64', '--files', filesDir, replyFile],
        { encoding: 'utf8', env: { ...process.env, ALTPLAT_ACCEL: 'tcg' } });
    } catch (e) {
      stdout = (e as { stdout: string }).stdout;
    }
    const res = (JSON.parse(stdout) as { results: Array<{ outcome: string; stderr: string }> }).results[0]!;
    expect(res.outcome).toBe('compute_error');
    expect(res.stderr).toContain('virtual CPU Skylake-Client-v1 (enforced), machine pc-q35-7.2');
    expect(res.stderr).toMatch(/VM_CPU_MODEL_UNAVAILABLE: TCG cannot provide the platform's CPU model Skylake-Client-v1/);
    expect(qemuPidsTagged('cpu_skylake')).toEqual([]);
  }, 120_000);
});

describe('a checkpoint belongs to the CPU model it was taken on', () => {
  it('quit keeps a checkpoint recorded with its model; after the platform changes model the task starts over, on the new model', async () => {
    const d = path.join(tmp, 'ckpt');
    const dir = installReferencePlatform(d, 'x86_64-pc-linux-gnu');
    await seedBootStates(d);
    await fsp.writeFile(path.join(d, 'global_prefs_override.xml'), '<global_preferences>\n   <disk_interval>1</disk_interval>\n</global_preferences>\n');
    const counter = Buffer.from('#!/bin/sh\ni=0\nwhile [ $i -lt 30 ]; do i=$((i+1)); echo "step $i"; usleep 100000; done\n');
    const { replyFile, filesDir } = writeQemuReply(d, makeQemuReply([{ result: 'cpu_ckpt', platform: 'x86_64-pc-linux-gnu', program: counter }]));
    const stateFile = path.join(d, 'slots', '0', 'altplat_manager_state.json');
    const state = () => { try { return JSON.parse(readFileSync(stateFile, 'utf8')) as { checkpoint?: string; cpuModel?: string; machine?: string }; } catch { return undefined; } };
    const lc = new Batch({ dataDir: d, hostPlatforms: ['windows_x86_64'], pollMs: 200 });
    const first = lc.run({ replyFile, filesDir });
    const deadline = Date.now() + 60_000;
    while (!state()?.checkpoint && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(state()).toMatchObject({ checkpoint: expect.stringMatching(/^altplat-ckpt-/), cpuModel: 'Nehalem-v1', machine: 'pc-q35-7.2' });
    await lc.control('cpu_ckpt', 'quit');
    expect((await first).results[0]).toMatchObject({ outcome: 'quit' });

    const defFile = path.join(dir, 'alt_platform.xml');
    writeFileSync(defFile, readFileSync(defFile, 'utf8').replaceAll('<cpu_model>Nehalem-v1</cpu_model>', '<cpu_model>Westmere-v1</cpu_model>'));
    const { results } = await new Batch({ dataDir: d, hostPlatforms: ['windows_x86_64'], pollMs: 200 }).run({});
    expect(results[0], results[0]?.stderr).toMatchObject({ name: 'cpu_ckpt', outcome: 'success', exitStatus: 0 });
    expect(results[0]!.stderr).toMatch(/checkpoint altplat-ckpt-[ab] was taken on Nehalem-v1\/pc-q35-7\.2, the platform now runs Westmere-v1\/pc-q35-7\.2; starting over/);
    expect(results[0]!.stderr).not.toContain('restored checkpoint');
    expect(results[0]!.stderr).toContain('virtual CPU Westmere-v1 (enforced), machine pc-q35-7.2');
    expect(readFileSync(path.join(d, 'projects', QEMU_PROJECT, 'cpu_ckpt_stdout_txt'), 'utf8')).toBe(`${Array.from({ length: 30 }, (_, i) => `step ${i + 1}`).join('\n')}\n`);
    expect(qemuPidsTagged('cpu_ckpt')).toEqual([]);
  }, 180_000);
});

describe('the glibc baseline for backends that cannot hide the host CPU', () => {
  it('is one GLIBC_TUNABLES value for current and older glibc, joined with what is already set', () => {
    expect(GLIBC_BASELINE_TUNABLES).toBe('glibc.cpu.hwcaps=-AVX,-AVX2,-FMA,-FMA4,-AVX512F,-AVX512CD,-AVX512BW,-AVX512DQ,-AVX512ER,-AVX512PF,-AVX512VL,'
      + '-BMI1,-BMI2,-LZCNT,-MOVBE,-AVX_Usable,-AVX2_Usable,-FMA_Usable,-FMA4_Usable,-AVX512F_Usable,-AVX512DQ_Usable'
      + ':glibc.tune.hwcaps=-AVX_Usable,-AVX2_Usable,-FMA_Usable,-FMA4_Usable,-AVX512F_Usable,-AVX512DQ_Usable');
    expect(glibcTunablesFor('Nehalem-v1')).toBe(GLIBC_BASELINE_TUNABLES);
    expect(glibcTunablesFor('Nehalem-v1', 'glibc.malloc.check=3')).toBe(`glibc.malloc.check=3:${GLIBC_BASELINE_TUNABLES}`);
    expect(glibcTunablesFor('Bogus-v9')).toBeUndefined();
    expect(baselineEnvFor('Nehalem-v1')).toEqual({ GLIBC_TUNABLES: GLIBC_BASELINE_TUNABLES, OPENBLAS_CORETYPE: 'NEHALEM', MKL_ENABLE_INSTRUCTIONS: 'SSE4_2' });
    expect(baselineEnvFor('qemu64')).toBeUndefined();
  });

  it('this glibc reads it: ld.so lists the masked hwcaps', () => {
    const out = execFileSync('/lib64/ld-linux-x86-64.so.2', ['--list-tunables'], { encoding: 'utf8', env: { ...process.env, GLIBC_TUNABLES: GLIBC_BASELINE_TUNABLES } });
    expect(out).toMatch(/^glibc\.cpu\.hwcaps: -AVX,-AVX2,-FMA,/m);
  });
});
