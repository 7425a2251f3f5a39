import { DOMParser } from '@xmldom/xmldom';
import { describe, expect, it } from 'vitest';
import { decodeXmlText, parseXmlTree, XmlScanner, XmlSyntaxError } from '../src/definition/xml-scan.js';

/** Does @xmldom/xmldom (an independent parser) accept the document? */
function xmldomAccepts(text: string): boolean {
  try {
    new DOMParser({
      onError: (level: string, msg: string) => {
        if (level !== 'warning') throw new Error(msg);
      },
    }).parseFromString(text, 'text/xml');
    return true;
  } catch {
    return false;
  }
}

function scanAccepts(text: string): boolean {
  try {
    const s = new XmlScanner(text);
    while (s.next() !== 'eof');
    return true;
  } catch (e) {
    if (e instanceof XmlSyntaxError) return false;
    throw e;
  }
}

describe('XmlScanner agrees with an independent parser on well-formedness', () => {
  const wellFormed = [
    '<a/>',
    '<a></a>',
    '<a>text</a>',
    '<?xml version="1.0" encoding="UTF-8"?>\n<a/>\n',
    '\ufeff<?xml version="1.0"?><a/>',
    '<!-- before --><a><!-- inside --><b x="1" y=\'2\'>t</b></a><!-- after -->\n',
    '<a><![CDATA[<not-a-tag> & ]]></a>',
    '<a>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;</a>',
    '<a b = "1"\n c="&amp;"/>',
    '<a><?pi data?></a>',
    '<a:b xmlns:a="urn:x"><a:c/></a:b>',
    '<a >x</a >',
    '<a>\u00e9t\u00e9</a>',
    '<a><b><c><d/></c></b></a>',
  ];
  const broken = [
    '',
    '   ',
    'text',
    '<a>',
    '<a></b>',
    '<a></a><b/>',
    '<a/>trailing',
    'leading<a/>',
    '<a><b></a></b>',
    '<a>&nbsp;</a>',
    '<a>&amp</a>',
    '<a x="1" x="2"/>',
    '<a x="<"/>',
    '<a><!-- a -- b --></a>',
    '<a><!-- unterminated </a>',
    '<a><![CDATA[ unterminated </a>',
    ' <?xml version="1.0"?><a/>',
    '<a/><?xml version="1.0"?>',
    '<1a/>',
    '</a>',
    '<!DOCTYPE a><a/>',
  ];
  it.each(wellFormed)('accepts %j', (t) => {
    expect(scanAccepts(t)).toBe(true);
    expect(xmldomAccepts(t.replace(/^\ufeff/, ''))).toBe(true); // xmldom wants the BOM stripped by the decoder

  });
  it.each(broken)('refuses %j', (t) => {
    expect(scanAccepts(t)).toBe(false);
  });
  it('refuses what xmldom refuses in the broken corpus (except DOCTYPE, which xmldom reads)', () => {
    for (const t of broken.filter((x) => !x.includes('DOCTYPE') && x.trim() !== '')) expect([t, xmldomAccepts(t)]).toEqual([t, false]);
  });
  it('is stricter than xmldom where XML 1.0 says so', () => {
    // None of these is well-formed XML 1.0; xmldom lets them pass.
    expect(scanAccepts('<a>]]></a>')).toBe(false);
    expect(scanAccepts('<a x=1/>')).toBe(false);
    expect(scanAccepts('<a>&#0;</a>')).toBe(false);
    expect(scanAccepts('<a>& b</a>')).toBe(false);
    expect(scanAccepts('<a x="1"y="2"/>')).toBe(false);
    expect(scanAccepts('<a x/>')).toBe(false);
  });
});

describe('XmlScanner tokens and positions', () => {
  it('reports every token with exact offsets and depths', () => {
    const text = '<?xml version="1.0"?>\n<r><!-- c --><p>x &amp; y</p><q/><![CDATA[<z>]]></r>\n';
    const s = new XmlScanner(text);
    const toks: string[] = [];
    for (let t = s.next(); t !== 'eof'; t = s.next()) toks.push(`${t}:${s.depth}:${text.slice(s.start, s.end)}`);
    expect(toks).toEqual([
      'decl:0:<?xml version="1.0"?>', 'text:0:\n', 'start:0:<r>', 'comment:1:<!-- c -->', 'start:1:<p>', 'text:2:x &amp; y',
      'end:1:</p>', 'empty:1:<q/>', 'cdata:1:<![CDATA[<z>]]>', 'end:0:</r>', 'text:0:\n',
    ]);
  });

  it('gives line and column of errors', () => {
    try {
      parseXmlTree('<a>\n  <b>\n</a>');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(XmlSyntaxError);
      expect((e as XmlSyntaxError).line).toBe(3);
      expect((e as XmlSyntaxError).column).toBe(1);
      expect((e as XmlSyntaxError).message).toMatch(/<\/a> does not match <b>/);
    }
  });

  it('marks DOCTYPE and ENTITY declarations as such, even inside comments', () => {
    for (const t of ['<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', '<a><!-- <!ENTITY x "y"> --></a>', '<!doctype a><a/>']) {
      try {
        parseXmlTree(t);
        expect.unreachable();
      } catch (e) {
        expect((e as XmlSyntaxError).kind).toBe('doctype');
      }
    }
  });

  it('limits nesting depth instead of recursing', () => {
    const deep = '<a>'.repeat(100_000) + '</a>'.repeat(100_000);
    expect(() => parseXmlTree(deep)).toThrow(/nested deeper than 256/);
  });

  it('scans latin1-decoded UTF-8 bytes at byte offsets', () => {
    const bytes = Buffer.from('<a>\u00e9\u4e2d<b/></a>', 'utf8');
    const s = new XmlScanner(bytes.toString('latin1'));
    s.next();
    s.next();
    expect(s.token).toBe('text');
    expect(bytes.toString('utf8', s.contentStart, s.contentEnd)).toBe('\u00e9\u4e2d');
    expect(s.next()).toBe('empty');
    expect(s.start).toBe(3 + 2 + 3);
  });
});

describe('parseXmlTree', () => {
  it('builds elements with decoded text and CDATA, dropping comments, PIs and attributes', () => {
    const root = parseXmlTree('<r a="1"><x>1 &lt; 2</x><!--c--><y><![CDATA[<&>]]>tail</y><z/></r>');
    expect(root.name).toBe('r');
    expect(root.children.map((c) => [c.name, c.text])).toEqual([['x', '1 < 2'], ['y', '<&>tail'], ['z', '']]);
  });
  it('decodes only predefined entities and character references', () => {
    expect(decodeXmlText('&lt;&#x1F600;&#65;&unknown;&amp;lt;')).toBe('<\u{1F600}A&unknown;&lt;');
  });
});
