import { promises as fsp } from 'node:fs';
import { AltplatError } from '../errors.js';
import type {
  Assignment, ParsedReply, Rejection, ReplyAccount, ReplyApp, ReplyAppVersion, ReplyFileInfo, ReplyFileRef,
  ReplyWorkunit,
} from './reply-types.js';
import { each, fileInfoProblem, num, parseAppVersion, parseFileInfo, parseResult, parseWorkunit } from './reply-elements.js';
import { childText, children, fileInfoTree, scanReply, texts, type FileInfoEntry, type ReplyEl } from './reply-scan.js';

export { badFileName } from './reply-elements.js';

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
