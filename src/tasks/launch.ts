import { type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { constants as fsc, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';
import type { AltplatSystem, ProcessInfo } from './system.js';

export type { Spawner } from './system.js';

export interface LaunchSpec {
  /** Path of the program to exec: absolute, or relative to `cwd` (BOINC's `../../projects/X/app`). */
  exe: string;
  args: string[];
  cwd: string;
  /** Added to the system's app environment. */
  env: Record<string, string>;
  /** stderr is appended here (client/app_start.cpp reopens stderr on stderr.txt in append mode). */
  stderrFile: string;
}

export type ExitInfo = { code: number | null; signal: NodeJS.Signals | null };

export interface Launched {
  child: ChildProcess;
  /** Settles when the process exits; attached at spawn time so a quick exit is never missed. */
  exited: Promise<ExitInfo>;
  pid: number;
  /** The child leads its own process group, so one kill reaches the manager and everything it started. */
  pgid: number;
}

/**
 * Start a task's process: cwd = slot, stdout to /dev/null, stderr appended to stderr.txt, own process
 * group (detached), low priority. A program that is missing or not executable is refused before any
 * process starts (BOINC's ERR_RESULT_START / PROCESS_COULDNT_START).
 */
export async function launch(spec: LaunchSpec, sys: AltplatSystem): Promise<Launched> {
  // The check and the open are direct calls: the spawn right after is synchronous anyway.
  try {
    fs.accessSync(path.resolve(spec.cwd, spec.exe), fsc.X_OK);
  } catch (e) {
    throw new AltplatError('TASK_COULDNT_START', `cannot start ${spec.exe}: ${errnoCode(e) ?? (e as Error).message}`, { exe: spec.exe });
  }
  // O_NOFOLLOW: never append the app's stderr to whatever a symlink planted at stderr.txt points to.
  const fd = fs.openSync(spec.stderrFile, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o644);
  try {
    const prefix = sys.lowPriorityPrefix();
    const [cmd, ...args] = [...prefix, spec.exe, ...spec.args];
    const child = sys.spawn(cmd!, args, {
      cwd: spec.cwd,
      env: { ...sys.env, ...spec.env },
      stdio: ['ignore', 'ignore', fd],
      detached: true,
    });
    const exited = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', (e) => reject(new AltplatError('TASK_COULDNT_START', `cannot start ${spec.exe}: ${e.message}`, { exe: spec.exe }, { cause: e })));
      child.once('spawn', () => resolve(child.pid!));
    });
    return { child, exited, pid, pgid: pid };
  } finally {
    fs.closeSync(fd);
  }
}

/** SIGKILL a whole process group (the manager, its VM, anything else it started). Gone already is fine. */
export function killGroup(sys: AltplatSystem, pgid: number): void {
  sys.kill(-pgid, 'SIGKILL');
}

/** Pids of live processes in a group. */
export async function groupMembers(sys: AltplatSystem, pgid: number): Promise<number[]> {
  return (await sys.listProcesses()).filter((p) => !p.zombie && p.pgid === pgid).map((p) => p.pid);
}

const inside = (cwd: string, dirs: string[]) => dirs.some((d) => cwd === d || cwd.startsWith(d + path.sep));

/**
 * Kill what one of altplat's own tasks left running, and only that: the process group the journal
 * recorded, if a member of it still works in the task's slot or working copy (so a reused group id of
 * an unrelated program is never touched), and the group of any other process working there (a manager
 * started just before a crash, whose pgid never reached the journal). `ownDirs` are only ever the
 * folders of a task altplat journaled — never a slot it did not acquire. Waits until they are gone, so
 * a restart never overlaps the old manager. `listed`: a process listing taken just before, reused.
 * Returns the groups killed.
 */
export async function killOrphans(sys: AltplatSystem, ownDirs: string[], recordedPgid?: number,
  listed?: ProcessInfo[]): Promise<number[]> {
  if (ownDirs.length === 0) return [];
  // /proc/<pid>/cwd is the resolved path: a data dir reached through a symlink must match too.
  const real = await Promise.all(ownDirs.map((d) => fsp.realpath(d).catch(() => d)));
  const dirs = [...new Set([...ownDirs, ...real])];
  const procs = listed ?? await sys.listProcesses();
  const ours = procs.filter((p) => !p.zombie && p.pid !== process.pid && p.cwd !== undefined && inside(p.cwd, dirs));
  const groups = new Set<number>();
  if (ours.length === 0) return [];
  if (recordedPgid && ours.some((p) => p.pgid === recordedPgid)) groups.add(recordedPgid);
  const own = await sys.ownProcessGroup();
  for (const p of ours) if (p.pgid > 0 && p.pgid !== own) groups.add(p.pgid);
  for (const g of groups) killGroup(sys, g);
  for (let i = 0; i < 200 && groups.size > 0; i++) {
    const live = new Set((await sys.listProcesses()).filter((p) => !p.zombie).map((p) => p.pgid));
    if (![...groups].some((g) => live.has(g))) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  return [...groups];
}
