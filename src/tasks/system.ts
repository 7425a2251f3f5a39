import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { errnoCode } from '../errors.js';

/** The process spawner (node's spawn signature). */
export type Spawner = (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;

/** One live process as the orphan search needs it. */
export interface ProcessInfo {
  pid: number;
  pgid: number;
  /** Current directory, resolved (Linux /proc/PID/cwd); undefined where it cannot be read. */
  cwd?: string;
  /** A zombie (exited, not reaped) counts as gone. */
  zombie: boolean;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * Every effect the client has on the host, injectable by the embedder (`AltplatClient.open({system})`):
 * a client with its own process supervisor, a sandbox or a test replaces what it needs.
 */
export interface AltplatSystem {
  /** Monotonic milliseconds, for BOINC's timers (60 s quit/abort, 300 s finish file, 10 s checks). */
  clock(): number;
  spawn: Spawner;
  /** process.kill semantics: a negative pid is a process group. A process already gone is not an error. */
  kill(pid: number, signal: NodeJS.Signals): void;
  /** Live processes of the host (for orphans of altplat's own tasks only). */
  listProcesses(): Promise<ProcessInfo[]>;
  /** This process's own process group (never killed as an orphan). */
  ownProcessGroup(): Promise<number | undefined>;
  /**
   * The environment every app and manager starts with, before altplat adds LD_LIBRARY_PATH and the
   * manager contract's variables. The BOINC client's apps inherit the client's own environment
   * (client/app_start.cpp: execv after setenv("LD_LIBRARY_PATH")); an embedded library is not the
   * client, so the default passes only the variables a daemon has (see defaultAppEnv), never the
   * embedding process's whole environment.
   */
  env: Record<string, string>;
  /** Programs that exec the app at low priority (nice 19, SCHED_IDLE); computed once per system. */
  lowPriorityPrefix(): string[];
  /** Where altplat's own diagnostics go (default: nowhere). */
  log(level: LogLevel, message: string): void;
}

/** Variables a daemon such as the BOINC client has, and altplat's own ALTPLAT_* manager settings. */
const APP_ENV_NAMES = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'TZ', 'TMPDIR', 'SHELL', 'LD_LIBRARY_PATH']);

export function defaultAppEnv(from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(from)) {
    if (v === undefined) continue;
    if (APP_ENV_NAMES.has(k) || k.startsWith('LC_') || k.startsWith('ALTPLAT_')) out[k] = v;
  }
  return out;
}

/** State letter and process group of a pid from /proc/PID/stat (Linux), or undefined if it is gone. */
async function statOf(pid: number): Promise<{ state: string; pgid: number } | undefined> {
  const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (stat === '') return undefined;
  // Fields after the command name, which is in parentheses and may itself contain spaces.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0]!, pgid: Number(rest[2]) };
}

/**
 * /proc read synchronously: procfs answers from memory, and a few hundred async reads through libuv's
 * thread pool cost ~25 ms after every task, the synchronous walk ~2 ms. Each stat is read with one
 * open/read/close into a reused buffer (readFileSync adds an fstat and a second read per file: a third
 * of the walk).
 */
async function procList(): Promise<ProcessInfo[]> {
  let names: string[];
  try {
    names = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  const buf = Buffer.allocUnsafe(4096);
  const out: ProcessInfo[] = [];
  for (const n of names) {
    const c = n.charCodeAt(0);
    if (c < 48 || c > 57) continue; // not a pid
    let len: number;
    try {
      const fd = fs.openSync(`/proc/${n}/stat`, 'r');
      try {
        len = fs.readSync(fd, buf, 0, buf.length, null);
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      continue;
    }
    const stat = buf.toString('latin1', 0, len);
    // Fields after the command name, which is in parentheses and may itself contain spaces.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ', 3);
    let cwd: string | undefined;
    try {
      cwd = fs.readlinkSync(`/proc/${n}/cwd`);
    } catch {
      cwd = undefined;
    }
    out.push({ pid: Number(n), pgid: Number(rest[2]), cwd, zombie: rest[0] === 'Z' });
  }
  return out;
}

/** The first executable `name` on `searchPath` (execvp's search), or undefined. */
function onPath(name: string, searchPath = ''): string | undefined {
  for (const dir of searchPath.split(path.delimiter)) {
    if (!path.isAbsolute(dir)) continue;
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The real host: a new object each call, so nothing is cached at module level. */
export function defaultSystem(overrides: Partial<AltplatSystem> = {}): AltplatSystem {
  let prefix: string[] | undefined;
  const sys: AltplatSystem = {
    clock: () => performance.now(),
    spawn,
    kill: (pid, signal) => {
      try {
        process.kill(pid, signal);
      } catch (e) {
        if (errnoCode(e) !== 'ESRCH') throw e;
      }
    },
    listProcesses: procList,
    ownProcessGroup: async () => (await statOf(process.pid))?.pgid,
    env: defaultAppEnv(),
    // client/app_start.cpp lowers the priority with setpriority(19) and, on Linux, SCHED_IDLE. Node can
    // call neither, so the program is exec'd through `nice -n 19` and `chrt --idle 0` (both exec in
    // place: same pid), each only if it works on this host.
    lowPriorityPrefix: () => {
      if (prefix) return prefix;
      // By absolute path: each exec would otherwise try every PATH entry before the right one.
      const nice = onPath('nice', sys.env.PATH);
      const chrt = process.platform === 'linux' ? onPath('chrt', sys.env.PATH) : undefined;
      const p: string[] = [];
      if (nice && spawnSync(nice, ['-n', '19', 'true']).status === 0) p.push(nice, '-n', '19');
      if (chrt && spawnSync(chrt, ['--idle', '0', 'true']).status === 0) p.push(chrt, '--idle', '0');
      prefix = p;
      return p;
    },
    log: () => undefined,
    ...overrides,
  };
  return sys;
}
