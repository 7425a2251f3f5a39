/*
 * Issue 9 item 6: the client configuration init_data.xml is made from (src/prefs): the volunteer's global
 * preferences read by lib/prefs.cpp's rules, the working proxy, the account's authenticator. The whole
 * file is compared with the real client's in test/boinc-client.test.ts; these are the rules one by one.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { recordAccelVerdict, verdictKeyParts } from '../src/host/accel-verdict.js';
import { serializeInitData, parseInitData } from '../src/ipc/init-data.js';
import { clientInitData, computationDeadline, globalPrefsInnerXml, projectSpecificPrefs, readAuthenticator, readGlobalPrefs, readProxyInfo, SAVED_REPLY_PREFS_FILE } from '../src/prefs/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'altplat-prefs2-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function dir(files: Record<string, string>): string {
  const d = path.join(tmp, String(n++));
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(d, f)), { recursive: true });
    fs.writeFileSync(path.join(d, f), text);
  }
  fs.mkdirSync(d, { recursive: true });
  return d;
}
const tags = (xml: string) => [...xml.matchAll(/^ {3}<(\w+)>/gm)].map((m) => m[1]);
const field = (xml: string, tag: string) => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)?.[1];

describe('global preferences (lib/prefs.cpp, client/cs_prefs.cpp read_global_prefs)', () => {
  it('without any file: GLOBAL_PREFS::defaults, 36 fields in GLOBAL_PREFS::write order', async () => {
    const xml = globalPrefsInnerXml(await readGlobalPrefs(dir({})));
    expect(tags(xml)).toHaveLength(36);
    expect(tags(xml).slice(0, 3)).toEqual(['source_project', 'mod_time', 'battery_charge_min_pct']);
    expect(tags(xml).slice(-2)).toEqual(['override_file_present', 'network_wifi_only']);
    expect(field(xml, 'disk_interval')).toBe('60.000000');
    expect(field(xml, 'confirm_before_connecting')).toBe('1'); // defaults() sets it; a parsed file clears it
    expect(field(xml, 'ram_max_used_busy_pct')).toBe('50.000000');
  });

  it('a prefs file: booleans it omits are false (init_bools), network_wifi_only true; values clamped as parse_override does', async () => {
    const p = await readGlobalPrefs(dir({ 'global_prefs.xml': '<global_preferences>\n<mod_time>1700000000</mod_time>\n<disk_interval>-3</disk_interval>\n'
      + '<max_ncpus_pct>250</max_ncpus_pct>\n<ram_max_used_busy_pct>0</ram_max_used_busy_pct>\n<cpu_usage_limit>0</cpu_usage_limit>\n<dont_verify_images/>\n</global_preferences>\n' }));
    expect(p).toMatchObject({ diskInterval: 0, maxNcpusPct: 100, ramMaxUsedBusyFrac: 1, cpuUsageLimit: 100, dontVerifyImages: true,
      confirmBeforeConnecting: false, runIfUserActive: false, networkWifiOnly: true, modTime: 1700000000, overrideFilePresent: false });
  });

  it("the host's venue replaces the top-level values; other venues are ignored; the override wins over both", async () => {
    const prefs = '<global_preferences>\n<source_project>http://p/</source_project>\n<disk_interval>120</disk_interval>\n<suspend_cpu_usage>10</suspend_cpu_usage>\n'
      + '<venue name="work">\n<disk_interval>7</disk_interval>\n</venue>\n<venue name="home">\n<disk_interval>9</disk_interval>\n</venue>\n</global_preferences>\n';
    expect((await readGlobalPrefs(dir({ 'global_prefs.xml': prefs }))).diskInterval).toBe(120);
    const atWork = await readGlobalPrefs(dir({ 'global_prefs.xml': prefs }), { hostVenue: 'work' });
    expect(atWork).toMatchObject({ diskInterval: 7, suspendCpuUsage: 25, sourceProject: 'http://p/' }); // the venue starts from defaults
    const overridden = await readGlobalPrefs(dir({ 'global_prefs.xml': prefs,
      'global_prefs_override.xml': '<global_preferences>\n<host_venue>home</host_venue>\n<max_ncpus_pct>50</max_ncpus_pct>\n</global_preferences>\n' }));
    expect(overridden).toMatchObject({ diskInterval: 9, maxNcpusPct: 50, overrideFilePresent: true });
  });

  it('day_prefs are written as GLOBAL_PREFS::write_day_prefs writes them; max_cpus only when set', async () => {
    const xml = globalPrefsInnerXml(await readGlobalPrefs(dir({ 'global_prefs.xml': '<global_preferences>\n<max_cpus>3</max_cpus>\n'
      + '<day_prefs>\n<day_of_week>2</day_of_week>\n<start_hour>8</start_hour>\n<end_hour>17.5</end_hour>\n</day_prefs>\n</global_preferences>\n' })));
    expect(xml).toContain('   <max_cpus>3</max_cpus>\n   <day_prefs>\n      <day_of_week>2</day_of_week>\n      <start_hour>8.00</start_hour>\n      <end_hour>17.50</end_hour>\n   </day_prefs>\n');
    expect(field(xml, 'start_hour')).toBe('0.000000'); // the week's own hours are not the top-level ones
  });

  it("the reply prefs the CLI saved under altplat/ are used when newer than the data dir's global_prefs.xml", async () => {
    const older = '<global_preferences>\n<mod_time>1000</mod_time>\n<disk_interval>100</disk_interval>\n</global_preferences>\n';
    const newer = '<global_preferences>\n<mod_time>2000</mod_time>\n<disk_interval>30</disk_interval>\n</global_preferences>\n';
    expect((await readGlobalPrefs(dir({ 'global_prefs.xml': older, [SAVED_REPLY_PREFS_FILE]: newer }))).diskInterval).toBe(30);
    expect((await readGlobalPrefs(dir({ 'global_prefs.xml': newer, [SAVED_REPLY_PREFS_FILE]: older }))).diskInterval).toBe(30);
  });
});

describe('proxy, account, deadline', () => {
  it('<proxy_info> is written always; cc_config.xml names a proxy the client then uses', async () => {
    const none = serializeInitData({ projectDir: '/p', boincDir: '/d', wuName: 'w', resultName: 'r', slot: 0, clientPid: 1 });
    expect(none).toContain('<proxy_info>\n    <socks_server_name></socks_server_name>\n    <socks_server_port>80</socks_server_port>\n');
    expect(none).toContain('    <n_usable_coprocs>0</n_usable_coprocs>\n    <wsl_available>0</wsl_available>\n    <coprocs>\n    </coprocs>\n</host_info>\n<proxy_info>');
    const d = dir({ 'cc_config.xml': '<cc_config>\n<options>\n<proxy_info>\n<use_http_proxy/>\n<http_server_name>proxy.lan</http_server_name>\n'
      + '<http_server_port>3128</http_server_port>\n<http_user_name>a&amp;b</http_user_name>\n</proxy_info>\n</options>\n</cc_config>\n' });
    const proxy = await readProxyInfo(d);
    expect(proxy).toMatchObject({ useHttpProxy: true, httpServerName: 'proxy.lan', httpServerPort: 3128, httpUserName: 'a&b' });
    const text = serializeInitData({ projectDir: '/p', boincDir: '/d', wuName: 'w', resultName: 'r', slot: 0, clientPid: 1, proxyInfo: proxy });
    expect(text).toContain('<proxy_info>\n    <use_http_proxy/>\n    <socks_server_name></socks_server_name>');
    expect(text).toContain('<http_user_name>a&amp;b</http_user_name>');
    expect(parseInitData(text).proxyInfo).toMatchObject({ httpServerName: 'proxy.lan', httpServerPort: 3128 });
  });

  it("the authenticator comes from the project's account file; none without one", async () => {
    const url = 'http://127.0.0.1:8080/test/';
    const d = dir({ 'account_127.0.0.1_8080_test.xml': `<account>\n    <master_url>${url}</master_url>\n    <authenticator>abc123</authenticator>\n</account>\n` });
    expect(await readAuthenticator(d, url)).toBe('abc123');
    expect(await readAuthenticator(d, 'http://other.example/')).toBe('');
    const c = await clientInitData(d, url, 1900000000);
    expect(c.authenticator).toBe('abc123');
    expect(c.computationDeadline).toBe(1900000000 - 8640);
    expect(c.vmExtensionsDisabled).toBe(false);
  });

  it("vm_extensions_disabled follows the QEMU manager's recorded KVM verdict for this kernel, as p_vm_extensions_disabled does in BOINC", async () => {
    const d = dir({});
    await recordAccelVerdict(d, { works: false, reason: 'VM_BOOT_TIMEOUT', ...await verdictKeyParts('qemu-system-x86_64') });
    const c = await clientInitData(d, 'http://x/', 0);
    expect(c.vmExtensionsDisabled).toBe(true);
    expect(c.hostInfo.pVmExtensionsDisabled).toBe(true);
  });

  it('computation_deadline keeps at least WF_EST_FETCH_TIME; project_preferences is the project_specific part', () => {
    expect(computationDeadline(1000000, { workBufMinDays: 0 })).toBe(1000000 - 180);
    expect(projectSpecificPrefs('\n<color>x</color>\n<project_specific>\n<a>1</a>\n</project_specific>\n')).toBe('\n<a>1</a>\n');
    expect(projectSpecificPrefs('<color>x</color>')).toBe('');
  });
});
