import { promises as fsp, watch as fsWatch, type FSWatcher } from 'node:fs';
import * as path from 'node:path';
import { cpuModelProblem, machineTypeProblem } from '../definition/cpu-baseline.js';
import { parseManagerCommandLine } from '../job/manager-args.js';
import { AltplatError } from '../errors.js';
import { BoincApp, EXIT_ABORTED_BY_CLIENT } from '../ipc/app.js';
import { resolveFilename } from '../ipc/resolve.js';
import { parseJob, type JobDescription } from '../job/jobfile.js';
import type { ManagerRunOptions } from '../job/manager-main.js';
import { constants as osConstants } from 'node:os';
import { performance } from 'node:perf_hooks';
import { copyIn, copyOut, copyOutputViaAgent, readGuestFraction, startInGuest, startOutcome } from './guest-job.js';
import { randomBytes } from 'node:crypto';
import { BOOT_STATE_DIR, dataDirOf, discardBootState, prepareBootState } from './boot-state.js';
import { buildJobDisk, copyOutDisk, diskTools, JOB_DEVICE, JOB_DISK, type DiskTools } from './job-disk.js';
import { CONSOLE_LOG, createOverlay, killOrphanVm, listSnapshots, QemuVm, startVm } from './qemu.js';
import { readState, TASK_OVERLAY, writeState, type ManagerState } from './state.js';
import { loadVmConfig, type VmConfig } from './vm-config.js';

/** The two rolling checkpoint tags: the new one is complete before the old one is deleted. */
const CHECKPOINT_TAGS = ['altplat-ckpt-a', 'altplat-ckpt-b'] as const;
/**
 * Polling of the guest program's exit (guest-exec-status): every EXIT_POLL_MIN_MS at first, backing
 * off to EXIT_POLL_MAX_MS, so a short program's exit is seen at once and a long one's within ~50 ms
 * for a round trip that costs the guest well under a millisecond. Control events act at once anyway.
 */
const EXIT_POLL_MIN_MS = 5;
const EXIT_POLL_MAX_MS = 50;
/**
 * The poll while the console is watched (the job disk path: the start helper's console line reports
 * the exit at once): only a backstop. Each guest-exec-status costs the guest 1.3-1.9 ms of CPU under
 * TCG (measured: 100 polls, 130-150 ms of QEMU CPU), 3 % of it at 50 ms, 0.6 % at 250 ms.
 */
const WATCHED_POLL_MS = 250;
/** How often fraction_done is read and reported, and the checkpoint timer looked at. */
const PROGRESS_POLL_MS = 1000;
/**
 * Exit status when the guest cannot start the main program at all (its ELF loader or `#!`
 * interpreter is missing): 127, what the guest's shell itself reports for a command it cannot run.
 */
const EXIT_CANNOT_START = 127;
/** Unexpected VM deaths tolerated in one run before asking the client to restart us later. */
const MAX_VM_RESTARTS = 3;

export type ManagerOptions = ManagerRunOptions;

type Pending = 'quit' | 'abort' | undefined;

/**
 * The reference platform's manager: a BOINC application that runs the job's program in a QEMU VM.
 * Section 5 of the paper, step by step: linked clone, boot, copy in, run, pause/resume with the
 * client, checkpoint, copy out, power off, exit with the program's exit code.
 */
export class Manager {
  private vm?: QemuVm;
  private state!: ManagerState;
  private job!: JobDescription;
  private config!: VmConfig;
  private pending: Pending;
  private wake?: () => void;
  /** CPU seconds of VMs of this run that have ended, plus the live VM's last reading. */
  private cpuDone = 0;
  private cpuLive = 0;
  /** Seconds the program has run (not suspended) in this run, since the state's checkpoint. */
  private runSecs = 0;
  private lastCheckpointAt = Date.now();
  private vmRestarts = 0;
  private paused = false;
  private tools?: DiskTools;
  /** The start helper remounted the job disk read-only after the program (startOutcome). */
  private diskReadOnly = false;
  /** Where this run's time went (ms since the process started), logged at the end for the bench. */
  private readonly marks: Array<[string, number]> = [];
  private mark(step: string): void { this.marks.push([step, performance.now()]); }

  constructor(private readonly o: ManagerOptions) {}

  private get slot(): string { return this.o.slotDir; }
  /** The BOINC data dir from init_data.xml (boinc_dir), where the hw-accel verdict is shared with discovery. */
  private get dataDir(): string | undefined { return this.o.app.standalone ? undefined : this.o.app.initData.boincDir || undefined; }
  private get overlay(): string { return path.join(this.slot, TASK_OVERLAY); }
  private get jobDisk(): string { return path.join(this.slot, JOB_DISK); }

  async run(): Promise<never> {
    const { app, log } = this.o;
    this.mark('manager started');
    this.job = parseJob(await fsp.readFile(this.o.jobFile, 'utf8'));
    this.config = await loadVmConfig(path.resolve(this.o.workingDir, this.o.configFile));
    // The platform's virtual CPU comes from its definition (through the job file), not from vm_config.xml.
    const problem = (this.job.cpuModel !== undefined ? cpuModelProblem(this.job.cpuModel) : undefined)
      ?? (this.job.machineType !== undefined ? machineTypeProblem(this.job.machineType) : undefined);
    if (problem) throw new AltplatError('JOB_BAD_VALUE', `job description: ${problem}`);
    this.config.cpuModel = this.job.cpuModel ?? this.config.cpuModel;
    this.config.machine = this.job.machineType ?? this.config.machine;
    log(`virtual CPU ${this.config.cpuModel} (enforced), machine ${this.config.machine}`);
    const appOverlay = this.job.appFiles.find((f) => f.openName.endsWith('.qcow2'));
    if (appOverlay) this.config.appOverlay = await resolveFilename(this.slot, appOverlay.openName);

    app.setCpuTimeSource(() => this.cpuDone + this.cpuLive);
    app.on('suspend', () => this.poke());
    app.on('resume', () => this.poke());
    app.on('quit', () => { this.pending ??= 'quit'; this.poke(); });
    app.on('abort', () => { this.pending = 'abort'; this.poke(); });
    // Whatever way this process ends, its VM ends with it (a VM without its manager only burns CPU).
    // (all of them: also one being resumed or a saved state's builder, not yet this.vm)
    process.on('exit', () => QemuVm.killAllNow());

    this.tools = await diskTools();
    const killed = await killOrphanVm(this.slot, this.job.resultName);
    if (killed) log(`ended the VM (pid ${killed}) left by an earlier run of this task`);

    for (;;) {
      try {
        await this.bringUp();
        const exitCode = await this.supervise();
        return await this.complete(exitCode);
      } catch (e) {
        if (e instanceof VmDied && this.vmRestarts < MAX_VM_RESTARTS) {
          this.vmRestarts++;
          log(`the VM ended unexpectedly (${e.message}); restarting from ${this.state?.checkpoint ?? 'the beginning'} (${this.vmRestarts}/${MAX_VM_RESTARTS})`);
          await this.dropVm();
          continue;
        }
        if (e instanceof VmDied) {
          await this.dropVm();
          return this.o.app.temporaryExit(300, 'The virtual machine failed repeatedly; retrying later');
        }
        if (e instanceof Ended) return never();
        if (e instanceof CannotStart) {
          // Nothing ran: no outputs to copy; the reason goes to stderr.txt, the result is a compute error.
          log(e.message);
          await this.vm?.powerOff();
          this.vm = undefined;
          return this.o.app.finish(EXIT_CANNOT_START);
        }
        throw e;
      }
    }
  }

  private poke(): void { this.wake?.(); }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      const t = setTimeout(() => { this.wake = undefined; r(); }, ms);
      this.wake = () => { clearTimeout(t); this.wake = undefined; r(); };
    });
  }

  /** Boots from the latest checkpoint when there is one, else from a fresh linked clone. */
  private async bringUp(): Promise<void> {
    const { log } = this.o;
    const saved = await readState(this.slot, this.job.resultName);
    let restoreTag: string | undefined;
    if (saved?.checkpoint) {
      const tags = await listSnapshots(this.overlay).catch(() => [] as string[]);
      const sameCpu = (saved.cpuModel ?? this.config.cpuModel) === this.config.cpuModel && (saved.machine ?? this.config.machine) === this.config.machine;
      if (!sameCpu) log(`checkpoint ${saved.checkpoint} was taken on ${saved.cpuModel}/${saved.machine}, the platform now runs ${this.config.cpuModel}/${this.config.machine}; starting over`);
      else if (!tags.includes(saved.checkpoint)) log(`checkpoint ${saved.checkpoint} is not in ${TASK_OVERLAY}; starting over`);
      else if ((await this.stateDiskOf(saved)) === null) log(`checkpoint ${saved.checkpoint} is layered on saved booted state ${saved.bootState}, which is gone; starting over`);
      else restoreTag = saved.checkpoint;
    }
    if (restoreTag && saved) {
      this.state = saved;
      const t0 = Date.now();
      const jobDisk = saved.dataPath === 'disk' ? this.jobDisk : undefined;
      const stateDisk = (await this.stateDiskOf(saved)) ?? undefined;
      const { vm } = await this.boot(startVm({ config: this.config, runDir: this.slot, overlay: this.overlay, task: this.job.resultName, dataDir: this.dataDir, loadvm: restoreTag, log, accelOverride: saved.accel, jobDisk, stateDisk }));
      this.attach(vm);
      log(`restored checkpoint ${restoreTag} in ${Date.now() - t0} ms; re-attaching to guest pid ${saved.guestPid}`);
      this.runSecs = 0;
      this.lastCheckpointAt = Date.now();
      return;
    }
    await this.checkInterrupts();
    let t0 = Date.now();
    let bytes = 0;
    const jobDisk = this.tools ? this.jobDisk : undefined;
    // The job disk is made while the saved booted state is looked up (or built); QEMU needs both.
    const made = this.tools
      ? buildJobDisk(this.tools, this.slot, this.job).then((n) => {
        bytes = n;
        log(`job disk: ${n} bytes of the job's files in ${Date.now() - t0} ms`);
        this.mark('job disk made');
      })
      : Promise.resolve();
    made.catch(() => undefined);
    const resumed = jobDisk ? await this.resumeBootState(jobDisk, made) : undefined;
    await made;
    const vm = resumed ?? await this.coldBoot(jobDisk);
    this.mark(resumed ? 'guest resumed' : 'guest booted');
    this.attach(vm);
    await this.checkInterrupts();
    t0 = Date.now();
    if (!jobDisk) {
      bytes = await this.guard(copyIn(vm.qga, this.slot, this.job, this.config.guestDir));
      log(`copied ${bytes} bytes into the guest through the agent in ${Date.now() - t0} ms`);
      this.mark('copied in');
      await this.checkInterrupts();
    }
    // One guest program prepares and starts (guest-job.ts startInGuest): with the job disk it mounts
    // it, after a resume it also sets the clock and reseeds the RNG; what failed, if anything, comes
    // back with the exit (supervise).
    this.state.guestPid = await this.guard(startInGuest(vm.qga, this.slot, this.job, {
      guestDir: this.config.guestDir, personality: this.config.personality,
      entropy: resumed ? randomBytes(64) : undefined, jobDevice: jobDisk ? JOB_DEVICE : undefined,
    }));
    await writeState(this.slot, this.state);
    this.mark('program started');
    log(`started ${this.job.mainProgram} ${this.job.commandLine} (guest pid ${this.state.guestPid})${jobDisk ? `, job disk mounted at ${this.config.guestDir}${resumed ? ', clock set, RNG reseeded' : ''} first` : ''}`);
    this.runSecs = 0;
    this.lastCheckpointAt = Date.now();
  }

  private freshState(accel: 'kvm' | 'tcg', dataPath: 'disk' | 'agent', bootState?: string): ManagerState {
    return { version: 1, task: this.job.resultName, accel, cpuModel: this.config.cpuModel, machine: this.config.machine, elapsedAtCheckpoint: 0, dataPath, bootState };
  }

  private async coldBoot(jobDisk: string | undefined): Promise<QemuVm> {
    await createOverlay(this.overlay, this.config.baseDisk, this.config.appOverlay);
    const { vm, bootMs } = await this.boot(startVm({ config: this.config, runDir: this.slot, overlay: this.overlay, task: this.job.resultName, dataDir: this.dataDir, log: this.o.log, jobDisk }));
    this.o.log(`guest ready in ${(bootMs / 1000).toFixed(2)} s (${vm.opts.accel}, cold boot)`);
    this.state = this.freshState(vm.opts.accel, jobDisk ? 'disk' : 'agent');
    return vm;
  }

  /**
   * Starts from the saved booted state (boot-state.ts), built now if missing; undefined (boot cold)
   * when there is none to be had, with the reason in stderr.txt. A state QEMU cannot load is discarded.
   */
  private async resumeBootState(jobDisk: string, jobDiskMade: Promise<void>): Promise<QemuVm | undefined> {
    const { log } = this.o;
    if (process.env.ALTPLAT_BOOT_STATE === 'off') {
      log('saved booted state: off (ALTPLAT_BOOT_STATE=off); booting cold');
      return undefined;
    }
    const dataDir = dataDirOf(this.slot, this.o.workingDir);
    if (!dataDir) {
      log('saved booted state: not used (the slot is not inside a BOINC data dir); booting cold');
      return undefined;
    }
    const r = await prepareBootState({ dataDir, config: this.config, platform: this.job.platform, log });
    if (!('state' in r)) {
      log(`saved booted state not used: ${r.reason}; booting cold`);
      return undefined;
    }
    const bs = r.state;
    this.mark('saved state found');
    // Recorded before the overlay exists: from here on the state's disk is this task's backing file,
    // and no other task deletes it.
    this.state = this.freshState(bs.accel, 'disk', bs.key);
    await writeState(this.slot, this.state);
    await createOverlay(this.overlay, bs.disk);
    this.mark('overlay made');
    await jobDiskMade;
    const t0 = Date.now();
    let vm: QemuVm | undefined;
    try {
      ({ vm } = await startVm({ config: this.config, runDir: this.slot, overlay: this.overlay, task: this.job.resultName, dataDir: this.dataDir, log, jobDisk,
        stateDisk: bs.disk, incoming: bs.memory, accelOverride: bs.accel }));
      log(`guest resumed from saved booted state ${bs.key} in ${Date.now() - t0} ms (${bs.accel})`);
      return vm;
    } catch (e) {
      await vm?.kill();
      const exit = (e as AltplatError).details?.exit as { signal?: string | null } | undefined;
      if (exit?.signal) throw new VmDied(`QEMU killed (${exit.signal}) while resuming the saved booted state`);
      log(`resuming saved booted state ${bs.key} failed (${(e as AltplatError).code ?? 'ERROR'}: ${(e as Error).message}); discarding it, booting cold`);
      this.state = this.freshState(bs.accel, 'disk');
      await writeState(this.slot, this.state);
      await discardBootState(dataDir, bs).catch(() => undefined);
      return undefined;
    }
  }

  /** The system disk's layer below the task overlay, for a restore of a task started from a saved state. */
  private async stateDiskOf(saved: ManagerState): Promise<string | undefined | null> {
    if (!saved.bootState) return undefined;
    const dataDir = dataDirOf(this.slot, this.o.workingDir);
    const disk = dataDir ? path.join(dataDir, BOOT_STATE_DIR, saved.bootState, 'disk.qcow2') : undefined;
    return disk && await fsp.access(disk).then(() => true, () => false) ? disk : null;
  }

  private attach(vm: QemuVm): void {
    this.vm = vm;
    this.paused = false;
    this.o.app.setOtherPid(vm.pid);
    void vm.exited.then(() => this.poke());
  }

  /**
   * A boot that fails because the VM died or hung (killed, crashed, panicked, timed out) is retried
   * like a VM dying later; QEMU missing or an unusable image is not.
   */
  private async boot<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      const code = (e as AltplatError).code;
      if (['VM_EXITED', 'VM_SOCKET_CLOSED', 'VM_BOOT_TIMEOUT', 'VM_KERNEL_PANIC', 'VM_AGENT_FAILED', 'VM_KVM_FAILED', 'QGA_TIMEOUT', 'QMP_TIMEOUT'].includes(code)) {
        throw new VmDied(`${code}: ${(e as Error).message}`);
      }
      throw e;
    }
  }

  /** Turns a VM dying under an agent call into VmDied, so the run loop can restore. */
  private async guard<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      if (this.vm?.hasExited || (e as AltplatError).code === 'VM_SOCKET_CLOSED') {
        await this.vm?.exited;
        throw new VmDied(`QEMU exited: ${(e as Error).message}`);
      }
      throw e;
    }
  }

  /** Quit and abort are honoured between steps of start-up as well as in the main loop. */
  private async checkInterrupts(): Promise<void> {
    if (this.pending === 'abort') await this.abort();
    if (this.pending === 'quit') await this.quit();
  }

  /** The main loop: mirrors suspend/resume onto the VM, checkpoints, reports progress; returns the exit code. */
  private async supervise(): Promise<number> {
    const { app, log } = this.o;
    const pid = this.state.guestPid;
    if (pid === undefined) throw new AltplatError('MANAGER_NO_PROGRAM', 'no guest program to supervise');
    const estimate = this.job.flops > 0 && this.job.rscFpopsEst > 0 ? this.job.rscFpopsEst / this.job.flops : 0;
    let lastProgress = 0;
    let lastTick = Date.now();
    let delay = EXIT_POLL_MIN_MS;
    // With the job disk the start helper writes a line on the console as the program ends (after the
    // remount): a change of the console log asks for the exit status at once, so the polling itself
    // can stay slow (each poll costs the guest CPU). Anything else the guest writes there only costs
    // an extra poll.
    let consoleChanged = false;
    const watch = this.vm!.opts.jobDisk ? watchFile(path.join(this.slot, CONSOLE_LOG), () => { consoleChanged = true; this.poke(); }) : undefined;
    const maxDelay = watch ? WATCHED_POLL_MS : EXIT_POLL_MAX_MS;
    if (watch) delay = maxDelay;
    try {
      for (;;) {
        const vm = this.vm!;
        await this.checkInterrupts();
        if (vm.hasExited) throw new VmDied(`QEMU exited (${JSON.stringify(await vm.exited)})`);
        const now = Date.now();
        if (!this.paused) this.runSecs += (now - lastTick) / 1000;
        lastTick = now;

        if (app.suspended && !this.paused) {
          await this.guard(vm.pause());
          this.paused = true;
          log('suspended: VM paused');
        } else if (!app.suspended && this.paused) {
          await this.guard(vm.resume());
          this.paused = false;
          delay = EXIT_POLL_MIN_MS;
          log('resumed: VM running');
        }

        if (!this.paused) {
          const st = await this.guard(vm.qga.execStatus(pid));
          if (st.exited) {
            this.cpuLive = await vm.cpuSeconds() || this.cpuLive;
            const how = startOutcome(st, this.job);
            if (how.kind === 'cannot-start') throw new CannotStart(how.message);
            if (how.kind === 'prepare-failed') throw how.error;
            this.diskReadOnly = how.diskReadOnly;
            if (st.exitCode !== undefined || st.signal === undefined) return st.exitCode ?? 128;
            // Killed by a signal in the guest: said plainly, and reported as 128 + the signal number,
            // the status a shell gives such a program (the result then carries that exit status).
            const name = Object.entries(osConstants.signals).find(([, n]) => n === st.signal)?.[0] ?? 'unknown signal';
            log(`program killed by signal ${st.signal} (${name}) in the guest; exit status ${128 + st.signal}`);
            return 128 + st.signal;
          }
        }
        if (!this.paused && now - lastProgress >= PROGRESS_POLL_MS) {
          lastProgress = now;
          this.cpuLive = await vm.cpuSeconds() || this.cpuLive;
          const own = await this.guard(readGuestFraction(vm.qga, this.config.guestDir));
          const elapsed = this.state.elapsedAtCheckpoint + this.runSecs;
          app.fractionDone(own ?? (estimate > 0 ? Math.min(0.99, elapsed / estimate) : 0));
          const period = checkpointPeriodSec(app);
          if (period > 0 && now - this.lastCheckpointAt >= period * 1000) await this.checkpoint();
        } else if (this.paused) {
          this.cpuLive = await vm.cpuSeconds() || this.cpuLive;
        }
        // After the console line the helper exits within moments: ask again soon, then back off.
        if (consoleChanged) delay = EXIT_POLL_MIN_MS;
        consoleChanged = false;
        await this.sleep(this.paused ? PROGRESS_POLL_MS : delay);
        delay = Math.min(maxDelay, delay * 2);
      }
    } finally {
      watch?.close();
    }
  }

  /**
   * Rolling checkpoint: save under the tag not in use, record it in the state file (atomically),
   * then delete the previous one. A crash at any point leaves the state file naming a complete snapshot.
   */
  async checkpoint(): Promise<void> {
    const vm = this.vm!;
    const prev = this.state.checkpoint;
    const tag = prev === CHECKPOINT_TAGS[0] ? CHECKPOINT_TAGS[1] : CHECKPOINT_TAGS[0];
    const t0 = Date.now();
    // A half-made snapshot of a crashed attempt may hold this tag; it was never recorded as ours.
    await vm.deleteSnapshot(tag).catch(() => undefined);
    await this.guard(vm.saveSnapshot(tag));
    const elapsed = this.state.elapsedAtCheckpoint + this.runSecs;
    this.state = { ...this.state, checkpoint: tag, elapsedAtCheckpoint: elapsed };
    this.runSecs = 0;
    await writeState(this.slot, this.state);
    if (prev) await vm.deleteSnapshot(prev).catch((e) => this.o.log(`could not delete old checkpoint ${prev}: ${(e as Error).message}`));
    this.lastCheckpointAt = Date.now();
    this.o.app.checkpointCompleted();
    this.o.log(`checkpoint ${tag} saved in ${Date.now() - t0} ms`);
  }

  /** The program ended: collect its outputs, power off, and finish with its exit code. */
  private async complete(exitCode: number): Promise<never> {
    const vm = this.vm!;
    this.mark('program exit seen');
    const t0 = Date.now();
    const { qga } = vm;
    const gd = this.config.guestDir;
    const viaAgent = (name: string, r: Parameters<typeof copyOutputViaAgent>[5]) => copyOutputViaAgent(qga, this.slot, this.job, gd, name, r);
    const onDisk = this.tools && vm.opts.jobDisk
      ? await this.guard(copyOutDisk(this.tools, qga, this.slot, this.job, gd, viaAgent, this.o.log, this.diskReadOnly))
      : undefined;
    const report = onDisk ?? await this.guard(copyOut(qga, this.slot, this.job, gd));
    this.o.log(`program ended with exit status ${exitCode}; outputs copied${onDisk ? ' from the job disk' : ''} in ${Date.now() - t0} ms: ${report.copied.join(', ') || 'none'}${report.missing.length ? `; missing: ${report.missing.join(', ')}` : ''}${report.tooBig.length ? `; over max_nbytes, not copied: ${report.tooBig.join(', ')}` : ''}`);
    this.mark('outputs copied');
    this.cpuLive = await vm.cpuSeconds() || this.cpuLive;
    // With the job disk read, nothing in the guest is needed any more: QEMU is quit from the host
    // (no guest shutdown to wait for). Through the agent, the guest powers off cleanly as before.
    if (onDisk) await vm.quit();
    else await vm.powerOff();
    this.vm = undefined;
    this.mark('VM ended');
    const parts = this.marks.map(([step, t], i) => `${step} +${Math.round(t - (i ? this.marks[i - 1]![1] : 0))}`);
    this.o.log(`time breakdown (ms): ${parts.join(', ')}; total ${Math.round(performance.now())}`);
    return this.o.app.finish(exitCode);
  }

  /** Quit: power off and keep the checkpoint; exit 0 without boinc_finish so the client restarts us. */
  private async quit(): Promise<never> {
    this.o.log(`quit requested: powering off, keeping checkpoint ${this.state?.checkpoint ?? '(none yet)'}`);
    await this.vm?.quit();
    this.vm = undefined;
    await this.o.app.detach();
    this.o.exit(0);
    throw new Ended();
  }

  /** Abort: kill the VM and exit 194 (EXIT_ABORTED_BY_CLIENT, lib/error_numbers.h). */
  private async abort(): Promise<never> {
    this.o.log('abort requested: killing the VM');
    await this.vm?.kill();
    this.vm = undefined;
    await this.o.app.detach();
    this.o.exit(EXIT_ABORTED_BY_CLIENT);
    throw new Ended();
  }

  private async dropVm(): Promise<void> {
    if (this.vm) {
      this.cpuDone += this.cpuLive;
      this.cpuLive = 0;
      await this.vm.kill();
      this.vm = undefined;
    }
  }
}

/**
 * Seconds between checkpoints: init_data.xml's checkpoint_period (the volunteer's "at most every N
 * seconds" preference), unless ALTPLAT_CHECKPOINT_PERIOD overrides it (for trying the platform by hand).
 */
function checkpointPeriodSec(app: BoincApp): number {
  const env = Number(process.env.ALTPLAT_CHECKPOINT_PERIOD);
  if (Number.isFinite(env) && env > 0) return env;
  return app.standalone ? 0 : app.checkpointPeriod;
}

/** fs.watch of one file, or undefined where the host cannot watch (the caller then only polls). */
function watchFile(file: string, onChange: () => void): FSWatcher | undefined {
  try {
    const w = fsWatch(file, { persistent: false }, onChange);
    w.on('error', () => w.close());
    return w;
  } catch {
    return undefined;
  }
}

class VmDied extends Error {}
class Ended extends Error {}
/** The guest cannot run the main program (e.g. its ELF loader is missing); nothing was started. */
class CannotStart extends Error {}
const never = (): Promise<never> => new Promise<never>(() => undefined);

/** `manager --config vm_config.xml --working-dir DIR --platform NAME` as the lifecycle starts it. */
export function parseManagerArgs(argv: string[], env: NodeJS.ProcessEnv): { configFile: string; workingDir: string; platform?: string; jobFile: string } {
  const { configFile, workingDir, platform, jobFile } = parseManagerCommandLine(argv, env, 'vm_config.xml');
  if (!workingDir) throw new AltplatError('MANAGER_USAGE', 'the manager needs --working-dir (or ALTPLAT_WORKING_DIR)');
  return { configFile, workingDir, platform, jobFile };
}
