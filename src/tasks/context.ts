import type { PlatformDefinition } from '../definition/types.js';
import type { ClientControl } from '../ipc/contract.js';
import type { DataPaths } from '../paths.js';
import type { AltplatEvents } from './events.js';
import type { Journal } from './journal.js';
import type { SlotAllocator } from './slot-allocator.js';
import type { AltplatSystem } from './system.js';

/** The volunteer's preferences altplat uses (lib/prefs.h GLOBAL_PREFS). */
export interface VolunteerPrefs {
  /** disk_interval: the checkpoint period handed to apps, seconds (default 60). */
  diskInterval: number;
  /** leave_apps_in_memory: a suspended task stays in memory even after it checkpointed (default false). */
  leaveAppsInMemory: boolean;
}

export const DEFAULT_PREFS: VolunteerPrefs = { diskInterval: 60, leaveAppsInMemory: false };

/** What every task of one client shares. One object, built by AltplatClient.open. */
export interface TaskContext {
  readonly paths: DataPaths;
  readonly journal: Journal;
  readonly system: AltplatSystem;
  readonly slots: SlotAllocator;
  /** The client's poll period (BOINC's TASK_POLL_PERIOD, 1 s). */
  readonly pollMs: number;
  prefs(): VolunteerPrefs;
  /** The definition discovery found usable for this platform, if any. */
  definition(platform: string): PlatformDefinition | undefined;
  openControl(slotDir: string, opts: { clock: () => number; initialCheckpointCpuTime: number }): Promise<ClientControl>;
  emit<K extends keyof AltplatEvents & string>(event: K, payload: AltplatEvents[K]): void;
  /** Test-only crash points (src/tasks/test-hooks.ts); a no-op otherwise. */
  hook(point: string): void;
  /** The client is closing or closed: no task starts any more. */
  closing(): boolean;
}
