import { promises as fsp } from 'node:fs';
import { AltplatError } from '../errors.js';
import type {
  Assignment, ParsedReply, Rejection, ReplyAccount, ReplyApp, ReplyAppVersion, ReplyFileInfo, ReplyFileRef, ReplyResult,
  ReplyWorkunit,
} from './reply-types.js';
import { childBool, childText, children, fileInfoTree, scanReply, texts, type FileInfoEntry, type ReplyEl } from './reply-scan.js';

export type * from './reply-types.js';

/** Replies carry signatures and many file_infos but are never huge; refuse anything absurd unread. */
export const MAX_REPLY_BYTES = 32 << 20;

/** ERR_BAD_FILENAME in lib/error_numbers.h. */
export const ERR_BAD_FILENAME = -225;

export interface ReplyPlatforms {
  /** The host's own platforms, primary first (BOINC's detect_platforms list). */
  host: string[];
  /** Alternate platforms altplat advertised (discovery's `advertised`). */
  alt: string[];
}

/** C0 and C1 control characters, DEL, and U+FFFD (what bytes that are not UTF-8 decode to). */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\ufffd]/u;

/**
 * A file or open name the client refuses: empty, containing `..` or `%`
 * (client/client_types.cpp FILE_INFO::parse and FILE_REF::parse, is_valid_filename in lib/filesys.cpp).
 * altplat also refuses absolute names and `\\`, which would escape the project dir or the slot, empty or
 * "." path components, which name a folder instead of a file, and control characters. The name is
 * checked as decoded (lib/parse.cpp xml_unescape, src/scheduler/xml-unescape.ts), so `&#47;` meets the
 * path rules as the `/` it becomes. BOINC keeps a decoded control character (and `&#0;` silently cuts
 * the name short in C); altplat refuses the name instead — stricter, since a newline or NUL in a file
 * name is never meant and a shortened name is a different file.
 */
export function badFileName(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.includes('..')) return 'contains ".."';
  if (name.includes('%')) return 'contains "%"';
  if (CONTROL.test(name)) return 'contains a control character (or bytes that are not UTF-8)';
  if (name.startsWith('/') || name.includes('\\')) return 'is absolute or has a forbidden character';
  // "." or "data/" or "a//b" would name the slot or project dir itself, or a folder, never a file.
  if (name.split('/').some((part) => part === '' || part === '.')) return 'has an empty or "." path component';
  // BOINC holds names in char[256] (FILE_INFO::name, FILE_REF::open_name); a longer one can never be a
  // file here either (NAME_MAX 255), and would fail every start instead of being refused once.
  if (Buffer.byteLength(name, 'utf8') > 255) return 'is longer than 255 bytes';
  return undefined;
}

function num(node: ReplyEl, tag: string, dflt: number): number {
  const t = childText(node, tag);
  if (t === undefined || t.trim() === '') return dflt;
  const v = Number(t.trim());
  return Number.isFinite(v) ? v : dflt;
}

function optNum(node: ReplyEl, tag: string): number | undefined {
  const t = childText(node, tag);
  if (t === undefined || t.trim() === '') return undefined;
  const v = Number(t.trim());
  return Number.isFinite(v) ? v : undefined;
}

class ElementError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

function parseFileRef(n: ReplyEl): ReplyFileRef {
  const fileName = (childText(n, 'file_name') ?? '').trim();
  const bad = badFileName(fileName);
  if (bad) throw new ElementError('REPLY_BAD_FILENAME', `file_ref file_name "${fileName}" ${bad}`);
  const open = childText(n, 'open_name')?.trim();
  if (open !== undefined && open !== '') {
    const badOpen = badFileName(open);
    if (badOpen) throw new ElementError('REPLY_BAD_FILENAME', `file_ref open_name "${open}" ${badOpen}`);
  }
  return {
    fileName,
    openName: open !== undefined && open !== '' ? open : fileName,
    mainProgram: childBool(n, 'main_program'),
    copyFile: childBool(n, 'copy_file'),
    optional: childBool(n, 'optional'),
  };
}

function parseFileInfo(n: ReplyEl): ReplyFileInfo {
  const name = (childText(n, 'name') ?? '').trim();
  const bad = badFileName(name);
  if (bad) throw new ElementError('REPLY_BAD_FILENAME', `file_info name "${name}" ${bad}`);
  const downloadUrls: string[] = [];
  const uploadUrls: string[] = [];
  // client/client_types.cpp FILE_INFO::parse: a <url> naming file_upload_handler is an upload URL.
  for (const u of texts(n, 'url')) (u.includes('file_upload_handler') ? uploadUrls : downloadUrls).push(u);
  downloadUrls.push(...texts(n, 'download_url'));
  uploadUrls.push(...texts(n, 'upload_url'));
  const md5 = childText(n, 'md5_cksum')?.trim();
  if (md5 !== undefined && md5 !== '' && !/^[0-9a-fA-F]{32}$/.test(md5)) {
    throw new ElementError('REPLY_BAD_MD5', `file_info ${name}: md5_cksum "${md5}" is not 32 hex digits`);
  }
  return {
    name,
    downloadUrls,
    uploadUrls,
    md5: md5 ? md5.toLowerCase() : undefined,
    nbytes: optNum(n, 'nbytes'),
    maxNbytes: optNum(n, 'max_nbytes'),
    executable: childBool(n, 'executable'),
    sticky: childBool(n, 'sticky'),
    isOutput: uploadUrls.length > 0,
  };
}

function parseAppVersion(n: ReplyEl): ReplyAppVersion {
  const appName = (childText(n, 'app_name') ?? '').trim();
  if (appName === '') throw new ElementError('REPLY_MISSING_ELEMENT', 'app_version lacks <app_name>');
  const flops = num(n, 'flops', 0);
  // client/client_types.cpp APP_VERSION::parse: flops must be positive; absent means the client measures it.
  if (childText(n, 'flops') !== undefined && !(flops > 0)) {
    throw new ElementError('REPLY_BAD_VALUE', `app_version ${appName}: flops must be > 0`);
  }
  // client/app_start.cpp prepend_prefix uses at most 16 characters of file_prefix as a folder name.
  const filePrefix = childText(n, 'file_prefix')?.trim().slice(0, 16) || undefined;
  const badPrefix = filePrefix !== undefined ? badFileName(filePrefix) : undefined;
  if (badPrefix) throw new ElementError('REPLY_BAD_FILENAME', `app_version ${appName}: file_prefix "${filePrefix}" ${badPrefix}`);
  return {
    appName,
    filePrefix,
    versionNum: Math.trunc(num(n, 'version_num', 0)),
    platform: (childText(n, 'platform') ?? '').trim(),
    planClass: (childText(n, 'plan_class') ?? '').trim(),
    apiVersion: childText(n, 'api_version')?.trim() || undefined,
    cmdline: (childText(n, 'cmdline') ?? '').trim(),
    avgNcpus: num(n, 'avg_ncpus', 1),
    flops: flops > 0 ? flops : 1e9,
    fileRefs: children(n, 'file_ref').map(parseFileRef),
  };
}

function parseWorkunit(n: ReplyEl): ReplyWorkunit {
  const name = (childText(n, 'name') ?? '').trim();
  if (name === '') throw new ElementError('REPLY_MISSING_ELEMENT', 'workunit lacks <name>');
  // Defaults from client/client_types.cpp WORKUNIT::parse.
  return {
    name,
    appName: (childText(n, 'app_name') ?? '').trim(),
    commandLine: (childText(n, 'command_line') ?? '').trim(),
    rscFpopsEst: num(n, 'rsc_fpops_est', 1e9 * 86400 * 7),
    rscFpopsBound: num(n, 'rsc_fpops_bound', 4e9 * 86400 * 7),
    rscMemoryBound: num(n, 'rsc_memory_bound', 1e8),
    rscDiskBound: num(n, 'rsc_disk_bound', 1e9),
    fileRefs: children(n, 'file_ref').map(parseFileRef),
  };
}

function parseResult(n: ReplyEl): ReplyResult {
  const name = (childText(n, 'name') ?? '').trim();
  if (name === '') throw new ElementError('REPLY_MISSING_ELEMENT', 'result lacks <name>');
  const bad = badFileName(name);
  // A result name becomes part of journal keys and messages; BOINC names never contain these.
  if (bad) throw new ElementError('REPLY_BAD_FILENAME', `result name "${name}" ${bad}`);
  return {
    name,
    wuName: (childText(n, 'wu_name') ?? '').trim(),
    reportDeadline: num(n, 'report_deadline', 0),
    platform: (childText(n, 'platform') ?? '').trim(),
    versionNum: Math.trunc(num(n, 'version_num', 0)),
    planClass: (childText(n, 'plan_class') ?? '').trim(),
    fileRefs: children(n, 'file_ref').map(parseFileRef),
  };
}

/** Parse each element on its own: like client/scheduler_op.cpp, one bad element is dropped, not the reply. */
function each<T>(nodes: ReplyEl[], element: Rejection['element'], parse: (n: ReplyEl) => T, rejections: Rejection[]): T[] {
  const out: T[] = [];
  for (const n of nodes) {
    try {
      out.push(parse(n));
    } catch (e) {
      if (!(e instanceof ElementError)) throw e;
      const name = (childText(n, 'name') ?? childText(n, 'app_name') ?? '').trim();
      rejections.push({ element, name, code: e.code, reason: e.message });
    }
  }
  return out;
}

/** The checks every `<file_info>` gets on the first pass (name and md5), so a bad one is listed even if unused. */
function fileInfoProblem(e: FileInfoEntry): ElementError | undefined {
  const name = e.name ?? '';
  const bad = badFileName(name);
  if (bad) return new ElementError('REPLY_BAD_FILENAME', `file_info name "${name}" ${bad}`);
  const md5 = e.md5?.trim();
  if (md5 !== undefined && md5 !== '' && !/^[0-9a-fA-F]{32}$/.test(md5)) {
    return new ElementError('REPLY_BAD_MD5', `file_info ${name}: md5_cksum "${md5}" is not 32 hex digits`);
  }
  return undefined;
}

const key = (...parts: Array<string | number>) => parts.join('\u0000');

/**
 * Parse a scheduler reply and apply the BOINC client's rules for what it accepts
 * (client/scheduler_op.cpp SCHEDULER_REPLY::parse, client/cs_scheduler.cpp handle_scheduler_reply,
 * client/client_state.cpp link_workunit/link_result). Nothing is thrown for a bad element; it is listed
 * in `rejections` with a reason. A reply that is not XML, or has no `<scheduler_reply>`, throws.
 *
 * Cost: one scan of the text, then work proportional to the results, workunits and app versions; a
 * `<file_info>` no result uses is checked (name, md5) but never read further (src/scheduler/reply-scan.ts).
 */
export function parseSchedulerReply(text: string, platforms: ReplyPlatforms): ParsedReply {
  // Length in UTF-16 units is at most the UTF-8 byte count, so the exact count is needed only near the limit.
  if (text.length > MAX_REPLY_BYTES / 3) {
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > MAX_REPLY_BYTES) {
      throw new AltplatError('REPLY_TOO_LARGE', `scheduler reply is ${bytes} bytes; the limit is ${MAX_REPLY_BYTES} bytes`, { bytes, limit: MAX_REPLY_BYTES });
    }
  }
  const scanned = scanReply(text);
  const root: ReplyEl = { name: 'scheduler_reply', children: scanned.top, text: '' };
  const masterUrl = (childText(root, 'master_url') ?? '').trim();
  if (masterUrl === '') {
    throw new AltplatError('REPLY_NO_MASTER_URL', 'the scheduler reply has no <master_url>, so its project dir is unknown');
  }
  // client/scheduler_op.cpp SCHEDULER_REPLY::parse keeps the project_preferences element's contents
  // verbatim (copy_element_contents): the scan kept the raw text between the tags.
  const account: ReplyAccount = {
    userid: Math.trunc(num(root, 'userid', 0)), teamid: Math.trunc(num(root, 'teamid', 0)), hostid: Math.trunc(num(root, 'hostid', 0)),
    userName: (childText(root, 'user_name') ?? '').trim(), teamName: (childText(root, 'team_name') ?? '').trim(),
    projectPreferences: scanned.raw.project_preferences ?? '',
    userTotalCredit: num(root, 'user_total_credit', 0), userExpavgCredit: num(root, 'user_expavg_credit', 0),
    hostTotalCredit: num(root, 'host_total_credit', 0), hostExpavgCredit: num(root, 'host_expavg_credit', 0),
  };
  const rejections: Rejection[] = [];
  const apps: ReplyApp[] = children(root, 'app').map((n) => {
    const name = (childText(n, 'name') ?? '').trim();
    return { name, userFriendlyName: (childText(n, 'user_friendly_name') ?? '').trim() || name };
  }).filter((a) => a.name !== '');
  const goodEntries: FileInfoEntry[] = [];
  for (const e of scanned.fileInfos) {
    const problem = fileInfoProblem(e);
    if (problem) rejections.push({ element: 'file_info', name: (e.name ?? '').trim(), code: problem.code, reason: problem.message });
    else goodEntries.push(e);
  }
  const parsedVersions = each(children(root, 'app_version'), 'app_version', parseAppVersion, rejections);
  const workunitsAll = each(children(root, 'workunit'), 'workunit', parseWorkunit, rejections);
  const results = each(children(root, 'result'), 'result', parseResult, rejections);

  // Only the file_infos something refers to are indexed and read (the last of a name wins, as before).
  const wanted = new Set<string>();
  for (const x of [...parsedVersions, ...workunitsAll, ...results]) for (const r of x.fileRefs) wanted.add(r.fileName);
  const entryByName = new Map<string, FileInfoEntry>();
  for (const e of goodEntries) if (wanted.has(e.name!)) entryByName.set(e.name!, e);
  const fileCache = new Map<string, ReplyFileInfo>();
  const fileByName = (name: string): ReplyFileInfo | undefined => {
    let f = fileCache.get(name);
    if (f === undefined) {
      const e = entryByName.get(name);
      if (e === undefined) return undefined;
      f = parseFileInfo(fileInfoTree(scanned, e));
      fileCache.set(name, f);
    }
    return f;
  };

  const primary = platforms.host[0] ?? '';
  const hostSet = new Set(platforms.host);
  const altSet = new Set(platforms.alt);
  const appNames = new Set(apps.map((a) => a.name));
  const missingFile = (refs: ReplyFileRef[]) => refs.find((r) => !entryByName.has(r.fileName));

  // client/cs_scheduler.cpp: empty platform = primary; otherwise it must be one of the client's platforms.
  const appVersions: ReplyAppVersion[] = [];
  const versionByKey = new Map<string, ReplyAppVersion>();
  const latestVersion = new Map<string, number>();
  // Why each dropped app version was dropped (the first per app and platform), so a result that needed it can say so.
  const dropped = new Map<string, string>();
  for (const av of parsedVersions) {
    const platform = av.platform === '' ? primary : av.platform;
    const label = `${av.appName} ${av.versionNum} ${platform}${av.planClass ? ` (${av.planClass})` : ''}`;
    const mains = av.fileRefs.filter((r) => r.mainProgram).length;
    const missing = missingFile(av.fileRefs);
    const problem: [string, string] | undefined =
      !hostSet.has(platform) && !altSet.has(platform)
        ? ['REPLY_UNSUPPORTED_PLATFORM', `App version has unsupported platform ${platform}: neither a host platform (${platforms.host.join(', ') || 'none'}) nor an advertised alternate platform (${platforms.alt.join(', ') || 'none'})`]
        : !appNames.has(av.appName) ? ['REPLY_MISSING_APP', `Missing app ${av.appName}`]
          : missing ? ['REPLY_MISSING_FILE_INFO', `app version refers to file ${missing.fileName}, which has no <file_info> in the reply`]
            : mains !== 1 ? ['REPLY_NO_MAIN_PROGRAM', `app version must have exactly one <main_program/> file_ref (has ${mains})`]
              : undefined;
    if (problem) {
      rejections.push({ element: 'app_version', name: label, code: problem[0], reason: problem[1] });
      if (!dropped.has(key(av.appName, platform))) dropped.set(key(av.appName, platform), problem[1]);
      continue;
    }
    const kept = { ...av, platform };
    appVersions.push(kept);
    const k = key(av.appName, platform, av.versionNum, av.planClass);
    if (!versionByKey.has(k)) versionByKey.set(k, kept); // the first match, as a linear search found it
    latestVersion.set(key(av.appName, platform), Math.max(latestVersion.get(key(av.appName, platform)) ?? -1, av.versionNum));
  }

  const workunits: ReplyWorkunit[] = [];
  for (const wu of workunitsAll) {
    // client/client_state.cpp link_workunit: the app must be known and every input file described.
    if (!appNames.has(wu.appName)) {
      rejections.push({ element: 'workunit', name: wu.name, code: 'REPLY_MISSING_APP', reason: `Can't handle task ${wu.name}: missing application ${wu.appName}` });
      continue;
    }
    const missing = missingFile(wu.fileRefs);
    if (missing) {
      rejections.push({ element: 'workunit', name: wu.name, code: 'REPLY_MISSING_FILE_INFO', reason: `Can't handle task ${wu.name}: missing input file ${missing.fileName}` });
      continue;
    }
    workunits.push(wu);
  }
  // Why a workunit was dropped (bad file name, unknown app, …), so its results can say so.
  const droppedWu = new Map(rejections.filter((j) => j.element === 'workunit').map((j) => [j.name, j]));
  const wuByName = new Map(workunits.map((w) => [w.name, w]));

  const assignments: Assignment[] = [];
  const seen = new Set<string>();
  for (const r of results) {
    const reject = (code: string, reason: string) => rejections.push({ element: 'result', name: r.name, code, reason, platform: r.platform || primary });
    if (seen.has(r.name)) { reject('REPLY_DUPLICATE_RESULT', `Already have task ${r.name}`); continue; }
    const wu = wuByName.get(r.wuName);
    if (!wu) {
      const why = droppedWu.get(r.wuName);
      reject('REPLY_MISSING_WORKUNIT', `Can't handle task ${r.name}: missing workunit ${r.wuName}${why ? ` (${why.reason})` : ''}`);
      continue;
    }
    const missing = missingFile(r.fileRefs);
    if (missing) { reject('REPLY_MISSING_FILE_INFO', `Can't handle task ${r.name}: missing output file ${missing.fileName}`); continue; }
    let platform = r.platform;
    let versionNum = r.versionNum;
    if (platform === '') {
      // client/cs_scheduler.cpp: no platform = primary platform and the latest version of the app.
      platform = primary;
      versionNum = latestVersion.get(key(wu.appName, platform)) ?? -1;
    }
    const av = versionByKey.get(key(wu.appName, platform, versionNum, r.planClass));
    if (!av) {
      const why = dropped.get(key(wu.appName, platform));
      reject('REPLY_NO_APP_VERSION', `No app version found for app ${wu.appName} platform ${platform} ver ${versionNum} class ${r.planClass}; discarding ${r.name}${why ? ` (${why})` : ''}`);
      continue;
    }
    const files: Record<string, ReplyFileInfo> = {};
    for (const ref of [...av.fileRefs, ...wu.fileRefs, ...r.fileRefs]) files[ref.fileName] = fileByName(ref.fileName)!;
    seen.add(r.name);
    // client/app_start.cpp setup_file / copy_output_files / must_copy_file: with a file_prefix, every input
    // and output file ("io file", not the app version's own files) lives at <prefix>/<open name> in the
    // slot and is copied, never linked. Applied here so setup, the job file and output collection agree.
    const io = (refs: ReplyFileRef[]) => (av.filePrefix === undefined ? refs
      : refs.map((ref) => ({ ...ref, openName: `${av.filePrefix}/${ref.openName}`, copyFile: true })));
    assignments.push({
      masterUrl, result: { ...r, platform, versionNum, fileRefs: io(r.fileRefs) }, workunit: { ...wu, fileRefs: io(wu.fileRefs) }, appVersion: av, platform,
      kind: hostSet.has(platform) ? 'native' : 'alt', files, account,
    });
  }

  const reply: ParsedReply = {
    masterUrl,
    projectName: (childText(root, 'project_name') ?? '').trim(),
    apps, fileInfos: [], appVersions, workunits, assignments, rejections, account,
    messages: texts(root, 'message'),
    resultAborts: abortNames(root, 'result_abort'),
    resultAbortsIfNotStarted: abortNames(root, 'result_abort_if_not_started'),
    globalPreferences: scanned.raw.global_preferences,
  };
  // Every file_info in full only for a caller that asks (reading ~500,000 of them costs what the rest costs).
  Object.defineProperty(reply, 'fileInfos', {
    enumerable: true, configurable: true,
    get: () => {
      const all = goodEntries.map((e) => parseFileInfo(fileInfoTree(scanned, e)));
      Object.defineProperty(reply, 'fileInfos', { value: all, enumerable: true, writable: true, configurable: true });
      return all;
    },
  });
  return reply;
}

/**
 * The input and app files the reply's assignments use, once each: what `--files` staging needs, rather
 * than every `<file_info>` listed (outputs are never staged).
 */
export function inputFilesUsed(reply: ParsedReply): ReplyFileInfo[] {
  const out = new Map<string, ReplyFileInfo>();
  for (const a of reply.assignments) {
    for (const ref of [...a.appVersion.fileRefs, ...a.workunit.fileRefs]) {
      const f = a.files[ref.fileName];
      if (f && !f.isOutput && !out.has(f.name)) out.set(f.name, f);
    }
  }
  return [...out.values()];
}

function abortNames(root: ReplyEl, tag: string): string[] {
  return children(root, tag).map((n) => (childText(n, 'name') ?? '').trim()).filter((s) => s !== '');
}

export async function readSchedulerReply(file: string, platforms: ReplyPlatforms): Promise<ParsedReply> {
  let buf: Buffer | undefined;
  try {
    // The size is checked before the bytes are read, so a huge file costs nothing.
    const st = await fsp.stat(file);
    if (st.isFile() && st.size > MAX_REPLY_BYTES) {
      throw new AltplatError('REPLY_TOO_LARGE', `scheduler reply is ${st.size} bytes; the limit is ${MAX_REPLY_BYTES} bytes`, { bytes: st.size, limit: MAX_REPLY_BYTES });
    }
    buf = await fsp.readFile(file);
  } catch (e) {
    if (e instanceof AltplatError) throw e;
    throw new AltplatError('REPLY_UNREADABLE', `cannot read scheduler reply ${file}: ${(e as Error).message}`, undefined, { cause: e });
  }
  if (buf.length > MAX_REPLY_BYTES) {
    throw new AltplatError('REPLY_TOO_LARGE', `scheduler reply is ${buf.length} bytes; the limit is ${MAX_REPLY_BYTES} bytes`, { bytes: buf.length, limit: MAX_REPLY_BYTES });
  }
  const text = buf.toString('utf8');
  buf = undefined; // the bytes can go before the scan: only the text is kept (peak memory, issue 9 item 4)
  return parseSchedulerReply(text, platforms);
}
