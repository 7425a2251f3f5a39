/**
 * The contract between the task lifecycle (src/tasks) and BOINC's client<->app channel (src/ipc).
 * Both sides are implemented against these types; see shared/docs/boinc-protocol.md §6.
 */

/** Process states, numbered as lib/common_defs.h numbers them (ACTIVE_TASK::task_state). */
export enum ProcessState {
  UNINITIALIZED = 0,
  EXECUTING = 1,
  EXITED = 2,
  WAS_SIGNALED = 3,
  EXIT_UNKNOWN = 4,
  ABORT_PENDING = 5,
  ABORTED = 6,
  COULDNT_START = 7,
  QUIT_PENDING = 8,
  SUSPENDED = 9,
  COPY_PENDING = 10,
}

/** What the app last reported on the app_status channel (client's ACTIVE_TASK::get_app_status_msg). */
export interface AppStatus {
  currentCpuTime: number;
  checkpointCpuTime: number;
  fractionDone: number;
  wantNetwork: boolean;
  otherPids: number[];
  wss?: number;
  /** From the graphics_reply channel (api/boinc_api.cpp): what a VM manager offers for viewing. */
  webGraphicsUrl?: string;
  remoteDesktopAddr?: string;
  /** Monotonic clock (ms) when the last status message arrived; undefined before the first. */
  receivedAt?: number;
}

export type ControlMessage = 'suspend' | 'resume' | 'quit' | 'abort' | 'reread_app_info';

/** Something the client side wants the lifecycle to do after a poll. */
export type ControlAction =
  | { kind: 'kill'; reason: 'quit_timeout' | 'abort_timeout' | 'control_stuck'; message: string }
  | { kind: 'checkpoint'; checkpointCpuTime: number; fractionDone: number }
  | { kind: 'trickle_up' }
  | { kind: 'upload_file' };

/**
 * Client side of one task's boinc_mmap_file. The lifecycle calls `poll()` once per TASK_POLL_PERIOD
 * (1 s, client/client_state.h) and carries out the actions it returns; control requests change
 * `state` at once (as ACTIVE_TASK does) and reach the app through BOINC's per-task message queue.
 */
export interface ClientControl {
  readonly state: ProcessState;
  readonly status: AppStatus;
  suspend(): void;
  resume(): void;
  /** Queue `<quit/>`; state QUIT_PENDING; 60 s later poll() returns a kill action (QUIT_TIMEOUT). */
  quit(): void;
  /** Queue `<abort/>`; state ABORT_PENDING; 60 s later poll() returns a kill action (ABORT_TIMEOUT). */
  abort(): void;
  rereadAppInfo(): void;
  /** Deliver queued control, send a heartbeat, read app_status/trickle_up; `now` = monotonic ms. */
  poll(now: number, heartbeat: { wss: number; maxWss: number; networkSuspended?: boolean }): Promise<ControlAction[]>;
  close(): Promise<void>;
}
