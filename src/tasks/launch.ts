import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { constants as fsc, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';

/** The process spawner, injectable for embedding (tests use the real one: the processes must be real). */
export type Spawner = (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;

export interface LaunchSpec {
  /** Path of the program to exec: absolute, or relative to `cwd` (BOINC's `../../projects/X/app`). */
  exe: string;
  args: string[];
  cwd: string;
  /** Added to the client's environment. */
  env: Record<string, string>;
  /** stderr is appended here (client/app_start.cpp reopens stderr on stderr.txt in append mode). */
  stderrFile: string;
}

export interface Launched {
  child: ChildProcess;
  /** Settles when the process exits; attached at spawn time so a quick exit is never missed. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  pid: number;
  /** The child leads its own process group, so one kill reaches the manager and everything it started. */
  pgid: number;
}

let priorityPrefix: string[] | undefined;

/**
 * Low priority the way client/app_start.cpp asks for it: nice 19 (setpriority) and, on Linux,
 * SCHED_IDLE. Node cannot call sched_setscheduler, so the program is exec'd through `nice -n 19` and
 * `chrt --idle 0`, both of which exec in place (same pid). Each wrapper is used only if it works here.
 */
export function lowPriorityPrefix(): string[] {
  if (priorityPrefix) return priorityPrefix;
  const prefix: string[] = [];
  if (spawnSync('nice', ['-n', '19', 'true']).status === 0) prefix.push('nice', '-n', '19');
  if (process.platform === 'linux' && spawnSync('chrt', ['--idle', '0', 'true']).status === 0) prefix.push('chrt', '--idle', '0');
  priorityPrefix = prefix;
  return prefix;
}

/**
 * Start a task's process: cwd = slot, stdout to /dev/null, stderr appended to stderr.txt, own process
 * group (detached), low priority. A program that is missing or not executable is refused before any
 * process starts (BOINC's ERR_RESULT_START / PROCESS_COULDNT_START).
 */
export async function launch(spec: LaunchSpec, spawner: Spawner = spawn): Promise<Launched> {
  try {
    await fsp.access(path.resolve(spec.cwd, spec.exe), fsc.X_OK);
  } catch (e) {
    throw new AltplatError('TASK_COULDNT_START', `cannot start ${spec.exe}: ${errnoCode(e) ?? (e as Error).message}`, { exe: spec.exe });
  }
  // O_NOFOLLOW: never append the app's stderr to whatever a symlink planted at stderr.txt points to.
  const fh = await fsp.open(spec.stderrFile, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o644);
  try {
    const prefix = lowPriorityPrefix();
    const [cmd, ...args] = prefix.length > 0 ? [...prefix, spec.exe, ...spec.args] : [spec.exe, ...spec.args];
    const child = spawner(cmd, args, {
      cwd: spec.cwd,
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', 'ignore', fh.fd],
      detached: true,
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', (e) => reject(new AltplatError('TASK_COULDNT_START', `cannot start ${spec.exe}: ${e.message}`, { exe: spec.exe }, { cause: e })));
      child.once('spawn', () => resolve(child.pid!));
    });
    return { child, exited, pid, pgid: pid };
  } finally {
    await fh.close();
  }
}

/** SIGKILL a whole process group (the manager, its VM, anything else it started). Gone already is fine. */
export function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch (e) {
    if (errnoCode(e) !== 'ESRCH') throw e;
  }
}

/** Every pid listed in /proc (Linux); [] where /proc is not available. */
async function allPids(): Promise<number[]> {
  const names = await fsp.readdir('/proc').catch(() => [] as string[]);
  return names.filter((n) => /^\d+$/.test(n)).map(Number);
}

/** State letter and process group of a pid from /proc/PID/stat, or undefined if it is gone. */
async function statOf(pid: number): Promise<{ state: string; pgid: number } | undefined> {
  const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (stat === '') return undefined;
  // Fields after the command name, which is in parentheses and may itself contain spaces.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0]!, pgid: Number(rest[2]) };
}

/** Pids of live processes in a group, from /proc (Linux); [] where /proc is not available. */
export async function groupMembers(pgid: number): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await allPids()) {
    const st = await statOf(pid);
    if (st && st.state !== 'Z' && st.pgid === pgid) out.push(pid);
  }
  return out;
}

/** Pids whose current directory is one of `dirs` or inside it (Linux /proc; [] elsewhere). */
export async function processesIn(dirs: string[]): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await allPids()) {
    if (pid === process.pid) continue;
    const cwd = await fsp.readlink(`/proc/${pid}/cwd`).catch(() => '');
    if (cwd !== '' && dirs.some((d) => cwd === d || cwd.startsWith(d + path.sep))) out.push(pid);
  }
  return out;
}

async function pgidOf(pid: number): Promise<number | undefined> {
  const pgid = (await statOf(pid))?.pgid;
  return pgid !== undefined && pgid > 0 ? pgid : undefined;
}

/**
 * After a client crash: kill what a task left running — the process group the journal recorded, if a
 * member of it still works in the task's slot or working copy (so a reused group id of an unrelated
 * program is never touched), and the group of any other process working there (a manager started just
 * before the crash, whose pgid never reached the journal). Waits until they are gone, so a restart
 * never overlaps the old manager. Returns the groups killed.
 */
export async function killOrphans(ownDirs: string[], recordedPgid?: number): Promise<number[]> {
  const groups = new Set<number>();
  // /proc/<pid>/cwd is the resolved path: a data dir reached through a symlink must match too.
  const real = await Promise.all(ownDirs.map((d) => fsp.realpath(d).catch(() => d)));
  const ours = new Set(await processesIn([...new Set([...ownDirs, ...real])]));
  if (recordedPgid) {
    const members = await groupMembers(recordedPgid);
    if (members.some((pid) => ours.has(pid))) groups.add(recordedPgid);
  }
  const own = await pgidOf(process.pid);
  for (const pid of ours) {
    const g = await pgidOf(pid);
    if (g !== undefined && g !== own) groups.add(g);
  }
  for (const g of groups) killGroup(g);
  for (let i = 0; i < 200; i++) {
    let alive = false;
    for (const g of groups) if ((await groupMembers(g)).length > 0) alive = true;
    if (!alive) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  return [...groups];
}
