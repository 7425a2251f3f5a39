import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { childNodes, childText, parseXml, xmlEscape, type XmlNode } from '../util/xml.js';
import { formatF } from './cformat.js';
import { defaultProxyInfo, parseProxyInfo, proxyInfoXml, type ProxyInfo } from '../prefs/proxy.js';

/**
 * `<slot>/init_data.xml`, the client's description of a job for the BOINC API (APP_INIT_DATA,
 * lib/app_ipc.h). Written with the tags in the order of lib/app_ipc.cpp write_init_data_file and
 * numbers formatted as it formats them (%d / %f), so the real API and a TypeScript manager read
 * the same file.
 */
export { INIT_DATA_FILE } from '../boinc.js'; // lib/app_ipc.h INIT_DATA_FILE, defined once
import { INIT_DATA_FILE } from '../boinc.js';
/** lib/app_ipc.h DEFAULT_CHECKPOINT_PERIOD */
export const DEFAULT_CHECKPOINT_PERIOD = 300;

export interface HostInfoData {
  timezone: number;
  domainName: string;
  ipAddr: string;
  hostCpid: string;
  pNcpus: number;
  pVendor: string;
  pModel: string;
  pFeatures: string;
  pFpops: number;
  pIops: number;
  pMembw: number;
  pCalculated: number;
  pVmExtensionsDisabled: boolean;
  mNbytes: number;
  mCache: number;
  mSwap: number;
  dTotal: number;
  dFree: number;
  osName: string;
  osVersion: string;
}

/** Everything the file holds; `InitData` (what callers pass) leaves most of it to defaults. */
export interface FullInitData {
  majorVersion: number;
  minorVersion: number;
  release: number;
  appVersion: number;
  userid: number;
  teamid: number;
  hostid: number;
  appName: string;
  planClass: string;
  symstore: string;
  acctMgrUrl: string;
  /** Raw XML inside <project_preferences>, written as is (BOINC does the same). */
  projectPreferences: string;
  teamName: string;
  userName: string;
  projectDir: string;
  boincDir: string;
  authenticator: string;
  wuName: string;
  resultName: string;
  /** -1 tells the API to use boinc_mmap_file rather than System V shared memory. */
  shmKey: number;
  slot: number;
  /** The API exits when this process is gone (checked every 10 s); 0 = use the 30 s heartbeat rule. */
  clientPid: number;
  wuCpuTime: number;
  startingElapsedTime: number;
  usingSandbox: boolean;
  vmExtensionsDisabled: boolean;
  userTotalCredit: number;
  userExpavgCredit: number;
  hostTotalCredit: number;
  hostExpavgCredit: number;
  resourceShareFraction: number;
  /** Seconds between checkpoints the volunteer allows (prefs disk_interval). */
  checkpointPeriod: number;
  fractionDoneStart: number;
  fractionDoneEnd: number;
  gpuType: string;
  gpuDeviceNum: number;
  gpuOpenclDevIndex: number;
  gpuUsage: number;
  ncpus: number;
  rscFpopsEst: number;
  rscFpopsBound: number;
  rscMemoryBound: number;
  rscDiskBound: number;
  computationDeadline: number;
  vboxWindow: number;
  noPriorityChange: boolean;
  processPriority: number;
  processPrioritySpecial: number;
  hostInfo: HostInfoData;
  /** The client's working proxy; written always (lib/app_ipc.cpp write_init_data_file), BOINC's defaults without one. */
  proxyInfo: ProxyInfo;
  /**
   * Raw XML inside <global_preferences>: GLOBAL_PREFS::write's fields (src/prefs/global-prefs.ts
   * globalPrefsInnerXml). Empty only for callers that pass none; the task lifecycle always passes them.
   */
  globalPreferences: string;
  appFiles: string[];
}

type Essential = 'projectDir' | 'boincDir' | 'wuName' | 'resultName' | 'slot' | 'clientPid';
export type InitData = Pick<FullInitData, Essential> & Partial<Omit<FullInitData, Essential | 'hostInfo' | 'proxyInfo'>> & {
  hostInfo?: Partial<HostInfoData>;
  proxyInfo?: Partial<ProxyInfo>;
};

function defaultHostInfo(given: Partial<HostInfoData> = {}): HostInfoData {
  // os.cpus() reads /proc/cpuinfo and /proc/stat: only when the caller's figures lack what it gives.
  const cpus = given.pNcpus !== undefined && given.pVendor !== undefined && given.pModel !== undefined ? [] : os.cpus();
  return {
    timezone: -new Date().getTimezoneOffset() * 60,
    domainName: os.hostname(),
    ipAddr: '',
    hostCpid: '',
    pNcpus: cpus.length || 1,
    pVendor: cpus[0]?.model.split(' ')[0] ?? '',
    pModel: cpus[0]?.model ?? '',
    pFeatures: '',
    pFpops: 0,
    pIops: 0,
    pMembw: 0,
    pCalculated: 0,
    pVmExtensionsDisabled: false,
    mNbytes: os.totalmem(),
    mCache: 0,
    mSwap: 0,
    dTotal: 0,
    dFree: 0,
    osName: os.type(),
    osVersion: os.release(),
  };
}

export function withDefaults(d: InitData): FullInitData {
  return {
    majorVersion: 7, minorVersion: 20, release: 5, appVersion: 0,
    userid: 0, teamid: 0, hostid: 0,
    appName: '', planClass: '', symstore: '', acctMgrUrl: '', projectPreferences: '', teamName: '', userName: '',
    authenticator: '', shmKey: -1, wuCpuTime: 0, startingElapsedTime: 0, usingSandbox: false,
    vmExtensionsDisabled: false, userTotalCredit: 0, userExpavgCredit: 0, hostTotalCredit: 0, hostExpavgCredit: 0,
    resourceShareFraction: 1, checkpointPeriod: DEFAULT_CHECKPOINT_PERIOD, fractionDoneStart: 0, fractionDoneEnd: 1,
    gpuType: '', gpuDeviceNum: -1, gpuOpenclDevIndex: -1, gpuUsage: 0, ncpus: 1,
    rscFpopsEst: 0, rscFpopsBound: 0, rscMemoryBound: 0, rscDiskBound: 0, computationDeadline: 0,
    vboxWindow: 0, noPriorityChange: false, processPriority: -1, processPrioritySpecial: -1,
    globalPreferences: '', appFiles: [],
    ...d,
    hostInfo: { ...defaultHostInfo(d.hostInfo), ...d.hostInfo },
    proxyInfo: { ...defaultProxyInfo(), ...d.proxyInfo },
  };
}

const int = (n: number) => String(Math.trunc(n));
const flag = (b: boolean) => (b ? '1' : '0');

function hostInfoXml(h: HostInfoData): string {
  // lib/hostinfo.cpp HOST_INFO::write(include_net_info = true, include_coprocs = true): no coprocs
  // (the client runs with no GPUs for altplat's tasks), so an empty <coprocs> element; wsl_available
  // is written as 0 everywhere but 64-bit Windows.
  return [
    '<host_info>',
    `    <timezone>${int(h.timezone)}</timezone>`,
    `    <domain_name>${xmlEscape(h.domainName)}</domain_name>`,
    `    <ip_addr>${xmlEscape(h.ipAddr)}</ip_addr>`,
    `    <host_cpid>${xmlEscape(h.hostCpid)}</host_cpid>`,
    `    <p_ncpus>${int(h.pNcpus)}</p_ncpus>`,
    `    <p_vendor>${xmlEscape(h.pVendor)}</p_vendor>`,
    `    <p_model>${xmlEscape(h.pModel)}</p_model>`,
    `    <p_features>${xmlEscape(h.pFeatures)}</p_features>`,
    `    <p_fpops>${formatF(h.pFpops)}</p_fpops>`,
    `    <p_iops>${formatF(h.pIops)}</p_iops>`,
    `    <p_membw>${formatF(h.pMembw)}</p_membw>`,
    `    <p_calculated>${formatF(h.pCalculated)}</p_calculated>`,
    `    <p_vm_extensions_disabled>${flag(h.pVmExtensionsDisabled)}</p_vm_extensions_disabled>`,
    `    <m_nbytes>${formatF(h.mNbytes)}</m_nbytes>`,
    `    <m_cache>${formatF(h.mCache)}</m_cache>`,
    `    <m_swap>${formatF(h.mSwap)}</m_swap>`,
    `    <d_total>${formatF(h.dTotal)}</d_total>`,
    `    <d_free>${formatF(h.dFree)}</d_free>`,
    `    <os_name>${xmlEscape(h.osName)}</os_name>`,
    `    <os_version>${xmlEscape(h.osVersion)}</os_version>`,
    '    <n_usable_coprocs>0</n_usable_coprocs>',
    '    <wsl_available>0</wsl_available>',
    '    <coprocs>',
    '    </coprocs>',
    '</host_info>',
  ].join('\n') + '\n';
}

/** The file's text, tag for tag in write_init_data_file's order (lib/app_ipc.cpp). */
export function serializeInitData(data: InitData): string {
  const d = withDefaults(data);
  const e = xmlEscape;
  const out: string[] = ['<app_init_data>'];
  const line = (tag: string, v: string) => out.push(`<${tag}>${v}</${tag}>`);
  line('major_version', int(d.majorVersion));
  line('minor_version', int(d.minorVersion));
  line('release', int(d.release));
  line('app_version', int(d.appVersion));
  line('userid', int(d.userid));
  line('teamid', int(d.teamid));
  line('hostid', int(d.hostid));
  line('app_name', e(d.appName));
  if (d.planClass) line('plan_class', e(d.planClass));
  if (d.symstore) line('symstore', e(d.symstore));
  if (d.acctMgrUrl) line('acct_mgr_url', e(d.acctMgrUrl));
  if (d.projectPreferences) out.push(`<project_preferences>\n${d.projectPreferences}</project_preferences>`);
  if (d.teamName) line('team_name', e(d.teamName));
  if (d.userName) line('user_name', e(d.userName));
  line('project_dir', e(d.projectDir));
  line('boinc_dir', e(d.boincDir));
  line('authenticator', e(d.authenticator));
  line('wu_name', e(d.wuName));
  line('result_name', e(d.resultName));
  line('shm_key', int(d.shmKey));
  line('slot', int(d.slot));
  line('client_pid', int(d.clientPid));
  line('wu_cpu_time', formatF(d.wuCpuTime));
  line('starting_elapsed_time', formatF(d.startingElapsedTime));
  line('using_sandbox', flag(d.usingSandbox));
  line('vm_extensions_disabled', flag(d.vmExtensionsDisabled));
  line('user_total_credit', formatF(d.userTotalCredit));
  line('user_expavg_credit', formatF(d.userExpavgCredit));
  line('host_total_credit', formatF(d.hostTotalCredit));
  line('host_expavg_credit', formatF(d.hostExpavgCredit));
  line('resource_share_fraction', formatF(d.resourceShareFraction));
  line('checkpoint_period', formatF(d.checkpointPeriod));
  line('fraction_done_start', formatF(d.fractionDoneStart));
  line('fraction_done_end', formatF(d.fractionDoneEnd));
  line('gpu_type', e(d.gpuType));
  line('gpu_device_num', int(d.gpuDeviceNum));
  line('gpu_opencl_dev_index', int(d.gpuOpenclDevIndex));
  line('gpu_usage', formatF(d.gpuUsage));
  line('ncpus', formatF(d.ncpus));
  line('rsc_fpops_est', formatF(d.rscFpopsEst));
  line('rsc_fpops_bound', formatF(d.rscFpopsBound));
  line('rsc_memory_bound', formatF(d.rscMemoryBound));
  line('rsc_disk_bound', formatF(d.rscDiskBound));
  line('computation_deadline', formatF(d.computationDeadline));
  line('vbox_window', int(d.vboxWindow));
  line('no_priority_change', flag(d.noPriorityChange));
  line('process_priority', int(d.processPriority));
  line('process_priority_special', int(d.processPrioritySpecial));
  let text = out.join('\n') + '\n' + hostInfoXml(d.hostInfo);
  // PROXY_INFO::write then GLOBAL_PREFS::write, both unconditional in write_init_data_file.
  text += proxyInfoXml(d.proxyInfo);
  text += `<global_preferences>\n${d.globalPreferences}</global_preferences>\n`;
  for (const f of d.appFiles) text += `<app_file>${e(f)}</app_file>\n`;
  return `${text}</app_init_data>\n`;
}

/**
 * Write `<slot>/init_data.xml` by temp file and rename (BOINC deletes and rewrites it before every
 * start). Not fsynced: it is rebuilt from the journal before every launch, so a power cut that loses
 * it costs nothing (client/app_start.cpp write_init_data_file does not sync it either).
 */
export async function writeInitData(slotDir: string, data: InitData): Promise<string> {
  const file = path.join(slotDir, INIT_DATA_FILE);
  await writeFileAtomic(file, serializeInitData(data), 0o644, { durable: false });
  return file;
}

function num(node: XmlNode, tag: string, fallback: number): number {
  const t = childText(node, tag);
  if (t === undefined || t.trim() === '') return fallback;
  const v = Number(t);
  if (!Number.isFinite(v)) {
    throw new AltplatError('INIT_DATA_BAD_NUMBER', `init_data.xml: <${tag}> is not a number: ${JSON.stringify(t)}`, { tag, value: t });
  }
  return v;
}

function rawInner(text: string, tag: string): string {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(text);
  if (!m) return '';
  return m[1].startsWith('\n') ? m[1].slice(1) : m[1];
}

export function parseInitData(text: string): FullInitData {
  const doc = parseXml(text, { what: 'init_data.xml', codePrefix: 'INIT_DATA', maxBytes: 4 << 20, arrayTags: ['app_file'] });
  const root = doc.app_init_data as XmlNode | undefined;
  if (!root || typeof root !== 'object') {
    throw new AltplatError('INIT_DATA_MISSING_ELEMENT', 'init_data.xml lacks <app_init_data>');
  }
  const str = (tag: string) => childText(root, tag) ?? '';
  const bool = (tag: string) => num(root, tag, 0) !== 0;
  const h = (root.host_info ?? {}) as XmlNode;
  const hs = (tag: string) => childText(h, tag) ?? '';
  const base = withDefaults({ projectDir: '', boincDir: '', wuName: '', resultName: '', slot: 0, clientPid: 0 });
  return {
    majorVersion: num(root, 'major_version', 0),
    minorVersion: num(root, 'minor_version', 0),
    release: num(root, 'release', 0),
    appVersion: num(root, 'app_version', 0),
    userid: num(root, 'userid', 0),
    teamid: num(root, 'teamid', 0),
    hostid: num(root, 'hostid', 0),
    appName: str('app_name'),
    planClass: str('plan_class'),
    symstore: str('symstore'),
    acctMgrUrl: str('acct_mgr_url'),
    projectPreferences: rawInner(text, 'project_preferences'),
    teamName: str('team_name'),
    userName: str('user_name'),
    projectDir: str('project_dir'),
    boincDir: str('boinc_dir'),
    authenticator: str('authenticator'),
    wuName: str('wu_name'),
    resultName: str('result_name'),
    // Absent shm_key: the API's default 0 means System V shared memory, which we cannot attach.
    shmKey: num(root, 'shm_key', 0),
    slot: num(root, 'slot', 0),
    clientPid: num(root, 'client_pid', 0),
    wuCpuTime: num(root, 'wu_cpu_time', 0),
    startingElapsedTime: num(root, 'starting_elapsed_time', 0),
    usingSandbox: bool('using_sandbox'),
    vmExtensionsDisabled: bool('vm_extensions_disabled'),
    userTotalCredit: num(root, 'user_total_credit', 0),
    userExpavgCredit: num(root, 'user_expavg_credit', 0),
    hostTotalCredit: num(root, 'host_total_credit', 0),
    hostExpavgCredit: num(root, 'host_expavg_credit', 0),
    resourceShareFraction: num(root, 'resource_share_fraction', 0),
    // APP_INIT_DATA::clear leaves 0; the API then checkpoints as often as the app likes.
    checkpointPeriod: num(root, 'checkpoint_period', 0),
    fractionDoneStart: num(root, 'fraction_done_start', 0),
    fractionDoneEnd: num(root, 'fraction_done_end', 1),
    gpuType: str('gpu_type'),
    gpuDeviceNum: num(root, 'gpu_device_num', -1),
    gpuOpenclDevIndex: num(root, 'gpu_opencl_dev_index', -1),
    gpuUsage: num(root, 'gpu_usage', 0),
    ncpus: num(root, 'ncpus', 0),
    rscFpopsEst: num(root, 'rsc_fpops_est', 0),
    rscFpopsBound: num(root, 'rsc_fpops_bound', 0),
    rscMemoryBound: num(root, 'rsc_memory_bound', 0),
    rscDiskBound: num(root, 'rsc_disk_bound', 0),
    computationDeadline: num(root, 'computation_deadline', 0),
    vboxWindow: num(root, 'vbox_window', 0),
    noPriorityChange: bool('no_priority_change'),
    processPriority: num(root, 'process_priority', -1),
    processPrioritySpecial: num(root, 'process_priority_special', -1),
    hostInfo: {
      ...base.hostInfo,
      timezone: num(h, 'timezone', 0),
      domainName: hs('domain_name'),
      ipAddr: hs('ip_addr'),
      hostCpid: hs('host_cpid'),
      pNcpus: num(h, 'p_ncpus', 0),
      pVendor: hs('p_vendor'),
      pModel: hs('p_model'),
      pFeatures: hs('p_features'),
      pFpops: num(h, 'p_fpops', 0),
      pIops: num(h, 'p_iops', 0),
      pMembw: num(h, 'p_membw', 0),
      pCalculated: num(h, 'p_calculated', 0),
      pVmExtensionsDisabled: num(h, 'p_vm_extensions_disabled', 0) !== 0,
      mNbytes: num(h, 'm_nbytes', 0),
      mCache: num(h, 'm_cache', 0),
      mSwap: num(h, 'm_swap', 0),
      dTotal: num(h, 'd_total', 0),
      dFree: num(h, 'd_free', 0),
      osName: hs('os_name'),
      osVersion: hs('os_version'),
    },
    proxyInfo: parseProxyInfo(rawInner(text, 'proxy_info')).info,
    globalPreferences: rawInner(text, 'global_preferences'),
    appFiles: childNodes(root, 'app_file').length > 0
      ? ([] as string[]).concat(root.app_file as string | string[]).map(String)
      : [],
  };
}

/** Read `<slot>/init_data.xml`; AltplatError INIT_DATA_MISSING when absent, INIT_DATA_* when malformed. */
export async function readInitData(slotDir: string): Promise<FullInitData> {
  const file = path.join(slotDir, INIT_DATA_FILE);
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new AltplatError('INIT_DATA_MISSING', `${file} does not exist`, { file });
    throw e;
  }
  return parseInitData(text);
}
