/*
 * Issue 9 item 10: the demo's Windows request is one a real BOINC scheduler would serve, and the demo's
 * reply is shaped as a real server writes one. The scheduler's own feasibility rules are applied to the
 * request (sched/sched_send.cpp max_allowable_disk, get_mem_sizes); the reply is built by the demo's real
 * `prepare` step and read back by altplat's parser; its signatures are checked as the 7.20 client checks
 * them (lib/crypt.cpp check_file_signature). The element-for-element comparison with a request written by
 * the real client is in test/boinc-client.test.ts.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkFileSignature } from '../scripts/demo/boinc-sign.js';
import { applyPrefsText, defaultGlobalPrefs } from '../src/prefs/global-prefs.js';
import { parseSchedulerReply } from '../src/scheduler/reply.js';

const REQUEST = path.resolve('scripts/demo/sched_request_windows.xml');
const GIGA = 1024 ** 3;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'altplat-demo-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let reply: string;
/** The demo's own `prepare` step: builds the Appendix A program and writes the reply. */
beforeAll(() => {
  const data = path.join(tmp, 'data');
  fs.mkdirSync(data);
  execFileSync(process.execPath, ['--import', 'tsx', path.resolve('scripts/demo/demo.ts'), 'prepare', data], { stdio: 'ignore' });
  reply = fs.readFileSync(path.join(data, 'sched_reply_example.org_pidemo.xml'), 'utf8');
}, 120000);

const num = (xml: string, tag: string) => Number(new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)?.[1] ?? NaN);

/** What BOINC's scheduler computes from a request before it sends any job (sched/sched_send.cpp). */
export function schedulerView(request: string) {
  const wgp = /<working_global_preferences>([\s\S]*?)<\/working_global_preferences>/.exec(request)?.[1] ?? '';
  const prefs = defaultGlobalPrefs();
  if (wgp) applyPrefsText(prefs, wgp);
  const host = { dTotal: num(request, 'd_total'), dFree: num(request, 'd_free'), mNbytes: num(request, 'm_nbytes'), dBoincUsedTotal: num(request, 'd_boinc_used_total') };
  // max_allowable_disk, with config.default_disk_min_free_gb = 1 (its default).
  const minFree = Math.max(prefs.diskMinFreeGb, 1);
  let x = host.dFree - minFree * GIGA;
  if (host.dBoincUsedTotal) {
    if (prefs.diskMaxUsedPct > 0) x = Math.min(x, host.dTotal * prefs.diskMaxUsedPct / 100 - host.dBoincUsedTotal);
    if (prefs.diskMaxUsedGb > 0) x = Math.min(x, prefs.diskMaxUsedGb * GIGA - host.dBoincUsedTotal);
  }
  // get_mem_sizes: m_nbytes times the larger of the busy and idle fractions.
  const ram = host.mNbytes > 0 ? host.mNbytes : NaN;
  const frac = Math.min(1, Math.max(prefs.ramMaxUsedBusyFrac, prefs.ramMaxUsedIdleFrac));
  return { diskAvailable: x, usableRam: ram * frac, host, hasPrefs: wgp !== '' };
}

describe("the demo's Windows scheduler request", () => {
  const request = fs.readFileSync(REQUEST, 'utf8');

  it('has the disk, memory and CPU figures a scheduler needs, and the preferences they are read with', () => {
    const v = schedulerView(request);
    expect(v.hasPrefs).toBe(true);
    expect(v.host.dTotal).toBeGreaterThan(0);
    expect(v.host.dFree).toBeGreaterThan(0);
    expect(v.host.mNbytes).toBeGreaterThan(0);
    expect(num(request, 'p_fpops')).toBeGreaterThan(0);
    expect(num(request, 'p_ncpus')).toBeGreaterThan(0);
    expect(request).toMatch(/<platform_name>windows_x86_64<\/platform_name>/);
  });

  it("has room for the demo's work by the scheduler's own rules (disk and RAM per workunit)", () => {
    const v = schedulerView(request);
    const wus = [...reply.matchAll(/<workunit>([\s\S]*?)<\/workunit>/g)].map((m) => m[1]!);
    expect(wus.length).toBeGreaterThanOrEqual(3);
    let disk = v.diskAvailable;
    for (const wu of wus) {
      expect(num(wu, 'rsc_memory_bound')).toBeLessThanOrEqual(v.usableRam);
      disk -= num(wu, 'rsc_disk_bound'); // sched_send.cpp subtracts each job's disk bound as it sends it
      expect(disk).toBeGreaterThan(0);
    }
  });
});

describe("the demo's scheduler reply", () => {

  it('is shaped as a real server writes one: request_delay, message, global_preferences, signed executables without md5, gzipped_url, code_sign_key', () => {
    const order = ['scheduler_version', 'master_url', 'request_delay', 'message', 'project_name', 'userid', 'global_preferences',
      'project_preferences', 'hostid', 'app', 'file_info', 'app_version', 'workunit', 'result', 'code_sign_key'];
    const at = order.map((t) => reply.indexOf(`<${t}`));
    expect(at.every((i) => i >= 0), JSON.stringify(Object.fromEntries(order.map((t, i) => [t, at[i]])))).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    expect(reply).toMatch(/<request_delay>\d+\.\d{6}<\/request_delay>/);
    expect(reply).toMatch(/<global_preferences>[\s\S]*<disk_interval>[\s\S]*<\/global_preferences>/);
    const key = /<code_sign_key>\n([\s\S]*?)\n<\/code_sign_key>/.exec(reply)![1]!;
    const execs = [...reply.matchAll(/<file_info>([\s\S]*?)<\/file_info>/g)].map((m) => m[1]!).filter((f) => f.includes('<executable/>'));
    expect(execs.length).toBe([...reply.matchAll(/<workunit>/g)].length);
    for (const f of execs) {
      expect(f).not.toMatch(/md5_cksum/);
      expect(f).toMatch(/<gzipped_url>[^<]+\.gz<\/gzipped_url>/);
      const name = /<name>([^<]*)</.exec(f)![1]!;
      const sig = /<file_signature>\n([\s\S]*?)<\/file_signature>/.exec(f)![1]!;
      const bytes = fs.readFileSync(path.join(tmp, 'data', 'files', name));
      expect(checkFileSignature(key, bytes, sig), name).toBe(true);
      expect(checkFileSignature(key, Buffer.concat([bytes, Buffer.from('x')]), sig)).toBe(false);
    }
  });

  it("is accepted by altplat's reply parser for a Windows host offering the two Linux alt platforms", () => {
    const parsed = parseSchedulerReply(reply, { host: ['windows_x86_64', 'windows_intelx86'], alt: ['x86_64-pc-linux-gnu', 'i686-pc-linux-gnu'] });
    expect(parsed.rejections).toEqual([]);
    expect(parsed.messages).toEqual(['Sending Linux work to an alternate platform of your windows_x86_64 host']);
    const names = [...reply.matchAll(/<result>\s*<name>([^<]*)</g)].map((m) => m[1]);
    expect(names).toEqual(expect.arrayContaining(['pi_i686_O0_0', 'pi_i686_O3_x87_0', 'pi_x64_O3_0']));
    expect(parsed.assignments.map((a) => a.result.name).sort()).toEqual(names.sort());
  });
});
