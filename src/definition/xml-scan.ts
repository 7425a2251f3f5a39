/**
 * A small, strict, position-keeping XML scanner: the one piece both the definition reader and the
 * scheduler-request patcher stand on.
 *
 * Why not fast-xml-parser here: the request patcher must know the exact offset of every tag (it edits
 * the text, never a re-serialised tree), and discovery parses a definition per platform folder, where
 * validate + parse with fast-xml-parser cost ~60 µs warm and ~170 µs cold per file — more than reading
 * the folder. This scanner does one pass, allocates only names and text, and keeps the same safety rules
 * as src/util/xml.ts: a DOCTYPE or ENTITY declaration is refused before anything is read, no entity is
 * ever expanded (only the five predefined ones and character references are decoded), and anything that
 * is not well-formed is an error with a line and column.
 *
 * Well-formedness checked: tag nesting and names, one root element, nothing but white space, comments and
 * processing instructions outside it, attribute syntax (quoted values, no `<`, no duplicates), comments
 * without `--`, CDATA only inside the root, the XML declaration only at the very start, `]]>` never in
 * text, and (with `checkReferences`) every `&` starting a predefined entity or a valid character
 * reference. Character classes are not checked (BOINC files carry raw bytes in CDATA), and non-ASCII
 * characters are accepted in names, so the scanner works the same on text decoded as UTF-8 and on bytes
 * decoded as latin1 (one char per byte, which is how the request patcher keeps byte offsets).
 */

export type XmlToken = 'start' | 'end' | 'empty' | 'text' | 'cdata' | 'comment' | 'pi' | 'decl' | 'eof';

export class XmlSyntaxError extends Error {
  readonly line: number;
  readonly column: number;
  readonly offset: number;
  /** `doctype` for a DOCTYPE/ENTITY declaration, `syntax` for everything else. */
  readonly kind: 'doctype' | 'syntax';

  constructor(text: string, offset: number, message: string, kind: 'doctype' | 'syntax' = 'syntax') {
    const { line, column } = lineColumn(text, offset);
    super(`${message} (line ${line}, column ${column})`);
    this.name = 'XmlSyntaxError';
    this.line = line;
    this.column = column;
    this.offset = offset;
    this.kind = kind;
  }
}

export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

export interface XmlScanOptions {
  /** Refuse `&` that does not start `&lt;` `&gt;` `&amp;` `&quot;` `&apos;` or a valid `&#…;`. Default true. */
  checkReferences?: boolean;
  /** Refuse deeper nesting than this (default 256). */
  maxDepth?: number;
}

/** Matches a DOCTYPE or ENTITY declaration anywhere (also inside comments: refused conservatively). */
export const DOCTYPE_OR_ENTITY = /<!\s*(DOCTYPE|ENTITY)/i;

const LT = 60, GT = 62, SLASH = 47, BANG = 33, QUESTION = 63, EQ = 61, AMP = 38;
const QUOT = 34, APOS = 39, SPACE = 32, TAB = 9, LF = 10, CR = 13;

function isSpace(c: number): boolean {
  return c === SPACE || c === LF || c === TAB || c === CR;
}
function isNameStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58 || c >= 128;
}
function isNameChar(c: number): boolean {
  return isNameStart(c) || (c >= 48 && c <= 57) || c === 45 || c === 46;
}

/**
 * Pull scanner. Call `next()` until it returns `'eof'`; after each call the fields describe the token:
 * `start`/`end` span the whole token in the text, `name` is the tag name (start/end/empty tags, PI
 * target), `contentStart`/`contentEnd` span the text, CDATA content or comment body, and `depth` is the
 * element depth *outside* the token (0 for the root's own start tag).
 *
 * @example
 * const s = new XmlScanner('<a><b>x</b></a>');
 * for (let t = s.next(); t !== 'eof'; t = s.next()) if (t === 'start') console.log(s.name, s.depth);
 */
export class XmlScanner {
  readonly text: string;
  private pos: number;
  private readonly stack: string[] = [];
  private readonly checkRefs: boolean;
  private readonly maxDepth: number;
  private sawRoot = false;
  private rootClosed = false;
  // Next `]]>` and `&` at or after the scan position (-1: none left), so text checks stay linear.
  private nextCdataEnd = -2;
  private nextAmp = -2;

  token: XmlToken = 'eof';
  start = 0;
  end = 0;
  name = '';
  contentStart = 0;
  contentEnd = 0;
  depth = 0;

  constructor(text: string, opts: XmlScanOptions = {}) {
    this.text = text;
    this.checkRefs = opts.checkReferences ?? true;
    this.maxDepth = opts.maxDepth ?? 256;
    // A byte order mark, as a UTF-16 char or as the three latin1 chars of its UTF-8 bytes.
    if (text.charCodeAt(0) === 0xfeff) this.pos = 1;
    else if (text.startsWith('\u00ef\u00bb\u00bf')) this.pos = 3;
    else this.pos = 0;
  }

  /** Offset just after the byte order mark, if any. */
  get bodyStart(): number {
    return this.text.charCodeAt(0) === 0xfeff ? 1 : this.text.startsWith('\u00ef\u00bb\u00bf') ? 3 : 0;
  }

  fail(offset: number, message: string, kind: 'doctype' | 'syntax' = 'syntax'): never {
    throw new XmlSyntaxError(this.text, offset, message, kind);
  }

  next(): XmlToken {
    const text = this.text;
    const len = text.length;
    const pos = this.pos;
    this.start = pos;
    this.depth = this.stack.length;
    if (pos >= len) {
      if (this.stack.length > 0) this.fail(len, `<${this.stack[this.stack.length - 1]}> is never closed`);
      if (!this.sawRoot) this.fail(len, 'no root element');
      return (this.token = 'eof');
    }
    if (text.charCodeAt(pos) !== LT) return this.scanText(pos);
    const c1 = text.charCodeAt(pos + 1);
    if (c1 === SLASH) return this.scanEndTag(pos);
    if (c1 === BANG) return this.scanBang(pos);
    if (c1 === QUESTION) return this.scanPi(pos);
    return this.scanStartTag(pos);
  }

  private scanText(pos: number): XmlToken {
    const text = this.text;
    let end = text.indexOf('<', pos);
    if (end === -1) end = text.length;
    if (this.stack.length === 0) {
      for (let i = pos; i < end; i++) {
        if (!isSpace(text.charCodeAt(i))) this.fail(i, this.sawRoot ? 'text after the root element' : 'text before the root element');
      }
    } else {
      const bad = this.findNext(']]>', pos);
      if (bad !== -1 && bad < end) this.fail(bad, '`]]>` is not allowed in text');
      if (this.checkRefs) this.checkReferences(pos, end);
    }
    this.contentStart = pos;
    this.contentEnd = end;
    this.end = end;
    this.pos = end;
    return (this.token = 'text');
  }

  /** indexOf that remembers its last answer: positions only grow, so the whole scan stays O(n). */
  private findNext(what: ']]>' | '&', from: number): number {
    const cached = what === '&' ? this.nextAmp : this.nextCdataEnd;
    if (cached === -1 || cached >= from) return cached;
    const found = this.text.indexOf(what, from);
    if (what === '&') this.nextAmp = found;
    else this.nextCdataEnd = found;
    return found;
  }

  private checkReferences(from: number, to: number): void {
    const text = this.text;
    for (let i = this.findNext('&', from); i !== -1 && i < to; i = this.findNext('&', i + 1)) {
      const semi = text.indexOf(';', i);
      if (semi === -1 || semi >= to || semi - i > 12) this.fail(i, '`&` must start an entity or character reference (write &amp;)');
      const ref = text.slice(i + 1, semi);
      if (ref === 'lt' || ref === 'gt' || ref === 'amp' || ref === 'quot' || ref === 'apos') continue;
      if (ref.charCodeAt(0) === 35 /* # */ && decodeCharRef(ref) !== undefined) continue;
      if (ref.charCodeAt(0) === 35) this.fail(i, `invalid character reference &${ref};`);
      this.fail(i, `undefined entity &${ref}; (altplat never reads entity declarations)`);
    }
  }

  private readName(pos: number, what: string): number {
    const text = this.text;
    if (!isNameStart(text.charCodeAt(pos))) this.fail(pos, `expected a ${what} name`);
    let i = pos + 1;
    while (i < text.length && isNameChar(text.charCodeAt(i))) i++;
    return i;
  }

  private scanEndTag(pos: number): XmlToken {
    const text = this.text;
    const nameEnd = this.readName(pos + 2, 'closing tag');
    const name = text.slice(pos + 2, nameEnd);
    let i = nameEnd;
    while (isSpace(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) !== GT) this.fail(i, `expected \`>\` to end </${name}`);
    const open = this.stack.pop();
    if (open === undefined) this.fail(pos, `</${name}> closes nothing`);
    if (open !== name) this.fail(pos, `</${name}> does not match <${open}>`);
    if (this.stack.length === 0) this.rootClosed = true;
    this.name = name;
    this.depth = this.stack.length;
    this.end = i + 1;
    this.pos = i + 1;
    return (this.token = 'end');
  }

  private scanBang(pos: number): XmlToken {
    const text = this.text;
    if (text.startsWith('<!--', pos)) {
      const close = text.indexOf('-->', pos + 4);
      if (close === -1) this.fail(pos, 'comment is never closed');
      const dd = text.indexOf('--', pos + 4);
      if (dd < close) this.fail(dd, '`--` is not allowed inside a comment');
      this.contentStart = pos + 4;
      this.contentEnd = close;
      this.end = close + 3;
      this.pos = close + 3;
      return (this.token = 'comment');
    }
    if (text.startsWith('<![CDATA[', pos)) {
      if (this.stack.length === 0) this.fail(pos, 'CDATA outside the root element');
      const close = text.indexOf(']]>', pos + 9);
      if (close === -1) this.fail(pos, 'CDATA section is never closed');
      this.contentStart = pos + 9;
      this.contentEnd = close;
      this.end = close + 3;
      this.pos = close + 3;
      return (this.token = 'cdata');
    }
    if (DOCTYPE_OR_ENTITY.test(text.slice(pos, pos + 64))) {
      this.fail(pos, 'DOCTYPE and ENTITY declarations are never processed', 'doctype');
    }
    return this.fail(pos, 'unexpected `<!`');
  }

  private scanPi(pos: number): XmlToken {
    const text = this.text;
    const nameEnd = this.readName(pos + 2, 'processing instruction');
    const target = text.slice(pos + 2, nameEnd);
    const close = text.indexOf('?>', nameEnd);
    if (close === -1) this.fail(pos, `<?${target} is never closed`);
    if (close > nameEnd && !isSpace(text.charCodeAt(nameEnd))) this.fail(nameEnd, `bad processing instruction <?${target}`);
    const isDecl = target.toLowerCase() === 'xml';
    if (isDecl && (target !== 'xml' || pos !== this.bodyStart)) {
      this.fail(pos, 'the XML declaration must be the very first thing in the file');
    }
    this.name = target;
    this.contentStart = nameEnd;
    this.contentEnd = close;
    this.end = close + 2;
    this.pos = close + 2;
    return (this.token = isDecl ? 'decl' : 'pi');
  }

  private scanStartTag(pos: number): XmlToken {
    const text = this.text;
    const len = text.length;
    const nameEnd = this.readName(pos + 1, 'tag');
    const name = text.slice(pos + 1, nameEnd);
    if (this.stack.length === 0 && (this.rootClosed || this.sawRoot)) this.fail(pos, `second root element <${name}>`);
    let i = nameEnd;
    let attrs: string[] | undefined;
    for (;;) {
      const hadSpace = isSpace(text.charCodeAt(i));
      while (i < len && isSpace(text.charCodeAt(i))) i++;
      if (i >= len) this.fail(pos, `<${name}> is never closed with \`>\``);
      const c = text.charCodeAt(i);
      if (c === GT) {
        this.end = i + 1;
        this.pos = i + 1;
        break;
      }
      if (c === SLASH) {
        if (text.charCodeAt(i + 1) !== GT) this.fail(i, `expected \`/>\` in <${name}>`);
        this.end = i + 2;
        this.pos = i + 2;
        this.name = name;
        this.depth = this.stack.length;
        this.sawRoot = true;
        if (this.stack.length === 0) this.rootClosed = true;
        return (this.token = 'empty');
      }
      if (!hadSpace) this.fail(i, `expected white space before an attribute in <${name}>`);
      const attrEnd = this.readName(i, 'attribute');
      const attr = text.slice(i, attrEnd);
      if (attrs === undefined) attrs = [];
      if (attrs.includes(attr)) this.fail(i, `attribute ${attr} appears twice in <${name}>`);
      attrs.push(attr);
      i = attrEnd;
      while (isSpace(text.charCodeAt(i))) i++;
      if (text.charCodeAt(i) !== EQ) this.fail(i, `attribute ${attr} in <${name}> has no value`);
      i++;
      while (isSpace(text.charCodeAt(i))) i++;
      const q = text.charCodeAt(i);
      if (q !== QUOT && q !== APOS) this.fail(i, `value of attribute ${attr} must be quoted`);
      const close = text.indexOf(q === QUOT ? '"' : "'", i + 1);
      if (close === -1) this.fail(i, `value of attribute ${attr} is never closed`);
      const lt = text.indexOf('<', i + 1);
      if (lt !== -1 && lt < close) this.fail(lt, `\`<\` in the value of attribute ${attr}`);
      if (this.checkRefs) this.checkReferences(i + 1, close);
      i = close + 1;
    }
    if (this.stack.length >= this.maxDepth) this.fail(pos, `elements nested deeper than ${this.maxDepth}`);
    this.name = name;
    this.depth = this.stack.length;
    this.stack.push(name);
    this.sawRoot = true;
    return (this.token = 'start');
  }
}

function decodeCharRef(ref: string): string | undefined {
  // ref is "#123" or "#x1F"
  const hex = ref.charCodeAt(1) === 120; /* x */
  const digits = ref.slice(hex ? 2 : 1);
  if (digits === '' || !(hex ? /^[0-9a-fA-F]+$/ : /^[0-9]+$/).test(digits)) return undefined;
  const cp = parseInt(digits, hex ? 16 : 10);
  if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
  return String.fromCodePoint(cp);
}

const REF = /&(#x[0-9a-fA-F]+|#[0-9]+|lt|gt|amp|quot|apos);/g;
const NAMED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** Decode the predefined entities and character references of raw element text (nothing else). */
export function decodeXmlText(raw: string): string {
  if (raw.indexOf('&') === -1) return raw;
  return raw.replace(REF, (m, ref: string) => NAMED[ref] ?? decodeCharRef(ref) ?? m);
}

/** An element of a parsed document: its children and its text (character data and CDATA, decoded). */
export interface XmlElement {
  name: string;
  children: XmlElement[];
  text: string;
  /** Line of the start tag, for messages. */
  line: number;
}

export interface ParseXmlTreeOptions extends XmlScanOptions {
  /** Refuse before scanning when the text is longer than this many UTF-16 units (callers check bytes). */
  maxLength?: number;
}

/**
 * Parse a whole document into a tree of elements (attributes, comments and PIs dropped). Throws
 * XmlSyntaxError; `kind === 'doctype'` when a DOCTYPE or ENTITY declaration is present.
 */
export function parseXmlTree(text: string, opts: ParseXmlTreeOptions = {}): XmlElement {
  const m = DOCTYPE_OR_ENTITY.exec(text);
  if (m) throw new XmlSyntaxError(text, m.index, 'DOCTYPE and ENTITY declarations are never processed', 'doctype');
  const s = new XmlScanner(text, opts);
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let line = 1;
  let counted = 0;
  const lineAt = (offset: number) => {
    for (let i = text.indexOf('\n', counted); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) line++;
    counted = offset;
    return line;
  };
  for (let t = s.next(); t !== 'eof'; t = s.next()) {
    switch (t) {
      case 'start':
      case 'empty': {
        const el: XmlElement = { name: s.name, children: [], text: '', line: lineAt(s.start) };
        if (stack.length > 0) stack[stack.length - 1].children.push(el);
        else root = el;
        if (t === 'start') stack.push(el);
        break;
      }
      case 'end':
        stack.pop();
        break;
      case 'text':
        if (stack.length > 0) stack[stack.length - 1].text += decodeXmlText(text.slice(s.contentStart, s.contentEnd));
        break;
      case 'cdata':
        stack[stack.length - 1].text += text.slice(s.contentStart, s.contentEnd);
        break;
      default:
        break;
    }
  }
  return root as XmlElement;
}
