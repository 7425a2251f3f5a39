import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { errnoCode } from '../errors.js';
import { STATE_DIR } from '../paths.js';
import { formatF } from '../ipc/cformat.js';
import { xmlEscape } from '../util/xml.js';

/**
 * The volunteer's global preferences as the BOINC client holds them (lib/prefs.cpp GLOBAL_PREFS): the
 * defaults, the project-sent preferences file (its own venue, if it has one), then the local
 * override file on top (client/cs_prefs.cpp read_global_prefs). What apps see in init_data.xml is
 * GLOBAL_PREFS::write of the result — the 36 fields, plus max_cpus and day_prefs when set.
 */
export const GLOBAL_PREFS_FILE = 'global_prefs.xml'; // client/file_names.h
export const GLOBAL_PREFS_OVERRIDE_FILE = 'global_prefs_override.xml';
/** Where the altplat CLI keeps the prefs of the last scheduler reply (the data dir's own file may belong to a real client). */
export const SAVED_REPLY_PREFS_FILE = path.join(STATE_DIR, 'global_prefs.xml');

export interface DayPrefs { cpu?: [number, number]; net?: [number, number] }

export interface GlobalPrefs {
  sourceProject: string;
  modTime: number;
  batteryChargeMinPct: number;
  batteryMaxTemperature: number;
  runOnBatteries: boolean;
  runIfUserActive: boolean;
  runGpuIfUserActive: boolean;
  suspendIfNoRecentInput: number;
  suspendCpuUsage: number;
  startHour: number;
  endHour: number;
  netStartHour: number;
  netEndHour: number;
  leaveAppsInMemory: boolean;
  confirmBeforeConnecting: boolean;
  hangupIfDialed: boolean;
  dontVerifyImages: boolean;
  workBufMinDays: number;
  workBufAdditionalDays: number;
  maxNcpusPct: number;
  maxNcpus: number;
  cpuSchedulingPeriodMinutes: number;
  diskInterval: number;
  diskMaxUsedGb: number;
  diskMaxUsedPct: number;
  diskMinFreeGb: number;
  vmMaxUsedFrac: number;
  ramMaxUsedBusyFrac: number;
  ramMaxUsedIdleFrac: number;
  idleTimeToRun: number;
  maxBytesSecUp: number;
  maxBytesSecDown: number;
  cpuUsageLimit: number;
  dailyXferLimitMb: number;
  dailyXferPeriodDays: number;
  overrideFilePresent: boolean;
  networkWifiOnly: boolean;
  hostSpecific: boolean;
  /** day_prefs by day of week (0 = Sunday). */
  days: Record<number, DayPrefs>;
}

/** GLOBAL_PREFS::defaults() for a non-Android client (lib/prefs.cpp). */
function defaults(p: GlobalPrefs): void {
  Object.assign(p, {
    batteryChargeMinPct: 90, batteryMaxTemperature: 40, confirmBeforeConnecting: true, cpuSchedulingPeriodMinutes: 60,
    startHour: 0, endHour: 0, netStartHour: 0, netEndHour: 0, days: {},
    cpuUsageLimit: 100, dailyXferLimitMb: 0, dailyXferPeriodDays: 0, diskInterval: 60, diskMaxUsedGb: 0,
    diskMaxUsedPct: 90, diskMinFreeGb: 0.1, dontVerifyImages: false, hangupIfDialed: false, idleTimeToRun: 3,
    leaveAppsInMemory: false, maxBytesSecDown: 0, maxBytesSecUp: 0, maxNcpus: 0, maxNcpusPct: 0,
    networkWifiOnly: false, ramMaxUsedBusyFrac: 0.5, ramMaxUsedIdleFrac: 0.9, runGpuIfUserActive: false,
    runIfUserActive: true, runOnBatteries: false, suspendCpuUsage: 25, suspendIfNoRecentInput: 0,
    vmMaxUsedFrac: 0.75, workBufAdditionalDays: 0.5, workBufMinDays: 0.1, overrideFilePresent: false,
  } satisfies Omit<GlobalPrefs, 'sourceProject' | 'modTime' | 'hostSpecific'>);
}

/** GLOBAL_PREFS::init_bools(), called before parsing a prefs file: absent booleans are false (wifi-only true). */
function initBools(p: GlobalPrefs): void {
  Object.assign(p, { runOnBatteries: false, runIfUserActive: false, leaveAppsInMemory: false, confirmBeforeConnecting: false,
    hangupIfDialed: false, dontVerifyImages: false, networkWifiOnly: true });
}

/** GLOBAL_PREFS::init(): what the client uses with no preferences file at all. */
export function defaultGlobalPrefs(): GlobalPrefs {
  const p = { sourceProject: '', modTime: 0, hostSpecific: false } as GlobalPrefs;
  defaults(p);
  return p;
}

type Token = { kind: 'open' | 'close' | 'empty'; name: string; attrs: string; end: number };

function* tags(text: string): Generator<Token> {
  const re = /<(\/?)([A-Za-z_][\w.:-]*)([^>]*?)(\/?)>/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    yield { kind: m[1] ? 'close' : m[4] ? 'empty' : 'open', name: m[2], attrs: m[3], end: re.lastIndex };
  }
}

const unescape = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');

/** C strtod/strtol on an element's text: the longest numeric prefix, or undefined when there is none. */
function cNumber(raw: string, integer: boolean): number | undefined {
  const m = (integer ? /^\s*[+-]?\d+/ : /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/).exec(raw);
  return m ? Number(m[0]) : undefined;
}

type Field = { key: keyof GlobalPrefs; type: 'double' | 'int' | 'bool'; fix?: (v: number, p: GlobalPrefs) => void };

/** The tags GLOBAL_PREFS::parse_override knows, with its clamps. */
const FIELDS: Record<string, Field> = {
  battery_charge_min_pct: { key: 'batteryChargeMinPct', type: 'double' },
  battery_max_temperature: { key: 'batteryMaxTemperature', type: 'double' },
  run_on_batteries: { key: 'runOnBatteries', type: 'bool' },
  run_if_user_active: { key: 'runIfUserActive', type: 'bool' },
  run_gpu_if_user_active: { key: 'runGpuIfUserActive', type: 'bool' },
  idle_time_to_run: { key: 'idleTimeToRun', type: 'double' },
  suspend_if_no_recent_input: { key: 'suspendIfNoRecentInput', type: 'double' },
  suspend_cpu_usage: { key: 'suspendCpuUsage', type: 'double' },
  start_hour: { key: 'startHour', type: 'double' },
  end_hour: { key: 'endHour', type: 'double' },
  net_start_hour: { key: 'netStartHour', type: 'double' },
  net_end_hour: { key: 'netEndHour', type: 'double' },
  leave_apps_in_memory: { key: 'leaveAppsInMemory', type: 'bool' },
  confirm_before_connecting: { key: 'confirmBeforeConnecting', type: 'bool' },
  hangup_if_dialed: { key: 'hangupIfDialed', type: 'bool' },
  dont_verify_images: { key: 'dontVerifyImages', type: 'bool' },
  work_buf_min_days: { key: 'workBufMinDays', type: 'double', fix: (v, p) => { p.workBufMinDays = Math.max(0, v); } },
  work_buf_additional_days: { key: 'workBufAdditionalDays', type: 'double', fix: (v, p) => { p.workBufAdditionalDays = Math.max(0, v); } },
  max_ncpus_pct: { key: 'maxNcpusPct', type: 'double', fix: (v, p) => { p.maxNcpusPct = Math.min(100, Math.max(0, v)); } },
  max_cpus: { key: 'maxNcpus', type: 'int', fix: (v, p) => { p.maxNcpus = Math.max(0, v); } },
  disk_interval: { key: 'diskInterval', type: 'double', fix: (v, p) => { p.diskInterval = Math.max(0, v); } },
  cpu_scheduling_period_minutes: { key: 'cpuSchedulingPeriodMinutes', type: 'double',
    fix: (v, p) => { p.cpuSchedulingPeriodMinutes = v < 0.0001 ? 60 : v; } },
  disk_max_used_gb: { key: 'diskMaxUsedGb', type: 'double' },
  disk_max_used_pct: { key: 'diskMaxUsedPct', type: 'double' },
  disk_min_free_gb: { key: 'diskMinFreeGb', type: 'double' },
  vm_max_used_pct: { key: 'vmMaxUsedFrac', type: 'double', fix: (v, p) => { p.vmMaxUsedFrac = v / 100; } },
  ram_max_used_busy_pct: { key: 'ramMaxUsedBusyFrac', type: 'double', fix: (v, p) => { p.ramMaxUsedBusyFrac = (v || 100) / 100; } },
  ram_max_used_idle_pct: { key: 'ramMaxUsedIdleFrac', type: 'double', fix: (v, p) => { p.ramMaxUsedIdleFrac = (v || 100) / 100; } },
  max_bytes_sec_up: { key: 'maxBytesSecUp', type: 'double', fix: (v, p) => { p.maxBytesSecUp = Math.max(0, v); } },
  max_bytes_sec_down: { key: 'maxBytesSecDown', type: 'double', fix: (v, p) => { p.maxBytesSecDown = Math.max(0, v); } },
  cpu_usage_limit: { key: 'cpuUsageLimit', type: 'double', fix: (v, p) => { if (v > 0 && v <= 100) p.cpuUsageLimit = v; } },
  daily_xfer_limit_mb: { key: 'dailyXferLimitMb', type: 'double', fix: (v, p) => { if (v >= 0) p.dailyXferLimitMb = v; } },
  daily_xfer_period_days: { key: 'dailyXferPeriodDays', type: 'int', fix: (v, p) => { if (v >= 0) p.dailyXferPeriodDays = v; } },
  network_wifi_only: { key: 'networkWifiOnly', type: 'bool' },
  host_specific: { key: 'hostSpecific', type: 'bool' },
};

/**
 * GLOBAL_PREFS::parse_override on `text`, over `p`: outside a venue every known tag applies; the venue
 * named `hostVenue` (if any) resets to the defaults, applies, and ends the parse; other venues are skipped.
 * Like BOINC's XML_PARSER it takes what it can from a damaged file.
 */
export function applyPrefsText(p: GlobalPrefs, text: string, hostVenue = '', now = Date.now() / 1000): { foundVenue: boolean } {
  const src = text.replace(/<!--[\s\S]*?-->/g, '');
  let inVenue = false;
  let inCorrectVenue = false;
  let foundVenue = false;
  let day: { dow?: number; cpu: number[]; net: number[]; hasCpu: boolean; hasNet: boolean } | undefined;
  const valueAt = (end: number) => src.slice(end, src.indexOf('<', end) < 0 ? src.length : src.indexOf('<', end));
  for (const t of tags(src)) {
    if (t.name === 'global_preferences') {
      if (t.kind === 'close') break;
      continue;
    }
    if (inVenue) {
      if (t.name === 'venue' && t.kind === 'close') {
        if (inCorrectVenue) return { foundVenue };
        inVenue = false;
        continue;
      }
      if (!inCorrectVenue) continue;
    } else if (t.name === 'venue' && t.kind !== 'close') {
      // BOINC tests strstr(tag, "venue"), which a <host_venue> would also meet and reset every value:
      // only <venue> is taken here.
      inVenue = true;
      const name = /name\s*=\s*"([^"]*)"/.exec(t.attrs)?.[1] ?? '';
      if (name === hostVenue) {
        defaults(p);
        initBools(p);
        inCorrectVenue = true;
        foundVenue = true;
      } else {
        inCorrectVenue = false;
      }
      continue;
    }
    if (t.kind === 'close') {
      if (t.name === 'day_prefs' && day) {
        if (day.dow !== undefined && day.dow >= 0 && day.dow <= 6) {
          const d = (p.days[day.dow] ??= {});
          if (day.hasCpu) d.cpu = [day.cpu[0], day.cpu[1]];
          if (day.hasNet) d.net = [day.net[0], day.net[1]];
        }
        day = undefined;
      }
      continue;
    }
    if (t.name === 'day_prefs' && t.kind === 'open') {
      day = { cpu: [0, 0], net: [0, 0], hasCpu: false, hasNet: false };
      continue;
    }
    const raw = t.kind === 'empty' ? '' : valueAt(t.end);
    if (day) {
      const v = cNumber(raw, t.name === 'day_of_week');
      if (v === undefined) continue;
      if (t.name === 'day_of_week') day.dow = v;
      else if (t.name === 'start_hour' || t.name === 'end_hour') { day.cpu[t.name === 'start_hour' ? 0 : 1] = v; day.hasCpu = true; }
      else if (t.name === 'net_start_hour' || t.name === 'net_end_hour') { day.net[t.name === 'net_start_hour' ? 0 : 1] = v; day.hasNet = true; }
      continue;
    }
    if (t.name === 'source_project') { p.sourceProject = unescape(raw.trim()); continue; }
    if (t.name === 'mod_time') {
      const v = cNumber(raw, false);
      if (v !== undefined) p.modTime = Math.min(v, now);
      continue;
    }
    const f = FIELDS[t.name];
    if (!f) continue;
    if (f.type === 'bool') {
      // XML_PARSER::parse_bool: <tag/> is true, otherwise the number's truth.
      (p as unknown as Record<string, unknown>)[f.key] = t.kind === 'empty' ? true : (cNumber(raw, true) ?? 0) !== 0;
      continue;
    }
    const v = cNumber(raw, f.type === 'int');
    if (v === undefined) continue;
    if (f.fix) f.fix(v, p);
    else (p as unknown as Record<string, unknown>)[f.key] = v;
  }
  return { foundVenue };
}

async function readIfPresent(file: string): Promise<string | undefined> {
  try {
    // Reading through a link is allowed: Debian links global_prefs_override.xml into /etc/boinc-client/.
    // Read directly (before every launch): small files, and a promise-based read costs ~20x more.
    return readFileSync(file, 'latin1');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
    throw e;
  }
}

const modTimeOf = (text: string) => Number(/<mod_time>\s*([^<]*)</.exec(text)?.[1] ?? 0) || 0;

export interface ReadPrefsOptions {
  /** The host's venue (client_state.xml <host_venue>); the override file's <host_venue> wins. */
  hostVenue?: string;
  /** Seconds since the epoch, for BOINC's clamp of a future mod_time. */
  now?: number;
}

/**
 * The preferences in force for `dataDir`, as client/cs_prefs.cpp read_global_prefs builds them: the
 * project-sent preferences — the data dir's global_prefs.xml, or the prefs the altplat CLI saved from
 * the last reply (`altplat/global_prefs.xml`), whichever is newer by <mod_time>, as BOINC keeps only
 * the newer ones — then global_prefs_override.xml over them.
 */
export async function readGlobalPrefs(dataDir: string, opts: ReadPrefsOptions = {}): Promise<GlobalPrefs> {
  const now = opts.now ?? Date.now() / 1000;
  const override = await readIfPresent(path.join(dataDir, GLOBAL_PREFS_OVERRIDE_FILE));
  const overrideVenue = override ? /<host_venue>([^<]*)<\/host_venue>/.exec(override)?.[1] ?? '' : '';
  const hostVenue = overrideVenue || opts.hostVenue || '';
  const candidates = (await Promise.all([GLOBAL_PREFS_FILE, SAVED_REPLY_PREFS_FILE].map((f) => readIfPresent(path.join(dataDir, f)))))
    .filter((t): t is string => t !== undefined && /<global_preferences/.test(t));
  const base = candidates.sort((a, b) => modTimeOf(b) - modTimeOf(a))[0];
  const p = defaultGlobalPrefs();
  if (base !== undefined) {
    // GLOBAL_PREFS::parse = init + init_bools + parse_override.
    initBools(p);
    applyPrefsText(p, base, hostVenue, now);
  }
  p.overrideFilePresent = false;
  if (override !== undefined) {
    applyPrefsText(p, override, '', now);
    p.overrideFilePresent = true;
  }
  return p;
}

const b = (v: boolean) => (v ? '1' : '0');
const hh = (v: number) => v.toFixed(2);

/** The inside of GLOBAL_PREFS::write's <global_preferences> element (lib/prefs.cpp), tag for tag. */
export function globalPrefsInnerXml(p: GlobalPrefs): string {
  const rows: Array<[string, string]> = [
    ['source_project', xmlEscape(p.sourceProject)], ['mod_time', formatF(p.modTime)],
    ['battery_charge_min_pct', formatF(p.batteryChargeMinPct)], ['battery_max_temperature', formatF(p.batteryMaxTemperature)],
    ['run_on_batteries', b(p.runOnBatteries)], ['run_if_user_active', b(p.runIfUserActive)],
    ['run_gpu_if_user_active', b(p.runGpuIfUserActive)], ['suspend_if_no_recent_input', formatF(p.suspendIfNoRecentInput)],
    ['suspend_cpu_usage', formatF(p.suspendCpuUsage)], ['start_hour', formatF(p.startHour)], ['end_hour', formatF(p.endHour)],
    ['net_start_hour', formatF(p.netStartHour)], ['net_end_hour', formatF(p.netEndHour)],
    ['leave_apps_in_memory', b(p.leaveAppsInMemory)], ['confirm_before_connecting', b(p.confirmBeforeConnecting)],
    ['hangup_if_dialed', b(p.hangupIfDialed)], ['dont_verify_images', b(p.dontVerifyImages)],
    ['work_buf_min_days', formatF(p.workBufMinDays)], ['work_buf_additional_days', formatF(p.workBufAdditionalDays)],
    ['max_ncpus_pct', formatF(p.maxNcpusPct)], ['cpu_scheduling_period_minutes', formatF(p.cpuSchedulingPeriodMinutes)],
    ['disk_interval', formatF(p.diskInterval)], ['disk_max_used_gb', formatF(p.diskMaxUsedGb)],
    ['disk_max_used_pct', formatF(p.diskMaxUsedPct)], ['disk_min_free_gb', formatF(p.diskMinFreeGb)],
    ['vm_max_used_pct', formatF(p.vmMaxUsedFrac * 100)], ['ram_max_used_busy_pct', formatF(p.ramMaxUsedBusyFrac * 100)],
    ['ram_max_used_idle_pct', formatF(p.ramMaxUsedIdleFrac * 100)], ['idle_time_to_run', formatF(p.idleTimeToRun)],
    ['max_bytes_sec_up', formatF(p.maxBytesSecUp)], ['max_bytes_sec_down', formatF(p.maxBytesSecDown)],
    ['cpu_usage_limit', formatF(p.cpuUsageLimit)], ['daily_xfer_limit_mb', formatF(p.dailyXferLimitMb)],
    ['daily_xfer_period_days', String(Math.trunc(p.dailyXferPeriodDays))],
    ['override_file_present', b(p.overrideFilePresent)], ['network_wifi_only', b(p.networkWifiOnly)],
  ];
  let out = rows.map(([t, v]) => `   <${t}>${v}</${t}>\n`).join('');
  if (p.maxNcpus) out += `   <max_cpus>${Math.trunc(p.maxNcpus)}</max_cpus>\n`;
  for (let i = 0; i < 7; i++) {
    const d = p.days[i];
    if (!d || (!d.cpu && !d.net)) continue;
    out += `   <day_prefs>\n      <day_of_week>${i}</day_of_week>\n`;
    if (d.cpu) out += `      <start_hour>${hh(d.cpu[0])}</start_hour>\n      <end_hour>${hh(d.cpu[1])}</end_hour>\n`;
    if (d.net) out += `      <net_start_hour>${hh(d.net[0])}</net_start_hour>\n      <net_end_hour>${hh(d.net[1])}</net_end_hour>\n`;
    out += '   </day_prefs>\n';
  }
  return out;
}
