import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import { AltplatError, isAltplatError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { readInitData, type FullInitData } from './init-data.js';
import { CONTROL_TEXT, appStatusText, matchTag, parseDouble, trickleUpText } from './messages.js';
import { Channel, MMAP_FILE_NAME, MmapChannels } from './mmap.js';
import { SlotLock } from './lockfile.js';

export { resolveFilename } from './resolve.js';

/** api/boinc_api.cpp */
export const TIMER_PERIOD_MS = 100;
export const TIMERS_PER_SEC = 10;
export const HEARTBEAT_GIVEUP_SECS = 30;
export const LOCKFILE_TIMEOUT_PERIOD_MS = 35_000;
/** How often the API checks that client_pid still exists (client_dead: every 10 s). */
export const CLIENT_CHECK_SECS = 10;
/** lib/error_numbers.h */
export { EXIT_ABORTED_BY_CLIENT } from '../boinc.js';
/** lib/app_ipc.h (file names the client looks for) */
export { FINISH_FILE as BOINC_FINISH_CALLED_FILE } from '../boinc.js';
export { TEMPORARY_EXIT_FILE } from '../boinc.js';
import { EXIT_ABORTED_BY_CLIENT, FINISH_FILE as BOINC_FINISH_CALLED_FILE, TEMPORARY_EXIT_FILE } from '../boinc.js';
export const LOCK_BUSY_DELAY_SEC = 600;
export const LOCK_BUSY_REASON = 'Waiting to acquire slot directory lock.  Another instance may be running.';

export type AppEvent = 'suspend' | 'resume' | 'quit' | 'abort' | 'reread_app_info';

export interface BoincAppOptions {
  /** The slot (the app's cwd when the client starts it). Default: process.cwd(). */
  slotDir?: string;
  /** Called to end the process; default process.exit. Tests pass their own. */
  exit?: (code: number) => void;
  /** Wait before the second lock attempt; default 35 s (LOCKFILE_TIMEOUT_PERIOD). */
  lockWaitMs?: number;
  /** Longest wait for the client to take the final status message in finish(); default 2 s. */
  finishGraceMs?: number;
  /**
   * finish() without waiting: the final status is written into the channel (overwriting an unread
   * older one), then the finish file, then the process exits at once. A deliberate difference from
   * libboinc, whose boinc_finish sleeps 2 s so its timer thread can send the last status while the
   * client still polls the app: BOINC's client reads the status channel once more when it handles
   * the exit (client/app_control.cpp handle_exited_app → get_app_status_msg), and so does altplat's,
   * so neither the final CPU time nor the fraction done is lost. Default false (libboinc's semantics).
   */
  immediateFinish?: boolean;
  /** Where diagnostic lines go; default stderr (the slot's stderr.txt under a client). */
  log?: (line: string) => void;
}

const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

/**
 * The BOINC API (api/boinc_api.cpp) for a manager written in TypeScript. It behaves like an app
 * initialised with `direct_process_action = false` (as vboxwrapper is): suspend and resume are
 * delivered as events for the manager to act on (pause the VM), and quit/abort become events too
 * when the manager listens for them; without a listener they end the process as the real API does
 * (quit: exit 0; abort: exit 194).
 */
export class BoincApp {
  readonly slotDir: string;
  /** True when there is no usable init_data.xml / boinc_mmap_file: no client, nothing reported. */
  readonly standalone: boolean;
  private data: FullInitData | undefined;
  private readonly events = new EventEmitter();
  private timer: NodeJS.Timeout | undefined;
  private ticks = 0;
  private heartbeatDeadline = HEARTBEAT_GIVEUP_SECS * TIMERS_PER_SEC;
  private isSuspended = false;
  private fraction = -1;
  private cpuSource: () => number = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  private lastCheckpointCpu: number;
  private otherPid = 0;
  private wantsNetwork = false;
  private pendingTrickleUp = false;
  private pendingUploadFile = false;
  private exiting = false;
  /** What the last heartbeat said (working set and RAM limit the client sees for this task). */
  heartbeat: { wss?: number; maxWss?: number; networkSuspended: boolean } = { networkSuspended: false };

  private constructor(
    slotDir: string,
    data: FullInitData | undefined,
    private channels: MmapChannels | undefined,
    private lock: SlotLock | undefined,
    private readonly exitFn: (code: number) => void,
    private readonly finishGraceMs: number,
    private readonly log: (line: string) => void,
    private readonly immediateFinish = false,
  ) {
    this.slotDir = slotDir;
    this.data = data;
    this.standalone = channels === undefined;
    this.lastCheckpointCpu = data?.wuCpuTime ?? 0;
  }

  /**
   * boinc_init: take the slot lock (one retry after 35 s, then a 600 s temporary exit, as the real
   * API does), read init_data.xml, attach boinc_mmap_file and start the 100 ms timer.
   */
  static async init(opts: BoincAppOptions = {}): Promise<BoincApp> {
    const slotDir = path.resolve(opts.slotDir ?? process.cwd());
    const exit = opts.exit ?? ((code: number) => process.exit(code));
    const log = opts.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
    const stamp = () => new Date().toISOString().replace('T', ' ').slice(0, 19);

    let lock = await SlotLock.tryLock(slotDir);
    if (!lock) {
      log(`${stamp()} Can't acquire lockfile - waiting ${(opts.lockWaitMs ?? LOCKFILE_TIMEOUT_PERIOD_MS) / 1000}s`);
      await new Promise((r) => setTimeout(r, opts.lockWaitMs ?? LOCKFILE_TIMEOUT_PERIOD_MS));
      lock = await SlotLock.tryLock(slotDir);
    }

    let data: FullInitData | undefined;
    let channels: MmapChannels | undefined;
    try {
      data = await readInitData(slotDir);
    } catch (e) {
      if (!isAltplatError(e)) throw e;
      log(`${stamp()} no usable init_data.xml (${e.code}); running standalone`);
    }
    if (data && data.shmKey !== -1) {
      log(`${stamp()} init_data.xml asks for System V shared memory (shm_key ${data.shmKey}); running standalone`);
    } else if (data) {
      try {
        channels = MmapChannels.open(path.join(slotDir, MMAP_FILE_NAME));
      } catch (e) {
        if (!isAltplatError(e)) throw e;
        log(`${stamp()} Can't set up shared mem: ${e.message}. Will run in standalone mode.`);
      }
    }
    const app = new BoincApp(slotDir, data, channels, lock, exit, opts.finishGraceMs ?? 2000, log, opts.immediateFinish ?? false);
    if (!lock) {
      log(`${stamp()} Can't acquire lockfile - exiting`);
      await app.temporaryExit(LOCK_BUSY_DELAY_SEC, LOCK_BUSY_REASON);
    }
    if (channels) {
      // Keeps the process alive while attached, like the API's timer thread: a suspended manager
      // may have nothing else pending. finish(), temporaryExit() and detach() stop it.
      app.timer = setInterval(() => app.tick(), TIMER_PERIOD_MS);
    }
    return app;
  }

  /** init_data.xml as read at start (and after each reread_app_info). */
  get initData(): FullInitData {
    if (!this.data) throw new AltplatError('IPC_STANDALONE', `no usable init_data.xml in ${this.slotDir}: running standalone`);
    return this.data;
  }

  /** Seconds between checkpoints the volunteer allows (init_data checkpoint_period). */
  get checkpointPeriod(): number {
    return this.data?.checkpointPeriod ?? 0;
  }

  get suspended(): boolean {
    return this.isSuspended;
  }

  on(event: AppEvent, cb: () => void): this {
    this.events.on(event, cb);
    return this;
  }

  /** boinc_fraction_done: 0..1 of this job; reported scaled into [fraction_done_start, _end]. */
  fractionDone(f: number): void {
    if (Number.isFinite(f)) this.fraction = Math.min(1, Math.max(0, f));
  }

  /**
   * Where CPU time comes from (seconds used by this run, e.g. the VM's); wu_cpu_time from earlier
   * runs is added as the API adds it. Default: this Node process's own CPU time.
   */
  setCpuTimeSource(fn: () => number): void {
    this.cpuSource = fn;
  }

  /** Report an extra process (e.g. the hypervisor) the client must kill with the task. */
  setOtherPid(pid: number): void {
    this.otherPid = pid;
  }

  /** boinc_need_network / boinc_network_done. */
  needNetwork(on: boolean): void {
    this.wantsNetwork = on;
  }

  /** Tell the client a trickle_up.xml or boinc_ufr_* file is ready (send_trickle_up_msg). */
  notifyTrickleUp(kind: 'trickle' | 'upload_file' = 'trickle'): void {
    if (kind === 'trickle') this.pendingTrickleUp = true;
    else this.pendingUploadFile = true;
  }

  private currentCpu(): number {
    return this.cpuSource() + (this.data?.wuCpuTime ?? 0);
  }

  /** boinc_checkpoint_completed: the checkpoint CPU time becomes the current CPU time. */
  checkpointCompleted(): void {
    this.lastCheckpointCpu = this.currentCpu();
  }

  private statusText(): string {
    const d = this.data!;
    const fd = this.fraction >= 0 ? d.fractionDoneStart + this.fraction * (d.fractionDoneEnd - d.fractionDoneStart) : undefined;
    return appStatusText({
      currentCpuTime: this.currentCpu(),
      checkpointCpuTime: this.lastCheckpointCpu,
      fractionDone: fd,
      wantNetwork: this.wantsNetwork,
      otherPid: this.otherPid,
    });
  }

  private emit(event: AppEvent): void {
    try {
      this.events.emit(event);
    } catch (e) {
      this.log(`handler for '${event}' failed: ${(e as Error).stack ?? e}`);
    }
  }

  /** One 0.1 s timer tick (api/boinc_api.cpp timer_handler). */
  private tick(): void {
    const ch = this.channels;
    if (!ch || this.exiting) return;
    this.ticks++;

    const hb = ch.getMsg(Channel.HEARTBEAT);
    if (hb !== undefined) {
      if (matchTag(hb, '<heartbeat/>')) this.heartbeatDeadline = this.ticks + HEARTBEAT_GIVEUP_SECS * TIMERS_PER_SEC;
      this.heartbeat = {
        wss: parseDouble(hb, '<wss>') ?? this.heartbeat.wss,
        maxWss: parseDouble(hb, '<max_wss>') ?? this.heartbeat.maxWss,
        networkSuspended: matchTag(hb, '<network_suspended/>'),
      };
    }

    const ctl = ch.getMsg(Channel.PROCESS_CONTROL_REQUEST);
    if (ctl !== undefined) this.handleControl(ctl);
    if (this.exiting || this.ticks % TIMERS_PER_SEC !== 0) return;

    if (this.clientDead()) {
      void this.exitWith(0);
      return;
    }
    // Nothing is reported while suspended, as in the real API.
    if (!this.isSuspended) ch.sendMsg(Channel.APP_STATUS, this.statusText());
    if (this.pendingTrickleUp || this.pendingUploadFile) {
      if (ch.sendMsg(Channel.TRICKLE_UP, trickleUpText(this.pendingTrickleUp, this.pendingUploadFile))) {
        this.pendingTrickleUp = false;
        this.pendingUploadFile = false;
      }
    }
  }

  private handleControl(msg: string): void {
    if (matchTag(msg, CONTROL_TEXT.suspend) && !this.isSuspended) {
      this.isSuspended = true;
      this.emit('suspend');
    }
    if (matchTag(msg, CONTROL_TEXT.resume) && this.isSuspended) {
      this.isSuspended = false;
      this.emit('resume');
    }
    if (matchTag(msg, CONTROL_TEXT.quit)) {
      if (this.events.listenerCount('quit') > 0) this.emit('quit');
      else void this.exitWith(0);
    }
    if (matchTag(msg, CONTROL_TEXT.abort)) {
      if (this.events.listenerCount('abort') > 0) this.emit('abort');
      else void this.exitWith(EXIT_ABORTED_BY_CLIENT);
    }
    if (matchTag(msg, CONTROL_TEXT.reread_app_info)) {
      void readInitData(this.slotDir).then((d) => {
        this.data = d;
        this.emit('reread_app_info');
      }, (e: unknown) => this.log(`reread of init_data.xml failed: ${(e as Error).message}`));
    }
  }

  /** api/boinc_api.cpp client_dead: client_pid gone (checked every 10 s), or 30 s without heartbeat if it is 0. */
  private clientDead(): boolean {
    const pid = this.data?.clientPid ?? 0;
    if (pid) {
      if (this.ticks % (TIMERS_PER_SEC * CLIENT_CHECK_SECS) !== 0) return false;
      try {
        process.kill(pid, 0);
        return false;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') return false; // EPERM: alive, other user
        this.log(`${new Date().toISOString()} BOINC client no longer exists - exiting`);
        return true;
      }
    }
    if (this.ticks > this.heartbeatDeadline) {
      this.log(`${new Date().toISOString()} No heartbeat from client for ${HEARTBEAT_GIVEUP_SECS} sec - exiting`);
      return true;
    }
    return false;
  }

  /** Stop the timer, release the slot lock and the channel; the process keeps running. */
  async detach(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.channels?.close();
    this.channels = undefined;
    const lock = this.lock;
    this.lock = undefined;
    await lock?.unlock();
  }

  /** boinc_exit: unlock (the lock file is deleted), then end the process. */
  private async exitWith(code: number): Promise<never> {
    if (this.exiting) return never();
    this.exiting = true;
    await this.detach();
    this.exitFn(code);
    return never();
  }

  /**
   * boinc_finish_message: report fraction done 1 and the final CPU time, write boinc_finish_called
   * (status; then, with a message, the message and "notice" or an empty line), exit with `status`.
   */
  async finish(status: number, message?: string, isNotice = false): Promise<never> {
    if (this.exiting) return never();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.fraction = 1;
    const ch = this.channels;
    if (ch && this.immediateFinish) {
      ch.sendMsgOverwrite(Channel.APP_STATUS, this.statusText());
    } else if (ch) {
      // The real API sleeps 2 s so its timer thread sends a last status while the client still
      // polls this process. Here the last status is sent directly and we wait (at most 2 s) only
      // until the client has taken it, which is up to one client poll (1 s).
      const deadline = Date.now() + this.finishGraceMs;
      const wait = () => new Promise((r) => setTimeout(r, TIMER_PERIOD_MS / 4));
      while (!ch.sendMsg(Channel.APP_STATUS, this.statusText()) && Date.now() < deadline) await wait();
      while (ch.hasMsg(Channel.APP_STATUS) && Date.now() < deadline) await wait();
    }
    let text = `${status}\n`;
    if (message !== undefined) text += `${message}\n${isNotice ? 'notice' : ''}\n`;
    await writeFileAtomic(path.join(this.slotDir, BOINC_FINISH_CALLED_FILE), text);
    this.log(`${new Date().toISOString()} called boinc_finish(${status})`);
    return this.exitWith(status);
  }

  /**
   * boinc_temporary_exit: ask the client to restart the task after `delaySec` seconds and show
   * `reason` (as a notice if `isNotice`); the process exits 0.
   */
  async temporaryExit(delaySec: number, reason: string, isNotice = false): Promise<never> {
    if (this.exiting) return never();
    const text = `${Math.trunc(delaySec)}\n${reason}\n${isNotice ? 'notice\n' : ''}`;
    await writeFileAtomic(path.join(this.slotDir, TEMPORARY_EXIT_FILE), text);
    return this.exitWith(0);
  }
}
