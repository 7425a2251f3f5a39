import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { dataPaths } from '../src/paths.js';
import { AltplatClient, type AltplatClientOptions } from '../src/tasks/client.js';
import { runBatch, type RunResult } from '../src/tasks/batch.js';
import type { AltplatEvents } from '../src/tasks/events.js';
import type { Spawner } from '../src/tasks/system.js';
import { readVolunteerPrefs } from '../src/cli/prefs.js';

/** Shared set-up for the lifecycle tests: a temp BOINC data dir, an installed alt platform, replies. */
export const MASTER_URL = 'https://example.org/lctest/';
export const PROJECT = 'example.org_lctest';

export async function tempDataDir(prefix = 'altplat-lc-'): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

export const md5 = (b: Buffer | string) => createHash('md5').update(b).digest('hex');

export interface PlatformSpec {
  name: string;
  /** Path of an executable that becomes the platform's manager. */
  manager: string;
  /** Size of the sparse `<shared/>` image file (default 1 MiB). */
  sharedBytes?: number;
  cmdline?: string;
  /** Inner XML of a <requires> element, if any. */
  requires?: string;
}

/** `alt_platforms/<name>/`: alt_platform.xml, the manager, a small config (copied) and a shared image. */
export async function installAltPlatform(dataDir: string, spec: PlatformSpec): Promise<string> {
  const dir = path.join(dataDir, 'alt_platforms', spec.name);
  await fsp.mkdir(path.join(dir, 'image'), { recursive: true });
  await fsp.copyFile(spec.manager, path.join(dir, 'manager'));
  await fsp.chmod(path.join(dir, 'manager'), 0o755);
  await fsp.writeFile(path.join(dir, 'vm_config.xml'), '<vm_config><memory_mb>64</memory_mb></vm_config>\n');
  const fh = await fsp.open(path.join(dir, 'image', 'base.img'), 'w');
  await fh.truncate(spec.sharedBytes ?? 1 << 20); // sparse
  await fh.write('BASEIMAGE', 0);
  await fh.close();
  await fsp.writeFile(path.join(dir, 'alt_platform.xml'), `<alt_platform>
    <name>${spec.name}</name>
    <version>1.0.0</version>
    <manager>
        <file_name>manager</file_name>
        <cmdline>${spec.cmdline ?? '--config vm_config.xml'}</cmdline>
    </manager>
${spec.requires ? `    <requires>${spec.requires}</requires>\n` : ''}    <file>
        <name>image/base.img</name>
        <shared/>
    </file>
    <file>
        <name>vm_config.xml</name>
    </file>
</alt_platform>
`);
  return dir;
}

export interface ResultSpec {
  name: string;
  /** Content of the input file "in" (the test app reads its mode from it). */
  input: string;
  copyOutput?: boolean;
  optionalOutput?: boolean;
  maxNbytes?: number;
  /** The workunit's rsc_fpops_bound / rsc_disk_bound (omitted: the reply parser's defaults). */
  rscFpopsBound?: number;
  rscDiskBound?: number;
}

export interface ReplySpec {
  platform: string;
  /** Bytes of the app version's main program (for native runs: the program itself). */
  mainProgram: Buffer;
  results: ResultSpec[];
  wuCommandLine?: string;
  avCmdline?: string;
}

/** A scheduler reply as BOINC's server writes it (file_infos before their users), plus its files. */
export function makeReply(s: ReplySpec): { xml: string; files: Record<string, Buffer> } {
  const files: Record<string, Buffer> = { lc_app_100: s.mainProgram };
  const parts = [`<scheduler_reply>
<scheduler_version>803</scheduler_version>
<master_url>${MASTER_URL}</master_url>
<project_name>Lifecycle test</project_name>
<app>
    <name>lc</name>
    <user_friendly_name>Lifecycle test app</user_friendly_name>
</app>
<file_info>
    <name>lc_app_100</name>
    <url>https://example.org/lctest/download/lc_app_100</url>
    <executable/>
    <nbytes>${s.mainProgram.length}</nbytes>
</file_info>
<app_version>
    <app_name>lc</app_name>
    <version_num>100</version_num>
    <api_version>8.0.0</api_version>
    <file_ref>
        <file_name>lc_app_100</file_name>
        <main_program/>
    </file_ref>
    <platform>${s.platform}</platform>
    <avg_ncpus>1.000000</avg_ncpus>
    <flops>1000000000.000000</flops>
${s.avCmdline ? `    <cmdline>${s.avCmdline}</cmdline>\n` : ''}</app_version>`];
  for (const r of s.results) {
    const inName = `${r.name}_in`;
    const input = Buffer.from(r.input);
    files[inName] = input;
    parts.push(`<file_info>
    <name>${inName}</name>
    <url>https://example.org/lctest/download/${inName}</url>
    <md5_cksum>${md5(input)}</md5_cksum>
    <nbytes>${input.length}</nbytes>
</file_info>
<workunit>
    <rsc_fpops_est>1000000000.000000</rsc_fpops_est>
${r.rscFpopsBound !== undefined ? `    <rsc_fpops_bound>${r.rscFpopsBound.toFixed(6)}</rsc_fpops_bound>\n` : ''}${r.rscDiskBound !== undefined ? `    <rsc_disk_bound>${r.rscDiskBound.toFixed(6)}</rsc_disk_bound>\n` : ''}    <name>${r.name}_wu</name>
    <app_name>lc</app_name>
<command_line>
${s.wuCommandLine ?? '--rounds 3'}
</command_line>
    <file_ref>
        <file_name>${inName}</file_name>
        <open_name>in</open_name>
    </file_ref>
</workunit>
<file_info>
    <name>${r.name}_out</name>
    <generated_locally/>
    <upload_when_present/>
    <max_nbytes>${r.maxNbytes ?? 100000}</max_nbytes>
    <url>https://example.org/lctest_cgi/file_upload_handler</url>
</file_info>
<result>
<report_deadline>1900000000</report_deadline>
<wu_name>${r.name}_wu</wu_name>
<name>${r.name}</name>
    <file_ref>
        <file_name>${r.name}_out</file_name>
        <open_name>out</open_name>
${r.copyOutput ? '        <copy_file/>\n' : ''}${r.optionalOutput ? '        <optional/>\n' : ''}    </file_ref>
    <platform>${s.platform}</platform>
    <version_num>100</version_num>
    <plan_class></plan_class>
</result>`);
  }
  parts.push('</scheduler_reply>\n');
  return { xml: parts.join('\n'), files };
}

/** Write a reply and its files (the files into `<dir>/files`, for `--files`). */
export async function writeReply(dir: string, reply: { xml: string; files: Record<string, Buffer> }, name = 'reply.xml'): Promise<{ replyFile: string; filesDir: string }> {
  const filesDir = path.join(dir, 'files');
  await fsp.mkdir(filesDir, { recursive: true });
  for (const [n, b] of Object.entries(reply.files)) await fsp.writeFile(path.join(filesDir, n), b, { mode: 0o755 });
  const replyFile = path.join(dir, name);
  await fsp.writeFile(replyFile, reply.xml);
  return { replyFile, filesDir };
}

/** Every file under `dir` with its size and mtime, for "the original is unchanged" checks. */
export async function treeStamp(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string) => {
    for (const e of await fsp.readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) await walk(r);
      else {
        const st = await fsp.lstat(path.join(dir, r));
        const content = e.isFile() ? md5(await fsp.readFile(path.join(dir, r))) : 'link';
        out[r] = `${st.size}:${st.mtimeMs}:${content}`;
      }
    }
  };
  await walk('');
  return out;
}

export async function exists(p: string): Promise<boolean> {
  return fsp.lstat(p).then(() => true, () => false);
}


export const CLI = path.resolve('dist/src/cli/main.js');

export interface CliRun { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** The built `altplat` CLI as a real child process, with a fast task poll (ALTPLAT_POLL_MS=50). */
export function startCli(args: string[]): { child: ChildProcess; done: Promise<CliRun> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ALTPLAT_POLL_MS: '50' } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => { stdout += d; });
  child.stderr!.on('data', (d) => { stderr += d; });
  const done = new Promise<CliRun>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

export const runCli = (args: string[]) => startCli(args).done;

/** How much faster than real time the lifecycle's clock runs in the timer tests (the processes stay real). */
export const FAST_CLOCK_SPEED = 200;

export function fastClock(): () => number {
  const t0 = performance.now();
  return () => (performance.now() - t0) * FAST_CLOCK_SPEED;
}

/** A data dir with `manager` installed as the Linux alt platform, and a reply of `results` for it. */
export async function setupAltTask(manager: string, results: ResultSpec[], sharedBytes?: number) {
  const LINUX = 'x86_64-pc-linux-gnu';
  const dataDir = await tempDataDir();
  const platformDir = await installAltPlatform(dataDir, { name: LINUX, manager, sharedBytes });
  const reply = makeReply({ platform: LINUX, mainProgram: Buffer.from('#!/bin/sh\n'), results });
  const files = await writeReply(dataDir, reply);
  return { dataDir, platformDir, ...files, before: await treeStamp(platformDir), p: dataPaths(dataDir) };
}

export interface BatchOptions {
  dataDir: string;
  hostPlatforms?: string[];
  pollMs?: number;
  maxTasks?: number;
  clock?: () => number;
  spawner?: Spawner;
  probes?: AltplatClientOptions['probes'];
  prefs?: AltplatClientOptions['prefs'];
  /** Serve `altplat task` (sendTaskCommand) as `altplat run` does. */
  controlSocket?: boolean;
}

/**
 * `altplat run` in this process: AltplatClient.open + runBatch + close, with the listeners given
 * before run() attached to the client (the tests' view of one run; what the CLI does, minus printing).
 */
export class Batch {
  readonly paths: ReturnType<typeof dataPaths>;
  client?: AltplatClient;
  private readonly listeners: Array<(c: AltplatClient) => void> = [];

  constructor(private readonly o: BatchOptions) {
    this.paths = dataPaths(o.dataDir);
  }

  on<K extends keyof AltplatEvents & string>(event: K, fn: (p: AltplatEvents[K]) => void): this {
    this.listeners.push((c) => c.on(event, fn));
    if (this.client) this.client.on(event, fn);
    return this;
  }

  /** `altplat task OP NAME`: resolves once the request is under way (not when it is carried out). */
  async control(name: string, op: 'suspend' | 'resume' | 'quit' | 'abort'): Promise<void> {
    const t = this.client?.task(name);
    if (!t) throw new Error(`no task ${name}`);
    const done = t[op]();
    await Promise.race([done, new Promise((r) => setTimeout(r, 50))]);
  }

  async run(input: { replyFile?: string; filesDir?: string; masterUrl?: string } = {}): Promise<RunResult> {
    // As the CLI: the volunteer's preference files, then what the test gives.
    const prefs = { ...(await readVolunteerPrefs(this.o.dataDir)), ...this.o.prefs };
    const c = await AltplatClient.open({
      dataDir: this.o.dataDir, hostPlatforms: this.o.hostPlatforms, pollMs: this.o.pollMs, probes: this.o.probes, prefs,
      system: { ...(this.o.clock ? { clock: this.o.clock } : {}), ...(this.o.spawner ? { spawn: this.o.spawner } : {}) },
      controlSocket: this.o.controlSocket === false ? false : path.join(this.paths.state, 'control.sock'),
    });
    this.client = c;
    for (const l of this.listeners) l(c);
    try {
      return await runBatch(c, { ...input, maxTasks: this.o.maxTasks });
    } finally {
      await c.close();
    }
  }
}

/** A batch for a Windows host (the Linux work goes through the alt platform) on the fast clock. */
export const fastLifecycle = (dataDir: string, extra: Partial<BatchOptions> = {}) =>
  new Batch({ dataDir, hostPlatforms: ['windows_x86_64'], pollMs: 20, clock: fastClock(), ...extra });
