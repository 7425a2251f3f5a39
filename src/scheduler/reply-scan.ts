import { AltplatError } from '../errors.js';
import { DOCTYPE_OR_ENTITY, XmlScanner, XmlSyntaxError } from '../definition/xml-scan.js';
import { boincXmlUnescape } from './xml-unescape.js';

/**
 * One pass over a scheduler reply with the offset scanner of src/definition/xml-scan.ts (docs/DESIGN.md,
 * decision 1). A reply near the 32 MiB limit can list ~500,000 `<file_info>`; building an object tree of
 * all of them cost ~26x the reply's size in memory and seconds of time, for files no result may use. So:
 * - each `<file_info>` is kept as its byte range plus its decoded `<name>` and `<md5_cksum>` (what the
 *   checks of every file_info need); the rest of it is read only when a result uses it;
 * - `<app>`, `<app_version>`, `<workunit>`, `<result>` and the abort lists become small element trees;
 * - `<project_preferences>` and `<global_preferences>` are kept as the raw text between their tags;
 * - any other top-level element keeps its text only, and anything deeper is skipped unread.
 * Text is decoded as BOINC's client decodes it (xml_unescape, not in CDATA; white space stripped before
 * decoding, lib/parse.h XML_PARSER::get_aux), so references are not checked as XML would: `&#0;`, a bare
 * `&` or `&unknown;` reach the name rules (or stay literal) instead of refusing the whole reply.
 */
export interface ReplyEl {
  name: string;
  children: ReplyEl[];
  /** The element's own text, white space stripped, then decoded as lib/parse.cpp xml_unescape does. */
  text: string;
}

export interface FileInfoEntry {
  /** Decoded `<name>` and `<md5_cksum>` (undefined when absent). */
  name?: string;
  md5?: string;
  /** The element's span in the reply text. */
  start: number;
  end: number;
}

export interface ScannedReply {
  text: string;
  /** Top-level elements in document order, `<file_info>` left out (see fileInfos). */
  top: ReplyEl[];
  fileInfos: FileInfoEntry[];
  /** Raw contents of the first element of these names at top level, as the reply wrote them. */
  raw: Partial<Record<'project_preferences' | 'global_preferences', string>>;
}

/** Top-level elements read as whole trees: the reply's assignments and what resolves them. */
const TREE_TAGS = new Set(['app', 'app_version', 'workunit', 'result', 'result_abort', 'result_abort_if_not_started']);
const RAW_TAGS = new Set(['project_preferences', 'global_preferences']);
/** The children of a `<file_info>` read on the first pass. */
const FILE_INFO_KEYS = new Set(['name', 'md5_cksum']);

interface Frame {
  el?: ReplyEl;
  /** Text and CDATA pieces of el, in order; CDATA is never decoded. */
  pieces?: Array<{ raw: string; cdata: boolean }>;
  /** Build children of this frame's element (else they are skipped). */
  deep: boolean;
  /** Inside a <file_info>: which of its keys this frame collects. */
  fileInfo?: FileInfoEntry;
  fileKey?: string;
  rawTag?: string;
  contentStart: number;
}

function finishText(pieces: Frame['pieces']): string {
  if (!pieces || pieces.length === 0) return '';
  if (pieces.length === 1 && !pieces[0].cdata) return boincXmlUnescape(pieces[0].raw.trim());
  const first = 0;
  const last = pieces.length - 1;
  return pieces.map((p, i) => {
    if (p.cdata) return p.raw;
    let raw = p.raw;
    if (i === first) raw = raw.trimStart();
    if (i === last) raw = raw.trimEnd();
    return boincXmlUnescape(raw);
  }).join('');
}

/** Scan a whole reply. Throws REPLY_DOCTYPE / REPLY_NOT_WELL_FORMED. */
export function scanReply(text: string): ScannedReply {
  const m = DOCTYPE_OR_ENTITY.exec(text);
  if (m) throw new AltplatError('REPLY_DOCTYPE', 'scheduler reply contains a DOCTYPE or entity declaration, which altplat never processes');
  const s = new XmlScanner(text, { checkReferences: false });
  const top: ReplyEl[] = [];
  const fileInfos: FileInfoEntry[] = [];
  const raw: ScannedReply['raw'] = {};
  let rootName: string | undefined;
  const stack: Frame[] = [];
  try {
    for (let t = s.next(); t !== 'eof'; t = s.next()) {
      if (t === 'start' || t === 'empty') {
        const depth = stack.length;
        let frame: Frame;
        if (depth === 0) {
          rootName = s.name;
          frame = { deep: true, contentStart: s.end };
        } else if (depth === 1) {
          if (s.name === 'file_info') {
            frame = { deep: false, fileInfo: { start: s.start, end: s.end }, contentStart: s.end };
          } else if (RAW_TAGS.has(s.name)) {
            frame = { deep: false, rawTag: s.name, contentStart: s.end };
          } else {
            const el: ReplyEl = { name: s.name, children: [], text: '' };
            top.push(el);
            frame = { el, deep: TREE_TAGS.has(s.name), contentStart: s.end };
          }
        } else {
          const parent = stack[depth - 1];
          if (parent.fileInfo && depth === 2 && FILE_INFO_KEYS.has(s.name)) {
            frame = { deep: false, fileInfo: parent.fileInfo, fileKey: s.name, pieces: [], contentStart: s.end };
          } else if (parent.deep && parent.el) {
            const el: ReplyEl = { name: s.name, children: [], text: '' };
            parent.el.children.push(el);
            frame = { el, deep: true, contentStart: s.end };
          } else {
            frame = { deep: false, contentStart: s.end };
          }
        }
        if (t === 'start') stack.push(frame);
        else closeFrame(frame, s.start);
      } else if (t === 'end') {
        const frame = stack.pop()!;
        closeFrame(frame, s.start);
      } else if (t === 'text' || t === 'cdata') {
        const frame = stack[stack.length - 1];
        if (frame && (frame.el || frame.fileKey)) {
          (frame.pieces ??= []).push({ raw: text.slice(s.contentStart, s.contentEnd), cdata: t === 'cdata' });
        }
      }
    }
  } catch (e) {
    if (e instanceof XmlSyntaxError) {
      throw new AltplatError(e.kind === 'doctype' ? 'REPLY_DOCTYPE' : 'REPLY_NOT_WELL_FORMED',
        `scheduler reply is not well-formed XML: ${e.message}`, { line: e.line, col: e.column });
    }
    throw e;
  }
  if (rootName !== 'scheduler_reply') {
    throw new AltplatError('REPLY_NO_ROOT', 'the file is not a BOINC scheduler reply (no <scheduler_reply> element)');
  }
  return { text, top, fileInfos, raw };

  function closeFrame(frame: Frame, endTagStart: number): void {
    if (frame.fileKey && frame.fileInfo) {
      const v = finishText(frame.pieces);
      // The first of each key counts, as the element parsers below take the first child.
      if (frame.fileKey === 'name') {
        if (frame.fileInfo.name === undefined) frame.fileInfo.name = v;
      } else if (frame.fileInfo.md5 === undefined) {
        frame.fileInfo.md5 = v;
      }
      return;
    }
    if (frame.fileInfo) {
      frame.fileInfo.end = s.end;
      fileInfos.push(frame.fileInfo);
      return;
    }
    if (frame.rawTag) {
      const key = frame.rawTag as keyof ScannedReply['raw'];
      if (raw[key] === undefined) raw[key] = frame.contentStart <= endTagStart ? text.slice(frame.contentStart, endTagStart) : '';
      return;
    }
    if (frame.el) frame.el.text = finishText(frame.pieces);
  }
}

/** Read one `<file_info>` of a scanned reply in full (its range was checked by the first pass). */
export function fileInfoTree(reply: ScannedReply, entry: FileInfoEntry): ReplyEl {
  const s = new XmlScanner(reply.text.slice(entry.start, entry.end), { checkReferences: false });
  const stack: Array<{ el: ReplyEl; pieces: Array<{ raw: string; cdata: boolean }> }> = [];
  let root: ReplyEl | undefined;
  for (let t = s.next(); t !== 'eof'; t = s.next()) {
    if (t === 'start' || t === 'empty') {
      const el: ReplyEl = { name: s.name, children: [], text: '' };
      if (stack.length > 0) stack[stack.length - 1].el.children.push(el);
      else root = el;
      if (t === 'start') stack.push({ el, pieces: [] });
    } else if (t === 'end') {
      const f = stack.pop()!;
      f.el.text = finishText(f.pieces);
    } else if ((t === 'text' || t === 'cdata') && stack.length > 0) {
      stack[stack.length - 1].pieces.push({ raw: s.text.slice(s.contentStart, s.contentEnd), cdata: t === 'cdata' });
    }
  }
  return root!;
}

/** Text of the first child named `tag` ('' for an empty element, undefined when absent). */
export function childText(el: ReplyEl, tag: string): string | undefined {
  for (const c of el.children) if (c.name === tag) return c.text;
  return undefined;
}

/** BOINC booleans: `<x/>`, `<x>1</x>` are true; `<x>0</x>` and absence are false (lib/parse.cpp parse_bool). */
export function childBool(el: ReplyEl, tag: string): boolean {
  const t = childText(el, tag);
  return t !== undefined && t.trim() !== '0';
}

export function children(el: ReplyEl, tag: string): ReplyEl[] {
  return el.children.filter((c) => c.name === tag);
}

/** Texts of every child named `tag`, non-empty ones only. */
export function texts(el: ReplyEl, tag: string): string[] {
  return children(el, tag).map((c) => c.text).filter((s) => s !== '');
}
