import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

/**
 * Scheduler replies for the QEMU work-unit tests and the bench, in the layout BOINC's scheduler uses
 * (sched/sched_send.cpp, sched/sched_types.cpp): one app version per work unit.
 */
export const MASTER = 'http://wu.example.net/proj/';
export const PROJECT_DIR = 'wu.example.net_proj';

export interface Wu {
  result: string;
  platform: string;
  program: string;
  cmdline?: string;
  inputs?: Record<string, string>;
  outputs?: string[];
  maxNbytes?: number;
  /** More files of the app version (open name → host file), e.g. the shared libraries it ships. */
  appFiles?: Record<string, string>;
}

/** A scheduler reply with one app version per work unit, in the order BOINC's scheduler writes them. */
export function writeReply(dir: string, wus: Wu[]): { reply: string; files: string } {
  const files = path.join(dir, 'files');
  mkdirSync(files, { recursive: true });
  const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
  const x = [`<scheduler_reply>\n<scheduler_version>716</scheduler_version>\n<master_url>${MASTER}</master_url>\n<project_name>wu test</project_name>\n<app>\n    <name>wuapp</name>\n    <user_friendly_name>wu app</user_friendly_name>\n</app>`];
  let v = 700;
  for (const w of wus) {
    v++;
    const prog = readFileSync(w.program);
    const pf = `wuapp_${v}_${w.platform}`;
    writeFileSync(path.join(files, pf), prog, { mode: 0o755 });
    x.push(`<file_info>\n    <name>${pf}</name>\n    <url>${MASTER}download/${pf}</url>\n    <executable/>\n    <md5_cksum>${md5(prog)}</md5_cksum>\n    <nbytes>${prog.length}.000000</nbytes>\n</file_info>`);
    const avRefs: string[] = [];
    for (const [open, host] of Object.entries(w.appFiles ?? {})) {
      const f = `${pf}_${open}`;
      const b = readFileSync(host);
      writeFileSync(path.join(files, f), b);
      x.push(`<file_info>\n    <name>${f}</name>\n    <url>${MASTER}download/${f}</url>\n    <md5_cksum>${md5(b)}</md5_cksum>\n    <nbytes>${b.length}</nbytes>\n</file_info>`);
      avRefs.push(`    <file_ref>\n        <file_name>${f}</file_name>\n        <open_name>${open}</open_name>\n    </file_ref>\n`);
    }
    x.push(`<app_version>\n    <app_name>wuapp</app_name>\n    <version_num>${v}</version_num>\n    <platform>${w.platform}</platform>\n    <avg_ncpus>1.000000</avg_ncpus>\n    <flops>2000000000.000000</flops>\n    <file_ref>\n        <file_name>${pf}</file_name>\n        <main_program/>\n    </file_ref>\n${avRefs.join('')}</app_version>`);
    const inRefs: string[] = [];
    for (const [open, content] of Object.entries(w.inputs ?? {})) {
      const f = `${w.result}_${open.replace(/\W/g, '_')}`;
      const b = Buffer.from(content);
      writeFileSync(path.join(files, f), b);
      x.push(`<file_info>\n    <name>${f}</name>\n    <url>${MASTER}download/${f}</url>\n    <md5_cksum>${md5(b)}</md5_cksum>\n    <nbytes>${b.length}</nbytes>\n</file_info>`);
      inRefs.push(`    <file_ref>\n        <file_name>${f}</file_name>\n        <open_name>${open}</open_name>\n    </file_ref>`);
    }
    const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
    x.push(`<workunit>\n    <name>${w.result}_wu</name>\n    <app_name>wuapp</app_name>\n    <version_num>${v}</version_num>\n    <rsc_fpops_est>20000000000.000000</rsc_fpops_est>\n    <rsc_fpops_bound>1e14</rsc_fpops_bound>\n    <rsc_memory_bound>100000000.000000</rsc_memory_bound>\n    <rsc_disk_bound>1000000000.000000</rsc_disk_bound>\n${w.cmdline !== undefined ? `    <command_line>${esc(w.cmdline)}</command_line>\n` : ''}${inRefs.join('\n')}\n</workunit>`);
    const outRefs: string[] = [];
    for (const open of w.outputs ?? ['stdout.txt']) {
      const f = `${w.result}_${open.replace(/\W/g, '_')}`;
      x.push(`<file_info>\n    <name>${f}</name>\n    <generated_locally/>\n    <upload_when_present/>\n    <max_nbytes>${w.maxNbytes ?? 50000000}</max_nbytes>\n    <url>${MASTER}cgi-bin/file_upload_handler</url>\n</file_info>`);
      outRefs.push(`    <file_ref>\n        <file_name>${f}</file_name>\n        <open_name>${open}</open_name>\n    </file_ref>`);
    }
    x.push(`<result>\n    <name>${w.result}</name>\n    <wu_name>${w.result}_wu</wu_name>\n    <platform>${w.platform}</platform>\n    <version_num>${v}</version_num>\n    <plan_class></plan_class>\n    <report_deadline>1900000000</report_deadline>\n${outRefs.join('\n')}\n</result>`);
  }
  x.push('</scheduler_reply>\n');
  const reply = path.join(dir, 'sched_reply.xml');
  writeFileSync(reply, x.join('\n'));
  return { reply, files };
}

export interface RunResult {
  name: string; outcome: string; exitStatus: number | null; stderr: string; reason?: string; platform: string; kind: string;
  outputs: Array<{ name: string; path: string; nbytes: number; status: number }>;
}

