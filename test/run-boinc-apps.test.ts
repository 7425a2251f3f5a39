/*
 * Reviewer cases for `altplat run` / `altplat task` with a real BOINC application (test/c/upper_case.c,
 * linked with Debian's libboinc-api) and scheduler replies written the way BOINC's server writes them
 * (fixtures/replies/server-realistic). Every case goes through the built CLI; nothing is mocked.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { splitCommandLine as managerSplit } from '../src/manager/cmdline.js';
import { splitCommandLine } from '../src/tasks/cmdline.js';
import { buildBoincProgram } from './helpers/boinc-c.js';
import { exists, installAltPlatform, makeReply, md5, PROJECT, tempDataDir, treeStamp, writeReply, startCli, runCli, CLI } from './lifecycle-helpers.js';

const LINUX = 'x86_64-pc-linux-gnu';
const FIXTURE = path.resolve('fixtures/replies/server-realistic');
const UC_PROJECT = 'uc.example.edu_UpperCase';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Res = { name: string; [k: string]: unknown };
const byName = (stdout: string): Record<string, Res> => Object.fromEntries(JSON.parse(stdout).results.map((x: Res) => [x.name, x]));

let uc: string;
beforeAll(async () => {
  await fsp.access(CLI);
  uc = await buildBoincProgram(path.resolve('test/c/upper_case.c'));
});

/** The fixture reply with the real size of the compiled app, and a files dir holding everything it names. */
async function realisticReply(dir: string): Promise<{ replyFile: string; filesDir: string }> {
  const size = (await fsp.stat(uc)).size;
  const xml = (await fsp.readFile(path.join(FIXTURE, 'reply.xml'), 'utf8')).replace(/<nbytes>17624<\/nbytes>/g, `<nbytes>${size}</nbytes>`);
  const filesDir = path.join(dir, 'files');
  await fsp.mkdir(filesDir, { recursive: true });
  for (const f of await fsp.readdir(path.join(FIXTURE, 'files'))) await fsp.copyFile(path.join(FIXTURE, 'files', f), path.join(filesDir, f));
  for (const f of ['uc_7.00_x86_64-pc-linux-gnu', 'uc_7.10_x86_64-pc-linux-gnu']) await fsp.copyFile(uc, path.join(filesDir, f));
  const replyFile = path.join(dir, 'sched_reply_uc.example.edu_UpperCase.xml');
  await fsp.writeFile(replyFile, xml);
  return { replyFile, filesDir };
}

/** Everything in the data dir except the project dir, slots, working copies and altplat's own state. */
async function outsideOwned(dataDir: string): Promise<string[]> {
  const all = await fsp.readdir(dataDir, { recursive: true });
  return all.filter((p) => !/^(projects|slots|alt_platforms_working|altplat|files)(\/|$)/.test(p) && !p.startsWith('alt_platforms/')
    && p !== 'alt_platforms' && !p.endsWith('.xml')).sort();
}

describe('a reply as a BOINC server writes it, run natively', () => {
  it('messages, signatures, gzipped_url, several app versions, subdir open names, copy_file, optional output, CDATA, unknown tags', async () => {
    const dataDir = await tempDataDir('altplat-rv-');
    const { replyFile, filesDir } = await realisticReply(dataDir);
    const r = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    expect(r.code, r.stderr).toBe(1); // three results are rejected, as BOINC would
    const res = byName(r.stdout);
    expect(Object.keys(res).sort()).toEqual(['uc_wu_0001_0', 'uc_wu_0001_1', 'uc_wu_0002_0', 'uc_wu_0003_0', 'uc_wu_0004_0']);
    // The mt app version (710) with its cmdline; inputs through subdirectory soft links and a copy.
    const mt = res.uc_wu_0001_0;
    expect(mt).toMatchObject({ platform: LINUX, kind: 'native', slot: 0, outcome: 'success', exitStatus: 0, restarts: 0, warnings: [] });
    expect(mt.stderr).toContain('argv[11]=--args\nargv[12]=--aid\nargv[13]=--nthreads\nargv[14]=2\n'); // workunit command line, then app version cmdline
    expect(mt.stderr).toContain(`resolved data/input.txt -> ../../projects/${UC_PROJECT}/uc_in_0001`);
    // What the real API read from init_data.xml: the reply's account, host and project preferences too.
    expect(mt.stderr).toContain('aid app_name=uc app_version=710 wu_name=uc_wu_0001 result_name=uc_wu_0001_0 slot=0\n');
    expect(mt.stderr).toContain('aid userid=5 hostid=99 user_name=bob <b> team_name=\n');
    // Only the inside of <project_specific>, as the client passes project_specific_prefs (client/cs_account.cpp).
    expect(mt.stderr).toMatch(/aid project_preferences=<project_preferences>\s*<color>red<\/color><\/project_preferences>\n/);
    // computation_deadline = report_deadline 1900000000 less work_buf_min_days (0.1 d by default), client/result.cpp.
    expect(mt.stderr).toContain('aid rsc_fpops_est=1000000000 computation_deadline=1899991360 checkpoint_period=60 fraction_done_end=1.0\n');
    expect(mt.stderr).toContain(`aid project_dir=${path.join(dataDir, 'projects', UC_PROJECT)}\n`);
    const proj = path.join(dataDir, 'projects', UC_PROJECT);
    const upper = Buffer.from('HELLO BOINC WORLD\nsecond part\n');
    expect(mt.outputs).toEqual([
      { name: 'uc_wu_0001_0_r1_0', path: path.join(proj, 'uc_wu_0001_0_r1_0'), nbytes: upper.length, md5: md5(upper), status: 0 },
      { name: 'uc_wu_0001_0_r1_1', path: path.join(proj, 'uc_wu_0001_0_r1_1'), nbytes: 7, md5: md5('aux 18\n'), status: 0 },
    ]);
    expect(await fsp.readFile(path.join(proj, 'uc_wu_0001_0_r1_0'))).toEqual(upper);
    // The plain version (700): a copied input without open_name, a quoted notice from a CDATA command line.
    const plain = res.uc_wu_0002_0;
    expect(plain).toMatchObject({ outcome: 'success', exitStatus: 0, message: 'Converted <33> chars & done' });
    expect(await fsp.readFile(path.join(proj, 'uc_wu_0002_0_r1_0'), 'utf8')).toBe('ALTERNATE PLATFORMS, AFTER REED.\n');
    // Empty <platform>: primary platform + latest version (710), whose plan class is "mt" — no match (cs_scheduler.cpp).
    expect(res.uc_wu_0001_1).toMatchObject({ outcome: 'rejected', code: 'REPLY_NO_APP_VERSION', platform: LINUX, slot: null });
    expect(res.uc_wu_0003_0).toMatchObject({ outcome: 'rejected', code: 'REPLY_MISSING_WORKUNIT', platform: LINUX });
    expect(res.uc_wu_0003_0.reason).toContain('open_name "data/./in"');
    expect(res.uc_wu_0004_0).toMatchObject({ outcome: 'rejected', code: 'REPLY_NO_APP_VERSION', platform: 'windows_x86_64' });
    expect(res.uc_wu_0004_0.reason).toContain('unsupported platform windows_x86_64');
    expect(await fsp.readdir(path.join(dataDir, 'slots'))).toEqual([]);
    expect(await outsideOwned(dataDir)).toEqual([]);
  });
});

describe('command lines split as libboinc parse_command_line does (native argv = argv in the VM)', () => {
  it('agrees with libboinc on quoting corner cases and random lines, and with the manager\'s splitter', async () => {
    const splitter = await buildBoincProgram(path.resolve('test/c/cmdline_split.c'));
    const lines = [
      "--name 'hello world' x", 'a"b c"', '"ab"cd', '"" x', "'' x", '  lead   trail  ', '"unclosed arg', 'multi\nline\ttab',
      '--notice "Converted <33> chars & done"', "it's", '"a b" \'c d\' "e\'f" \'g"h\'', 'x "', '\v\f\r', '--in data/input.txt\n--out x',
    ];
    let seed = 7;
    const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed; };
    for (let k = 0; k < 300; k++) {
      const alphabet = ['a', 'b', ' ', '\t', '"', "'", '\n', 'x', '-'];
      lines.push(Array.from({ length: rnd() % 12 }, () => alphabet[rnd() % alphabet.length]).join(''));
    }
    // The C side reads one line per command line, so a newline travels as \x01.
    const input = lines.map((l) => l.replace(/\n/g, '\x01')).join('\n') + '\n';
    const want = execFileSync(splitter, { input }).toString().trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map(splitCommandLine)).toEqual(want);
    // The VM side must not drift from the native side: one implementation serves both.
    expect(managerSplit).toBe(splitCommandLine);
  });

  it('a native task gets single-quoted arguments as one argument', async () => {
    const dataDir = await tempDataDir('altplat-rv-');
    const reply = makeReply({ platform: LINUX, mainProgram: await fsp.readFile(uc), wuCommandLine: "--args --notice 'it works'", results: [{ name: 'c1', input: 'q\n' }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const r = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    const c1 = byName(r.stdout).c1;
    expect(c1).toMatchObject({ outcome: 'success', message: 'it works' });
    expect(c1.stderr).toContain('argc 4\nargv[1]=--args\nargv[2]=--notice\nargv[3]=it works\n');
  });
});

describe('--files', () => {
  it('a wrong file fails only the results that need it; the others run, and the wrong file never lands', async () => {
    const dataDir = await tempDataDir('altplat-rv-');
    const reply = makeReply({ platform: LINUX, mainProgram: await fsp.readFile(uc), results: [{ name: 'g1', input: 'good\n' }, { name: 'b1', input: 'bad?\n' }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    await fsp.writeFile(path.join(filesDir, 'b1_in'), 'evil\n'); // same size, other md5
    const r = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    expect(r.code, r.stderr).toBe(1);
    const res = byName(r.stdout);
    expect(res.g1).toMatchObject({ outcome: 'success' });
    expect(res.b1).toMatchObject({ outcome: 'rejected', code: 'INPUT_MD5_MISMATCH', slot: null });
    expect(res.b1.reason).toContain('refused');
    expect(await exists(path.join(dataDir, 'projects', PROJECT, 'b1_in'))).toBe(false);
  });
});

describe('slots and file_prefix', () => {
  it('--max-tasks 2 over four results: a finished task\'s slot is reused (lowest free number, as get_free_slot does)', async () => {
    const dataDir = await tempDataDir('altplat-rv-');
    const reply = makeReply({ platform: LINUX, mainProgram: await fsp.readFile(uc), wuCommandLine: '--ms 20',
      results: ['s1', 's2', 's3', 's4'].map((name) => ({ name, input: 'slot reuse\n' })) });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const r = await runCli(['run', '--json', '--max-tasks', '2', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    expect(r.code, r.stderr).toBe(0);
    const slots = JSON.parse(r.stdout).results.map((x: Res) => x.slot);
    expect(slots.slice(0, 2).sort()).toEqual([0, 1]);
    for (const n of slots) expect([0, 1]).toContain(n);
  });

  it('<file_prefix>: inputs and outputs live under <prefix>/ in the slot and are copied (client/app_start.cpp)', async () => {
    const dataDir = await tempDataDir('altplat-rv-');
    const reply = makeReply({ platform: LINUX, mainProgram: await fsp.readFile(uc), wuCommandLine: '--in job/in --out job/out',
      results: [{ name: 'f1', input: 'prefixed\n' }] });
    reply.xml = reply.xml.replace('<api_version>8.0.0</api_version>', '<api_version>8.0.0</api_version>\n    <file_prefix>job</file_prefix>');
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const r = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    const f1 = byName(r.stdout).f1;
    // Copies, not soft links: the names resolve to themselves.
    expect(f1.stderr).toContain('resolved job/in -> job/in, job/out -> job/out');
    expect(f1).toMatchObject({ outcome: 'success', outputs: [expect.objectContaining({ name: 'f1_out', nbytes: 9, status: 0 })] });
    expect(await fsp.readFile(path.join(dataDir, 'projects', PROJECT, 'f1_out'), 'utf8')).toBe('PREFIXED\n');
  });
});

describe('the BOINC app as the manager of an installed alt platform', () => {
  it('trickle-up, a finish notice and its output through the alt platform; the original is unchanged', async () => {
    const dataDir = await tempDataDir('altplat-rv-');
    const platDir = await installAltPlatform(dataDir, { name: LINUX, manager: uc, cmdline: '--trickle --ms 40 --notice "all upper now"' });
    const before = await treeStamp(platDir);
    const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 'a1', input: 'tiny volunteer computing\n'.repeat(3) }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const r = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', 'windows_x86_64', '--files', filesDir, replyFile]);
    expect(r.code, r.stderr).toBe(0);
    const a1 = byName(r.stdout).a1;
    expect(a1).toMatchObject({ platform: LINUX, kind: 'alt', outcome: 'success', exitStatus: 0, message: 'all upper now' });
    expect(a1.stderr).toContain('resolved in -> ../../projects/example.org_lctest/a1_in');
    const proj = path.join(dataDir, 'projects', PROJECT);
    expect(await fsp.readFile(path.join(proj, 'a1_out'), 'utf8')).toBe('TINY VOLUNTEER COMPUTING\n'.repeat(3));
    const trickles = (await fsp.readdir(proj)).filter((f) => /^trickle_up_a1_\d+\.xml$/.test(f));
    expect(trickles).toHaveLength(1);
    expect(await fsp.readFile(path.join(proj, trickles[0]), 'utf8')).toContain('<variety>uc_progress</variety>');
    expect(await fsp.readdir(path.join(dataDir, 'slots'))).toEqual([]);
    expect(await fsp.readdir(path.join(dataDir, 'alt_platforms_working'))).toEqual([]);
    expect(await treeStamp(platDir)).toEqual(before);
  });
});

describe('symlinks planted in a slot never make altplat write or delete outside its folders', () => {
  it('a copied output whose folder the app replaced by a symlink is not collected (the file outside stays)', async () => {
    const dataDir = await tempDataDir('altplat-rv-');
    const victim = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-victim-'));
    // The app writes its output "results/upper.txt", then swaps "results" for a link to a folder holding a
    // file of that name and finishes.
    const evil = `#!/bin/sh\necho precious > '${victim}/upper.txt'\nrm -rf results\nln -s '${victim}' results\necho 0 > boinc_finish_called\nexit 0\n`;
    const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from(evil), results: [{ name: 'e1', input: 'x', copyOutput: true }] });
    reply.xml = reply.xml.replace('<open_name>out</open_name>', '<open_name>results/upper.txt</open_name>');
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const r = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    expect(byName(r.stdout).e1).toMatchObject({ outcome: 'compute_error', outputs: [{ name: 'e1_out', path: null, nbytes: null, md5: null, status: -161 }] });
    expect(await fsp.readFile(path.join(victim, 'upper.txt'), 'utf8')).toBe('precious\n');
    expect(await exists(path.join(dataDir, 'projects', PROJECT, 'e1_out'))).toBe(false);
    expect(await fsp.readdir(path.join(dataDir, 'slots'))).toEqual([]);
  });

  it('boinc_mmap_file and stderr.txt replaced by symlinks: the restart writes fresh files in the slot, not through the links', async () => {
    const dataDir = await tempDataDir('altplat-rv-');
    const victim = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-victim-'));
    await fsp.writeFile(path.join(victim, 'file'), 'precious\n');
    await fsp.writeFile(path.join(victim, 'log'), 'log\n');
    const evil = `#!/bin/sh
if [ ! -f ran ]; then
  touch ran
  rm -f boinc_mmap_file stderr.txt
  ln -s '${victim}/file' boinc_mmap_file
  ln -s '${victim}/log' stderr.txt
  exit 0
fi
echo second run >&2
echo hi > out
echo 0 > boinc_finish_called
`;
    const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from(evil), results: [{ name: 'e2', input: 'x', copyOutput: true }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const r = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    // exit(0) without a finish file = premature exit, restarted (client/app_control.cpp).
    expect(byName(r.stdout).e2, r.stdout).toMatchObject({ outcome: 'success', restarts: 1, stderr: 'second run\n' });
    expect(await fsp.readFile(path.join(victim, 'file'), 'utf8')).toBe('precious\n');
    expect(await fsp.readFile(path.join(victim, 'log'), 'utf8')).toBe('log\n');
  });
});

describe('an app that replaces its own slot folder by a symlink', () => {
  it('the task ends (SLOT_REPLACED); nothing is written, read or moved through the link; the link is removed, its target kept', async () => {
    const dataDir = await tempDataDir('altplat-rv-');
    const victim = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-victim-'));
    const evil = `#!/bin/sh
echo precious > '${victim}/e3_out'
echo '<x/>' > '${victim}/trickle_up.xml'
echo secret > '${victim}/stderr.txt'
cd .. && mv 0 moved && ln -s '${victim}' 0
exit 0
`;
    const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from(evil), results: [{ name: 'e3', input: 'x', copyOutput: true }] });
    reply.xml = reply.xml.replace('<open_name>out</open_name>', '<open_name>e3_out</open_name>');
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const r = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    const e3 = byName(r.stdout).e3;
    // exit(0) without a finish file would be restarted: the restart finds the slot replaced.
    expect(e3, r.stdout).toMatchObject({ outcome: 'compute_error', code: 'SLOT_REPLACED', exitStatus: -185, stderr: '' });
    // Only what the app wrote: no boinc_mmap_file or init_data.xml written there, nothing moved out.
    expect((await fsp.readdir(victim)).sort()).toEqual(['e3_out', 'stderr.txt', 'trickle_up.xml']);
    expect(await fsp.readFile(path.join(victim, 'e3_out'), 'utf8')).toBe('precious\n');
    expect(await exists(path.join(dataDir, 'slots', '0'))).toBe(false);
    expect(await exists(path.join(dataDir, 'projects', PROJECT, 'e3_out'))).toBe(false);
  });
});

describe('main program', () => {
  it('one whose file_info lacks <executable/> is refused as BOINC does, even with x bits (-185)', async () => {
    const dataDir = await tempDataDir('altplat-rv-');
    const reply = makeReply({ platform: LINUX, mainProgram: await fsp.readFile(uc), results: [{ name: 'x1', input: 'x\n' }] });
    reply.xml = reply.xml.replace('<executable/>\n', '');
    const { replyFile, filesDir } = await writeReply(dataDir, reply); // files written 0755
    const r = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    expect(byName(r.stdout).x1).toMatchObject({ outcome: 'compute_error', exitStatus: -185, code: 'MAIN_PROGRAM_NOT_EXECUTABLE',
      reason: "couldn't start app: Main program lc_app_100 is not executable" });
    expect(await fsp.readdir(path.join(dataDir, 'slots'))).toEqual([]);
  });
});

describe('descendants of the app', () => {
  it('a child that left the process group (setsid) but works in the slot is killed when the app exits', async () => {
    const dataDir = await tempDataDir('altplat-rv-');
    const script = '#!/bin/sh\nsetsid sleep 317 </dev/null >/dev/null 2>&1 &\necho $! > ../../child.pid\necho hi > out\necho 0 > boinc_finish_called\n';
    const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from(script), results: [{ name: 'd1', input: 'x', copyOutput: true }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const r = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    expect(byName(r.stdout).d1).toMatchObject({ outcome: 'success' });
    const pid = Number((await fsp.readFile(path.join(dataDir, 'child.pid'), 'utf8')).trim());
    expect(pid).toBeGreaterThan(0);
    // Gone or a zombie waiting for whoever inherited it to reap it: either way, no longer running.
    const alive = async () => {
      const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    };
    for (let i = 0; i < 50 && await alive(); i++) await sleep(20);
    expect(await alive()).toBe(false);
  });
});

describe('altplat task against a real BOINC app that polls boinc_status itself (boinc_init_options)', () => {
  it('suspend stops progress, resume restarts it, quit keeps the checkpoint; result_abort_if_not_started spares the started task, which resumes from it', async () => {
    const dataDir = await tempDataDir('altplat-rv-');
    // disk_interval 1: the API lets the app checkpoint once a second (0 would mean its 300 s default),
    // so progress is visible in uc_state.
    await fsp.writeFile(path.join(dataDir, 'global_prefs_override.xml'), '<global_preferences>\n   <disk_interval>1</disk_interval>\n</global_preferences>\n');
    const text = 'abcdefghij'.repeat(12);
    const reply = makeReply({ platform: LINUX, mainProgram: await fsp.readFile(uc), wuCommandLine: '--options --ms 60',
      results: [{ name: 'q1', input: text }, { name: 'q2', input: 'second task\n' }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const args = ['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile];
    const state = path.join(dataDir, 'slots', '0', 'uc_state');
    const done = async () => Number((await fsp.readFile(state, 'utf8').catch(() => '0')).trim() || 0);
    const run = startCli(args);
    for (let i = 0; i < 200 && (await done()) < 5; i++) await sleep(50);
    const task = (op: string, name = 'q1') => runCli(['task', '--data-dir', dataDir, op, name]);
    expect((await task('suspend')).stdout).toBe('q1: suspend requested (state SUSPENDED)\n');
    await sleep(400);
    const atSuspend = await done();
    await sleep(1300);
    expect(await done()).toBe(atSuspend);
    expect((await task('resume')).stdout).toContain('state EXECUTING');
    await sleep(1500);
    expect(await done()).toBeGreaterThan(atSuspend);
    expect((await task('quit')).stdout).toContain('state QUIT_PENDING');
    const first = await run.done;
    expect(first.code, first.stderr).toBe(0);
    const r1 = byName(first.stdout);
    expect(r1.q1).toMatchObject({ outcome: 'quit', reason: 'quit by altplat task', slot: 0 });
    expect(r1.q1.stderr).toContain('quit requested'); // the kept stderr tail of a quit task
    expect(r1.q2).toMatchObject({ outcome: 'success' });
    const checkpointed = await done();
    expect(checkpointed).toBeGreaterThan(0);

    // A reply that conditionally aborts q1: it has started, so it is spared and resumes from its checkpoint.
    const spare = path.join(dataDir, 'spare.xml');
    await fsp.writeFile(spare, `<scheduler_reply>\n<master_url>https://example.org/lctest/</master_url>\n<result_abort_if_not_started>\n    <name>q1</name>\n</result_abort_if_not_started>\n</scheduler_reply>\n`);
    const second = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, spare]);
    const q1 = byName(second.stdout).q1;
    expect(q1).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(q1.stderr).toContain(`start at ${checkpointed} of ${text.length}`);
    expect(await fsp.readFile(path.join(dataDir, 'projects', PROJECT, 'q1_out'), 'utf8')).toBe(text.toUpperCase());
  });

  it('<result_abort> for a quit task ends it with EXIT_ABORTED_BY_PROJECT (202) and frees its slot; unknown names are ignored', async () => {
    const dataDir = await tempDataDir('altplat-rv-');
    const reply = makeReply({ platform: LINUX, mainProgram: await fsp.readFile(uc), wuCommandLine: '--ms 100', results: [{ name: 'p1', input: 'x'.repeat(100) }] });
    const { replyFile, filesDir } = await writeReply(dataDir, reply);
    const run = startCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    for (let i = 0; i < 200; i++) {
      const j = await fsp.readFile(path.join(dataDir, 'altplat', 'tasks.json'), 'utf8').catch(() => '');
      if (j.includes('"step": "launched"')) break;
      await sleep(50);
    }
    await sleep(300);
    run.child.kill('SIGTERM');
    expect(byName((await run.done).stdout).p1).toMatchObject({ outcome: 'quit' });
    const abort = path.join(dataDir, 'abort.xml');
    await fsp.writeFile(abort, `<scheduler_reply>\n<master_url>https://example.org/lctest/</master_url>\n<result_abort>\n    <name>p1</name>\n</result_abort>\n<result_abort>\n    <name>never_heard_of</name>\n</result_abort>\n</scheduler_reply>\n`);
    const r = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, abort]);
    expect(r.code).toBe(1);
    const results = JSON.parse(r.stdout).results;
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ name: 'p1', outcome: 'aborted', exitStatus: 202, reason: 'aborted by project - no longer usable', outputs: [] });
    expect(await fsp.readdir(path.join(dataDir, 'slots'))).toEqual([]);
    // Finished for good: the original reply does not run it again.
    const again = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    expect(byName(again.stdout).p1).toMatchObject({ outcome: 'aborted', exitStatus: 202, previouslyFinished: true });
  });
});
