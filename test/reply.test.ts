import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isAltplatError } from '../src/errors.js';
import { badFileName, parseSchedulerReply } from '../src/scheduler/reply.js';

const fixture = (name: string) => readFileSync(`fixtures/replies/${name}/reply.xml`, 'utf8');
const LINUX = 'x86_64-pc-linux-gnu';

describe('parseSchedulerReply (client/scheduler_op.cpp, client/cs_scheduler.cpp rules)', () => {
  it('resolves a result to its workunit, app version and file_infos; the host platform runs natively', () => {
    const r = parseSchedulerReply(fixture('basic'), { host: [LINUX], alt: [] });
    expect(r.masterUrl).toBe('https://example.org/demo/');
    expect(r.rejections).toEqual([]);
    expect(r.assignments).toHaveLength(1);
    const a = r.assignments[0];
    expect(a.kind).toBe('native');
    expect(a.platform).toBe(LINUX);
    expect(a.workunit.commandLine).toBe('--rounds 10'); // whitespace stripped as WORKUNIT::parse does
    expect(a.appVersion.cmdline).toBe('--fast');
    expect(a.workunit.fileRefs[0]).toMatchObject({ fileName: 'sum_in_0007', openName: 'in', copyFile: false });
    // No open_name: the physical name is used.
    expect(a.appVersion.fileRefs[0]).toMatchObject({ openName: 'sum_1.02_x86_64-pc-linux-gnu', mainProgram: true });
    const out = a.files.sum_wu_0007_r19_0;
    expect(out.isOutput).toBe(true); // url with file_upload_handler = upload URL
    expect(out.maxNbytes).toBe(1000000);
    expect(a.files.sum_in_0007.isOutput).toBe(false);
    expect(a.files.sum_in_0007.md5).toMatch(/^[0-9a-f]{32}$/);
    expect(r.messages).toEqual(['Welcome to the demo project']);
  });

  it('an advertised alt platform runs through its manager; host platforms win over alt names', () => {
    const alt = parseSchedulerReply(fixture('basic'), { host: ['windows_x86_64', 'windows_intelx86'], alt: [LINUX] });
    expect(alt.assignments[0].kind).toBe('alt');
    const both = parseSchedulerReply(fixture('basic'), { host: [LINUX], alt: [LINUX] });
    expect(both.assignments[0].kind).toBe('native');
  });

  it('drops an app version for a platform that is neither host nor advertised, and then its result', () => {
    const r = parseSchedulerReply(fixture('basic'), { host: ['windows_x86_64'], alt: [] });
    expect(r.assignments).toEqual([]);
    expect(r.rejections.map((x) => [x.element, x.code])).toEqual([
      ['app_version', 'REPLY_UNSUPPORTED_PLATFORM'],
      ['result', 'REPLY_NO_APP_VERSION'],
    ]);
    expect(r.rejections[0].reason).toContain('App version has unsupported platform x86_64-pc-linux-gnu');
    expect(r.rejections[1].reason).toContain('No app version found for app sum platform x86_64-pc-linux-gnu ver 102');
    expect(r.rejections[1].reason).toContain('(App version has unsupported platform x86_64-pc-linux-gnu'); // says why
  });

  it('empty result platform = primary platform and the latest version; missing workunit rejected', () => {
    const r = parseSchedulerReply(fixture('unsupported-platform'), { host: [LINUX, 'i686-pc-linux-gnu'], alt: [] });
    expect(r.assignments.map((a) => [a.result.name, a.platform, a.result.versionNum])).toEqual([
      ['r_default_platform', LINUX, 6],
    ]);
    const codes = Object.fromEntries(r.rejections.map((x) => [x.name, x.code]));
    expect(codes['sum 5 sparc-sun-solaris']).toBe('REPLY_UNSUPPORTED_PLATFORM');
    expect(codes.r_sparc).toBe('REPLY_NO_APP_VERSION');
    expect(codes.r_missing_wu).toBe('REPLY_MISSING_WORKUNIT');
  });

  it('rejects names that are empty or contain .. or % (ERR_BAD_FILENAME) without dropping the rest', () => {
    const r = parseSchedulerReply(fixture('bad-names'), { host: [LINUX], alt: [] });
    expect(r.assignments).toEqual([]);
    const fileRejects = r.rejections.filter((x) => x.element === 'file_info');
    expect(fileRejects.map((x) => x.code)).toEqual(['REPLY_BAD_FILENAME', 'REPLY_BAD_FILENAME', 'REPLY_BAD_FILENAME']);
    const wu = r.rejections.filter((x) => x.element === 'workunit').map((x) => [x.name, x.code]);
    expect(wu).toEqual([['wu_bad_open_name', 'REPLY_BAD_FILENAME'], ['wu_escape', 'REPLY_BAD_FILENAME']]);
    expect(r.rejections.filter((x) => x.element === 'result').map((x) => x.code)).toEqual(['REPLY_MISSING_WORKUNIT', 'REPLY_MISSING_WORKUNIT']);
    expect(r.appVersions).toHaveLength(1); // the good app version survives
  });

  it.each([['', 'is empty'], ['a..b', '".."'], ['x%y', '"%"'], ['/etc/passwd', 'absolute']])('badFileName(%j)', (name, why) => {
    expect(badFileName(name)).toContain(why);
  });
  it('accepts ordinary names, including subfolders in open names', () => {
    expect(badFileName('sum_1.02_x86_64-pc-linux-gnu')).toBeUndefined();
    expect(badFileName('shared/in.dat')).toBeUndefined();
  });

  it('refuses a document that is not a scheduler reply, and DOCTYPEs, with named errors', () => {
    const codeOf = (text: string) => {
      try {
        parseSchedulerReply(text, { host: [LINUX], alt: [] });
      } catch (e) {
        return isAltplatError(e) ? e.code : 'other';
      }
      return 'none';
    };
    expect(codeOf('<scheduler_request></scheduler_request>')).toBe('REPLY_NO_ROOT');
    expect(codeOf('<scheduler_reply><project_name>x</project_name></scheduler_reply>')).toBe('REPLY_NO_MASTER_URL');
    expect(codeOf('<!DOCTYPE x [<!ENTITY a "b">]><scheduler_reply/>')).toBe('REPLY_DOCTYPE');
    expect(codeOf('<scheduler_reply><master_url>x</scheduler_reply>')).toBe('REPLY_NOT_WELL_FORMED');
  });
});
