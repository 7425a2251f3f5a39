/**
 * Helper of scripts/demo.sh (the paper's experiment, section 2 and Table 1):
 *   tsx scripts/demo/demo.ts prepare DATA   build the Appendix A program, run each build natively,
 *                                           write a scheduler reply assigning each build to its platform
 *   tsx scripts/demo/demo.ts table DATA [CT] print the Table 1 reproduction from the native runs and the
 *                                           outputs `altplat run` brought back from the VMs (DATA) and,
 *                                           when given, from the containers (CT: a data dir whose x86-64
 *                                           platform ran on the Podman backend), a column per backend
 * Table 1 gets libm rows (docs/HOMOGENEITY.md): a libm-heavy program natively on this host, natively with
 * glibc held to the platform's CPU baseline, and through the platform's fixed virtual CPU.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { makeCodeSignKey } from './boinc-sign.js';
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

const lastLine = (s: string) => s.trimEnd().split('\n').at(-1) ?? '';
/** "999: diff: 0.000999793463823, est pi: 3.140592860125971" → [pi, diff] with 9 decimals, as in Table 1. */
function piOf(line: string): { pi: string; diff: string } | undefined {
  const m = /diff: ([0-9.]+), est pi: ([0-9.]+)/.exec(line);
  return m ? { pi: Number(m[2]).toFixed(9), diff: Number(m[1]).toFixed(9) } : undefined;
}

/** The project's global preferences, as a real server sends a user's web preferences in every reply. */
const PROJECT_PREFS = `<global_preferences>
<source_project>${MASTER_URL}</source_project>
<mod_time>1230764400</mod_time>
<run_if_user_active>1</run_if_user_active>
<work_buf_min_days>0.1</work_buf_min_days>
<disk_interval>60</disk_interval>
<disk_max_used_gb>100</disk_max_used_gb>
<disk_max_used_pct>50</disk_max_used_pct>
<disk_min_free_gb>1</disk_min_free_gb>
<ram_max_used_busy_pct>50</ram_max_used_busy_pct>
<ram_max_used_idle_pct>90</ram_max_used_idle_pct>
<max_ncpus_pct>100</max_ncpus_pct>
</global_preferences>`;

/**
 * The reply, in the order and shape BOINC's scheduler writes one (sched/sched_types.cpp
 * SCHEDULER_REPLY::write): request_delay, messages, project name, user and host figures, the user's
 * global and project preferences, apps, each app version after its file_info (signed executables carry
 * <file_signature> and no <md5_cksum>, with a <gzipped_url>), each workunit after its inputs, each
 * result after its outputs, and the code-signing key.
 */
function prepare(data: string): void {
  const bin = path.join(data, 'build');
  const files = path.join(data, 'files');
  mkdirSync(bin, { recursive: true });
  mkdirSync(files, { recursive: true });
  const native: Record<string, string> = {};
  const key = makeCodeSignKey();
  const deadline = 1900000000;
  const apps: string[] = [];
  const works: string[] = [];
  const results: string[] = [];
  let version = 100;
  /** Which builds are x86-64 ones (the container backend's data dir runs only those). */
  const x64: boolean[] = [];
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
    const gz = gzipSync(bytes);
    const plan = b.id.replace(/_/g, '');
    const out = `${stem(b)}_0_out`;
    apps.push(`<file_info>
    <name>${fname}</name>
    <url>${MASTER_URL}download/${fname}</url>
    <gzipped_url>${MASTER_URL}download_gz/${fname}.gz</gzipped_url>
    <executable/>
    <file_signature>
${key.sign(bytes)}</file_signature>
    <nbytes>${bytes.length}</nbytes>
    <gzipped_nbytes>${gz.length}</gzipped_nbytes>
</file_info>
<app_version>
    <app_name>pi</app_name>
    <version_num>${version}</version_num>
    <api_version>7.20.5</api_version>
    <file_ref>
        <file_name>${fname}</file_name>
        <main_program/>
    </file_ref>
    <platform>${b.platform}</platform>
    <plan_class>${plan}</plan_class>
    <avg_ncpus>1.000000</avg_ncpus>
    <flops>2912571428.571429</flops>
</app_version>`);
    works.push(`<workunit>
    <rsc_fpops_est>1000000000.000000</rsc_fpops_est>
    <rsc_fpops_bound>100000000000.000000</rsc_fpops_bound>
    <rsc_memory_bound>100000000.000000</rsc_memory_bound>
    <rsc_disk_bound>100000000.000000</rsc_disk_bound>
    <name>${stem(b)}</name>
    <app_name>pi</app_name>
</workunit>`);
    results.push(`<file_info>
    <name>${out}</name>
    <generated_locally/>
    <upload_when_present/>
    <max_nbytes>1000000</max_nbytes>
    <url>${MASTER_URL.replace(/\/$/, '_cgi/')}file_upload_handler</url>
</file_info>
<result>
    <name>${stem(b)}_0</name>
    <wu_name>${stem(b)}</wu_name>
    <report_deadline>${deadline}</report_deadline>
    <file_ref>
        <file_name>${out}</file_name>
        <open_name>stdout.txt</open_name>
    </file_ref>
    <platform>${b.platform}</platform>
    <version_num>${version}</version_num>
    <plan_class>${plan}</plan_class>
</result>`);
    x64.push(b.platform === 'x86_64-pc-linux-gnu');
  }
  const reply = [`<scheduler_reply>
<scheduler_version>716</scheduler_version>
<dont_use_dcf/>
<master_url>${MASTER_URL}</master_url>
<request_delay>61.000000</request_delay>
<message priority="low">Sending Linux work to an alternate platform of your windows_x86_64 host</message>
<project_name>Pi (Reed 2009, Table 1)</project_name>
<next_rpc_delay>86400.000000</next_rpc_delay>
<userid>1</userid>
<user_name>Reed</user_name>
<user_total_credit>0.000000</user_total_credit>
<user_expavg_credit>0.000000</user_expavg_credit>
<user_create_time>1230000000</user_create_time>
${PROJECT_PREFS}
<project_preferences>
<project_specific>
</project_specific>
</project_preferences>
<hostid>2009</hostid>
<host_total_credit>0.000000</host_total_credit>
<host_expavg_credit>0.000000</host_expavg_credit>
<host_venue></host_venue>
<host_create_time>1230000000</host_create_time>
<team_name></team_name>
<app>
    <name>pi</name>
    <user_friendly_name>Leibniz pi, Appendix A</user_friendly_name>
    <non_cpu_intensive>0</non_cpu_intensive>
    <fraction_done_exact>0</fraction_done_exact>
</app>`, ...apps, ...works, ...results, `<code_sign_key>
${key.publicText}
</code_sign_key>`, '</scheduler_reply>\n'];
  writeFileSync(path.join(data, 'sched_reply_example.org_pidemo.xml'), reply.join('\n'));
  // The x86-64 builds alone, for the container backend's data dir (the i686 platform has no container backend).
  const keep = (xs: string[]) => xs.filter((_, i) => x64[i]);
  const x64Reply = [reply[0]!, ...keep(apps), ...keep(works), ...keep(results), ...reply.slice(-2)];
  writeFileSync(path.join(data, 'sched_reply_example.org_pidemo_x86_64.xml'), x64Reply.join('\n'));
  writeFileSync(path.join(data, 'native.json'), JSON.stringify(native));
}

function table(data: string, ct?: string): number {
  const native = JSON.parse(readFileSync(path.join(data, 'native.json'), 'utf8')) as Record<string, string>;
  const outOf = (dir: string, b: Build) => {
    const f = path.join(dir, 'projects', PROJECT_DIR, `${stem(b)}_0_out`);
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  };
  const rows: string[][] = [];
  let mismatches = 0;
  for (const b of BUILDS) {
    const vmOut = outOf(data, b);
    const n = piOf(lastLine(native[b.id] ?? ''));
    const v = piOf(lastLine(vmOut));
    const same = vmOut !== '' && vmOut === native[b.id];
    if (!same) mismatches++;
    const row = [b.label, n ? `${n.pi} ${n.diff}` : '?', v ? `${v.pi} ${v.diff}` : 'no output'];
    let verdict = same ? 'identical (all 1000 lines)' : 'DIFFERENT';
    if (ct) {
      if (b.platform !== 'x86_64-pc-linux-gnu') row.push('(no container backend)');
      else {
        const ctOut = outOf(ct, b);
        const c = piOf(lastLine(ctOut));
        row.push(c ? `${c.pi} ${c.diff}` : 'no output');
        const ctSame = ctOut !== '' && ctOut === native[b.id];
        if (!ctSame) mismatches++;
        verdict = same && ctSame ? 'identical in both (all 1000 lines)' : 'DIFFERENT';
      }
    }
    rows.push([...row, verdict]);
  }
  const head = ['Build (static, same binary every column)', 'Native Linux: pi / diff', `VM on a "windows_x86_64" host`,
    ...(ct ? ['Podman container, same host'] : []), ct ? 'backends vs native' : 'VM vs native'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i]!)).join('  ');
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) console.log(line(r));
  console.log('\nTable 1 (Reed 2009): 3.140592575 for every build but gcc -O3 on Linux, 3.140592860 (x87 keeps pi in an 80-bit register).');
  console.log(mismatches === 0
    ? `Reproduced: x87 and SSE builds differ, and each gives in the VM${ct ? ' and in the container' : ''} exactly what it gives on native Linux.`
    : `${mismatches} build(s) gave a different result in the VM${ct ? ' or the container' : ''}.`);

  // The libm rows: the heterogeneity of the host's CPU, and its removal by the platform's one virtual CPU.
  const flags = new Set((readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) ?? '').split(/\s+/));
  const cpu = ['avx2', 'fma', 'avx512f'].filter((f) => flags.has(f)).map((f) => f.toUpperCase()).join('+') || 'no AVX2/FMA';
  const lrows: string[][] = [];
  let libmBad = 0;
  for (const b of LIBM_BUILDS) {
    const vm = hashOf(outOf(data, b));
    const host = hashOf(native[b.id] ?? '');
    const base = hashOf(native[`${b.id}_baseline`] ?? '');
    if (!vm || vm !== base) libmBad++;
    const row = [b.label, host ?? '?', base ?? '?', vm ?? 'no output'];
    let good = vm !== undefined && vm === base;
    if (ct) {
      const c = hashOf(outOf(ct, b));
      row.push(c ?? 'no output');
      if (!c || c !== base) libmBad++;
      good &&= c === base;
    }
    lrows.push([...row, good ? `identical to the baseline${host !== base ? `; differs from this CPU's` : ''}` : 'DIFFERENT']);
  }
  const lhead = ['libm program (300 000 results), hash of the bits', `Native, this CPU (${cpu})`, `Native, glibc at ${DEFAULT_CPU_MODEL}`, `VM (-cpu ${DEFAULT_CPU_MODEL})`,
    ...(ct ? [`Container (GLIBC_TUNABLES at ${DEFAULT_CPU_MODEL})`] : []), ct ? 'backends vs native' : 'VM vs native'];
  const lw = lhead.map((h, i) => Math.max(h.length, ...lrows.map((r) => r[i]!.length)));
  const lline = (r: string[]) => r.map((c, i) => c.padEnd(lw[i]!)).join('  ').trimEnd();
  console.log('');
  console.log(lline(lhead));
  console.log(lw.map((n) => '-'.repeat(n)).join('  '));
  for (const r of lrows) console.log(lline(r));
  console.log(libmBad === 0
    ? `\nglibc picks libm code by CPU features: on this host's CPU the bits differ from the baseline; the platform's fixed\nvirtual CPU (${DEFAULT_CPU_MODEL}, under KVM and TCG alike) gives the baseline's bits, the same on every host${ct ? ', and so does\nthe container, whose glibc (the same libc6 as the guest\'s) is held to that CPU with GLIBC_TUNABLES' : ''}.`
    : `\n${libmBad} libm run(s) gave another result than native at the baseline.`);
  return mismatches === 0 && libmBad === 0 ? 0 : 1;
}

const [cmd, data, ct] = process.argv.slice(2);
if (!data) {
  console.error('usage: demo.ts prepare|table DATA_DIR');
  process.exit(2);
}
if (cmd === 'prepare') prepare(path.resolve(data));
else if (cmd === 'table') process.exit(table(path.resolve(data), ct ? path.resolve(ct) : undefined));
else {
  console.error(`unknown step ${cmd}`);
  process.exit(2);
}
