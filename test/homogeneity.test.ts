import { execFileSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CPU_MODEL, GLIBC_BASELINE_TUNABLES, NEHALEM_GLIBC_HWCAPS } from '../src/definition/cpu-baseline.js';
import { buildPlainC } from './helpers/boinc-c.js';
import { buildPi, installReferencePlatform, makeQemuReply, seedBootStates, PLATFORM_DIR, qemuPidsTagged, REPO, writeQemuReply } from './qemu-fixture.js';

/**
 * The homogeneity corpus (docs/HOMOGENEITY.md): programs whose output depends on the code paths the CPU
 * makes libraries pick — the paper's Appendix A builds (x87 vs SSE), a libm-heavy program built static
 * and dynamic, 64- and 32-bit, and a CPUID reader — run natively on this host, natively with glibc held to
 * the platform's baseline (GLIBC_TUNABLES), and through each backend of the reference platforms. Which
 * runs must agree bit for bit:
 *   - every backend's run  == native at the baseline (static and dynamic libm, 64- and 32-bit);
 *   - the paper's builds   == native, byte for byte (x87 and SSE);
 *   - on a host with AVX2+FMA, native unpinned != native at the baseline (the heterogeneity removed);
 *   - the CPUID the guest program reads == what QEMU says the platform's model has, with none of
 *     AVX/AVX2/FMA/FMA4/AVX-512 and none of the features the baseline tunable masks.
 * Backends: the QEMU platform (TCG here) and the container backend (Podman; the x86-64 platform only, which
 * is the one that offers it; the container shows the host's CPUID, so the CPUID checks are the VM's).
 * Two VM boots in all: one task per reference platform runs every program of that platform.
 */
const CLI = path.join(REPO, 'dist', 'src', 'cli', 'main.js');
const C = path.join(REPO, 'test', 'c');
const TAG = 'homog_';
const X64 = 'x86_64-pc-linux-gnu';
const I686 = 'i686-pc-linux-gnu';

interface Backend { name: string; hostPlatform: string; order: string[]; platforms: string[] }
const BACKENDS: Backend[] = [
  { name: 'qemu', hostPlatform: 'windows_x86_64', order: ['qemu-kvm', 'qemu-tcg'], platforms: ['x86_64-pc-linux-gnu', 'i686-pc-linux-gnu'] },
  { name: 'podman', hostPlatform: 'windows_x86_64', order: ['podman'], platforms: ['x86_64-pc-linux-gnu'] },
];

/** The programs, by name in the guest; what each platform's task runs. */
const BUILDS = {
  libm_s64: { src: 'libm_hash.c', flags: ['-O2', '-static'] },
  libm_d64: { src: 'libm_hash.c', flags: ['-O2'] },
  libm_s32: { src: 'libm_hash.c', flags: ['-m32', '-O2', '-static'] },
  cpuid_s64: { src: 'cpuid_leaves.c', flags: ['-O2', '-static'] },
  cpuid_s32: { src: 'cpuid_leaves.c', flags: ['-m32', '-O2', '-static'] },
} as const;
type Prog = keyof typeof BUILDS | 'pi_sse' | 'pi_x87';
const TASKS: Record<string, Prog[]> = {
  // 32-bit programs run on the x86-64 platform too (its kernel runs them); the dynamic 32-bit build has no
  // loader in the guest, so 32-bit is static only.
  [X64]: ['libm_s64', 'libm_d64', 'libm_s32', 'cpuid_s64', 'pi_sse'],
  [I686]: ['libm_s32', 'cpuid_s32', 'pi_x87'],
};

/** A guest shell script that runs each program in turn, its output after a `=== name` line. */
function runner(progs: Prog[]): Buffer {
  return Buffer.from(`#!/bin/sh\nfor p in ${progs.join(' ')}; do\n  chmod 755 "./$p"\n  echo "=== $p"\n  "./$p" || echo "=== exit $p $?"\ndone\n`);
}

/**
 * The double-precision functions 32-bit glibc computes with x87 transcendental instructions (FSIN, FPTAN,
 * FPATAN, FYL2X, F2XM1: sysdeps/i386/fpu), which TCG emulates in software; its last bits are not the
 * hardware's for some inputs (pow, atan and exp2 here). The float functions use SSE2 and must agree.
 */
const X87_TCG = ['exp', 'log', 'pow', 'sin', 'cos', 'tan', 'atan', 'atan2', 'asin', 'exp2', 'all'];
const last = (out: string) => out.trimEnd().split('\n').at(-1)?.split(/\s+/)[1] ?? '(none)';
/** Names of the hash lines that differ between two libm_hash outputs. */
function differing(a: string, b: string): string[] {
  const bl = b.split('\n');
  return a.split('\n').filter((l, i) => l !== bl[i]).map((l) => l.split(/\s+/)[0]!);
}

function sections(out: string): Record<string, string> {
  const res: Record<string, string> = {};
  for (const part of out.split(/^=== /m).slice(1)) {
    const nl = part.indexOf('\n');
    res[part.slice(0, nl)] = part.slice(nl + 1);
  }
  return res;
}

const bins: Partial<Record<Prog, string>> = {};
const native: Record<string, string> = {};
const baseline: Record<string, string> = {};
/** backend → platform → program → output */
const through: Record<string, Record<string, Record<string, string>>> = {};
let work: string;

function run(bin: string, tunables?: string): string {
  const env = { ...process.env };
  delete env.GLIBC_TUNABLES;
  if (tunables) env.GLIBC_TUNABLES = tunables;
  return execFileSync(bin, { env, encoding: 'utf8' });
}

const hostFlags = new Set((readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) ?? '').split(/\s+/));
const hostHasAvx2Fma = hostFlags.has('avx2') && hostFlags.has('fma');

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-homog-'));
  for (const [name, b] of Object.entries(BUILDS)) bins[name as Prog] = await buildPlainC(path.join(C, b.src), [...b.flags]);
  bins.pi_sse = buildPi('sse');
  bins.pi_x87 = buildPi('x87');
  for (const [name, bin] of Object.entries(bins)) {
    native[name] = run(bin);
    baseline[name] = run(bin, GLIBC_BASELINE_TUNABLES);
  }
  for (const backend of BACKENDS) {
    const d = path.join(work, backend.name);
    for (const p of backend.platforms) installReferencePlatform(d, p, backend.order);
    await seedBootStates(d);
    const reply = makeQemuReply(Object.entries(TASKS).filter(([platform]) => backend.platforms.includes(platform)).map(([platform, progs]) => ({
      result: `${TAG}${backend.name}_${platform.split('-')[0]}`, platform, program: runner(progs),
      inputs: progs.map((p) => ({ openName: p, content: readFileSync(bins[p]!) })),
    })));
    const { replyFile, filesDir } = writeQemuReply(d, reply);
    const r = JSON.parse(execFileSync('node', [CLI, 'run', '--json', '--max-tasks', '2', '--data-dir', d,
      '--host-platform', backend.hostPlatform, '--files', filesDir, replyFile], { encoding: 'utf8' })) as
      { results: Array<{ name: string; platform: string; outcome: string; outputs: Array<{ path: string }>; stderr: string }> };
    through[backend.name] = {};
    for (const res of r.results) {
      expect(res.outcome, res.stderr).toBe('success');
      expect(res.stderr).toContain(backend.name === 'qemu' ? `virtual CPU ${DEFAULT_CPU_MODEL} (enforced), machine pc-q35-7.2`
        : `glibc held to the virtual CPU ${DEFAULT_CPU_MODEL}`);
      through[backend.name]![res.platform] = sections(readFileSync(res.outputs[0]!.path, 'utf8'));
    }
  }
}, 400_000);

afterAll(async () => {
  expect(qemuPidsTagged(TAG)).toEqual([]);
  await fsp.rm(work, { recursive: true, force: true });
});

describe('homogeneity corpus: the same binary gives the same bits natively at the baseline and through every backend', () => {
  it('libm-heavy programs, static and dynamic, 64- and 32-bit: every backend == native with glibc held to the baseline', () => {
    const imageLibc = /^libc6=(.*)$/m.exec(readFileSync(path.join(PLATFORM_DIR, 'image', 'packages.txt'), 'utf8'))?.[1];
    const hostLibc = execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'libc6'], { encoding: 'utf8' });
    for (const backend of BACKENDS) {
      for (const [platform, progs] of Object.entries(TASKS).filter(([pl]) => backend.platforms.includes(pl))) {
        for (const p of progs.filter((x) => x.startsWith('libm_'))) {
          const got = through[backend.name]![platform]![p] ?? '';
          const differ = differing(got, baseline[p]!);
          console.log(`${backend.name} ${platform} ${p}: native ${last(native[p]!)}, at the baseline ${last(baseline[p]!)}, through the platform ${last(got)}${differ.length ? `; differs in ${differ.join(' ')}` : ''}`);
          if (p === 'libm_d64' && imageLibc !== hostLibc) {
            // A dynamic program uses the glibc it finds: the comparison needs the guest's to be this host's.
            console.log(`SKIP ${p} equality: the guest image has libc6 ${imageLibc}, this host ${hostLibc}`);
            continue;
          }
          if (p === 'libm_s32' && backend.name === 'qemu') {
            // 32-bit glibc computes these with the x87 transcendental instructions (FPATAN, FYL2X, F2XM1);
            // TCG emulates them in softfloat, whose last bits are not Intel's microcode's
            // (docs/HOMOGENEITY.md). Everything else must agree; under KVM the real x87 unit runs them.
            expect(differ.filter((f) => !X87_TCG.includes(f)), got).toEqual([]);
            continue;
          }
          expect(got, p).toBe(baseline[p]);
        }
      }
      // One binary, two platforms with the same virtual CPU: the same bits.
      if (backend.platforms.includes(I686)) expect(through[backend.name]![X64]!.libm_s32).toBe(through[backend.name]![I686]!.libm_s32);
    }
    // One dynamically linked libm program, the VM and the container: byte-identical output (both images
    // hold the same libc6, and glibc is held to the same CPU in both).
    expect(through.podman![X64]!.libm_d64).toBe(through.qemu![X64]!.libm_d64);
    expect(through.podman![X64]!.libm_s64).toBe(through.qemu![X64]!.libm_s64);
  });

  it('on a host with AVX2 and FMA, the unpinned native run differs (glibc picked its FMA variants)', () => {
    if (!hostHasAvx2Fma) {
      console.log('SKIP: this host has no AVX2+FMA, so glibc picks the baseline code natively as well; nothing to show');
      return;
    }
    for (const p of ['libm_s64', 'libm_d64'] as const) {
      expect(native[p], `${p}: native with FMA/AVX2 should differ from the baseline`).not.toBe(baseline[p]);
      // exp, pow, sin, cos ... differ; a function glibc has one variant of (e.g. expf) does not.
      const diff = native[p]!.split('\n').filter((l, i) => l !== baseline[p]!.split('\n')[i]).map((l) => l.split(/\s+/)[0]);
      console.log(`${p}: functions whose bits differ between AVX2/FMA and the baseline: ${diff.join(' ')}`);
      expect(diff).toContain('all');
    }
    // 32-bit glibc has no FMA/AVX2 libm variants: unpinned and pinned agree.
    expect(native.libm_s32).toBe(baseline.libm_s32);
    // The full value (with the names older glibc reads) holds this glibc exactly as the short form does.
    expect(run(bins.libm_s64!, 'glibc.cpu.hwcaps=-AVX,-AVX2,-FMA,-FMA4')).toBe(baseline.libm_s64);
  });

  it("the paper's Appendix A builds give in every backend what they give natively, byte for byte (x87 and SSE)", () => {
    for (const backend of BACKENDS) {
      expect(through[backend.name]![X64]!.pi_sse).toBe(native.pi_sse);
      if (backend.platforms.includes(I686)) expect(through[backend.name]![I686]!.pi_x87).toBe(native.pi_x87);
    }
    expect(native.pi_sse!.trimEnd().split('\n').at(-1)).toContain('est pi: 3.140592575');
    expect(native.pi_x87!.trimEnd().split('\n').at(-1)).toContain('est pi: 3.140592860');
  });
});

/** CPUID bits glibc's dispatch (and compilers' -march=native) read, by QEMU feature name. */
const BITS: Array<[leaf: string, reg: 'eax' | 'ebx' | 'ecx' | 'edx', bit: number, qemu: string]> = [
  ...(['fpu', 'vme', 'de', 'pse', 'tsc', 'msr', 'pae', 'mce', 'cx8', 'apic'] as const).map((n, i) => ['00000001.0', 'edx', i, n] as [string, 'edx', number, string]),
  ['00000001.0', 'edx', 15, 'cmov'], ['00000001.0', 'edx', 19, 'clflush'], ['00000001.0', 'edx', 23, 'mmx'],
  ['00000001.0', 'edx', 24, 'fxsr'], ['00000001.0', 'edx', 25, 'sse'], ['00000001.0', 'edx', 26, 'sse2'],
  ['00000001.0', 'ecx', 0, 'pni'], ['00000001.0', 'ecx', 1, 'pclmulqdq'], ['00000001.0', 'ecx', 9, 'ssse3'],
  ['00000001.0', 'ecx', 12, 'fma'], ['00000001.0', 'ecx', 13, 'cx16'], ['00000001.0', 'ecx', 19, 'sse4.1'],
  ['00000001.0', 'ecx', 20, 'sse4.2'], ['00000001.0', 'ecx', 21, 'x2apic'], ['00000001.0', 'ecx', 22, 'movbe'],
  ['00000001.0', 'ecx', 23, 'popcnt'], ['00000001.0', 'ecx', 25, 'aes'], ['00000001.0', 'ecx', 26, 'xsave'],
  ['00000001.0', 'ecx', 28, 'avx'], ['00000001.0', 'ecx', 29, 'f16c'], ['00000001.0', 'ecx', 30, 'rdrand'],
  ['00000001.0', 'ecx', 31, 'hypervisor'],
  ['00000007.0', 'ebx', 0, 'fsgsbase'], ['00000007.0', 'ebx', 3, 'bmi1'], ['00000007.0', 'ebx', 4, 'hle'],
  ['00000007.0', 'ebx', 5, 'avx2'], ['00000007.0', 'ebx', 7, 'smep'], ['00000007.0', 'ebx', 8, 'bmi2'],
  ['00000007.0', 'ebx', 9, 'erms'], ['00000007.0', 'ebx', 10, 'invpcid'], ['00000007.0', 'ebx', 11, 'rtm'],
  ['00000007.0', 'ebx', 16, 'avx512f'], ['00000007.0', 'ebx', 17, 'avx512dq'], ['00000007.0', 'ebx', 18, 'rdseed'],
  ['00000007.0', 'ebx', 19, 'adx'], ['00000007.0', 'ebx', 20, 'smap'], ['00000007.0', 'ebx', 21, 'avx512ifma'],
  ['00000007.0', 'ebx', 23, 'clflushopt'], ['00000007.0', 'ebx', 24, 'clwb'], ['00000007.0', 'ebx', 26, 'avx512pf'],
  ['00000007.0', 'ebx', 27, 'avx512er'], ['00000007.0', 'ebx', 28, 'avx512cd'], ['00000007.0', 'ebx', 29, 'sha-ni'],
  ['00000007.0', 'ebx', 30, 'avx512bw'], ['00000007.0', 'ebx', 31, 'avx512vl'],
  ['00000007.0', 'ecx', 1, 'avx512vbmi'], ['00000007.0', 'ecx', 6, 'avx512vbmi2'], ['00000007.0', 'ecx', 8, 'gfni'],
  ['00000007.0', 'ecx', 9, 'vaes'], ['00000007.0', 'ecx', 10, 'vpclmulqdq'], ['00000007.0', 'ecx', 11, 'avx512vnni'],
  ['00000007.0', 'ecx', 12, 'avx512bitalg'], ['00000007.0', 'ecx', 14, 'avx512-vpopcntdq'],
  ['00000007.0', 'edx', 2, 'avx512-4vnniw'], ['00000007.0', 'edx', 3, 'avx512-4fmaps'], ['00000007.0', 'edx', 4, 'fsrm'],
  ['0000000d.1', 'eax', 0, 'xsaveopt'], ['0000000d.1', 'eax', 1, 'xsavec'], ['0000000d.1', 'eax', 2, 'xgetbv1'],
  ['0000000d.1', 'eax', 3, 'xsaves'],
  ['80000001.0', 'ecx', 0, 'lahf-lm'], ['80000001.0', 'ecx', 5, 'abm'], ['80000001.0', 'ecx', 6, 'sse4a'],
  ['80000001.0', 'ecx', 8, '3dnowprefetch'], ['80000001.0', 'ecx', 11, 'xop'], ['80000001.0', 'ecx', 16, 'fma4'],
  ['80000001.0', 'ecx', 21, 'tbm'],
  ['80000001.0', 'edx', 11, 'syscall'], ['80000001.0', 'edx', 20, 'nx'], ['80000001.0', 'edx', 27, 'rdtscp'],
  ['80000001.0', 'edx', 29, 'lm'],
];
/** glibc's tunable names for QEMU's feature names, where they differ only in spelling. */
const GLIBC_NAME: Record<string, string> = { avx: 'AVX', avx2: 'AVX2', fma: 'FMA', fma4: 'FMA4', bmi1: 'BMI1', bmi2: 'BMI2', abm: 'LZCNT', movbe: 'MOVBE',
  avx512f: 'AVX512F', avx512cd: 'AVX512CD', avx512bw: 'AVX512BW', avx512dq: 'AVX512DQ', avx512er: 'AVX512ER', avx512pf: 'AVX512PF', avx512vl: 'AVX512VL' };

function parseCpuid(out: string): Record<string, Record<string, number>> {
  const res: Record<string, Record<string, number>> = {};
  for (const m of out.matchAll(/^(\w+\.\w) eax=(\w+) ebx=(\w+) ecx=(\w+) edx=(\w+)$/gm)) {
    res[m[1]!] = { eax: parseInt(m[2]!, 16), ebx: parseInt(m[3]!, 16), ecx: parseInt(m[4]!, 16), edx: parseInt(m[5]!, 16) };
  }
  return res;
}

/** What QEMU itself says the model has (QMP query-cpu-model-expansion, full, under TCG). */
function qemuModelProps(model: string): Record<string, unknown> {
  const cmds = ['{"execute":"qmp_capabilities"}',
    `{"execute":"query-cpu-model-expansion","arguments":{"type":"full","model":{"name":"${model}"}}}`, '{"execute":"quit"}', ''].join('\n');
  const out = execFileSync('qemu-system-x86_64', ['-M', 'none', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-qmp', 'stdio'], { input: cmds, encoding: 'utf8' });
  for (const line of out.split('\n')) {
    const j = JSON.parse(line || '{}') as { return?: { model?: { props: Record<string, unknown> } } };
    if (j.return?.model) return j.return.model.props;
  }
  throw new Error(`no model expansion in QEMU's answer: ${out}`);
}

describe('the CPUID a program reads in the guest is the platform model\'s (TCG here)', () => {
  it('leaves 1, 7, 0xd, 0x80000001 in the guest (64- and 32-bit, both platforms) match QEMU\'s Nehalem-v1, with no AVX/AVX2/FMA/FMA4/AVX-512', () => {
    const props = qemuModelProps(DEFAULT_CPU_MODEL);
    const host = parseCpuid(native.cpuid_s64!);
    for (const backend of BACKENDS.filter((b) => b.name === 'qemu')) {
      for (const [platform, prog] of [[X64, 'cpuid_s64'], [I686, 'cpuid_s32']] as const) {
        const out = through[backend.name]![platform]![prog]!;
        const guest = parseCpuid(out);
        expect(Object.keys(guest).sort()).toEqual(['00000001.0', '00000007.0', '0000000d.0', '0000000d.1', '80000001.0']);
        const wrong: string[] = [];
        for (const [leaf, reg, bit, name] of BITS) {
          expect(typeof props[name], `QEMU knows ${name}`).toBe('boolean');
          const has = ((guest[leaf]![reg]! >>> bit) & 1) === 1;
          if (has !== props[name]) wrong.push(`${name} (${leaf} ${reg}[${bit}]): guest ${has}, model ${String(props[name])}`);
        }
        expect(wrong, `${platform} ${prog}:\n${out}`).toEqual([]);
        for (const name of ['avx', 'avx2', 'fma', 'fma4', 'avx512f', 'avx512dq', 'avx512bw', 'avx512vl', 'avx512cd']) expect(props[name], name).toBe(false);
        // No AVX, opmask or ZMM state offered (XCR0-supported bits 2, 5-7), and the OS could not enable any.
        expect(guest['0000000d.0']!.eax & 0xe4).toBe(0);
        expect(out).toContain('xcr0 none');
      }
    }
    // Every feature the container backend's glibc tunable masks is one the model lacks, so native at the
    // baseline sees what the guest sees there; and this host has some of them (what the VM hides).
    const masked = Object.entries(GLIBC_NAME).filter(([, g]) => (NEHALEM_GLIBC_HWCAPS as readonly string[]).includes(g));
    expect(masked.map(([, g]) => g).sort()).toEqual([...NEHALEM_GLIBC_HWCAPS].sort());
    for (const [q] of masked) expect(props[q], q).toBe(false);
    const hostHas = BITS.filter(([leaf, reg, bit, name]) => GLIBC_NAME[name] && ((host[leaf]?.[reg] ?? 0) >>> bit) & 1).map(([, , , n]) => n);
    console.log(`this host has ${hostHas.join(' ') || 'none'} of the masked features; the guest has none`);
  });
});
