import { performance } from 'node:perf_hooks';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { errnoCode } from '../errors.js';
import {
  ProcessState, type AppStatus, type ClientControl, type ControlAction, type ControlMessage,
} from './contract.js';
import { CONTROL_TEXT, heartbeatText, matchTag, parseAppStatus, parseStr } from './messages.js';
import { Channel, MMAP_FILE_NAME, MmapChannels, createMmapFile } from './mmap.js';
import { MsgQueue } from './msg-queue.js';

/** client/client_state.h */
export const QUIT_TIMEOUT_MS = 60_000;
export const ABORT_TIMEOUT_MS = 60_000;
/** client/app_control.cpp process_control_poll: process_control_queue.timeout(180). */
export const CONTROL_STUCK_MS = 180_000;

export interface ClientControlOptions {
  /** Monotonic milliseconds; stamps control requests (quit/abort times, queue blocking). */
  clock?: () => number;
  /**
   * Checkpoint CPU time the task already had (from its task state on a restart), so the first
   * status message is not taken for a checkpoint.
   */
  initialCheckpointCpuTime?: number;
}

/**
 * The client side of one task's channel (ACTIVE_TASK / ACTIVE_TASK_SET in client/app.cpp and
 * client/app_control.cpp), driven by the lifecycle: it calls a control method when the scheduler
 * decides, and `poll()` once a second, then carries out the returned actions (kill, record a
 * checkpoint, move trickle files).
 */
class ClientControlImpl implements ClientControl {
  private taskState = ProcessState.EXECUTING;
  private readonly appStatus: AppStatus = {
    currentCpuTime: 0, checkpointCpuTime: 0, fractionDone: 0, wantNetwork: false, otherPids: [],
  };
  private readonly queue: MsgQueue;
  private quitTime = 0;
  private abortTime = 0;
  private killRequested = false;

  constructor(private readonly channels: MmapChannels, private readonly clock: () => number, initialCheckpoint: number) {
    this.queue = new MsgQueue(channels, Channel.PROCESS_CONTROL_REQUEST);
    this.appStatus.checkpointCpuTime = initialCheckpoint;
  }

  get state(): ProcessState {
    return this.taskState;
  }

  get status(): AppStatus {
    return { ...this.appStatus, otherPids: [...this.appStatus.otherPids] };
  }

  /** Messages still waiting for the app to take the previous one (for `altplat task` and tests). */
  get pendingControl(): readonly string[] {
    return this.queue.pending;
  }

  private send(msg: ControlMessage): void {
    this.queue.send(CONTROL_TEXT[msg], this.clock());
  }

  // ACTIVE_TASK::suspend: a resume the app has not received yet is withdrawn instead of
  // following it with a suspend.
  suspend(): void {
    if (!this.queue.purge(CONTROL_TEXT.resume)) this.send('suspend');
    this.taskState = ProcessState.SUSPENDED;
  }

  // ACTIVE_TASK::unsuspend, the mirror image.
  resume(): void {
    if (!this.queue.purge(CONTROL_TEXT.suspend)) this.send('resume');
    this.taskState = ProcessState.EXECUTING;
  }

  // ACTIVE_TASK::request_quit
  quit(): void {
    this.send('quit');
    this.taskState = ProcessState.QUIT_PENDING;
    this.quitTime = this.clock();
    this.killRequested = false;
  }

  // ACTIVE_TASK::request_abort
  abort(): void {
    this.send('abort');
    this.taskState = ProcessState.ABORT_PENDING;
    this.abortTime = this.clock();
    this.killRequested = false;
  }

  // ACTIVE_TASK::request_reread_app_info (the caller rewrites init_data.xml first).
  rereadAppInfo(): void {
    this.send('reread_app_info');
  }

  /** Same order as ACTIVE_TASK_SET::poll: heartbeat, control queue, messages, timeouts. */
  async poll(now: number, heartbeat: { wss: number; maxWss: number; networkSuspended?: boolean }): Promise<ControlAction[]> {
    const actions: ControlAction[] = [];
    // Plain send_msg: if the app has not read the last heartbeat, this one is skipped.
    this.channels.sendMsg(Channel.HEARTBEAT, heartbeatText(heartbeat.wss, heartbeat.maxWss, heartbeat.networkSuspended));

    if (this.queue.timedOut(now, CONTROL_STUCK_MS)) {
      if (!this.killRequested) {
        this.killRequested = true;
        actions.push({ kind: 'kill', reason: 'control_stuck',
          message: `app took no control message for ${CONTROL_STUCK_MS / 1000} s; restarting it` });
      }
    } else {
      this.queue.poll();
    }

    const statusText = this.channels.getMsg(Channel.APP_STATUS);
    if (statusText !== undefined) {
      const before = this.appStatus.checkpointCpuTime;
      const p = parseAppStatus(statusText);
      this.appStatus.currentCpuTime = p.currentCpuTime;
      this.appStatus.checkpointCpuTime = p.checkpointCpuTime;
      if (p.fractionDone !== undefined) this.appStatus.fractionDone = p.fractionDone;
      this.appStatus.wantNetwork = p.wantNetwork;
      if (p.otherPid !== undefined) this.appStatus.otherPids = [p.otherPid]; // BOINC keeps only one
      if (p.wss !== undefined) this.appStatus.wss = p.wss;
      this.appStatus.receivedAt = now;
      // ACTIVE_TASK_SET::get_msgs: any change of checkpoint CPU time is a checkpoint.
      if (p.checkpointCpuTime !== before) {
        actions.push({ kind: 'checkpoint', checkpointCpuTime: p.checkpointCpuTime, fractionDone: this.appStatus.fractionDone });
      }
    }

    const graphics = this.channels.getMsg(Channel.GRAPHICS_REPLY);
    if (graphics !== undefined) {
      const url = parseStr(graphics, '<web_graphics_url>');
      const addr = parseStr(graphics, '<remote_desktop_addr>');
      if (url !== undefined) this.appStatus.webGraphicsUrl = url;
      if (addr !== undefined) this.appStatus.remoteDesktopAddr = addr;
    }

    // ACTIVE_TASK::get_trickle_up_msg
    const trickle = this.channels.getMsg(Channel.TRICKLE_UP);
    if (trickle !== undefined) {
      if (matchTag(trickle, '<have_new_trickle_up/>')) actions.push({ kind: 'trickle_up' });
      if (matchTag(trickle, '<have_new_upload_file/>')) actions.push({ kind: 'upload_file' });
    }

    if (!this.killRequested && this.taskState === ProcessState.ABORT_PENDING && now > this.abortTime + ABORT_TIMEOUT_MS) {
      this.killRequested = true;
      actions.push({ kind: 'kill', reason: 'abort_timeout', message: `abort request timed out after ${ABORT_TIMEOUT_MS / 1000} s` });
    }
    if (!this.killRequested && this.taskState === ProcessState.QUIT_PENDING && now > this.quitTime + QUIT_TIMEOUT_MS) {
      this.killRequested = true;
      actions.push({ kind: 'kill', reason: 'quit_timeout', message: `quit request timed out after ${QUIT_TIMEOUT_MS / 1000} s` });
    }
    return actions;
  }

  async close(): Promise<void> {
    this.channels.close();
  }
}

/**
 * Attach the client side to `<slot>/boinc_mmap_file`, creating a zeroed one if the slot has none
 * (call createMmapFile before each start to zero it, as BOINC does).
 */
export async function openClientControl(slotDir: string, opts: ClientControlOptions = {}): Promise<ClientControl & { readonly pendingControl: readonly string[] }> {
  const file = path.join(slotDir, MMAP_FILE_NAME);
  try {
    fs.accessSync(file);
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
    await createMmapFile(slotDir);
  }
  const clock = opts.clock ?? (() => performance.now());
  return new ClientControlImpl(MmapChannels.open(file), clock, opts.initialCheckpointCpuTime ?? 0);
}
