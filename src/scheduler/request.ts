import { AltplatError } from '../errors.js';
import { decodeXmlText, XmlScanner, XmlSyntaxError } from '../definition/xml-scan.js';
import { xmlEscape } from '../util/xml.js';

/**
 * Adding alternate platforms to a BOINC scheduler request, as text surgery: the request is scanned (a
 * real XML scan — comments, CDATA, PIs skipped, so a `<platform_name>` inside them is never touched),
 * the top-level `<platform_name>` and `<alt_platform>` elements of `<scheduler_request>` are located, and
 * the new elements are inserted after the last `<alt_platform>` (or right after `<platform_name>`), in the
 * layout BOINC's own client writes (client/cs_platforms.cpp write_platforms):
 *
 *     <platform_name>windows_x86_64</platform_name>
 *     <alt_platform>
 *         <name>windows_intelx86</name>
 *     </alt_platform>
 *
 * Every byte outside the inserted elements stays as it was. Byte arrays are scanned as latin1 (one char
 * per byte), so invalid UTF-8 in, say, a CDATA `client_opaque` survives untouched.
 */

export interface RequestPlatforms {
  /** The primary platform (`<platform_name>`), decoded and trimmed. */
  primary: string;
  /** Alternates already in the request (`<alt_platform><name>`), in order. */
  alternates: string[];
  /** The project runs on the anonymous platform: altplat adds nothing. */
  anonymous: boolean;
}

interface Located extends RequestPlatforms {
  /** Offset just after the `</platform_name>` or last top-level `</alt_platform>`. */
  anchor: number;
  /** Set when the request was accepted although its foreign content is not well-formed (see TOLERATED). */
  warnings: string[];
}

/**
 * Top-level elements of a scheduler request whose content the BOINC client copies in without escaping,
 * so a request the real client writes can be malformed inside them (client/cs_scheduler.cpp
 * make_scheduler_request, client/cs_trickle.cpp read_trickle_files, client/result.cpp RESULT::write):
 * a trickle-up body is pasted raw into `<msg_from_host>`; a task's stderr goes into a CDATA section of
 * `<result><stderr_out>` (only non-ASCII is escaped, client/app_control.cpp), so a `]]>` in it ends the
 * section early; client_opaque.txt is pasted into a CDATA section of `<client_opaque>` the same way; an
 * app version's `<cmdline>` from the project is printed unescaped into `<app_versions>`
 * (client/client_types.cpp APP_VERSION::write).
 * BOINC's scheduler reads these leniently (lib/parse.cpp XML_PARSER), so altplat must not refuse such a
 * request: BOINC writes them all after the platforms, and everything before the fault was scanned
 * strictly, so the platform block is known exactly.
 */
const TOLERATED = new Set(['msg_from_host', 'result', 'app_versions', 'client_opaque']);

type Input = string | Uint8Array;

function asText(input: Input): { text: string; bytes?: Buffer } {
  if (typeof input === 'string') return { text: input };
  const bytes = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  return { text: bytes.toString('latin1'), bytes };
}

function content(src: { text: string; bytes?: Buffer }, start: number, end: number): string {
  const raw = src.bytes ? src.bytes.toString('utf8', start, end) : src.text.slice(start, end);
  return decodeXmlText(raw);
}

function locate(input: Input): Located {
  const src = asText(input);
  const s = new XmlScanner(src.text, { checkReferences: false, maxDepth: 1024 });
  let primary: string | undefined;
  let anchor = -1;
  let lastAlt = -1;
  const alternates: string[] = [];
  // What we are inside of at depth 1 / 2, and where the text of the element being collected began.
  let top = '';
  let inAltName = false;
  let collected = '';
  let rootChecked = false;
  const warnings: string[] = [];
  try {
    for (let t = s.next(); t !== 'eof'; t = s.next()) {
      if ((t === 'start' || t === 'empty') && !rootChecked) {
        rootChecked = true;
        if (s.name !== 'scheduler_request') {
          throw new AltplatError('REQUEST_NOT_SCHEDULER_REQUEST', `this is not a scheduler request: its root element is <${s.name}>, not <scheduler_request>`);
        }
        if (t === 'empty') break;
        continue;
      }
      if (t === 'start' || t === 'empty') {
        if (s.depth === 1) {
          top = s.name;
          collected = '';
          if (t === 'empty') {
            if (s.name === 'platform_name') {
              primary = '';
              anchor = s.end;
            } else if (s.name === 'alt_platform') {
              lastAlt = s.end;
            }
            top = '';
          }
        } else if (s.depth === 2 && top === 'alt_platform' && s.name === 'name') {
          inAltName = t === 'start';
          collected = '';
          if (t === 'empty') alternates.push('');
        }
        continue;
      }
      if (t === 'text' || t === 'cdata') {
        if ((s.depth === 2 && top === 'platform_name') || (s.depth === 3 && inAltName)) {
          collected += t === 'cdata' ? rawCdata(src, s.contentStart, s.contentEnd) : content(src, s.contentStart, s.contentEnd);
        }
        continue;
      }
      if (t === 'end') {
        if (s.depth === 1 && s.name === 'platform_name') {
          primary = collected.trim();
          anchor = s.end;
        } else if (s.depth === 1 && s.name === 'alt_platform') {
          lastAlt = s.end;
        } else if (s.depth === 2 && inAltName && s.name === 'name') {
          alternates.push(collected.trim());
          inAltName = false;
        }
        if (s.depth === 1) top = '';
      }
    }
  } catch (e) {
    if (e instanceof XmlSyntaxError && e.kind === 'syntax' && primary !== undefined && TOLERATED.has(top)) {
      warnings.push(`the scheduler request is not well-formed inside <${top}> (${e.message}); BOINC's client copies that content in unescaped and its scheduler reads it leniently, so the platforms were added and the rest left as it was`);
    } else if (e instanceof XmlSyntaxError) {
      throw new AltplatError(e.kind === 'doctype' ? 'REQUEST_DOCTYPE' : 'REQUEST_NOT_WELL_FORMED',
        `the scheduler request is not well-formed XML: ${e.message}`, { line: e.line, column: e.column });
    } else {
      throw e;
    }
  }
  if (primary === undefined) {
    throw new AltplatError('REQUEST_NO_PLATFORM_NAME',
      'the scheduler request has no <platform_name> directly inside <scheduler_request>; alternate platforms are only added next to a primary platform');
  }
  return { primary, alternates, anonymous: primary === 'anonymous', anchor: Math.max(anchor, lastAlt), warnings };
}

function rawCdata(src: { text: string; bytes?: Buffer }, start: number, end: number): string {
  return src.bytes ? src.bytes.toString('utf8', start, end) : src.text.slice(start, end);
}

/** The primary and alternate platforms a scheduler request already names. */
export function readRequestPlatforms(request: Input): RequestPlatforms {
  const { primary, alternates, anonymous } = locate(request);
  return { primary, alternates, anonymous };
}

/** BOINC's layout for alternate platforms, one element per name, each line ending with `eol`. */
export function alternatePlatformsXml(names: readonly string[], eol = '\n'): string {
  return names.map((n) => `    <alt_platform>${eol}        <name>${xmlEscape(n)}</name>${eol}    </alt_platform>${eol}`).join('');
}

export interface PatchResult<T> {
  /** The patched request (the input itself when nothing was added). */
  request: T;
  /** Names inserted, in order. */
  added: string[];
  /** Names not inserted because the request already has them (or the primary is anonymous). */
  skipped: string[];
  primary: string;
  alternates: string[];
  anonymous: boolean;
  /** Where the insertion went: offset into the string, or byte offset into the byte array. */
  offset: number;
  /** The inserted text. */
  inserted: string;
  /** Things worth telling that did not stop the patch (foreign content that is not well-formed). */
  warnings: string[];
}

/**
 * Insert one `<alt_platform><name>X</name></alt_platform>` per name into a scheduler request, skipping
 * names the request already has (as primary or alternate) and adding nothing when the primary is
 * `anonymous`. Throws AltplatError REQUEST_NO_PLATFORM_NAME, REQUEST_NOT_SCHEDULER_REQUEST,
 * REQUEST_NOT_WELL_FORMED or REQUEST_DOCTYPE. Strings in, string out; bytes in, Buffer out.
 *
 * @example
 * const { request, added } = patchSchedulerRequest(fs.readFileSync('sched_request_x.xml'), discovery.advertised);
 */
export function patchSchedulerRequest(request: string, names: Iterable<string>): PatchResult<string>;
export function patchSchedulerRequest(request: Uint8Array, names: Iterable<string>): PatchResult<Buffer>;
export function patchSchedulerRequest(request: Input, names: Iterable<string>): PatchResult<string | Buffer> {
  const loc = locate(request);
  const have = new Set([loc.primary, ...loc.alternates]);
  const added: string[] = [];
  const skipped: string[] = [];
  for (const n of names) {
    if (loc.anonymous || have.has(n)) {
      if (!skipped.includes(n)) skipped.push(n);
      continue;
    }
    have.add(n);
    added.push(n);
  }
  const { text, bytes } = asText(request);
  const out = (r: string | Buffer, offset: number, inserted: string): PatchResult<string | Buffer> => ({
    request: r, added, skipped, primary: loc.primary, alternates: loc.alternates, anonymous: loc.anonymous, offset, inserted, warnings: loc.warnings,
  });
  const unchanged = bytes ?? text;
  if (added.length === 0) return out(unchanged, loc.anchor, '');

  let at = loc.anchor;
  let inserted: string;
  if (text.startsWith('\r\n', at)) {
    at += 2;
    inserted = alternatePlatformsXml(added, '\r\n');
  } else if (text.charCodeAt(at) === 10) {
    at += 1;
    inserted = alternatePlatformsXml(added, '\n');
  } else {
    // The anchor is not at a line end (a request on one line, or odd white space): start each element
    // on a new line and leave whatever followed the anchor right after the last one.
    const eol = text.includes('\r\n') ? '\r\n' : '\n';
    inserted = added.map((n) => `${eol}    <alt_platform>${eol}        <name>${xmlEscape(n)}</name>${eol}    </alt_platform>`).join('');
  }
  if (bytes) return out(Buffer.concat([bytes.subarray(0, at), Buffer.from(inserted, 'utf8'), bytes.subarray(at)]), at, inserted);
  return out(text.slice(0, at) + inserted + text.slice(at), at, inserted);
}

/**
 * For a client that writes its own request: the names to send as alternates — the advertised ones
 * minus those the client already sends — or none when its primary is `anonymous`.
 *
 * @example
 * const alts = advertisedNames(await discoverPlatforms(), { primary: 'windows_x86_64', alternates: ['windows_intelx86'] });
 * xml += alternatePlatformsXml(alts);
 */
export function advertisedNames(source: { advertised: readonly string[] } | readonly string[], own: { primary?: string; alternates?: readonly string[] } = {}): string[] {
  if (own.primary === 'anonymous') return [];
  const names = isStringArray(source) ? source : source.advertised;
  const have = new Set<string>([...(own.primary !== undefined ? [own.primary] : []), ...(own.alternates ?? [])]);
  const out: string[] = [];
  for (const n of names) {
    if (have.has(n)) continue;
    have.add(n);
    out.push(n);
  }
  return out;
}

function isStringArray(x: unknown): x is readonly string[] {
  return Array.isArray(x);
}
