/*
 * Issue 9 item 2: the owned-folder helpers (src/util/owned-dir.ts) and the slot functions built on them,
 * on real files and links: nothing is written, moved or deleted through a link.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dataPaths } from '../src/paths.js';
import { chooseFreeSlot } from '../src/slots/choose.js';
import { cleanOutDir, removeInside } from '../src/slots/clean.js';
import { createWorkingCopy } from '../src/slots/working-copy.js';
import { HashCache } from '../src/definition/hash.js';
import { writeFileAtomic } from '../src/util/atomic.js';
import { assertRealDirInside, ensureOwnedDir, isRealDirInside } from '../src/util/owned-dir.js';

const temps: string[] = [];
afterAll(async () => {
  for (const t of temps) await fsp.rm(t, { recursive: true, force: true });
});
async function base() {
  const b = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-owned-'));
  temps.push(b);
  await fsp.mkdir(path.join(b, 'data'));
  await fsp.mkdir(path.join(b, 'outside'));
  await fsp.writeFile(path.join(b, 'outside', 'keep.txt'), 'keep');
  return { b, data: path.join(b, 'data'), outside: path.join(b, 'outside') };
}

describe('owned folders', () => {
  it('the data dir is resolved once: a data dir reached through a link gives real paths', async () => {
    const { b, data } = await base();
    await fsp.symlink(data, path.join(b, 'boinc'));
    expect(dataPaths(path.join(b, 'boinc')).root).toBe(await fsp.realpath(data));
    expect(dataPaths(path.join(b, 'boinc')).slots).toBe(path.join(await fsp.realpath(data), 'slots'));
  });

  it('ensureOwnedDir makes missing levels one at a time and refuses a link or a file on the way', async () => {
    const { data, outside } = await base();
    expect(await ensureOwnedDir(data, 'projects/p/sub')).toBe(path.join(data, 'projects/p/sub'));
    await fsp.symlink(outside, path.join(data, 'slots'));
    await expect(ensureOwnedDir(data, 'slots/0')).rejects.toMatchObject({ code: 'OWNED_DIR_NOT_REAL' });
    await fsp.writeFile(path.join(data, 'altplat'), 'a file');
    await expect(ensureOwnedDir(data, 'altplat')).rejects.toMatchObject({ code: 'OWNED_DIR_NOT_REAL' });
    expect(await fsp.readdir(outside)).toEqual(['keep.txt']); // nothing made through the link
    expect(await isRealDirInside(data, path.join(data, 'slots', '0'))).toBe(false);
    expect(await isRealDirInside(data, path.join(data, 'missing', 'x'))).toBe(true);
    await expect(assertRealDirInside(data, path.join(data, 'missing'))).rejects.toMatchObject({ code: 'OWNED_DIR_MISSING' });
  });

  it('slots/ as a link: no slot is chosen, nothing is emptied or deleted through it', async () => {
    const { data, outside } = await base();
    await fsp.symlink(outside, path.join(data, 'slots'));
    const p = dataPaths(data);
    await expect(chooseFreeSlot(p.slots, new Set())).rejects.toMatchObject({ code: 'OWNED_DIR_NOT_REAL' });
    await expect(cleanOutDir(p.slots, path.join(p.slots, '0'))).rejects.toMatchObject({ code: 'OWNED_DIR_NOT_REAL' });
    await expect(removeInside(p.slots, path.join(p.slots, 'keep.txt'))).rejects.toMatchObject({ code: 'OWNED_DIR_NOT_REAL' });
    expect(await fsp.readdir(outside)).toEqual(['keep.txt']);
  });

  it('alt_platforms_working as a link: the working copy is refused', async () => {
    const { data, outside } = await base();
    await fsp.symlink(outside, path.join(data, 'alt_platforms_working'));
    const platformDir = path.join(data, 'alt_platforms', 'p');
    await fsp.mkdir(platformDir, { recursive: true });
    await fsp.writeFile(path.join(platformDir, 'manager'), '#!/bin/sh\n');
    const def = { name: 'p', version: '1.0.0', manager: { fileName: 'manager', cmdline: '' }, dir: platformDir, ignoredElements: [],
      requires: { hypervisors: [], arch: [], hwAccel: false }, files: [{ name: 'manager', shared: false }] };
    const p = dataPaths(data);
    await expect(createWorkingCopy(def, p.altPlatformsWorking, p.workingCopy(0))).rejects.toMatchObject({ code: 'OWNED_DIR_NOT_REAL' });
    expect(await fsp.readdir(outside)).toEqual(['keep.txt']);
  });

  it('writeFileAtomic replaces a link planted at the file name instead of writing through it', async () => {
    const { data, outside } = await base();
    await fsp.symlink(path.join(outside, 'keep.txt'), path.join(data, 'state.json'));
    await writeFileAtomic(path.join(data, 'state.json'), 'new');
    expect(await fsp.readFile(path.join(outside, 'keep.txt'), 'utf8')).toBe('keep');
    expect((await fsp.lstat(path.join(data, 'state.json'))).isFile()).toBe(true);
  });

  it('a cache of a data dir given through a link (Debian /var/lib/boinc) is still saved in its real altplat/ folder', async () => {
    const { b, data, outside } = await base();
    await fsp.symlink(data, path.join(b, 'boinc'));
    const cache = HashCache.load(path.join(b, 'boinc', 'altplat', 'hash-cache.json'));
    const file = path.join(outside, 'keep.txt');
    cache.store(file, await fsp.stat(file), 'a'.repeat(64));
    expect(await cache.save()).toBeUndefined();
    expect(await fsp.readdir(path.join(data, 'altplat'))).toEqual(['hash-cache.json']);
    // The same folder planted as a link: nothing saved there, and a cache there is not read.
    await fsp.rm(path.join(data, 'altplat'), { recursive: true });
    await fsp.symlink(outside, path.join(data, 'altplat'));
    const linked = HashCache.load(path.join(b, 'boinc', 'altplat', 'hash-cache.json'));
    linked.store(file, await fsp.stat(file), 'b'.repeat(64));
    expect(await linked.save()).toMatch(/could not save the hash cache.*symbolic link/);
    expect(await fsp.readdir(outside)).toEqual(['keep.txt']);
  });
});
