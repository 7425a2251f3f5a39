/*
 * The real BOINC client as the oracle (issue 9): Debian's boinc-client 7.20.5 runs as a plain process in a
 * temp data dir, attached to a fake project on 127.0.0.1 (test/helpers/fake-project.ts) that serves a signed
 * app (test/c/oracle_app.c, linked with the real libboinc-api) and one result per case. altplat runs the same
 * scheduler reply natively, in a data dir with the same account file and preferences. Compared: outcome,
 * exit status, the app's stderr, argv and environment, and init_data.xml as the app read it through
 * boinc_get_init_data. One shared client run serves every case to keep this file fast.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBoincProgram } from './helpers/boinc-c.js';
import { startRealClient, type RealClient } from './helpers/boinc-client.js';
import { AUTHENTICATOR, PLATFORM, PROJECT_GLOBAL_PREFS, startFakeProject, type FakeJob, type FakeProject } from './helpers/fake-project.js';
import { CLI, runCli, startCli, type CliRun } from './lifecycle-helpers.js';

const hasClient = (() => {
  try { execFileSync('boinc', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
})();

/** The volunteer's local override, in both data dirs: no CPU-load suspension (other tests load this host). */
const OVERRIDE = `<global_preferences>
   <suspend_cpu_usage>0</suspend_cpu_usage>
   <disk_interval>45</disk_interval>
   <max_ncpus_pct>100</max_ncpus_pct>
</global_preferences>
`;

const CASES: FakeJob[] = [
  { name: 'o_success', mode: 'success' },
  { name: 'o_error', mode: 'error' },
  { name: 'o_premature', mode: 'premature_once' },
  { name: 'o_temporary', mode: 'temporary_once' },
  { name: 'o_segv_caught', mode: 'segv_caught' },
  { name: 'o_segv_default', mode: 'segv_default' },
  { name: 'o_no_output', mode: 'no_output' },
  { name: 'o_big_output', mode: 'big_output', maxNbytes: 1000 },
  { name: 'o_abort', mode: 'forever' },
  { name: 'o_suspend', mode: 'forever' },
  { name: 'o_quit', mode: 'forever' },
];
const NAMES = CASES.map((c) => c.name);

interface Reported { exitStatus: number; state: number; stderrOut: string; stderrTxt: string }
type AltResult = { name: string; outcome: string; exitStatus: number | null; stderr: string; outputs: Array<{ name: string; path: string | null; status: number }>; reason?: string };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The <result> elements of the client's reporting requests, by name (the last report of each wins). */
function reportedResults(p: FakeProject): Record<string, Reported> {
  const out: Record<string, Reported> = {};
  for (const r of p.requests) {
    for (const m of r.body.matchAll(/<result>\s*<name>([^<]*)<\/name>([\s\S]*?)<\/result>/g)) {
      const body = m[2];
      const stderrOut = /<stderr_out>([\s\S]*?)<\/stderr_out>/.exec(body)?.[1] ?? '';
      out[m[1]] = {
        exitStatus: Number(/<exit_status>([^<]*)</.exec(body)?.[1]),
        state: Number(/<state>([^<]*)</.exec(body)?.[1]),
        stderrOut,
        stderrTxt: /<stderr_txt>\n?([\s\S]*?)<\/stderr_txt>/.exec(stderrOut)?.[1] ?? '',
      };
    }
  }
  return out;
}

/** A slot whose init_data.xml names the result and whose app has started (it writes "runs"). */
async function runningSlot(dataDir: string, result: string): Promise<string | undefined> {
  const slots = path.join(dataDir, 'slots');
  for (const s of await fsp.readdir(slots).catch(() => [] as string[])) {
    const dir = path.join(slots, s);
    const init = await fsp.readFile(path.join(dir, 'init_data.xml'), 'utf8').catch(() => '');
    if (init.includes(`<result_name>${result}</result_name>`) && await fsp.access(path.join(dir, 'runs')).then(() => true, () => false)) return dir;
  }
  return undefined;
}

/** Whether the app wrote its output (it does so only when it finishes), in the project dir either side. */
const outputWritten = (dataDir: string, result: string) =>
  fsp.access(path.join(dataDir, 'projects', project.projectDirName, `${result}_out`)).then(() => true, () => false);

async function waitFor<T>(what: string, f: () => Promise<T | undefined>, ms = 40000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** The app's stderr lines that do not depend on time, pid or data dir. */
const stable = (s: string) => s.split('\n').filter((l) => l && !/^\d\d:\d\d:\d\d \(\d+\):/.test(l) && !l.startsWith('Stack trace')
  // The slot number depends on which tasks ran at the same time.
  && !l.startsWith('cwd=')
  && !/^\S+\(\+0x|^\[0x|^\/lib|^\/usr|\) \[0x/.test(l)).join('\n');

/** init_data.xml as the app wrote it back (write_init_data_file): element → text, host_info children prefixed. */
function initFields(xml: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const [tag, prefix] of [['host_info', 'host.'], ['proxy_info', 'proxy.'], ['global_preferences', 'prefs.']] as const) {
    const inner = xml.includes(`<${tag}>`) ? xml.slice(xml.indexOf(`<${tag}>`) + tag.length + 2, xml.indexOf(`</${tag}>`)) : '';
    for (const e of inner.matchAll(/<(\w+)>([^<]*)<\/\1>|<(\w+)\/>/g)) m.set(prefix + (e[1] ?? e[3]), e[2] ?? '');
    if (tag === 'host_info' && inner.includes('<coprocs>')) m.set('host.coprocs', inner.slice(inner.indexOf('<coprocs>'), inner.indexOf('</coprocs>')).replace(/\s+/g, ''));
    xml = xml.replace(new RegExp(`<${tag}>[\\s\\S]*?</${tag}>`), '');
  }
  for (const e of xml.matchAll(/<(\w+)>([^<]*)<\/\1>/g)) {
    if (e[1] === 'app_file') m.set(`app_file.${e[2]}`, e[2]);
    else if (e[1] !== 'app_init_data') m.set(e[1], e[2]);
  }
  return m;
}

/** Names of the direct children of `tag`'s first element, in order, each once. */
function childNames(xml: string, tag: string): string[] {
  const start = xml.indexOf(`<${tag}>`);
  const inner = xml.slice(start + tag.length + 2, xml.indexOf(`</${tag}>`, start));
  const names: string[] = [];
  let depth = 0;
  for (const m of inner.replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, '').matchAll(/<(\/?)([A-Za-z_][\w.-]*)[^>]*?(\/?)>/g)) {
    if (m[1]) depth--;
    else {
      if (depth === 0 && !names.includes(m[2]!)) names.push(m[2]!);
      if (!m[3]) depth++;
    }
  }
  return names;
}

/** Fields measured on the host or naming this run's own dirs/pid: only their presence is compared. */
const HOST_MEASURED = new Set(['project_dir', 'boinc_dir', 'client_pid', 'slot', 'host.timezone', 'host.domain_name', 'host.ip_addr',
  'host.host_cpid', 'host.p_ncpus', 'host.p_vendor', 'host.p_model', 'host.p_features', 'host.p_fpops', 'host.p_iops', 'host.p_membw',
  'host.p_calculated', 'host.m_nbytes', 'host.m_cache', 'host.m_swap', 'host.d_total', 'host.d_free', 'host.os_name', 'host.os_version',
  // Elapsed/CPU time at the start of this run: both 0 for a first run, but measured.
  'wu_cpu_time', 'starting_elapsed_time']);

let project: FakeProject;
let client: RealClient;
let real: Record<string, Reported> = {};
let alt: Record<string, AltResult> = {};
let altQuit: AltResult | undefined;
let altRun: CliRun;
let altResume: CliRun;
let priorLogs = '';
let altDir: string;
let tmp: string;
const realTimeline: string[] = [];
const altTimeline: string[] = [];

/**
 * Drive the "forever" cases the same way on both sides: abort o_abort once it runs; suspend o_suspend,
 * let it be told to finish ("go") while suspended, check it did not, then resume it.
 */
async function driveInteractive(dataDir: string, ctl: (op: 'abort' | 'suspend' | 'resume', name: string) => Promise<unknown>,
  timeline: string[], finished: (name: string) => Promise<boolean>): Promise<void> {
  await waitFor('o_abort running', () => runningSlot(dataDir, 'o_abort'));
  await ctl('abort', 'o_abort');
  timeline.push('abort sent');
  const slot = await waitFor('o_suspend running', () => runningSlot(dataDir, 'o_suspend'));
  await ctl('suspend', 'o_suspend');
  await sleep(1500);
  await fsp.writeFile(path.join(slot, 'go'), '');
  await sleep(2500);
  timeline.push(`suspended, told to finish; finished while suspended: ${await finished('o_suspend')}`);
  await ctl('resume', 'o_suspend');
  timeline.push('resumed');
}

beforeAll(async () => {
  if (!hasClient) return;
  await fsp.access(CLI);
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-oracle-'));
  const app = await fsp.readFile(await buildBoincProgram(path.resolve('test/c/oracle_app.c')));
  project = await startFakeProject({ app });
  project.addJobs(CASES);
  const realDir = path.join(tmp, 'real');
  await fsp.mkdir(realDir, { recursive: true });
  await fsp.writeFile(path.join(realDir, 'global_prefs_override.xml'), OVERRIDE);
  client = await startRealClient(realDir, project);
  const realDone = (async () => {
    const ctl = (op: string, name: string) => client.cmd(['--task', project.masterUrl, name, op]);
    await driveInteractive(realDir, ctl, realTimeline, (n) => outputWritten(realDir, n));
    // Quit: the client exits (its tasks quit, to resume at the next start); told to finish, it then succeeds.
    // Only once the others are reported: a task still exiting when the client restarts holds its slot lock.
    await project.waitReported(NAMES.filter((n) => n !== 'o_quit'), 50000, () => client.cmd(['--project', project.masterUrl, 'update']));
    const slot = await waitFor('o_quit running', () => runningSlot(realDir, 'o_quit'));
    await client.stop();
    priorLogs += client.log();
    await fsp.writeFile(path.join(slot, 'go'), '');
    client = await startRealClient(realDir, project);
    await project.waitReported(NAMES, 50000, () => client.cmd(['--project', project.masterUrl, 'update']));
  })();

  // altplat on the same reply, in a data dir with the same account file and preferences.
  const reply = await waitFor('the work reply', async () => project.workReplies[0]);
  altDir = path.join(tmp, 'alt');
  const files = path.join(tmp, 'files');
  await fsp.mkdir(files, { recursive: true });
  await fsp.mkdir(altDir, { recursive: true });
  for (const [n, b] of project.files) await fsp.writeFile(path.join(files, n), b);
  await fsp.writeFile(path.join(altDir, `account_${project.projectDirName}.xml`),
    `<account>\n    <master_url>${project.masterUrl}</master_url>\n    <authenticator>${AUTHENTICATOR}</authenticator>\n</account>\n`);
  // The project's prefs as the real client saves them from the reply (global_prefs.xml), and the same override.
  await fsp.writeFile(path.join(altDir, 'global_prefs.xml'), `${PROJECT_GLOBAL_PREFS.replace('@MASTER@', project.masterUrl)}\n`);
  await fsp.writeFile(path.join(altDir, 'global_prefs_override.xml'), OVERRIDE);
  const replyFile = path.join(tmp, `sched_reply_${project.projectDirName}.xml`);
  await fsp.writeFile(replyFile, reply);
  const run = startCli(['run', '--json', '--max-tasks', String(CASES.length), '--data-dir', altDir, '--host-platform', PLATFORM, '--files', files, replyFile]);
  const altCtl = (op: string, name: string) => runCli(['task', '--data-dir', altDir, op, name]);
  const altDone = driveInteractive(altDir, altCtl, altTimeline, (n) => outputWritten(altDir, n));
  await altDone;
  // Quit: `altplat task quit` leaves the task for the next run, which resumes it; told to finish, it succeeds.
  const quitSlot = await waitFor('o_quit running', () => runningSlot(altDir, 'o_quit'));
  await altCtl('quit', 'o_quit');
  altRun = await run.done;
  await fsp.writeFile(path.join(quitSlot, 'go'), '');
  altResume = await runCli(['run', '--json', '--data-dir', altDir, '--host-platform', PLATFORM]);
  await realDone;
  await client.stop();
  real = reportedResults(project);
  alt = Object.fromEntries((JSON.parse(altRun.stdout).results as AltResult[]).map((r) => [r.name, r]));
  altQuit = alt.o_quit;
  for (const r of JSON.parse(altResume.stdout).results as AltResult[]) alt[r.name] = r;
}, 120000);

afterAll(async () => {
  // For a look at a failure: ALTPLAT_ORACLE_LOG=FILE keeps the client's log, FILE.json both sides' results.
  if (process.env.ALTPLAT_ORACLE_LOG && client) {
    await fsp.writeFile(process.env.ALTPLAT_ORACLE_LOG, `${priorLogs}${client.log()}`);
    await fsp.writeFile(`${process.env.ALTPLAT_ORACLE_LOG}.json`, JSON.stringify({ real, alt, realTimeline, altTimeline }, null, 2));
  }
  await client?.stop();
  await project?.close();
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

describe('altplat and the real BOINC client 7.20.5 on the same reply', () => {
  it("Debian's boinc-client is installed (scripts/setup.sh installs it)", () => {
    expect(hasClient).toBe(true);
  });

  it('quit: the task is left to resume (altplat reports it quit), and the resumed run ends as the restarted client\'s', () => {
    expect(altQuit?.outcome).toBe('quit');
    expect(real.o_quit.stderrTxt).toMatch(/mode forever run 1[\s\S]*mode forever run 2/);
  });

  it('every case is reported by the client and by altplat', () => {
    expect(Object.keys(real).sort(), client.log()).toEqual([...NAMES].sort());
    expect(Object.keys(alt).sort(), altRun.stderr).toEqual([...NAMES].sort());
  });

  it.each(CASES.map((c) => [c.name]))('%s: the same exit status', (name) => {
    expect(alt[name].exitStatus, `${name}: real ${JSON.stringify(real[name])}\nalt ${JSON.stringify(alt[name])}`).toBe(real[name].exitStatus);
  });

  it("the same <message> as the client's <stderr_out>; for an output error, its file_xfer_error code is the output's status", () => {
    for (const n of NAMES) {
      const m = /<message>\n?([\s\S]*?)<\/message>/.exec(real[n].stderrOut)?.[1]?.trim();
      const xfer = m ? /<error_code>(-?\d+)/.exec(m) : null;
      if (xfer) {
        const out = alt[n].outputs.find((o) => o.name === `${n}_out`)!;
        expect(`${n} ${out.status}`).toBe(`${n} ${xfer[1]}`);
        expect(alt[n].outcome).toBe('compute_error');
      } else {
        expect(`${n}: ${alt[n].reason ?? ''}`).toBe(`${n}: ${m ?? ''}`);
      }
    }
  });

  it('the same outcome: success exactly where the client reports success (state 5 = FILES_UPLOADED)', () => {
    for (const n of NAMES) expect(`${n}: ${alt[n].outcome === 'success'}`).toBe(`${n}: ${real[n].state === 5}`);
  });

  it('the same stderr from the app, argv, environment and slot included (argv[0] relative to the slot)', () => {
    for (const n of NAMES) {
      // The slot's entries match but for boinc_setup_complete, which altplat writes as BOINC 8.x's
      // setup_slot_dir does (7.20.5 does not).
      expect(alt[n].stderr, n).toMatch(/^slot: .*\bboinc_setup_complete\b/m);
      expect(stable(alt[n].stderr).replace(/^(slot: .*) boinc_setup_complete\b/m, '$1'), n).toBe(stable(real[n].stderrTxt));
    }
    expect(real.o_success.stderrTxt).toMatch(/^slot: boinc_lockfile boinc_mmap_file in init_data.xml oracle_100_x86_64-pc-linux-gnu out stderr.txt$/m);
    expect(real.o_success.stderrTxt).toContain(`argv[0]=../../projects/${project.projectDirName}/oracle_100_${PLATFORM}\n`);
    expect(real.o_success.stderrTxt).toContain(`LD_LIBRARY_PATH=../../projects/${project.projectDirName}:.:../..`);
  });

  it("the demo's Windows request has every element of the real client's request, in the client's order", async () => {
    const first = project.requests[0]!.body;
    const demo = await fsp.readFile(path.resolve('scripts/demo/sched_request_windows.xml'), 'utf8');
    for (const tag of ['scheduler_request', 'host_info', 'working_global_preferences', 'time_stats', 'net_stats']) {
      const want = childNames(first, tag);
      expect(want.length, tag).toBeGreaterThan(0);
      expect(childNames(demo, tag).filter((n) => want.includes(n)), tag).toEqual(want);
    }
    expect(childNames(childNames(first, 'global_preferences').length ? first : '', 'global_preferences')).toEqual(childNames(demo, 'global_preferences'));
  });

  it('suspend holds the app on both sides; abort ends it as the client ends it', () => {
    expect(altTimeline).toEqual(realTimeline);
    expect(realTimeline[1]).toMatch(/finished while suspended: false/);
  });

  it('init_data.xml, as the client wrote it and as the app reads it: the same fields, equal values for what comes from the reply, the preferences or the account', async () => {
    const [realRead, realRaw] = project.uploads.get('o_success_out')!.toString().split('=====RAW=====\n');
    const altOut = alt.o_success.outputs.find((o) => o.name === 'o_success_out')!;
    const [altRead, altRaw] = (await fsp.readFile(altOut.path!, 'utf8')).split('=====RAW=====\n');
    for (const [which, rx, ax] of [['read', realRead, altRead], ['raw', realRaw, altRaw]]) {
      const r = initFields(rx);
      const a = initFields(ax);
      expect([...a.keys()].sort(), which).toEqual([...r.keys()].sort());
      for (const [k, v] of r) {
        if (HOST_MEASURED.has(k)) continue;
        expect(`${which} ${k}=${a.get(k)}`).toBe(`${which} ${k}=${v}`);
      }
      // What issue 9 item 6 names: the 36 preference fields (override over the project's), the account's
      // authenticator, <proxy_info>, wsl_available and coprocs.
      expect([...r.keys()].filter((k) => k.startsWith('prefs.'))).toHaveLength(36);
      expect(a.get('prefs.disk_interval')).toBe('45.000000');
      expect(a.get('prefs.source_project')).toBe(project.masterUrl);
      expect(a.get('checkpoint_period')).toBe('45.000000');
      expect(a.get('authenticator')).toBe(AUTHENTICATOR);
      expect(a.get('color')).toBe('green'); // <project_preferences> holds the project_specific part only
      expect(a.has('resource_share')).toBe(false);
      expect(a.get('host.wsl_available')).toBe('0');
      expect(a.get('host.coprocs')).toBe('<coprocs>');
      expect(a.has('proxy.http_server_port')).toBe(true);
    }
    // The API does not read override_file_present back; the client's own file has it.
    expect(initFields(altRaw).get('prefs.override_file_present')).toBe('1');
  });
});
