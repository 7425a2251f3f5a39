import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';
import { cleanOutDir, removeInside } from '../slots/clean.js';
import type { DataPaths } from '../paths.js';
import { ensureOwnedDir } from '../util/owned-dir.js';

/**
 * Slots belong to the embedding client (BOINC: ACTIVE_TASK::get_free_slot, client/app.cpp). altplat
 * asks for one when a task is first started and gives it back once the task's outputs are collected.
 * A slot altplat did not acquire is never emptied, reused or searched for processes.
 */
export interface SlotAllocator {
  acquire(): Promise<number>;
  release(n: number): void;
}

/** `<data>/altplat/slot-marks/N`: the default allocator made slots/N (written before the folder). */
export const SLOT_MARKS_DIR = 'slot-marks';

/**
 * The allocator the CLI uses: the lowest free number, as get_free_slot scans 0, 1, 2, … up to
 * ncpus × 100, with one deliberate difference. BOINC cleans and reuses any slot folder that no task of
 * its own holds; altplat is not the only user of `slots/`, so it reuses only folders it made. Each is
 * marked in `<data>/altplat/slot-marks/` before the folder is created, so a crash between the two
 * leaves a mark without a folder (harmless) and never a folder that nobody knows is free.
 */
export class DefaultSlotAllocator implements SlotAllocator {
  private readonly held = new Set<number>();
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(private readonly paths: DataPaths, private readonly maxSlots: number) {}

  private get marks(): string {
    return path.join(this.paths.state, SLOT_MARKS_DIR);
  }

  /**
   * `held` are the slots journaled tasks still own. Every other marked slot is a leftover of altplat's
   * own (a crash after acquire, before the journal) and is removed now.
   */
  static async open(paths: DataPaths, held: Iterable<number>, maxSlots = Math.max(1, os.availableParallelism()) * 100): Promise<DefaultSlotAllocator> {
    const a = new DefaultSlotAllocator(paths, maxSlots);
    for (const n of held) a.held.add(n);
    const marks = await fsp.readdir(a.marks).catch((e) => (errnoCode(e) === 'ENOENT' ? [] as string[] : Promise.reject(e)));
    for (const m of marks) {
      const n = Number(m);
      if (!/^\d+$/.test(m) || a.held.has(n)) continue;
      await removeInside(paths.slots, paths.slotDir(n)).catch(() => undefined);
      await fsp.rm(path.join(a.marks, m), { force: true });
    }
    return a;
  }

  acquire(): Promise<number> {
    const p = this.chain.then(() => this.scan());
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async scan(): Promise<number> {
    // i9a: real folders inside the data dir, never created through a planted link.
    await ensureOwnedDir(this.paths.root, path.relative(this.paths.root, this.paths.slots));
    await ensureOwnedDir(this.paths.root, path.relative(this.paths.root, this.marks));
    for (let j = 0; j <= this.maxSlots; j++) {
      if (this.held.has(j)) continue;
      const dir = this.paths.slotDir(j);
      const mark = path.join(this.marks, String(j));
      // Direct lstats: up to ncpus x 100 numbers are scanned, each in the dentry cache.
      const st = fs.lstatSync(dir, { throwIfNoEntry: false });
      const marked = fs.lstatSync(mark, { throwIfNoEntry: false }) !== undefined;
      if (st && !marked) continue; // the client's (or anybody's) folder: not ours to touch
      if (st) {
        if (!st.isDirectory()) continue;
        try {
          await cleanOutDir(this.paths.slots, dir);
        } catch {
          continue; // BOINC: a slot that cannot be emptied is skipped, not fatal
        }
      } else {
        fs.writeFileSync(mark, '');
        try {
          fs.mkdirSync(dir);
        } catch (e) {
          fs.rmSync(mark, { force: true });
          if (errnoCode(e) === 'EEXIST') continue; // someone else took it between lstat and mkdir
          throw e;
        }
      }
      this.held.add(j);
      return j;
    }
    throw new AltplatError('NO_FREE_SLOT', `no free slot under ${this.paths.slots} (tried 0..${this.maxSlots})`);
  }

  /** The task emptied the slot; the folder and its mark go, the number is free again. */
  release(n: number): void {
    if (!this.held.delete(n)) return;
    try {
      fs.rmdirSync(this.paths.slotDir(n));
    } catch (e) {
      // Not empty (the task could not clean it): the mark keeps it ours, to be emptied when reused.
      if (errnoCode(e) !== 'ENOENT') return;
    }
    fs.rmSync(path.join(this.marks, String(n)), { force: true });
  }
}
