import { DOMParser, type Element } from '@xmldom/xmldom';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { advertisedNames, alternatePlatformsXml, patchSchedulerRequest, readRequestPlatforms } from '../src/scheduler/request.js';
import { isAltplatError, type AltplatErrorCode } from '../src/errors.js';

const DIR = path.resolve('fixtures/requests');
const cases = JSON.parse(fs.readFileSync(path.join(DIR, 'cases.json'), 'utf8')) as {
  names: string[];
  cases: Record<string, { names?: string[]; expected?: string; added?: string[]; skipped?: string[]; error?: string; malformedAfterPlatforms?: boolean }>;
};

/** Parse with an independent XML parser (xmldom); throws on any error. */
function parseIndependently(xml: string) {
  return new DOMParser({
    onError: (level: string, msg: string) => {
      if (level !== 'warning') throw new Error(msg);
    },
  }).parseFromString(xml, 'text/xml');
}

/** Top-level `<platform_name>` and `<alt_platform><name>` of a request, as xmldom sees them. */
function platformsOf(xml: string): { primary: string; alternates: string[] } {
  const doc = parseIndependently(xml);
  const root = doc.documentElement!;
  let primary = '';
  const alternates: string[] = [];
  for (let n = root.firstChild; n; n = n.nextSibling) {
    if (n.nodeType !== 1) continue;
    const el = n as unknown as Element;
    if (el.tagName === 'platform_name') primary = (el.textContent ?? '').trim();
    if (el.tagName === 'alt_platform') {
      for (let c = el.firstChild; c; c = c.nextSibling) {
        if (c.nodeType === 1 && (c as unknown as Element).tagName === 'name') alternates.push(((c as unknown as Element).textContent ?? '').trim());
      }
    }
  }
  return { primary, alternates };
}

describe('fixtures/requests: every case', () => {
  for (const [file, c] of Object.entries(cases.cases)) {
    const names = c.names ?? cases.names;
    if (c.error) {
      it(`${file}: refused with ${c.error}`, () => {
        const input = fs.readFileSync(path.join(DIR, file));
        expect(() => patchSchedulerRequest(input, names)).toThrow();
        try {
          patchSchedulerRequest(input, names);
        } catch (e) {
          expect(isAltplatError(e, c.error as AltplatErrorCode)).toBe(true);
          expect((e as Error).message.length).toBeGreaterThan(20);
        }
      });
      continue;
    }
    it(`${file}: adds ${JSON.stringify(c.added)}, byte-exact elsewhere`, () => {
      const input = fs.readFileSync(path.join(DIR, file));
      const want = fs.readFileSync(path.join(DIR, c.expected!));
      const r = patchSchedulerRequest(input, names);
      expect(r.added).toEqual(c.added);
      expect(r.skipped).toEqual(c.skipped);
      expect(Buffer.compare(r.request, want)).toBe(0);

      // Everything outside the insertion is the input, byte for byte.
      const ins = Buffer.from(r.inserted, 'utf8');
      expect(r.request.length).toBe(input.length + ins.length);
      expect(Buffer.compare(r.request.subarray(0, r.offset), input.subarray(0, r.offset))).toBe(0);
      expect(Buffer.compare(r.request.subarray(r.offset, r.offset + ins.length), ins)).toBe(0);
      expect(Buffer.compare(r.request.subarray(r.offset + ins.length), input.subarray(r.offset))).toBe(0);

      // Not well-formed where BOINC pastes foreign content: accepted with a warning, never silently.
      expect(r.warnings.length).toBe(c.malformedAfterPlatforms ? 1 : 0);
      if (c.malformedAfterPlatforms) {
        expect(r.warnings[0]).toMatch(/not well-formed inside <(result|msg_from_host|client_opaque)>/);
        expect(r.request.toString('latin1').replace(r.inserted, '')).toBe(input.toString('latin1'));
        expect(patchSchedulerRequest(r.request, names).added).toEqual([]);
        return;
      }

      // An independent parser sees the same document plus the new alternates, in order, after the old ones.
      const before = platformsOf(input.toString('utf8'));
      const after = platformsOf(r.request.toString('utf8'));
      expect(after.primary).toBe(before.primary);
      expect(after.alternates).toEqual([...before.alternates, ...c.added!]);
      // ... and nothing else changed: removing the inserted text gives the input back.
      expect(r.request.toString('utf8').replace(r.inserted, '')).toBe(input.toString('utf8'));

      // The string API gives the same result.
      const s = patchSchedulerRequest(input.toString('utf8'), names);
      expect(s.request).toBe(want.toString('utf8'));

      // Patching the result again adds nothing.
      expect(patchSchedulerRequest(r.request, names).added).toEqual([]);
    });
  }
});

describe('patchSchedulerRequest', () => {
  const base = fs.readFileSync(path.join(DIR, 'linux-x86_64.xml'), 'utf8');

  it("uses BOINC's layout (client/cs_platforms.cpp write_platforms)", () => {
    const r = patchSchedulerRequest(base, ['i686-pc-linux-gnu']);
    expect(r.inserted).toBe('    <alt_platform>\n        <name>i686-pc-linux-gnu</name>\n    </alt_platform>\n');
    expect(r.request).toContain('    <platform_name>x86_64-pc-linux-gnu</platform_name>\n    <alt_platform>\n        <name>i686-pc-linux-gnu</name>\n    </alt_platform>\n<working_global_preferences>');
    expect(alternatePlatformsXml(['a', 'b'], '\r\n')).toBe('    <alt_platform>\r\n        <name>a</name>\r\n    </alt_platform>\r\n    <alt_platform>\r\n        <name>b</name>\r\n    </alt_platform>\r\n');
  });

  it('never touches <platform_name> inside comments or CDATA', () => {
    const input = fs.readFileSync(path.join(DIR, 'prolog-comments-cdata.xml'), 'utf8');
    expect(readRequestPlatforms(input)).toEqual({ primary: 'x86_64-pc-linux-gnu', alternates: ['i686-pc-linux-gnu'], anonymous: false });
    const r = patchSchedulerRequest(input, ['zz']);
    expect(r.offset).toBe(input.indexOf('</alt_platform>\n') + '</alt_platform>\n'.length);
  });

  it('ignores <platform_name> below the top level (results, app versions)', () => {
    const doc = '<scheduler_request>\n<result><platform_name>nested</platform_name></result>\n<platform_name>top</platform_name>\n</scheduler_request>\n';
    expect(readRequestPlatforms(doc).primary).toBe('top');
  });

  it('adds nothing for an anonymous-platform project', () => {
    const anon = base.replace('x86_64-pc-linux-gnu</platform_name>', 'anonymous</platform_name>');
    const r = patchSchedulerRequest(anon, ['i686-pc-linux-gnu']);
    expect(r).toMatchObject({ anonymous: true, added: [], skipped: ['i686-pc-linux-gnu'], request: anon });
  });

  it('skips duplicates among the names given', () => {
    expect(patchSchedulerRequest(base, ['a', 'a', 'b', 'x86_64-pc-linux-gnu']).added).toEqual(['a', 'b']);
  });

  it('decodes entities and CDATA in names it compares', () => {
    const doc = '<scheduler_request><platform_name>a&amp;b</platform_name><alt_platform><name><![CDATA[c<d]]></name></alt_platform></scheduler_request>';
    expect(readRequestPlatforms(doc)).toEqual({ primary: 'a&b', alternates: ['c<d'], anonymous: false });
    expect(patchSchedulerRequest(doc, ['a&b', 'c<d', 'e>f']).added).toEqual(['e>f']);
    expect(patchSchedulerRequest(doc, ['e>f']).inserted).toContain('<name>e&gt;f</name>');
  });

  it('keeps invalid UTF-8 bytes and a byte order mark untouched', () => {
    const head = Buffer.from('\ufeff<scheduler_request>\n    <platform_name>p</platform_name>\n', 'utf8');
    const tail = Buffer.concat([Buffer.from('<client_opaque><![CDATA['), Buffer.from([0xff, 0xfe, 0x80, 0x00, 0xc3]), Buffer.from(']]></client_opaque>\n</scheduler_request>\n')]);
    const input = Buffer.concat([head, tail]);
    const r = patchSchedulerRequest(input, ['q\u00e9']);
    expect(Buffer.compare(r.request, Buffer.concat([head, Buffer.from('    <alt_platform>\n        <name>q\u00e9</name>\n    </alt_platform>\n', 'utf8'), tail]))).toBe(0);
  });

  it('patches a 1 MB request (its speed: npm run bench -- discovery)', () => {
    const big = base.replace('</scheduler_request>', `<other_results>\n${'    <other_result>\n        <name>wu_0000000</name>\n        <app_version>0</app_version>\n    </other_result>\n'.repeat(11_000)}</other_results>\n</scheduler_request>`);
    expect(big.length).toBeGreaterThan(1_000_000);
    const bytes = Buffer.from(big);
    const r = patchSchedulerRequest(bytes, ['i686-pc-linux-gnu']);
    expect(r.added).toEqual(['i686-pc-linux-gnu']);
  });

  it('tolerates what the BOINC client pastes in unescaped after the platforms, and nothing else', () => {
    const full = fs.readFileSync(path.join(DIR, 'linux-boinc8-full.xml'), 'latin1');
    const pasted: [string, string, string][] = [
      // client/client_types.cpp APP_VERSION::write prints the project's cmdline as it is
      ['app_versions', '<api_version>7.20.0</api_version>', '<api_version>7.20.0</api_version>\n        <cmdline>--in <input.dat> --fast</cmdline>'],
      // client/cs_scheduler.cpp: client_opaque.txt inside CDATA, unescaped
      ['client_opaque', '<!-- x\n]]>', 'a ]]> b <c\n]]>'],
      // client/cs_trickle.cpp: the trickle body as the app wrote it
      ['msg_from_host', '<cpu_time>123.4</cpu_time>', '<cpu_time>123.4</cpu_time>\n<note>a < b</note>'],
    ];
    for (const [where, from, to] of pasted) {
      const input = full.replace(from, to);
      expect(input).not.toBe(full);
      const r = patchSchedulerRequest(Buffer.from(input, 'latin1'), ['zz']);
      expect(r.added).toEqual(['zz']);
      expect(r.warnings).toHaveLength(1);
      expect(r.warnings[0]).toContain(`<${where}>`);
      expect(r.request.toString('latin1').replace(r.inserted, '')).toBe(input);
    }
    // The same fault in BOINC's own elements, or before the platforms, is still refused.
    for (const bad of [
      full.replace('<on_frac>0.998523</on_frac>', '<on_frac>0.998523</onfrac>'),
      full.replace('<p_ncpus>2</p_ncpus>', '<p_ncpus>2 < 3</p_ncpus>'),
      full.replace('    <platform_name>', '<result><stderr_out>]]></stderr_out></result>\n    <platform_name>'),
    ]) {
      expect(() => patchSchedulerRequest(bad, ['zz'])).toThrow(expect.objectContaining({ code: 'REQUEST_NOT_WELL_FORMED' }));
    }
  });

  it('refuses a DOCTYPE', () => {
    try {
      patchSchedulerRequest('<!DOCTYPE x><scheduler_request><platform_name>p</platform_name></scheduler_request>', ['a']);
      expect.unreachable();
    } catch (e) {
      expect(isAltplatError(e, 'REQUEST_DOCTYPE')).toBe(true);
    }
  });

  it('accepts an empty <platform_name/> as a (blank) primary', () => {
    const r = patchSchedulerRequest('<scheduler_request>\n<platform_name/>\n</scheduler_request>\n', ['a']);
    expect(r.request).toBe('<scheduler_request>\n<platform_name/>\n    <alt_platform>\n        <name>a</name>\n    </alt_platform>\n</scheduler_request>\n');
  });
});

describe('advertisedNames (for a client writing its own request)', () => {
  it('drops names the client already sends, and everything for anonymous', () => {
    const discovery = { advertised: ['i686-pc-linux-gnu', 'x86_64-pc-linux-gnu', 'i686-pc-linux-gnu'] };
    expect(advertisedNames(discovery, { primary: 'windows_x86_64', alternates: ['windows_intelx86'] })).toEqual(['i686-pc-linux-gnu', 'x86_64-pc-linux-gnu']);
    expect(advertisedNames(discovery, { primary: 'x86_64-pc-linux-gnu' })).toEqual(['i686-pc-linux-gnu']);
    expect(advertisedNames(['a'], { primary: 'anonymous' })).toEqual([]);
    expect(advertisedNames(['a', 'b'])).toEqual(['a', 'b']);
  });
});
