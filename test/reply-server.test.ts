/*
 * Reviewer cases for reply parsing: fixtures/replies/server-realistic is laid out as BOINC's server writes
 * a reply (sched/sched_types.cpp SCHEDULER_REPLY::write, boinc-protocol.md §4.1).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { escapeProjectUrl } from '../src/paths.js';
import { badFileName, parseSchedulerReply } from '../src/scheduler/reply.js';

const LINUX = 'x86_64-pc-linux-gnu';
const text = readFileSync('fixtures/replies/server-realistic/reply.xml', 'utf8');

describe('a reply as BOINC servers write it', () => {
  const r = parseSchedulerReply(text, { host: [LINUX], alt: [] });

  it('reads messages with priority attributes, entity-escaped names, result_abort lists; ignores signatures and unknown tags', () => {
    expect(r.masterUrl).toBe('http://uc.example.edu/UpperCase/');
    expect(r.projectName).toBe('Upper & Case@Home');
    expect(r.messages).toEqual(['Your host is now eligible for the mt plan class', 'No tasks sent for app legacy']);
    expect(r.resultAborts).toEqual(['uc_wu_old_1']);
    expect(r.resultAbortsIfNotStarted).toEqual(['uc_wu_old_2']);
    expect(r.apps.map((a) => a.name)).toEqual(['uc', 'legacy']);
    // Account and host facts for init_data.xml; project_preferences kept verbatim (copy_element_contents).
    expect(r.account).toMatchObject({ userid: 5, hostid: 99, teamid: 0, userName: 'bob <b>', teamName: '' });
    expect(r.account.projectPreferences).toBe('\n<project_specific><color>red</color></project_specific>\n');
    expect(r.assignments[0].account).toEqual(r.account);
    // gzipped_url is where the (decompressed) file comes from, never an upload URL; the signature is not a URL.
    const app700 = r.fileInfos.find((f) => f.name === 'uc_7.00_x86_64-pc-linux-gnu')!;
    expect(app700).toMatchObject({ executable: true, isOutput: false, uploadUrls: [], nbytes: 17624 });
  });

  it('picks the app version by (app, platform, version_num, plan_class); an empty result platform means primary + latest version', () => {
    expect(r.assignments.map((a) => [a.result.name, a.appVersion.versionNum, a.appVersion.planClass, a.kind])).toEqual([
      ['uc_wu_0001_0', 710, 'mt', 'native'], ['uc_wu_0002_0', 700, '', 'native'],
    ]);
    // client/cs_apps.cpp latest_version ignores the plan class: 710 (mt) is the latest, and ('', 710) has no version.
    expect(r.rejections.find((j) => j.name === 'uc_wu_0001_1')).toMatchObject({ element: 'result', code: 'REPLY_NO_APP_VERSION', platform: LINUX });
    expect(r.rejections.find((j) => j.name === 'uc_wu_0001_1')!.reason).toContain('ver 710 class ;');
  });

  it('keeps command lines as BOINC does: whitespace-stripped, newlines inside, CDATA text verbatim', () => {
    const [mt, plain] = r.assignments;
    expect(mt.workunit.commandLine).toBe('--in data/input.txt\n--out results/upper.txt --extra extra.txt\n--aux aux.txt --ms 1');
    expect(mt.appVersion.cmdline).toBe('--args --aid --nthreads 2');
    expect(plain.workunit.commandLine).toBe('--in uc_in_0002 --notice "Converted <33> chars & done"');
  });

  it('file refs: open names with subfolders, copy_file inputs and outputs, optional outputs, physical name when no open_name', () => {
    const [mt, plain] = r.assignments;
    expect(mt.workunit.fileRefs).toEqual([
      { fileName: 'uc_in_0001', openName: 'data/input.txt', mainProgram: false, copyFile: false, optional: false },
      { fileName: 'uc_extra_0001', openName: 'extra.txt', mainProgram: false, copyFile: true, optional: false },
    ]);
    expect(mt.result.fileRefs).toEqual([
      { fileName: 'uc_wu_0001_0_r1_0', openName: 'results/upper.txt', mainProgram: false, copyFile: true, optional: false },
      { fileName: 'uc_wu_0001_0_r1_1', openName: 'aux.txt', mainProgram: false, copyFile: false, optional: true },
    ]);
    expect(plain.workunit.fileRefs[0]).toMatchObject({ fileName: 'uc_in_0002', openName: 'uc_in_0002', copyFile: true });
    expect(mt.files.uc_wu_0001_0_r1_0).toMatchObject({ isOutput: true, maxNbytes: 65536 });
  });

  it('a result whose workunit was dropped says why; a result for an unsupported platform says which', () => {
    const wu3 = r.rejections.find((j) => j.name === 'uc_wu_0003_0')!;
    expect(wu3).toMatchObject({ code: 'REPLY_MISSING_WORKUNIT', platform: LINUX });
    expect(wu3.reason).toBe('Can\'t handle task uc_wu_0003_0: missing workunit uc_wu_0003 (file_ref open_name "data/./in" has an empty or "." path component)');
    const wu4 = r.rejections.find((j) => j.name === 'uc_wu_0004_0')!;
    expect(wu4).toMatchObject({ code: 'REPLY_NO_APP_VERSION', platform: 'windows_x86_64' });
    expect(wu4.reason).toContain('App version has unsupported platform windows_x86_64');
  });

  it('the same reply on a Windows host with the Linux alt platform advertised: the Linux versions run as alt', () => {
    const alt = parseSchedulerReply(text, { host: ['windows_x86_64', 'windows_intelx86'], alt: [LINUX] });
    // uc_wu_0001_1 (empty platform) now gets the primary platform's latest version: windows_x86_64 710, no plan class.
    expect(alt.assignments.map((a) => [a.result.name, a.kind, a.platform, a.appVersion.versionNum])).toEqual([
      ['uc_wu_0001_0', 'alt', LINUX, 710], ['uc_wu_0001_1', 'native', 'windows_x86_64', 710],
      ['uc_wu_0002_0', 'alt', LINUX, 700], ['uc_wu_0004_0', 'native', 'windows_x86_64', 710],
    ]);
  });
});

describe('<file_prefix> (client/app_start.cpp prepend_prefix, must_copy_file)', () => {
  const withPrefix = (prefix: string) => text.replace('<version_num>700</version_num>', `<version_num>700</version_num>\n    <file_prefix>${prefix}</file_prefix>`);
  it('puts input and output open names under the prefix (16 characters at most) and copies them; app files are untouched', () => {
    const r = parseSchedulerReply(withPrefix('a_very_long_prefix_name'), { host: [LINUX], alt: [] });
    const plain = r.assignments.find((a) => a.result.name === 'uc_wu_0002_0')!;
    expect(plain.appVersion.filePrefix).toBe('a_very_long_pref');
    expect(plain.workunit.fileRefs).toEqual([{ fileName: 'uc_in_0002', openName: 'a_very_long_pref/uc_in_0002', mainProgram: false, copyFile: true, optional: false }]);
    expect(plain.result.fileRefs[0]).toMatchObject({ openName: 'a_very_long_pref/out', copyFile: true });
    expect(plain.appVersion.fileRefs[0]).toMatchObject({ openName: 'uc_7.00_x86_64-pc-linux-gnu', copyFile: false });
    // The 710 version has no prefix: its results are unchanged.
    expect(r.assignments.find((a) => a.result.name === 'uc_wu_0001_0')!.workunit.fileRefs[0].openName).toBe('data/input.txt');
  });
  it('a prefix that would leave the slot drops the app version', () => {
    const r = parseSchedulerReply(withPrefix('../x'), { host: [LINUX], alt: [] });
    expect(r.rejections.find((j) => j.element === 'app_version')).toMatchObject({ code: 'REPLY_BAD_FILENAME' });
    expect(r.assignments.map((a) => a.result.name)).toEqual(['uc_wu_0001_0']);
  });
});

describe('names that cannot be a file in the slot or project dir', () => {
  it.each(['.', 'data/', 'a//b', './in', 'data/./in', '/etc/passwd', '../x', 'a%2fb', '', 'x'.repeat(256)])('%j is refused', (name) => {
    expect(badFileName(name)).toBeDefined();
  });
  it.each(['in', 'data/input.txt', 'uc_7.10_x86_64-pc-linux-gnu', 'a.b.c', '.hidden', 'x'.repeat(255)])('%j is accepted', (name) => {
    expect(badFileName(name)).toBeUndefined();
  });
});

describe('project dir name (lib/url.cpp escape_url_readable works on bytes)', () => {
  it('each byte of a non-ASCII character becomes one underscore', () => {
    expect(escapeProjectUrl('https://bücher.example/x/')).toBe('b__cher.example_x');
    expect(escapeProjectUrl('https://😀.org/')).toBe('____.org');
  });
});
