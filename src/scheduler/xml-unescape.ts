/**
 * BOINC's `xml_unescape` (lib/parse.cpp), which the client applies to every string it parses out of a
 * scheduler reply (XML_PARSER::parse_str, not to CDATA). It decodes the five predefined entities, the
 * hex references `&#xD;`/`&#xA;` (either case) and decimal `&#N;` whose value, as C's `atoi` gives it,
 * is below 256 — one byte, whatever the encoding. Everything else (other hex references, unknown
 * entities, a bare `&`) stays literal. It works on bytes, so `&#195;&#169;` is "é" in UTF-8 and `&#0;`
 * puts a NUL in the buffer, where C would end the string; altplat keeps the NUL (and turns bytes that are
 * not UTF-8 into U+FFFD) so the name rules can refuse such a name instead of silently shortening it.
 */
/** The references lib/parse.cpp decodes by name, tried in its order. */
const NAMED: ReadonlyArray<readonly [string, number]> = [
  ['&lt;', 0x3c], ['&gt;', 0x3e], ['&quot;', 0x22], ['&apos;', 0x27], ['&amp;', 0x26],
  ['&#xD;', 0x0d], ['&#xd;', 0x0d], ['&#xA;', 0x0a], ['&#xa;', 0x0a],
];

export function boincXmlUnescape(raw: string): string {
  if (raw.indexOf('&') === -1) return raw;
  const inb = Buffer.from(raw, 'utf8');
  const out = Buffer.allocUnsafe(inb.length);
  let o = 0;
  let i = 0;
  const n = inb.length;
  const at = (s: string) => {
    for (let k = 0; k < s.length; k++) if (inb[i + k] !== s.charCodeAt(k)) return false;
    return true;
  };
  while (i < n) {
    const c = inb[i];
    if (c !== 0x26 /* & */) { out[o++] = c; i++; continue; }
    const named = NAMED.find(([ref]) => at(ref));
    if (named) {
      out[o++] = named[1];
      i += named[0].length;
    } else if (at('&#')) {
      i += 2;
      // C: strchr(in, ';'); a reference is good when digits run straight up to that ';'.
      let j = i;
      while (j < n && inb[j] >= 0x30 && inb[j] <= 0x39) j++;
      const good = j > i && j < n && inb[j] === 0x3b;
      const byte = good ? atoiByte(inb.toString('latin1', i, j)) : undefined;
      if (byte !== undefined) {
        out[o++] = byte;
        i = j + 1;
      } else {
        out[o++] = 0x26;
        out[o++] = 0x23;
      }
    } else {
      out[o++] = c;
      i++;
    }
  }
  return new TextDecoder('utf-8', { fatal: false }).decode(out.subarray(0, o));
}

/**
 * The byte `(char)atoi(digits)` gives when `atoi(digits) < 256`, else undefined. glibc's atoi is
 * `(int)strtol(s, 0, 10)`: strtol saturates at LONG_MAX and the cast keeps the low 32 bits, so a long
 * digit string can still land below 256 (`&#4294967343;` is `/`) — reproduced here, since a reply
 * could use it to smuggle a character past a check that only looks at short references.
 */
function atoiByte(digits: string): number | undefined {
  let v = BigInt(digits);
  const LONG_MAX = (1n << 63n) - 1n;
  if (v > LONG_MAX) v = LONG_MAX;
  let low = Number(v & 0xffffffffn);
  if (low >= 2 ** 31) low -= 2 ** 32;
  return low < 256 ? low & 0xff : undefined;
}
