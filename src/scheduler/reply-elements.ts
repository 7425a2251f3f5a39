import type { FileInfoEntry, ReplyEl } from './reply-scan.js';
import { childBool, childText, children, texts } from './reply-scan.js';
import type { Rejection, ReplyAppVersion, ReplyFileInfo, ReplyFileRef, ReplyResult, ReplyWorkunit } from './reply-types.js';

/**
 * The scheduler reply's elements one by one, with the BOINC client's rules for each
 * (client/client_types.cpp FILE_INFO/FILE_REF/APP_VERSION/WORKUNIT parse, client/result.cpp
 * RESULT::parse_server). A bad element throws an ElementError with its reason code; src/scheduler/reply.ts
 * lists it and goes on with the rest.
 */

/** C0 and C1 control characters, DEL, and U+FFFD (what bytes that are not UTF-8 decode to). */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\ufffd]/u;

/**
 * A file or open name the client refuses: empty, containing `..` or `%`
 * (client/client_types.cpp FILE_INFO::parse and FILE_REF::parse, is_valid_filename in lib/filesys.cpp).
 * altplat also refuses absolute names and `\`, which would escape the project dir or the slot, empty or
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

export function num(node: ReplyEl, tag: string, dflt: number): number {
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

export class ElementError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export function parseFileRef(n: ReplyEl): ReplyFileRef {
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

export function parseFileInfo(n: ReplyEl): ReplyFileInfo {
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

export function parseAppVersion(n: ReplyEl): ReplyAppVersion {
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

export function parseWorkunit(n: ReplyEl): ReplyWorkunit {
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

export function parseResult(n: ReplyEl): ReplyResult {
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
export function each<T>(nodes: ReplyEl[], element: Rejection['element'], parse: (n: ReplyEl) => T, rejections: Rejection[]): T[] {
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
export function fileInfoProblem(e: FileInfoEntry): ElementError | undefined {
  const name = e.name ?? '';
  const bad = badFileName(name);
  if (bad) return new ElementError('REPLY_BAD_FILENAME', `file_info name "${name}" ${bad}`);
  const md5 = e.md5?.trim();
  if (md5 !== undefined && md5 !== '' && !/^[0-9a-fA-F]{32}$/.test(md5)) {
    return new ElementError('REPLY_BAD_MD5', `file_info ${name}: md5_cksum "${md5}" is not 32 hex digits`);
  }
  return undefined;
}
