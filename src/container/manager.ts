import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { baselineEnvFor, DEFAULT_CPU_MODEL } from '../definition/cpu-baseline.js';
import { AltplatError } from '../errors.js';
import { BoincApp, EXIT_ABORTED_BY_CLIENT } from '../ipc/app.js';
import { parseJob, type JobDescription } from '../job/jobfile.js';
import type { ManagerRunOptions } from '../job/manager-main.js';
import { FRACTION_DONE_FILE, jobInputs } from '../manager/guest-job.js';
import { sweepOrphans } from './cleanup.js';
import { loadContainerConfig, type ContainerConfig } from './config.js';
import { Engine, type ContainerState } from './engine.js';
import { ensureImage } from './image.js';
import { containerName, dataDirOfSlot, LABEL_RESULT, LABEL_SLOT, realDir } from './names.js';
import { collectOutputs, openNoFollow } from './outputs.js';
import { createArgs, GO_FILE, memoryLimitMb, STATUS_FILE } from './run-args.js';
import { cgroupCpuSeconds, cgroupMemoryLimitHit, ensureWorkDir, placeholder } from './workdir.js';

/** Main loop period: control messages act within it; the program's pid is checked at this rate. */
const TICK_MS = 200;
/** How often fraction_done and the cgroup's CPU time are read. */
const POLL_MS = 1000;
/** Containers killed from outside (not by the program's own doing) tolerated before a temporary exit. */
const MAX_RESTARTS = 3;
/** Status of a process killed by SIGKILL, as the engine reports it (128 + 9). */
const KILLED_STATUS = 137;

export type ContainerManagerOptions = ManagerRunOptions;

/**
 * The container backend's manager: a BOINC application (under docs/MANAGER_CONTRACT.md) that runs the
 * job's program in a Podman (or Docker) container made from the platform's rootfs tarball. The
 * container is named and labelled for the task; it survives the manager (conmon is not in the
 * manager's process group): quit and a client's death leave it paused, and the next start attaches to
 * it again; abort removes it; the client's cleanup hook (`--cleanup`) and the start-up sweep remove
 * what is left.
 */
export class ContainerManager {
  private job!: JobDescription;
  private config!: ContainerConfig;
  private engine!: Engine;
  private name!: string;
  private workDir!: string;
  private pending: 'quit' | 'abort' | undefined;
  private wake?: () => void;
  private live?: ContainerState;
  private paused = false;
  /** The task is over for this container (finished or aborted): nothing to pause at exit. */
  private ended = false;
  private cpuDone = 0;
  private cpuLive = 0;
  private restarts = 0;
  /** The container's memory cgroup reached its limit at some poll (said when the program dies of SIGKILL). */
  private memoryHit = false;
  private memoryMb = 0;

  constructor(private readonly o: ContainerManagerOptions) {}

  private get slot(): string { return this.o.slotDir; }

  async run(): Promise<never> {
    const { app, log } = this.o;
    this.job = parseJob(await fsp.readFile(this.o.jobFile, 'utf8'));
    this.config = await loadContainerConfig(path.resolve(this.o.workingDir, this.o.configFile));
    this.engine = new Engine(this.config.engine, this.config.engineConf);
    const dataDir = dataDirOfSlot(this.slot);
    let projectDir = 'project';
    try { projectDir = app.initData.projectDir || projectDir; } catch { /* standalone */ }
    this.name = containerName(projectDir, this.job.resultName, dataDir);

    app.setCpuTimeSource(() => this.cpuDone + this.cpuLive);
    app.on('suspend', () => this.poke());
    app.on('resume', () => this.poke());
    app.on('quit', () => { this.pending ??= 'quit'; this.poke(); });
    app.on('abort', () => { this.pending = 'abort'; this.poke(); });
    // Whatever way this process ends without ending the task (the client died, a fatal error), its
    // container stops consuming CPU: it is left paused for the next start (or the cleanup) to find.
    process.on('exit', () => {
      if (this.live && !this.ended && !this.paused) this.engine.runSync(['pause', this.name]);
    });

    const swept = await sweepOrphans(this.engine, dataDir, this.name).catch((e: Error) => {
      log(`orphan sweep failed: ${e.message}`);
      return [];
    });
    if (swept.length) log(`removed ${swept.length} orphaned container(s) of this data dir: ${swept.join(', ')}`);

    this.workDir = await ensureWorkDir(this.slot);
    for (;;) {
      const outcome = await this.attachOrStart();
      const result = outcome ?? await this.supervise();
      if (result.kind === 'exited') return this.complete(result.exitCode, result.oom);
      // Killed from outside (kill -9 of its processes, removed by someone): start it again; the
      // program resumes from its own checkpoint files, which live in the job folder.
      await this.engine.remove(this.name).catch(() => undefined);
      this.live = undefined;
      this.cpuDone += this.cpuLive;
      this.cpuLive = 0;
      if (++this.restarts > MAX_RESTARTS) {
        this.ended = true;
        return app.temporaryExit(300, 'The container was killed repeatedly; retrying later');
      }
      log(`the container ended unexpectedly (${result.why}); starting it again (${this.restarts}/${MAX_RESTARTS})`);
    }
  }

  private poke(): void { this.wake?.(); }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      const t = setTimeout(() => { this.wake = undefined; r(); }, ms);
      this.wake = () => { clearTimeout(t); this.wake = undefined; r(); };
    });
  }

  /**
   * Finds this task's container from an earlier start (a quit, the client's death, a killed manager)
   * and takes it over, or creates and starts a new one. Returns an outcome when the container had
   * already ended meanwhile.
   */
  private async attachOrStart(): Promise<Outcome | undefined> {
    const { log } = this.o;
    await this.checkInterrupts();
    const found = await this.engine.inspect(this.name);
    if (found) {
      if (found.labels[LABEL_SLOT] !== realDir(this.slot) || found.labels[LABEL_RESULT] !== this.job.resultName) {
        throw new AltplatError('CONTAINER_NAME_TAKEN', `a container named ${this.name} exists that is not this task's (labels ${JSON.stringify(found.labels)}); it is left alone`);
      }
      if (found.status === 'running' || found.status === 'paused') {
        this.live = found;
        this.paused = found.status === 'paused';
        this.o.app.setOtherPid(found.pid);
        log(`attached to the ${found.status} container ${this.name} of an earlier start (pid ${found.pid})`);
        return undefined;
      }
      if (found.status === 'exited' || found.status === 'stopped') {
        this.live = found;
        log(`the container ${this.name} ended while no manager watched it (status ${found.exitCode})`);
        return await this.judgeExit(found);
      }
      await this.engine.remove(this.name); // created but never started, or half-removed
    }
    const image = await ensureImage(this.engine, this.config.rootfs, log);
    await this.checkInterrupts();
    const inputs = await jobInputs(this.slot, this.job);
    for (const i of inputs) await placeholder(this.workDir, i.openName);
    await fsp.rm(path.join(this.workDir, GO_FILE), { force: true, recursive: true });
    await fsp.rm(path.join(this.workDir, STATUS_FILE), { force: true, recursive: true });
    this.memoryHit = false;
    const init = (() => { try { return this.o.app.initData; } catch { return undefined; } })();
    const memoryBytes = init?.rscMemoryBound && init.rscMemoryBound > 0 ? init.rscMemoryBound : this.config.defaultMemoryMb * (1 << 20);
    this.memoryMb = memoryLimitMb(memoryBytes);
    const args = createArgs({
      name: this.name,
      image,
      config: this.config,
      job: this.job,
      workDir: this.workDir,
      inputs,
      labels: { dataDir: dataDirOfSlot(this.slot), slot: realDir(this.slot), result: this.job.resultName, platform: this.job.platform },
      memoryBytes,
      cpus: init?.ncpus && init.ncpus > 0 ? init.ncpus : 1,
      user: `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`,
      baselineEnv: this.baselineEnv(),
    });
    const t0 = Date.now();
    await this.engine.must(args);
    await this.engine.must(['start', this.name]);
    const st = await this.engine.inspect(this.name);
    if (!st) throw new AltplatError('CONTAINER_VANISHED', `the container ${this.name} disappeared right after it started`);
    this.live = st;
    this.paused = false;
    this.o.app.setOtherPid(st.pid);
    if (st.pid > 0) await schedIdle(st.pid, log);
    await fsp.writeFile(path.join(this.workDir, GO_FILE), '');
    log(`started ${this.job.mainProgram} ${this.job.commandLine} in container ${this.name} (pid ${st.pid}) in ${Date.now() - t0} ms`);
    return undefined;
  }

  /** The environment of the platform's CPU model (the job's <cpu_model>, else the reference default). */
  private baselineEnv(): Record<string, string> {
    const model = this.job.cpuModel ?? DEFAULT_CPU_MODEL;
    const env = baselineEnvFor(model);
    if (!env) this.o.log(`no glibc baseline is known for CPU model ${model}: the program sees the host's CPU features`);
    else this.o.log(`glibc held to the virtual CPU ${model} (GLIBC_TUNABLES${Object.keys(env).length > 1 ? ` and ${Object.keys(env).filter((k) => k !== 'GLIBC_TUNABLES').join(', ')}` : ''})`);
    return env ?? {};
  }

  private async checkInterrupts(): Promise<void> {
    if (this.pending === 'abort') await this.abort();
    if (this.pending === 'quit') await this.quit();
  }

  /** Mirrors suspend/resume onto the container and reports progress until its program ends. */
  private async supervise(): Promise<Outcome> {
    const { app, log } = this.o;
    const estimate = this.job.flops > 0 && this.job.rscFpopsEst > 0 ? this.job.rscFpopsEst / this.job.flops : 0;
    let lastPoll = 0;
    let runMs = 0;
    let lastTick = Date.now();
    for (;;) {
      await this.checkInterrupts();
      const live = this.live!;
      if (!alive(live.pid)) {
        const st = await this.waitExited();
        if (!st) return { kind: 'died', why: 'the container is gone' };
        return await this.judgeExit(st);
      }
      const now = Date.now();
      if (!this.paused) runMs += now - lastTick;
      lastTick = now;
      if (app.suspended && !this.paused) {
        await this.engine.must(['pause', this.name]);
        this.paused = true;
        log('suspended: container paused');
      } else if (!app.suspended && this.paused) {
        await this.engine.must(['unpause', this.name]);
        this.paused = false;
        log('resumed: container running');
      }
      if (now - lastPoll >= POLL_MS) {
        lastPoll = now;
        this.cpuLive = (await cgroupCpuSeconds(live.cgroupPath)) ?? this.cpuLive;
        this.memoryHit ||= await cgroupMemoryLimitHit(live.cgroupPath);
        if (!this.paused) {
          const own = await readFraction(this.workDir);
          app.fractionDone(own ?? (estimate > 0 ? Math.min(0.99, runMs / 1000 / estimate) : 0));
        }
      }
      await this.sleep(TICK_MS);
    }
  }

  /** After the program's pid is gone, the engine needs a moment to record the exit. */
  private async waitExited(): Promise<ContainerState | undefined> {
    for (let i = 0; i < 100; i++) {
      const st = await this.engine.inspect(this.name);
      if (!st) return undefined;
      if (st.status !== 'running' && st.status !== 'paused') return st;
      await new Promise((r) => setTimeout(r, 100));
    }
    return this.engine.inspect(this.name);
  }

  /**
   * The program ended when the wrapper recorded its status (STATUS_FILE): that status is the result,
   * whatever it is. No status means the container's first process was killed — someone killed the
   * container — and the task starts again instead of failing.
   */
  private async judgeExit(st: ContainerState): Promise<Outcome> {
    const fh = await openNoFollow(this.workDir, STATUS_FILE);
    if (!fh) return { kind: 'died', why: st.exitCode === KILLED_STATUS ? 'killed by SIGKILL' : `it stopped with status ${st.exitCode} before the program ended` };
    let text = '';
    try {
      const buf = Buffer.alloc(32);
      const { bytesRead } = await fh.read(buf, 0, 32, 0);
      text = buf.subarray(0, bytesRead).toString('latin1').trim();
    } finally {
      await fh.close();
    }
    const code = /^\d{1,3}$/.test(text) ? Number(text) : st.exitCode;
    return { kind: 'exited', exitCode: code, oom: st.oomKilled || (code === KILLED_STATUS && this.memoryHit) };
  }

  /** The program ended: collect its outputs, remove the container, finish with its exit status. */
  private async complete(exitCode: number, oom: boolean): Promise<never> {
    const { log } = this.o;
    this.cpuLive = (await cgroupCpuSeconds(this.live?.cgroupPath)) ?? this.cpuLive;
    const report = await collectOutputs(this.workDir, this.slot, this.job);
    if (exitCode === KILLED_STATUS) {
      log(oom ? `program killed by SIGKILL: its container reached its memory limit of ${this.memoryMb} MiB (rsc_memory_bound), so it went over its memory limit`
        : `program killed by SIGKILL inside its container (the kernel's OOM killer does this when a program goes over its memory limit, here ${this.memoryMb} MiB)`);
    }
    log(`program ended with exit status ${exitCode}; outputs copied: ${report.copied.join(', ') || 'none'}${report.missing.length ? `; missing: ${report.missing.join(', ')}` : ''}${report.tooBig.length ? `; over max_nbytes, not copied: ${report.tooBig.join(', ')}` : ''}`);
    this.ended = true;
    await this.engine.remove(this.name);
    this.live = undefined;
    return this.o.app.finish(exitCode);
  }

  /** Quit: leave the container paused (its processes survive without CRIU) and exit 0 without finishing. */
  private async quit(): Promise<never> {
    if (this.live && !this.paused) {
      const r = await this.engine.run(['pause', this.name]);
      this.paused = r.code === 0;
    }
    this.o.log(`quit requested: container ${this.name} left ${this.live ? 'paused' : 'uncreated'} for the next start`);
    await this.o.app.detach();
    this.o.exit(0);
    throw new Ended();
  }

  /** Abort: kill and remove the container, exit 194 (EXIT_ABORTED_BY_CLIENT, lib/error_numbers.h). */
  private async abort(): Promise<never> {
    this.o.log(`abort requested: removing container ${this.name}`);
    this.ended = true;
    await this.engine.remove(this.name);
    this.live = undefined;
    await this.o.app.detach();
    this.o.exit(EXIT_ABORTED_BY_CLIENT);
    throw new Ended();
  }
}

type Outcome = { kind: 'exited'; exitCode: number; oom: boolean } | { kind: 'died'; why: string };

class Ended extends Error {}

function alive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readFraction(workDir: string): Promise<number | undefined> {
  const fh = await openNoFollow(workDir, FRACTION_DONE_FILE);
  if (!fh) return undefined;
  try {
    const buf = Buffer.alloc(64);
    const { bytesRead } = await fh.read(buf, 0, 64, 0);
    const text = buf.subarray(0, bytesRead).toString('utf8').trim();
    const f = Number(text);
    return text !== '' && Number.isFinite(f) ? Math.min(1, Math.max(0, f)) : undefined;
  } finally {
    await fh.close();
  }
}

/** SCHED_IDLE for the container's first process (util-linux chrt on the host); inherited by all it forks. */
function schedIdle(pid: number, log: (l: string) => void): Promise<void> {
  if (process.platform !== 'linux') return Promise.resolve();
  return new Promise((resolve) => {
    execFile('chrt', ['--idle', '-a', '-p', '0', String(pid)], (err) => {
      if (err) log(`could not set SCHED_IDLE on pid ${pid}: ${err.message.trim()} (the program still runs at nice 19)`);
      resolve();
    });
  });
}

export { Ended as ContainerManagerEnded };
