/**
 * Helper of scripts/demo.sh (the paper's experiment, section 2 and Table 1):
 *   tsx scripts/demo/demo.ts prepare DATA   build the Appendix A program, run each build natively,
 *                                           write a scheduler reply assigning each build to its platform
 *   tsx scripts/demo/demo.ts table DATA     print the Table 1 reproduction from the native runs and the
 *                                           outputs `altplat run` brought back from the VMs
 * Table 1 gets libm rows (docs/HOMOGENEITY.md): a libm-heavy program natively on this host, natively with
 * glibc held to the platform's CPU baseline, and through the platform's fixed virtual CPU.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CPU_MODEL, GLIBC_BASELINE_TUNABLES } from '../../src/definition/cpu-baseline.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PI_C = path.join(REPO, 'test', 'paper', 'pi.c');
const LIBM_C = path.join(REPO, 'test', 'c', 'libm_hash.c');
const MASTER_URL = 'https://example.org/pidemo/';
const PROJECT_DIR = 'example.org_pidemo';

interface Build { id: string; platform: string; label: string; flags: string[]; src?: string }
/** The paper compared compilers and optimisation; here the same program, Linux builds, x87 vs SSE math. */
const BUILDS: Build[] = [
  { id: 'x64_O3', platform: 'x86_64-pc-linux-gnu', label: 'x86-64  gcc -O3 (SSE)', flags: ['-O3', '-static'] },
  { id: 'i686_O0', platform: 'i686-pc-linux-gnu', label: 'i686    gcc -m32 -O0', flags: ['-m32', '-O0', '-static'] },
  { id: 'i686_O3_x87', platform: 'i686-pc-linux-gnu', label: 'i686    gcc -m32 -O3 -mfpmath=387', flags: ['-m32', '-O3', '-mfpmath=387', '-static'] },
];
/** The libm program (test/c/libm_hash.c): its output depends on which libm code glibc picks for the CPU. */
const LIBM_BUILDS: Build[] = [
  { id: 'libm_static', platform: 'x86_64-pc-linux-gnu', label: 'x86-64  gcc -O2 -static', flags: ['-O2', '-static'], src: LIBM_C },
  { id: 'libm_dynamic', platform: 'x86_64-pc-linux-gnu', label: 'x86-64  gcc -O2 (dynamic)', flags: ['-O2'], src: LIBM_C },
];
/** Program, workunit and result names: pi_<id> for the paper's builds, <id> for the libm ones. */
const stem = (b: Build) => (b.src ? b.id : `pi_${b.id}`);
const withoutTunables = () => {
  const env = { ...process.env };
  delete env.GLIBC_TUNABLES;
  return env;
};
/** The libm program's final line, "all    <hash>": the hash of every result's bits. */
const hashOf = (out: string) => /^all +([0-9a-f]{16})$/m.exec(out)?.[1];

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const lastLine = (s: string) => s.trimEnd().split('\n').at(-1) ?? '';
/** "999: diff: 0.000999793463823, est pi: 3.140592860125971" → [pi, diff] with 9 decimals, as in Table 1. */
function piOf(line: string): { pi: string; diff: string } | undefined {
  const m = /diff: ([0-9.]+), est pi: ([0-9.]+)/.exec(line);
  return m ? { pi: Number(m[2]).toFixed(9), diff: Number(m[1]).toFixed(9) } : undefined;
}

function prepare(data: string): void {
  const bin = path.join(data, 'build');
  const files = path.join(data, 'files');
  mkdirSync(bin, { recursive: true });
  mkdirSync(files, { recursive: true });
  const native: Record<string, string> = {};
  const parts = [`<scheduler_reply>
<scheduler_version>720</scheduler_version>
<master_url>${MASTER_URL}</master_url>
<project_name>Pi (Reed 2009, Table 1)</project_name>
<app>
    <name>pi</name>
    <user_friendly_name>Leibniz pi, Appendix A</user_friendly_name>
</app>`];
  let version = 100;
  for (const b of [...BUILDS, ...LIBM_BUILDS]) {
    version++;
    const exe = path.join(bin, `${stem(b)}`);
    execFileSync('gcc', [...b.flags, '-o', exe, b.src ?? PI_C, '-lm']);
    native[b.id] = execFileSync(exe, { encoding: 'utf8', env: withoutTunables() });
    if (b.src) native[`${b.id}_baseline`] = execFileSync(exe, { encoding: 'utf8', env: { ...withoutTunables(), GLIBC_TUNABLES: GLIBC_BASELINE_TUNABLES } });
    console.log(`  built ${path.relative(REPO, exe).padEnd(34)} gcc ${b.flags.join(' ')}; native run: ${lastLine(native[b.id]!)}`);
    const fname = `${stem(b)}_${version}`;
    const bytes = readFileSync(exe);
    writeFileSync(path.join(files, fname), bytes, { mode: 0o755 });
    const out = `${stem(b)}_0_out`;
    parts.push(`<file_info>
    <name>${fname}</name>
    <url>${MASTER_URL}download/${fname}</url>
    <executable/>
    <md5_cksum>${md5(bytes)}</md5_cksum>
    <nbytes>${bytes.length}</nbytes>
</file_info>
<app_version>
    <app_name>pi</app_name>
    <version_num>${version}</version_num>
    <file_ref>
        <file_name>${fname}</file_name>
        <main_program/>
    </file_ref>
    <platform>${b.platform}</platform>
    <plan_class>${b.id.replace(/_/g, '')}</plan_class>
    <avg_ncpus>1.000000</avg_ncpus>
    <flops>1000000000.000000</flops>
</app_version>
<workunit>
    <rsc_fpops_est>1000000000.000000</rsc_fpops_est>
    <name>${stem(b)}</name>
    <app_name>pi</app_name>
</workunit>
<file_info>
    <name>${out}</name>
    <generated_locally/>
    <upload_when_present/>
    <max_nbytes>1000000</max_nbytes>
    <url>${MASTER_URL}cgi/file_upload_handler</url>
</file_info>
<result>
<report_deadline>1900000000</report_deadline>
<wu_name>${stem(b)}</wu_name>
<name>${stem(b)}_0</name>
    <file_ref>
        <file_name>${out}</file_name>
        <open_name>stdout.txt</open_name>
    </file_ref>
    <platform>${b.platform}</platform>
    <version_num>${version}</version_num>
    <plan_class>${b.id.replace(/_/g, '')}</plan_class>
</result>`);
  }
  parts.push('</scheduler_reply>\n');
  writeFileSync(path.join(data, 'sched_reply_example.org_pidemo.xml'), parts.join('\n'));
  writeFileSync(path.join(data, 'native.json'), JSON.stringify(native));
}

function table(data: string): number {
  const native = JSON.parse(readFileSync(path.join(data, 'native.json'), 'utf8')) as Record<string, string>;
  const rows: string[][] = [];
  let mismatches = 0;
  for (const b of BUILDS) {
    const outFile = path.join(data, 'projects', PROJECT_DIR, `${stem(b)}_0_out`);
    const vmOut = existsSync(outFile) ? readFileSync(outFile, 'utf8') : '';
    const n = piOf(lastLine(native[b.id] ?? ''));
    const v = piOf(lastLine(vmOut));
    const same = vmOut !== '' && vmOut === native[b.id];
    if (!same) mismatches++;
    rows.push([b.label, n ? `${n.pi} ${n.diff}` : '?', v ? `${v.pi} ${v.diff}` : 'no output', same ? 'identical (all 1000 lines)' : 'DIFFERENT']);
  }
  const head = ['Build (static, same binary both columns)', 'Native Linux: pi / diff', `VM on a "windows_x86_64" host`, 'VM vs native'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i]!)).join('  ');
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) console.log(line(r));
  console.log('\nTable 1 (Reed 2009): 3.140592575 for every build but gcc -O3 on Linux, 3.140592860 (x87 keeps pi in an 80-bit register).');
  console.log(mismatches === 0
    ? 'Reproduced: x87 and SSE builds differ, and each gives in the VM exactly what it gives on native Linux.'
    : `${mismatches} build(s) gave a different result in the VM.`);

  // The libm rows: the heterogeneity of the host's CPU, and its removal by the platform's one virtual CPU.
  const flags = new Set((readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) ?? '').split(/\s+/));
  const cpu = ['avx2', 'fma', 'avx512f'].filter((f) => flags.has(f)).map((f) => f.toUpperCase()).join('+') || 'no AVX2/FMA';
  const lrows: string[][] = [];
  let libmBad = 0;
  for (const b of LIBM_BUILDS) {
    const outFile = path.join(data, 'projects', PROJECT_DIR, `${stem(b)}_0_out`);
    const vm = hashOf(existsSync(outFile) ? readFileSync(outFile, 'utf8') : '');
    const host = hashOf(native[b.id] ?? '');
    const base = hashOf(native[`${b.id}_baseline`] ?? '');
    if (!vm || vm !== base) libmBad++;
    lrows.push([b.label, host ?? '?', base ?? '?', vm ?? 'no output',
      vm && vm === base ? `identical to the baseline${host !== base ? `; differs from this CPU's` : ''}` : 'DIFFERENT']);
  }
  const lhead = ['libm program (300 000 results), hash of the bits', `Native, this CPU (${cpu})`, `Native, glibc at ${DEFAULT_CPU_MODEL}`, `VM (-cpu ${DEFAULT_CPU_MODEL})`, 'VM vs native'];
  const lw = lhead.map((h, i) => Math.max(h.length, ...lrows.map((r) => r[i]!.length)));
  const lline = (r: string[]) => r.map((c, i) => c.padEnd(lw[i]!)).join('  ').trimEnd();
  console.log('');
  console.log(lline(lhead));
  console.log(lw.map((n) => '-'.repeat(n)).join('  '));
  for (const r of lrows) console.log(lline(r));
  console.log(libmBad === 0
    ? `\nglibc picks libm code by CPU features: on this host's CPU the bits differ from the baseline; the platform's fixed\nvirtual CPU (${DEFAULT_CPU_MODEL}, under KVM and TCG alike) gives the baseline's bits, the same on every host.`
    : `\n${libmBad} libm build(s) gave in the VM another result than native at the baseline.`);
  return mismatches === 0 && libmBad === 0 ? 0 : 1;
}

const [cmd, data] = process.argv.slice(2);
if (!data) {
  console.error('usage: demo.ts prepare|table DATA_DIR');
  process.exit(2);
}
if (cmd === 'prepare') prepare(path.resolve(data));
else if (cmd === 'table') process.exit(table(path.resolve(data)));
else {
  console.error(`unknown step ${cmd}`);
  process.exit(2);
}
