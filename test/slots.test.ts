import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PlatformDefinition } from '../src/definition/types.js';
import { isAltplatError } from '../src/errors.js';
import { dataPaths } from '../src/paths.js';
import { parseSchedulerReply } from '../src/scheduler/reply.js';
import type { Assignment } from '../src/scheduler/reply-types.js';
import { chooseFreeSlot } from '../src/slots/choose.js';
import { cleanOutDir, removeInside } from '../src/slots/clean.js';
import { stageFiles } from '../src/slots/files.js';
import { checkOutputs, ERR_FILE_TOO_BIG, ERR_NOT_FOUND, moveCopiedOutputs, readStderrTail } from '../src/slots/outputs.js';
import { setupSlot, softLinkText } from '../src/slots/setup.js';
import { changedSharedOriginals, createWorkingCopy } from '../src/slots/working-copy.js';
import { exists, installAltPlatform, makeReply, MASTER_URL, PROJECT, tempDataDir, treeStamp, writeReply } from './lifecycle-helpers.js';

const LINUX = 'x86_64-pc-linux-gnu';

async function assignmentFor(spec: Parameters<typeof makeReply>[0], dataDir: string): Promise<Assignment> {
  const reply = makeReply(spec);
  const { filesDir } = await writeReply(dataDir, reply);
  const parsed = parseSchedulerReply(reply.xml, { host: [LINUX], alt: [] });
  await stageFiles(filesDir, dataPaths(dataDir).projectDir(MASTER_URL), parsed.fileInfos);
  return parsed.assignments[0];
}

describe('slot choice and cleaning (client/app.cpp get_free_slot, client/sandbox.cpp)', () => {
  it('takes the lowest free number, reuses an emptyable folder, skips slots in use', async () => {
    const slots = path.join(await tempDataDir(), 'slots');
    expect(await chooseFreeSlot(slots, new Set())).toBe(0);
    await fsp.writeFile(path.join(slots, '0', 'leftover'), 'x');
    expect(await chooseFreeSlot(slots, new Set())).toBe(0);
    expect(await fsp.readdir(path.join(slots, '0'))).toEqual([]);
    expect(await chooseFreeSlot(slots, new Set([0, 1]))).toBe(2);
  });

  it('never follows a symlink planted in a slot', async () => {
    const root = await tempDataDir();
    const outside = path.join(root, 'outside');
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(outside, 'precious'), 'keep me');
    const slot = path.join(root, 'slots', '3');
    await fsp.mkdir(path.join(slot, 'sub'), { recursive: true });
    await fsp.symlink(outside, path.join(slot, 'link_to_dir'));
    await fsp.symlink('/etc', path.join(slot, 'sub', 'etc'));
    await fsp.symlink(path.join(outside, 'precious'), path.join(slot, 'link_to_file'));
    await cleanOutDir(path.join(root, 'slots'), slot);
    expect(await fsp.readdir(slot)).toEqual([]);
    expect(await fsp.readFile(path.join(outside, 'precious'), 'utf8')).toBe('keep me');
    expect(await exists('/etc/passwd')).toBe(true);
  });

  it('refuses to delete anything outside the folder it owns', async () => {
    const root = await tempDataDir();
    await expect(removeInside(path.join(root, 'slots'), root)).rejects.toMatchObject({ code: 'OUTSIDE_OWNED_DIR' });
    await expect(removeInside(path.join(root, 'slots'), path.join(root, 'slots', '..', 'x'))).rejects.toMatchObject({ code: 'OUTSIDE_OWNED_DIR' });
  });
});

describe('slot setup (client/app_start.cpp setup_slot_dir)', () => {
  it('writes soft-link files, copies copy_file inputs, creates stderr.txt and boinc_setup_complete', async () => {
    const dataDir = await tempDataDir();
    const a = await assignmentFor({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 'r1', input: 'success 1', copyOutput: true }] }, dataDir);
    const p = dataPaths(dataDir);
    const slot = p.slotDir(0);
    await fsp.mkdir(slot, { recursive: true });
    expect(await setupSlot(slot, p.projectDir(MASTER_URL), a)).toEqual({ skipped: false });
    expect(await fsp.readFile(path.join(slot, 'in'), 'utf8')).toBe(`<soft_link>../../projects/${PROJECT}/r1_in</soft_link>\n`);
    expect(await fsp.readFile(path.join(slot, 'lc_app_100'), 'utf8')).toBe(softLinkText(MASTER_URL, 'lc_app_100'));
    expect(await exists(path.join(slot, 'out'))).toBe(false); // copied output: the app creates it
    expect(await exists(path.join(slot, 'stderr.txt'))).toBe(true);
    expect(await exists(path.join(slot, 'boinc_setup_complete'))).toBe(true);
    // The soft link resolves (relative to the slot) to the physical file.
    const target = (await fsp.readFile(path.join(slot, 'in'), 'utf8')).match(/<soft_link>(.*)<\/soft_link>/)![1];
    expect(await fsp.readFile(path.resolve(slot, target), 'utf8')).toBe('success 1');
    // A second setup is skipped (restart case).
    await fsp.writeFile(path.join(slot, 'in'), 'changed');
    expect(await setupSlot(slot, p.projectDir(MASTER_URL), a)).toEqual({ skipped: true });
    expect(await fsp.readFile(path.join(slot, 'in'), 'utf8')).toBe('changed');
  });

  it('checks inputs against nbytes and md5 before use, and loses nothing', async () => {
    const dataDir = await tempDataDir();
    const a = await assignmentFor({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 'r1', input: 'success 1' }] }, dataDir);
    const p = dataPaths(dataDir);
    const inFile = path.join(p.projectDir(MASTER_URL), 'r1_in');
    await fsp.writeFile(inFile, 'success 2'); // same size, other bytes
    const slot = p.slotDir(0);
    await fsp.mkdir(slot, { recursive: true });
    await expect(setupSlot(slot, p.projectDir(MASTER_URL), a)).rejects.toMatchObject({ code: 'INPUT_MD5_MISMATCH' });
    await fsp.writeFile(inFile, 'success 22');
    await expect(setupSlot(slot, p.projectDir(MASTER_URL), a)).rejects.toMatchObject({ code: 'INPUT_SIZE_MISMATCH' });
    await fsp.rm(inFile);
    const err = await setupSlot(slot, p.projectDir(MASTER_URL), a).catch((e) => e);
    expect(isAltplatError(err, 'INPUT_MISSING')).toBe(true);
    expect(await exists(path.join(slot, 'boinc_setup_complete'))).toBe(false);
  });

  it('stageFiles refuses a wrong file from --files and never stages outputs', async () => {
    const dataDir = await tempDataDir();
    const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 'r1', input: 'abc' }] });
    const { filesDir } = await writeReply(dataDir, reply);
    await fsp.writeFile(path.join(filesDir, 'r1_in'), 'abd');
    await fsp.writeFile(path.join(filesDir, 'r1_out'), 'not an input');
    const parsed = parseSchedulerReply(reply.xml, { host: [LINUX], alt: [] });
    const projectDir = dataPaths(dataDir).projectDir(MASTER_URL);
    await expect(stageFiles(filesDir, projectDir, parsed.fileInfos)).rejects.toMatchObject({ code: 'INPUT_MD5_MISMATCH' });
    expect(await exists(path.join(projectDir, 'r1_in'))).toBe(false);
    expect(await exists(path.join(projectDir, 'r1_out'))).toBe(false);
  });
});

describe('outputs (client/app_start.cpp copy_output_files, client/cs_apps.cpp app_finished)', () => {
  let dataDir: string;
  beforeAll(async () => { dataDir = await tempDataDir(); });

  it('moves copied outputs, records nbytes+md5, flags missing and too-big ones', async () => {
    const a = await assignmentFor({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 'r1', input: 'x', copyOutput: true, maxNbytes: 10 }] }, dataDir);
    const p = dataPaths(dataDir);
    const slot = p.slotDir(5);
    const projectDir = p.projectDir(MASTER_URL);
    await fsp.mkdir(slot, { recursive: true });
    await fsp.writeFile(path.join(slot, 'out'), 'hello');
    await moveCopiedOutputs(slot, projectDir, a);
    expect(await exists(path.join(slot, 'out'))).toBe(false);
    let res = await checkOutputs(projectDir, a);
    expect(res.hadError).toBe(false);
    expect(res.outputs[0]).toMatchObject({ name: 'r1_out', nbytes: 5, md5: '5d41402abc4b2a76b9719d911017c592', status: 0 });
    await fsp.writeFile(path.join(projectDir, 'r1_out'), 'x'.repeat(11));
    res = await checkOutputs(projectDir, a);
    expect(res).toMatchObject({ hadError: true, outputs: [{ status: ERR_FILE_TOO_BIG, nbytes: 11 }] });
    expect(await exists(path.join(projectDir, 'r1_out'))).toBe(false); // deleted, as BOINC does
    res = await checkOutputs(projectDir, a);
    expect(res).toMatchObject({ hadError: true, outputs: [{ status: ERR_NOT_FOUND }] });
  });

  it('a symlink planted under an output name is not collected', async () => {
    const a = await assignmentFor({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 'r2', input: 'x', copyOutput: true }] }, dataDir);
    const p = dataPaths(dataDir);
    const slot = p.slotDir(6);
    await fsp.mkdir(slot, { recursive: true });
    await fsp.symlink('/etc/passwd', path.join(slot, 'out'));
    await moveCopiedOutputs(slot, p.projectDir(MASTER_URL), a);
    expect(await exists(path.join(p.projectDir(MASTER_URL), 'r2_out'))).toBe(false);
  });

  it('keeps the last 63 KB of stderr.txt', async () => {
    const slot = path.join(dataDir, 'slots', '7');
    await fsp.mkdir(slot, { recursive: true });
    await fsp.writeFile(path.join(slot, 'stderr.txt'), `HEAD${'a'.repeat(70 * 1024)}TAIL`);
    const tail = await readStderrTail(slot);
    expect(tail.length).toBe(63 * 1024);
    expect(tail.endsWith('TAIL')).toBe(true);
    expect(tail.includes('HEAD')).toBe(false);
  });
});

describe('working copy (alt_platforms_working/slotN)', () => {
  it('copies small files, shares the <shared/> image without copying, and the original never changes', async () => {
    const dataDir = await tempDataDir();
    const platformDir = await installAltPlatform(dataDir, { name: LINUX, manager: '/bin/true', sharedBytes: 64 << 20 });
    const def: PlatformDefinition = {
      name: LINUX, version: '1.0.0', manager: { fileName: 'manager', cmdline: '' }, dir: platformDir, ignoredElements: [],
      requires: { hypervisors: [], arch: [], hwAccel: false },
      files: [{ name: 'image/base.img', shared: true }, { name: 'vm_config.xml', shared: false }],
    };
    const p = dataPaths(dataDir);
    const before = await treeStamp(platformDir);
    const wc = await createWorkingCopy(def, p.altPlatformsWorking, p.workingCopy(0));
    expect(wc.shared.map((s) => s.name)).toEqual(['image/base.img']);
    expect(['reflink', 'hardlink', 'symlink']).toContain(wc.shared[0].method);
    expect(wc.copied.sort()).toEqual(['alt_platform.xml', 'manager', 'vm_config.xml']);
    const du = Number(execFileSync('du', ['-sk', wc.dir]).toString().split('\t')[0]);
    expect(du).toBeLessThan(1024); // KiB: the 64 MiB image is not copied
    // The original is read-only now, so an unprivileged manager cannot write it in place.
    const st = await fsp.stat(path.join(platformDir, 'image/base.img'));
    if (wc.shared[0].method !== 'reflink') expect(st.mode & 0o222).toBe(0);
    const sharedInCopy = path.join(wc.dir, 'image/base.img');
    const asNobody = (file: string) => execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', `echo x >> '${file}'`], { stdio: 'pipe' });
    await fsp.chmod(dataDir, 0o755); // let the unprivileged user reach the folder …
    await fsp.writeFile(path.join(wc.dir, 'image', 'probe'), '', { mode: 0o666 });
    await fsp.chmod(path.join(wc.dir, 'image', 'probe'), 0o666);
    asNobody(path.join(wc.dir, 'image', 'probe')); // … so this control write works,
    expect(() => asNobody(sharedInCopy)).toThrow(/Permission denied/); // and only the file's mode stops this one
    await fsp.rm(path.join(wc.dir, 'image', 'probe'));
    // What a manager does in its working copy: edit copied files, add files, replace the shared one.
    await fsp.writeFile(path.join(wc.dir, 'vm_config.xml'), '<vm_config>changed</vm_config>');
    await fsp.writeFile(path.join(wc.dir, 'image', 'overlay.qcow2'), 'overlay');
    await fsp.writeFile(`${sharedInCopy}.new`, 'replacement');
    await fsp.rename(`${sharedInCopy}.new`, sharedInCopy);
    expect(await treeStamp(platformDir)).toEqual(before);
    expect(await changedSharedOriginals(wc)).toEqual([]);
    // A change to the original is detected by the after-task check.
    await fsp.chmod(path.join(platformDir, 'image/base.img'), 0o644);
    await fsp.appendFile(path.join(platformDir, 'image/base.img'), 'tamper');
    expect(await changedSharedOriginals(wc)).toEqual(['image/base.img']);
    // Re-creating replaces the old copy: never two working copies for a slot.
    const again = await createWorkingCopy(def, p.altPlatformsWorking, p.workingCopy(0));
    expect(await exists(path.join(again.dir, 'image', 'overlay.qcow2'))).toBe(false);
    expect(await fsp.readdir(p.altPlatformsWorking)).toEqual(['slot0']);
  });
});

describe('executables', () => {
  it('an app file marked <executable/> gets its x bits in the project dir at setup', async () => {
    const dataDir = await tempDataDir();
    const a = await assignmentFor({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 'r1', input: 'x' }] }, dataDir);
    const p = dataPaths(dataDir);
    const main = path.join(p.projectDir(MASTER_URL), 'lc_app_100');
    await fsp.chmod(main, 0o644); // as a client that downloaded it might leave it
    await fsp.mkdir(p.slotDir(0), { recursive: true });
    await setupSlot(p.slotDir(0), p.projectDir(MASTER_URL), a);
    expect((await fsp.stat(main)).mode & 0o777).toBe(0o755);
  });
});
