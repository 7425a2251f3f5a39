/*
 * Issue 9 item 3: reply text is decoded as BOINC's client decodes it (lib/parse.cpp xml_unescape), then the
 * name rules apply to the decoded name.
 */
import { describe, expect, it } from 'vitest';
import { parseSchedulerReply } from '../src/scheduler/reply.js';
import { boincXmlUnescape } from '../src/scheduler/xml-unescape.js';

const LINUX = 'x86_64-pc-linux-gnu';

/** A one-result reply whose input file_info (and the workunit's file_ref) are named `name` (raw XML text). */
function reply(name: string, extra = ''): string {
  return `<scheduler_reply>
<master_url>https://example.org/u/</master_url>
<project_name>P&#10;Q &amp; R</project_name>
<app><name>a</name></app>
<file_info><name>app</name><executable/><nbytes>1</nbytes></file_info>
<file_info><name>${name}</name><nbytes>1</nbytes></file_info>
<file_info><name>out</name><url>https://example.org/u_cgi/file_upload_handler</url></file_info>
<app_version><app_name>a</app_name><version_num>1</version_num><platform>${LINUX}</platform>
  <file_ref><file_name>app</file_name><main_program/></file_ref></app_version>
<workunit><name>wu</name><app_name>a</app_name><command_line>--x &#38; &#x41;</command_line>
  <file_ref><file_name>${name}</file_name><open_name>in</open_name></file_ref></workunit>
<result><name>r</name><wu_name>wu</wu_name><platform>${LINUX}</platform><version_num>1</version_num>
  <file_ref><file_name>out</file_name></file_ref></result>
${extra}</scheduler_reply>`;
}
const parse = (text: string) => parseSchedulerReply(text, { host: [LINUX], alt: [] });

describe('xml_unescape as lib/parse.cpp does it', () => {
  it.each([
    ['a&lt;b&gt;&quot;&apos;&amp;', 'a<b>"\'&'],
    ['x&#47;y', 'x/y'], // decimal below 256: one byte
    ['x&#0047;y', 'x/y'], // leading zeros are digits to atoi
    ['&#4294967343;', '/'], // atoi's int keeps the low 32 bits: 2^32 + 47
    ['&#256;', '&#256;'], // 256 and above stay literal
    ['&#x2F;', '&#x2F;'], // hex: only &#xD; and &#xA;
    ['a&#xA;b&#xd;', 'a\nb\r'],
    ['&#195;&#169;', 'é'], // bytes, so two references make one UTF-8 character
    ['&#;', '&#;'],
    ['&#12', '&#12'], // no semicolon
    ['&#1x;', '&#1x;'],
    ['& &nbsp; &', '& &nbsp; &'], // unknown entities and bare ampersands are kept
    ['out&#0;x', 'out\u0000x'], // C would end the string at the NUL; kept here so the name rules see it
  ])('%j → %j', (raw, decoded) => {
    expect(boincXmlUnescape(raw)).toBe(decoded);
  });
});

describe('reply names are checked as decoded', () => {
  it('out&#0;x is refused as a control character (BOINC would cut it to "out"), and the result with it', () => {
    const r = parse(reply('out&#0;x'));
    expect(r.assignments).toEqual([]);
    const fi = r.rejections.find((j) => j.element === 'file_info');
    expect(fi).toMatchObject({ code: 'REPLY_BAD_FILENAME' });
    expect(fi!.reason).toContain('control character');
    expect(r.rejections.find((j) => j.element === 'result')).toMatchObject({ code: 'REPLY_MISSING_WORKUNIT' });
  });

  it.each(['in&#10;put', 'in&#xA;put', 'in&#127;', 'in&#155;put', 'bad&#255;'])('%s is refused (control character or not UTF-8)', (name) => {
    const r = parse(reply(name));
    expect(r.rejections.map((j) => j.code)).toContain('REPLY_BAD_FILENAME');
    expect(r.assignments).toEqual([]);
  });

  it('a decoded "/" meets the path rules: &#47;etc&#47;passwd is absolute, a&#47;..&#47;b has "..", sub&#47;in is a subfolder', () => {
    expect(parse(reply('&#47;etc&#47;passwd')).rejections[0]).toMatchObject({ element: 'file_info', code: 'REPLY_BAD_FILENAME' });
    expect(parse(reply('a&#47;&#46;&#46;&#47;b')).rejections[0]).toMatchObject({ element: 'file_info', code: 'REPLY_BAD_FILENAME' });
    expect(parse(reply('&#4294967343;etc')).rejections[0]).toMatchObject({ element: 'file_info', code: 'REPLY_BAD_FILENAME' });
    const ok = parse(reply('sub&#47;in'));
    expect(ok.rejections).toEqual([]);
    expect(ok.assignments[0].workunit.fileRefs[0].fileName).toBe('sub/in');
    expect(Object.keys(ok.assignments[0].files)).toContain('sub/in');
  });

  it('other text is decoded the same way: a newline reference in a name field, &#38; in a command line; CDATA is not decoded', () => {
    const r = parse(reply('in'));
    expect(r.projectName).toBe('P\nQ & R');
    expect(r.assignments[0].workunit.commandLine).toBe('--x & &#x41;');
    const cdata = parse(reply('<![CDATA[a&#47;b]]>'));
    expect(cdata.assignments[0].workunit.fileRefs[0].fileName).toBe('a&#47;b');
  });

  it('a bad reference no longer refuses the whole reply: the rest of it still runs', () => {
    const text = reply('in', '<message>bare & and &#0; here</message>\n');
    const r = parse(text);
    expect(r.assignments).toHaveLength(1);
    expect(r.messages).toEqual(['bare & and \u0000 here']);
  });
});
