/**
 * Helper of scripts/demo.sh (the paper's experiment, section 2 and Table 1):
 *   tsx scripts/demo/demo.ts prepare DATA   build the Appendix A program, run each build natively,
 *                                           write a scheduler reply assigning each build to its platform
 *   tsx scripts/demo/demo.ts table DATA     print the Table 1 reproduction from the native runs and the
 *                                           outputs `altplat run` brought back from the VMs
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { makeCodeSignKey } from './boinc-sign.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PI_C = path.join(REPO, 'test', 'paper', 'pi.c');
const MASTER_URL = 'https://example.org/pidemo/';
const PROJECT_DIR = 'example.org_pidemo';

interface Build { id: string; platform: string; label: string; flags: string[] }
/** The paper compared compilers and optimisation; here the same program, Linux builds, x87 vs SSE math. */
const BUILDS: Build[] = [
  { id: 'x64_O3', platform: 'x86_64-pc-linux-gnu', label: 'x86-64  gcc -O3 (SSE)', flags: ['-O3', '-static'] },
  { id: 'i686_O0', platform: 'i686-pc-linux-gnu', label: 'i686    gcc -m32 -O0', flags: ['-m32', '-O0', '-static'] },
  { id: 'i686_O3_x87', platform: 'i686-pc-linux-gnu', label: 'i686    gcc -m32 -O3 -mfpmath=387', flags: ['-m32', '-O3', '-mfpmath=387', '-static'] },
];

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
  for (const b of BUILDS) {
    version++;
    const exe = path.join(bin, `pi_${b.id}`);
    execFileSync('gcc', [...b.flags, '-o', exe, PI_C]);
    native[b.id] = execFileSync(exe, { encoding: 'utf8' });
    console.log(`  built ${path.relative(REPO, exe).padEnd(34)} gcc ${b.flags.join(' ')}; native run: ${lastLine(native[b.id]!)}`);
    const fname = `pi_${b.id}_${version}`;
    const bytes = readFileSync(exe);
    writeFileSync(path.join(files, fname), bytes, { mode: 0o755 });
    const gz = gzipSync(bytes);
    const plan = b.id.replace(/_/g, '');
    const out = `pi_${b.id}_0_r${version}_0`;
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
    <name>pi_${b.id}</name>
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
    <name>pi_${b.id}_0</name>
    <wu_name>pi_${b.id}</wu_name>
    <report_deadline>${deadline}</report_deadline>
    <file_ref>
        <file_name>${out}</file_name>
        <open_name>stdout.txt</open_name>
    </file_ref>
    <platform>${b.platform}</platform>
    <version_num>${version}</version_num>
    <plan_class>${plan}</plan_class>
</result>`);
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
  writeFileSync(path.join(data, 'native.json'), JSON.stringify(native));
}

function table(data: string): number {
  const native = JSON.parse(readFileSync(path.join(data, 'native.json'), 'utf8')) as Record<string, string>;
  const rows: string[][] = [];
  let mismatches = 0;
  for (const b of BUILDS) {
    const outFile = path.join(data, 'projects', PROJECT_DIR, `pi_${b.id}_0_r${101 + BUILDS.indexOf(b)}_0`);
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
  return mismatches === 0 ? 0 : 1;
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
