import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { AltplatError } from '../errors.js';

/**
 * One safe way to read BOINC-style XML everywhere in altplat.
 *
 * BOINC files carry no DOCTYPE, so any `<!DOCTYPE` or `<!ENTITY` is refused before parsing: nothing is
 * ever expanded (no billion-laughs, no external entities). Only the five predefined XML entities and
 * numeric character references are decoded. Values stay strings; callers convert and validate.
 */
export type XmlNode = { [tag: string]: XmlValue };
export type XmlValue = string | XmlNode | XmlValue[];

export interface ParseXmlOptions {
  /** Name used in error messages ("platform definition", "scheduler reply", ...). */
  what: string;
  /** Refuse input longer than this many bytes before parsing. */
  maxBytes?: number;
  /** Tags that may repeat and therefore always come back as arrays. */
  arrayTags?: readonly string[];
  /** Reason-code prefix, e.g. `DEF` gives DEF_TOO_LARGE, DEF_DOCTYPE, DEF_NOT_WELL_FORMED. */
  codePrefix: import('../errors.js').XmlCodePrefix;
}

const DOCTYPE_OR_ENTITY = /<!\s*(DOCTYPE|ENTITY)/i;

export function parseXml(text: string, opts: ParseXmlOptions): XmlNode {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (opts.maxBytes !== undefined && bytes > opts.maxBytes) {
    throw new AltplatError(`${opts.codePrefix}_TOO_LARGE`,
      `${opts.what} is ${bytes} bytes; the limit is ${opts.maxBytes} bytes`, { bytes, limit: opts.maxBytes });
  }
  if (DOCTYPE_OR_ENTITY.test(text)) {
    throw new AltplatError(`${opts.codePrefix}_DOCTYPE`,
      `${opts.what} contains a DOCTYPE or entity declaration, which altplat never processes`);
  }
  const valid = XMLValidator.validate(text, { allowBooleanAttributes: true });
  if (valid !== true) {
    throw new AltplatError(`${opts.codePrefix}_NOT_WELL_FORMED`,
      `${opts.what} is not well-formed XML: ${valid.err.msg} (line ${valid.err.line}, column ${valid.err.col})`,
      { line: valid.err.line, col: valid.err.col });
  }
  const arrayTags = new Set(opts.arrayTags ?? []);
  const parser = new XMLParser({
    ignoreAttributes: true,
    parseTagValue: false,
    trimValues: true,
    processEntities: true,
    htmlEntities: false,
    ignoreDeclaration: true,
    ignorePiTags: true,
    commentPropName: false,
    isArray: (name) => arrayTags.has(name),
  });
  try {
    return parser.parse(text) as XmlNode;
  } catch (e) {
    throw new AltplatError(`${opts.codePrefix}_NOT_WELL_FORMED`, `${opts.what} could not be parsed: ${(e as Error).message}`,
      undefined, { cause: e });
  }
}

/** Text of a child element ('' for an empty element, undefined when absent). */
export function childText(node: XmlNode | undefined, tag: string): string | undefined {
  if (!node || typeof node !== 'object') return undefined;
  const v = node[tag];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) return childText({ [tag]: v[0] } as XmlNode, tag);
  if (typeof v === 'string') return v;
  // An element with children but no text, or an empty element parsed as an object.
  return typeof v === 'object' && Object.keys(v).length === 0 ? '' : undefined;
}

/** BOINC booleans: `<x/>`, `<x>1</x>` are true; `<x>0</x>` and absence are false (lib/parse.cpp parse_bool). */
export function childBool(node: XmlNode | undefined, tag: string): boolean {
  if (!node || typeof node !== 'object' || !(tag in node)) return false;
  const t = childText(node, tag);
  return t === undefined || t === '' || t.trim() !== '0';
}

/** Children with the given tag as an array of nodes (strings become `{}` so empty elements still count). */
export function childNodes(node: XmlNode | undefined, tag: string): XmlNode[] {
  if (!node || typeof node !== 'object') return [];
  const v = node[tag];
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((item) => (typeof item === 'object' && !Array.isArray(item) ? item : ({} as XmlNode)));
}

/** Escape text for an XML element body. */
export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
