import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { makeCodeSignKey, type CodeSignKey } from '../../scripts/demo/boinc-sign.js';
import { escapeProjectUrl } from '../../src/paths.js';

/**
 * A small BOINC project on 127.0.0.1 for the real-client oracle tests: a master page naming its
 * scheduler, a scheduler that records every request and answers with a reply written the way BOINC's
 * server writes one (sched/sched_types.cpp SCHEDULER_REPLY::write: apps, file_info + app_version,
 * file_info + workunit, file_info + result, code_sign_key), downloads, and an upload handler that speaks
 * file_upload_handler's protocol (get_file_size, file_upload). The app is signed with a key of BOINC's
 * format (./boinc-sign.ts), as 7.20.5 needs.
 */
export interface FakeJob {
  /** Result name; the workunit is `<name>_wu`, the output file `<name>_out`. */
  name: string;
  /** First word of the input file: the oracle app's mode (test/c/oracle_app.c). */
  mode: string;
  maxNbytes?: number;
}

export interface ScheduleRequest {
  body: string;
  /** Names of the <result>s the client reported in this request. */
  reported: string[];
}

export const APP_NAME = 'oracle';
export const APP_VERSION = 100;
export const AUTHENTICATOR = '0123456789abcdef0123456789abcdef';
export const PLATFORM = 'x86_64-pc-linux-gnu';

/** The <global_preferences> the project sends (a user's web preferences). */
export const PROJECT_GLOBAL_PREFS = `<global_preferences>
<source_project>@MASTER@</source_project>
<mod_time>1700000000</mod_time>
<run_if_user_active>1</run_if_user_active>
<disk_interval>30</disk_interval>
<disk_max_used_gb>50</disk_max_used_gb>
<disk_max_used_pct>80</disk_max_used_pct>
<disk_min_free_gb>0.1</disk_min_free_gb>
<ram_max_used_busy_pct>75</ram_max_used_busy_pct>
<cpu_usage_limit>100</cpu_usage_limit>
<max_ncpus_pct>100</max_ncpus_pct>
</global_preferences>`;

export interface FakeProject {
  masterUrl: string;
  schedulerUrl: string;
  /** Project dir name the client makes (BOINC escape_project_url of masterUrl). */
  projectDirName: string;
  requests: ScheduleRequest[];
  uploads: Map<string, Buffer>;
  /** Queue jobs for the next scheduler reply. */
  addJobs(jobs: FakeJob[]): void;
  /** The last reply that carried work (what altplat is given too). */
  workReplies: string[];
  /** The download files by name (app and inputs), for altplat's --files folder. */
  files: Map<string, Buffer>;
  /** Resolves when every named result was reported. */
  waitReported(names: string[], timeoutMs: number, poke?: () => Promise<unknown>): Promise<void>;
  close(): Promise<void>;
}

const f6 = (n: number) => n.toFixed(6);
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

export async function startFakeProject(opts: { app: Buffer; deadline?: number }): Promise<FakeProject> {
  const key: CodeSignKey = makeCodeSignKey();
  const requests: ScheduleRequest[] = [];
  const uploads = new Map<string, Buffer>();
  const files = new Map<string, Buffer>();
  const workReplies: string[] = [];
  let pending: FakeJob[] = [];
  let appSent = false;
  const waiters: Array<() => void> = [];
  const appFile = `${APP_NAME}_${APP_VERSION}_${PLATFORM}`;
  files.set(appFile, opts.app);

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', 'http://x');
      try {
        handle(url.pathname, body, res);
      } catch (e) {
        res.writeHead(500).end(String(e));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const base = `http://127.0.0.1:${port}`;
  const masterUrl = `${base}/oracle/`;
  const schedulerUrl = `${base}/oracle_cgi/cgi`;
  const uploadUrl = `${base}/oracle_cgi/file_upload_handler`;

  function reply(reqBody: string): string {
    const acks = [...reqBody.matchAll(/<result>\s*<name>([^<]*)<\/name>/g)].map((m) => m[1]);
    const jobs = pending;
    pending = [];
    const out: string[] = ['<scheduler_reply>', '<scheduler_version>716</scheduler_version>', '<dont_use_dcf/>',
      `<master_url>${masterUrl}</master_url>`, '<request_delay>1.000000</request_delay>',
      `<message priority="low">${jobs.length ? `sent ${jobs.length} tasks` : 'No tasks sent'}</message>`,
      '<project_name>Oracle Test Project</project_name>',
      '<userid>7</userid>', '<user_name>oracle &amp; co</user_name>', '<user_total_credit>12.500000</user_total_credit>',
      '<user_expavg_credit>1.250000</user_expavg_credit>', '<user_create_time>1600000000</user_create_time>',
      PROJECT_GLOBAL_PREFS.replace('@MASTER@', masterUrl),
      '<project_preferences>\n<resource_share>100</resource_share>\n<project_specific>\n<color>green</color>\n</project_specific>\n</project_preferences>',
      '<hostid>42</hostid>', '<host_total_credit>3.000000</host_total_credit>', '<host_expavg_credit>0.300000</host_expavg_credit>',
      '<host_venue></host_venue>', '<host_create_time>1600000001</host_create_time>', '<team_name></team_name>'];
    for (const a of acks) out.push(`<result_ack>\n    <name>${a}</name>\n</result_ack>`);
    if (jobs.length) {
      out.push(`<app>\n    <name>${APP_NAME}</name>\n    <user_friendly_name>Oracle</user_friendly_name>\n    <non_cpu_intensive>0</non_cpu_intensive>\n    <fraction_done_exact>0</fraction_done_exact>\n</app>`);
      out.push(`<file_info>\n    <name>${appFile}</name>\n    <url>${base}/oracle/download/${appFile}</url>\n    <executable/>\n    <file_signature>\n${key.sign(opts.app)}</file_signature>\n    <nbytes>${opts.app.length}</nbytes>\n</file_info>`);
      out.push(`<app_version>\n    <app_name>${APP_NAME}</app_name>\n    <version_num>${APP_VERSION}</version_num>\n    <api_version>7.20.5</api_version>\n    <file_ref>\n        <file_name>${appFile}</file_name>\n        <main_program/>\n    </file_ref>\n    <platform>${PLATFORM}</platform>\n    <avg_ncpus>1.000000</avg_ncpus>\n    <flops>1000000000.000000</flops>\n</app_version>`);
      const deadline = opts.deadline ?? Math.floor(Date.now() / 1000) + 7 * 86400;
      for (const j of jobs) {
        const input = Buffer.from(`${j.mode}\n`);
        const inName = `${j.name}_in`;
        files.set(inName, input);
        out.push(`<file_info>\n    <name>${inName}</name>\n    <url>${base}/oracle/download/${inName}</url>\n    <md5_cksum>${md5(input)}</md5_cksum>\n    <nbytes>${input.length}</nbytes>\n</file_info>`);
        out.push(`<workunit>\n    <rsc_fpops_est>1000000000.000000</rsc_fpops_est>\n    <rsc_fpops_bound>1000000000000.000000</rsc_fpops_bound>\n    <rsc_memory_bound>50000000.000000</rsc_memory_bound>\n    <rsc_disk_bound>100000000.000000</rsc_disk_bound>\n    <name>${j.name}_wu</name>\n    <app_name>${APP_NAME}</app_name>\n    <command_line>--mode ${j.mode} --quoted "two words"</command_line>\n    <file_ref>\n        <file_name>${inName}</file_name>\n        <open_name>in</open_name>\n    </file_ref>\n</workunit>`);
        out.push(`<file_info>\n    <name>${j.name}_out</name>\n    <generated_locally/>\n    <upload_when_present/>\n    <max_nbytes>${f6(j.maxNbytes ?? 100000)}</max_nbytes>\n    <url>${uploadUrl}</url>\n</file_info>`);
        out.push(`<result>\n    <name>${j.name}</name>\n    <wu_name>${j.name}_wu</wu_name>\n    <report_deadline>${deadline}</report_deadline>\n    <file_ref>\n        <file_name>${j.name}_out</file_name>\n        <open_name>out</open_name>\n    </file_ref>\n    <platform>${PLATFORM}</platform>\n    <version_num>${APP_VERSION}</version_num>\n    <plan_class></plan_class>\n</result>`);
      }
    }
    if (!appSent) out.push(`<code_sign_key>\n${key.publicText}\n</code_sign_key>`);
    appSent = true;
    out.push('</scheduler_reply>');
    const text = out.join('\n') + '\n';
    if (jobs.length) workReplies.push(text);
    return text;
  }

  function handle(p: string, body: Buffer, res: http.ServerResponse): void {
    if (p === '/oracle/' || p === '/oracle/index.php') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<html><head><title>Oracle</title>\n<link rel="boinc_scheduler" href="${schedulerUrl}">\n</head><body>\n<!-- <scheduler>${schedulerUrl}</scheduler> -->\n</body></html>\n`);
    } else if (p === '/oracle_cgi/cgi') {
      const text = body.toString('latin1');
      const reported = [...text.matchAll(/<result>\s*<name>([^<]*)<\/name>/g)].map((m) => m[1]);
      requests.push({ body: text, reported });
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(reply(text));
      for (const w of waiters.splice(0)) w();
    } else if (p.startsWith('/oracle/download/')) {
      const f = files.get(p.slice('/oracle/download/'.length));
      if (!f) { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': f.length });
      res.end(f);
    } else if (p === '/oracle_cgi/file_upload_handler') {
      const text = body.toString('latin1');
      const size = /<get_file_size>([^<]*)<\/get_file_size>/.exec(text);
      if (size) {
        res.end(`<data_server_reply>\n    <status>0</status>\n    <file_size>${uploads.get(size[1])?.length ?? 0}</file_size>\n</data_server_reply>\n`);
        return;
      }
      const name = /<file_info>[\s\S]*?<name>([^<]*)<\/name>/.exec(text)?.[1];
      const at = text.indexOf('<data>\n');
      if (!name || at < 0) { res.end('<data_server_reply>\n    <status>-1</status>\n</data_server_reply>\n'); return; }
      const offset = Number(/<offset>([^<]*)<\/offset>/.exec(text)?.[1] ?? 0);
      const data = body.subarray(Buffer.byteLength(text.slice(0, at + 7), 'latin1'));
      const prev = uploads.get(name) ?? Buffer.alloc(0);
      uploads.set(name, Buffer.concat([prev.subarray(0, offset), data]));
      res.end('<data_server_reply>\n    <status>0</status>\n</data_server_reply>\n');
    } else {
      res.writeHead(404).end();
    }
  }

  const reportedAll = (names: string[]) => names.every((n) => requests.some((r) => r.reported.includes(n)));
  return {
    masterUrl, schedulerUrl, requests, uploads, files, workReplies,
    projectDirName: escapeProjectUrl(masterUrl),
    addJobs(jobs) { pending.push(...jobs); },
    async waitReported(names, timeoutMs, poke) {
      const until = Date.now() + timeoutMs;
      let poked = Date.now();
      while (!reportedAll(names)) {
        // The client defers its next RPC after an error result; `boinccmd --project URL update` lifts that.
        if (poke && Date.now() - poked > 2000) { poked = Date.now(); await poke().catch(() => undefined); }
        const left = until - Date.now();
        if (left <= 0) throw new Error(`results not reported in time: ${names.filter((n) => !requests.some((r) => r.reported.includes(n))).join(', ')}`);
        await new Promise<void>((resolve) => { const t = setTimeout(resolve, Math.min(left, 500)); waiters.push(() => { clearTimeout(t); resolve(); }); });
      }
    },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
