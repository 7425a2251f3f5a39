import { formatE, formatF } from './cformat.js';

/**
 * The texts that travel on the channels, built and parsed exactly as BOINC builds and parses them.
 * BOINC's parsing is substring-based (lib/parse.cpp parse_double/parse_int/match_tag), not XML:
 * a tag is found anywhere in the buffer and the number right after it is read with atof/strtol.
 */

/** Process-control requests, no trailing newline (client/app_control.cpp). */
export const CONTROL_TEXT = {
  suspend: '<suspend/>',
  resume: '<resume/>',
  quit: '<quit/>',
  abort: '<abort/>',
  reread_app_info: '<reread_app_info/>',
} as const;

export function matchTag(buf: string, tag: string): boolean {
  return buf.includes(tag);
}

/** lib/parse.cpp parse_double: atof of the text after `tag`; non-finite values do not count. */
export function parseDouble(buf: string, tag: string): number | undefined {
  const i = buf.indexOf(tag);
  if (i < 0) return undefined;
  const m = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?/.exec(buf.slice(i + tag.length));
  const v = m ? Number(m[0]) : 0; // atof gives 0 for no number
  return Number.isFinite(v) ? v : undefined;
}

/** lib/parse.cpp parse_int: strtol of the text after `tag`. */
export function parseInt10(buf: string, tag: string): number | undefined {
  const i = buf.indexOf(tag);
  if (i < 0) return undefined;
  const m = /^\s*[-+]?\d+/.exec(buf.slice(i + tag.length));
  return m ? Number.parseInt(m[0], 10) : 0;
}

/** lib/str_util.cpp xml_unescape, for the five entities and numeric references. */
export function xmlUnescape(s: string): string {
  return s.replace(/&(lt|gt|quot|apos|amp|#x[0-9a-fA-F]+|#\d+);/g, (all, name: string) => {
    switch (name) {
      case 'lt': return '<';
      case 'gt': return '>';
      case 'quot': return '"';
      case 'apos': return "'";
      case 'amp': return '&';
      default: {
        const code = name[1] === 'x' ? Number.parseInt(name.slice(2), 16) : Number.parseInt(name.slice(1), 10);
        return code > 0 && code < 0x110000 ? String.fromCodePoint(code) : all;
      }
    }
  });
}

/**
 * lib/parse.cpp parse_str: the text from the `>` that ends `tag` to the next `<`, whitespace
 * stripped, entities decoded.
 */
export function parseStr(buf: string, tag: string): string | undefined {
  const i = buf.indexOf(tag);
  if (i < 0) return undefined;
  const start = buf.indexOf('>', i);
  if (start < 0) return undefined;
  const end = buf.indexOf('<', start + 1);
  if (end < 0) return undefined;
  return xmlUnescape(buf.slice(start + 1, end).trim());
}

/** client/app_control.cpp ACTIVE_TASK_SET::send_heartbeats. */
export function heartbeatText(wss: number, maxWss: number, networkSuspended = false): string {
  return `<heartbeat/><wss>${formatE(wss)}</wss><max_wss>${formatE(maxWss)}</max_wss>`
    + (networkSuspended ? '<network_suspended/>' : '');
}

export interface StatusReport {
  currentCpuTime: number;
  checkpointCpuTime: number;
  /** Already scaled into [fraction_done_start, fraction_done_end]; omitted when negative (unset). */
  fractionDone?: number;
  wantNetwork?: boolean;
  otherPid?: number;
  wss?: number;
}

/**
 * The app_status text the BOINC API sends each second (api/boinc_api.cpp update_app_progress):
 * CPU times with %e, want_network only when set, fraction_done only once the app has set one.
 * other_pid and wss follow boinc_report_app_status_aux, which wrappers use.
 */
export function appStatusText(r: StatusReport): string {
  let s = `<current_cpu_time>${formatE(r.currentCpuTime)}</current_cpu_time>\n`
    + `<checkpoint_cpu_time>${formatE(r.checkpointCpuTime)}</checkpoint_cpu_time>\n`;
  if (r.wantNetwork) s += '<want_network>1</want_network>\n';
  if (r.fractionDone !== undefined && r.fractionDone >= 0) s += `<fraction_done>${formatE(r.fractionDone)}</fraction_done>\n`;
  if (r.otherPid) s += `<other_pid>${r.otherPid}</other_pid>\n`;
  if (r.wss) s += `<wss>${formatF(r.wss)}</wss>\n`;
  return s;
}

/** What one app_status message says, read the way ACTIVE_TASK::get_app_status_msg reads it. */
export interface ParsedStatus {
  currentCpuTime: number;
  checkpointCpuTime: number;
  /** Undefined when absent or exactly 0: BOINC keeps the previous value then. */
  fractionDone?: number;
  wantNetwork: boolean;
  otherPid?: number;
  wss?: number;
}

export function parseAppStatus(buf: string): ParsedStatus {
  // Both CPU times start at 0 for every message, so a message without them reports 0.
  let currentCpuTime = parseDouble(buf, '<current_cpu_time>') ?? 0;
  let checkpointCpuTime = parseDouble(buf, '<checkpoint_cpu_time>') ?? 0;
  // "app reporting negative CPU": clamped to 0.
  if (currentCpuTime < 0) currentCpuTime = 0;
  if (checkpointCpuTime < 0) checkpointCpuTime = 0;
  const fd = parseDouble(buf, '<fraction_done>');
  const otherPid = parseInt10(buf, '<other_pid>');
  return {
    currentCpuTime,
    checkpointCpuTime,
    // fraction_done reads 0 until the app's first boinc_fraction_done(), so zeros are ignored.
    fractionDone: fd !== undefined && fd !== 0 ? fd : undefined,
    wantNetwork: (parseInt10(buf, '<want_network>') ?? 0) !== 0,
    otherPid: otherPid !== undefined && otherPid > 0 ? otherPid : undefined,
    wss: parseDouble(buf, '<wss>'),
  };
}

/** trickle_up channel (api/boinc_api.cpp send_trickle_up_msg). */
export function trickleUpText(trickle: boolean, uploadFile: boolean): string {
  return (trickle ? '<have_new_trickle_up/>\n' : '') + (uploadFile ? '<have_new_upload_file/>\n' : '');
}
