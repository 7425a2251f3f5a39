/**
 * Shared pieces of the IPC tests and the IPC bench: a temp slot with init_data.xml and a zeroed
 * boinc_mmap_file, a task started in it as a real child process, and our client side polling it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { openClientControl } from '../src/ipc/client.js';
import type { ClientControl, ControlAction } from '../src/ipc/contract.js';
import { writeInitData, type InitData } from '../src/ipc/init-data.js';
import { createMmapFile } from '../src/ipc/mmap.js';
import { buildBoincProgram } from './helpers/boinc-c.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Repo root, whether this runs from test/ (vitest) or dist/test/ (bench). */
export const repoRoot = fs.existsSync(path.join(here, '..', 'package.json')) ? path.join(here, '..') : path.join(here, '..', '..');

export const buildWorker = () => buildBoincProgram(path.join(repoRoot, 'test/c/ipc_worker.c'));
export const buildProbe = () => buildBoincProgram(path.join(repoRoot, 'test/c/ipc_probe.c'));

/** How to run the TypeScript worker: compiled JS when the bench runs from dist, else through tsx. */
export function tsWorkerCommand(): [string, string[]] {
  const js = path.join(here, 'ipc-worker.js');
  if (fs.existsSync(js)) return [process.execPath, [js]];
  // --import resolves from the child's cwd (the slot), so name tsx's loader by its URL.
  const loader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  return [process.execPath, ['--import', loader, path.join(here, 'ipc-worker.ts')]];
}

export async function makeSlot(init: Partial<InitData> = {}): Promise<string> {
  const slot = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-ipc-'));
  await writeInitData(slot, {
    projectDir: slot, boincDir: path.dirname(slot), wuName: 'wu_ipc', resultName: 'wu_ipc_0', slot: 0,
    clientPid: process.pid, checkpointPeriod: 1, ...init,
  });
  await createMmapFile(slot);
  return slot;
}

/** A pid that is certainly gone: a child that has already exited. */
export async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

export interface Exit { code: number | null; signal: NodeJS.Signals | null; at: number }

/** One run of an app in a slot under our client side, polled like the lifecycle polls it. */
export class TaskRun {
  readonly actions: ControlAction[] = [];
  readonly exited: Promise<Exit>;
  private timer: NodeJS.Timeout | undefined;
  private exitInfo: Exit | undefined;

  private constructor(readonly slot: string, readonly child: ChildProcess, readonly control: ClientControl) {
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      this.exitInfo = { code, signal, at: performance.now() };
      this.stopPolling();
      resolve(this.exitInfo);
    }));
  }

  static async start(slot: string, cmd: string, args: string[], opts: { pollMs?: number; heartbeats?: boolean } = {}): Promise<TaskRun> {
    const control = await openClientControl(slot);
    const err = fs.openSync(path.join(slot, 'stderr.txt'), 'a');
    const child = spawn(cmd, args, { cwd: slot, stdio: ['ignore', 'ignore', err] });
    fs.closeSync(err);
    const run = new TaskRun(slot, child, control);
    run.startPolling(opts.pollMs ?? 200, opts.heartbeats ?? true);
    return run;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** Poll as ACTIVE_TASK_SET::poll does (the lifecycle: once a second; tests: faster). */
  startPolling(ms: number, heartbeats = true): void {
    this.stopPolling();
    this.timer = setInterval(() => {
      if (!heartbeats) return;
      void this.control.poll(performance.now(), { wss: 12345678, maxWss: 2e9 }).then((a) => this.actions.push(...a));
    }, ms);
  }

  stopPolling(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async waitFor(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
    const end = performance.now() + timeoutMs;
    while (!(await pred())) {
      if (performance.now() > end) throw new Error(`timed out waiting for ${what}; stderr:\n${await this.stderr()}`);
      if (!this.running && !(await pred())) throw new Error(`app exited (${JSON.stringify(this.exitInfo)}) while waiting for ${what}; stderr:\n${await this.stderr()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** "<count> <wall ms>" the worker writes after every step. */
  async progress(): Promise<{ count: number; ms: number }> {
    try {
      const [count, ms] = (await fsp.readFile(path.join(this.slot, 'progress.txt'), 'utf8')).trim().split(/\s+/).map(Number);
      return { count: count || 0, ms: ms || 0 };
    } catch {
      return { count: 0, ms: 0 };
    }
  }

  stderr(): Promise<string> {
    return fsp.readFile(path.join(this.slot, 'stderr.txt'), 'utf8').catch(() => '');
  }

  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
    await this.control.close();
  }
}

export const fileText = (slot: string, name: string) => fsp.readFile(path.join(slot, name), 'utf8');
export const exists = (slot: string, name: string) => fsp.access(path.join(slot, name)).then(() => true, () => false);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
