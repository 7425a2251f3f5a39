import { promises as fsp, type Stats } from 'node:fs';
import * as path from 'node:path';
import { errnoCode } from '../errors.js';
import type { Assignment } from '../scheduler/reply-types.js';
import type { SharedFileStamp } from '../slots/working-copy.js';

export { EXIT_DISK_LIMIT_EXCEEDED, EXIT_TIME_LIMIT_EXCEEDED } from '../boinc.js';
/** client/client_state.h: a bound under MIN_TIME_BOUND seconds is replaced by DEFAULT_TIME_BOUND (12 h). */
export const MIN_TIME_BOUND_S = 120;
export const DEFAULT_TIME_BOUND_S = 12 * 3600;
/**
 * client/app_control.cpp ACTIVE_TASK_SET::check_rsc_limits_exceeded: slot dirs can hold many files, so
 * the disk is measured only every max(disk_interval, 300) s.
 */
export const MIN_DISK_CHECK_INTERVAL_S = 300;

/**
 * client/app.cpp ACTIVE_TASK::init: max_elapsed_time = wu.rsc_fpops_bound / resource_usage.flops; a
 * result under MIN_TIME_BOUND (120 s) is taken as a server mistake and replaced by 12 h.
 */
export function maxElapsedTime(rscFpopsBound: number, flops: number): number {
  const t = rscFpopsBound / flops;
  return t < MIN_TIME_BOUND_S ? DEFAULT_TIME_BOUND_S : t;
}

/** The message check_rsc_limits_exceeded passes to abort_task, formatted as its snprintf does. */
export function elapsedLimitMessage(maxElapsed: number, rscFpopsBound: number, flops: number): string {
  return `exceeded elapsed time limit ${maxElapsed.toFixed(2)} (${(rscFpopsBound / 1e9).toFixed(2)}G/${(flops / 1e9).toFixed(2)}G)`;
}

/** client/app_control.cpp ACTIVE_TASK::check_max_disk_exceeded's abort_task message. */
export const DISK_LIMIT_MESSAGE = 'Disk usage limit exceeded';

export interface DiskUsageInput {
  slotDir: string;
  projectDir: string;
  assignment: Assignment;
  /** An alt task's working copy; its `<shared/>` files are the platform's, not the task's. */
  workingCopy?: { dir: string; platformDir: string; shared: SharedFileStamp[] };
}

/**
 * What a task occupies, as client/app.cpp ACTIVE_TASK::current_disk_usage counts it (dir_size of the slot
 * plus file_size of each of the result's output files in the project dir), in bytes of st_size, with
 * these differences:
 * - entries are lstat'ed and only regular files count: a symlink is neither followed nor counted, so a
 *   link out of the slot cannot make another folder's bytes the task's (BOINC's stat would follow it);
 * - a file reached twice through hard links counts once (by device + inode);
 * - an alt task's working copy counts too (the manager's VM overlay and checkpoints live there), except
 *   its `<shared/>` files while they are still the platform's: a hard link to the original (same inode)
 *   or a reflink clone (its blocks are the original's until written; it cannot be told apart cheaply).
 *   A shared file the manager replaced by a file of its own (write + rename) is a new inode and counts.
 */
/**
 * (i10) Bytes a file counts for: st_size, except that a sparse file (fewer blocks allocated than its
 * size, e.g. the QEMU manager's job disk image, 16 GiB of which only what the job wrote is allocated)
 * counts its allocated blocks; otherwise a sparse image would trip the 196 limit at once.
 */
export function countedBytes(st: Stats): number {
  const allocated = st.blocks * 512;
  return st.blocks >= 0 && allocated < st.size ? allocated : st.size;
}

export async function taskDiskUsage(inp: DiskUsageInput): Promise<number> {
  const seen = new Set<string>();
  const key = (st: Stats) => `${st.dev}:${st.ino}`;
  let total = 0;
  const add = (st: Stats | undefined) => {
    if (!st || !st.isFile() || seen.has(key(st))) return;
    seen.add(key(st));
    total += countedBytes(st);
  };
  const skip = new Set<string>();
  if (inp.workingCopy) {
    for (const s of inp.workingCopy.shared) {
      if (s.method === 'reflink') {
        skip.add(path.join(inp.workingCopy.dir, s.name));
      } else {
        // The original's inode: a hard link in the working copy has the same one and is then not counted.
        const st = await lstatOptional(path.join(inp.workingCopy.platformDir, s.name));
        if (st) seen.add(key(st));
      }
    }
  }
  const walk = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = await fsp.readdir(dir);
    } catch (e) {
      const c = errnoCode(e);
      if (c === 'ENOENT' || c === 'ENOTDIR') return;
      throw e;
    }
    for (const name of names) {
      const p = path.join(dir, name);
      if (skip.has(p)) continue;
      const st = await lstatOptional(p);
      if (st?.isDirectory()) await walk(p);
      else add(st);
    }
  };
  // The slot itself may have been replaced by a link (SLOT_REPLACED): never walked through.
  if ((await lstatOptional(inp.slotDir))?.isDirectory()) await walk(inp.slotDir);
  if (inp.workingCopy && (await lstatOptional(inp.workingCopy.dir))?.isDirectory()) await walk(inp.workingCopy.dir);
  for (const ref of inp.assignment.result.fileRefs) add(await lstatOptional(path.join(inp.projectDir, ref.fileName)));
  return total;
}

async function lstatOptional(p: string): Promise<Stats | undefined> {
  try {
    return await fsp.lstat(p);
  } catch (e) {
    const c = errnoCode(e);
    if (c === 'ENOENT' || c === 'ENOTDIR') return undefined;
    throw e;
  }
}
