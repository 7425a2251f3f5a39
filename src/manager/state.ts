import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';

/** The manager's own state in the slot, rewritten atomically at every change that a restart needs. */
export const STATE_FILE = 'altplat_manager_state.json';
/** The task's linked clone, in the slot (the slot is the task's; the lifecycle cleans it at the end). */
export const TASK_OVERLAY = 'altplat_task.qcow2';

export interface ManagerState {
  version: 1;
  task: string;
  /** Accelerator the VM ran under: a checkpoint is restored under the same one. */
  accel: 'kvm' | 'tcg';
  /** The virtual CPU and machine type the VM ran on: a checkpoint is only restored on the same ones. */
  cpuModel?: string;
  machine?: string;
  /** guest-exec pid of the research program (valid in any checkpoint taken after it started). */
  guestPid?: number;
  /** Tag of the latest complete internal snapshot in the task overlay; absent = none yet. */
  checkpoint?: string;
  /** Seconds the program had run (not suspended) when the checkpoint was taken. */
  elapsedAtCheckpoint: number;
  /** How the job's files travel: the job disk (job-disk.ts) or the guest agent. A restore uses the same. */
  dataPath?: 'disk' | 'agent';
  /** Key of the saved booted state the task overlay is layered on (boot-state.ts); absent = cold boot. */
  bootState?: string;
}

export async function readState(slotDir: string, task: string): Promise<ManagerState | undefined> {
  try {
    const s = JSON.parse(await fsp.readFile(path.join(slotDir, STATE_FILE), 'utf8')) as ManagerState;
    // A state file of another task (a slot reused without cleanup) is not ours to resume.
    return s.version === 1 && s.task === task ? s : undefined;
  } catch {
    return undefined;
  }
}

export async function writeState(slotDir: string, s: ManagerState): Promise<void> {
  await writeFileAtomic(path.join(slotDir, STATE_FILE), JSON.stringify(s, null, 1) + '\n');
}
