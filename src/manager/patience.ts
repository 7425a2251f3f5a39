import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/*
 * Timeouts that count only the time the VM could have run.
 *
 * BOINC runs science at the lowest priority (nice 19, SCHED_IDLE), so QEMU and its manager get next to
 * no CPU while the volunteer's own programs keep the cores busy. A wall-clock timeout then turns a
 * starved VM into a failed task (a boot that needs 4 s of CPU does not finish in 60 s of 1 % of a core).
 * Here a timeout expires only when `budget` ms have passed that the watched threads did not spend
 * waiting for a CPU: elapsed wall time minus the largest growth of any watched thread's run-queue wait
 * (field 2 of Linux's /proc/<pid>/task/<tid>/schedstat, in ns). A guest that hangs while the host is
 * idle still times out on time; one that only waits for the host does not. Where schedstat cannot be
 * read (another OS, a kernel without CONFIG_SCHED_INFO) this is plain wall time.
 */

/** A bound even for a VM starved all along: a timeout never stretches beyond this many budgets of wall time. */
const MAX_STRETCH = 30;

/** QEMU processes whose threads count, besides this process's own. */
const watched = new Set<number>();

/** Counts `pid`'s threads' run-queue waits in every later timeout; returns the undo (call it when the process is gone). */
export function watchForStarvation(pid: number): () => void {
  watched.add(pid);
  return () => { watched.delete(pid); };
}

/** Run-queue wait so far (ns) of every thread of this process and the watched ones, keyed `pid/tid`. */
function runQueueWaits(): Map<string, number> {
  const waits = new Map<string, number>();
  for (const pid of [process.pid, ...watched]) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const wait = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[1]);
        if (Number.isFinite(wait)) waits.set(`${pid}/${tid}`, wait);
      } catch { /* the thread ended */ }
    }
  }
  return waits;
}

/*
 * A starting point may be up to this old: agent commands start a timeout every few ms, and an older
 * baseline only makes a timeout longer (the waits before it count as starvation), never shorter.
 */
const BASELINE_REUSE_MS = 250;
let lastSample: { at: number; waits: Map<string, number> } | undefined;

function baseline(): Map<string, number> {
  const now = performance.now();
  if (!lastSample || now - lastSample.at > BASELINE_REUSE_MS) lastSample = { at: now, waits: runQueueWaits() };
  return lastSample.waits;
}

/** One timeout's budget, measured from its creation. */
export class Patience {
  private readonly wall0 = performance.now();
  private readonly waits0 = baseline();

  constructor(readonly budgetMs: number) {}

  /** Wall ms since creation. */
  wallMs(): number {
    return performance.now() - this.wall0;
  }

  /** Ms that count against the budget: wall time minus the longest a watched thread waited for a CPU since creation. */
  countedMs(): number {
    const wall = this.wallMs();
    let starved = 0;
    for (const [key, wait] of runQueueWaits()) {
      const before = this.waits0.get(key) ?? 0; // a thread born since: all its wait is new
      starved = Math.max(starved, (wait - before) / 1e6);
    }
    return Math.max(0, wall - Math.min(starved, wall));
  }

  /** Ms still left; ≤ 0 once expired. Reads /proc only when the wall clock alone says the time is up. */
  remainingMs(): number {
    const wall = this.wallMs();
    if (wall < this.budgetMs) return this.budgetMs - wall;
    if (wall >= this.budgetMs * MAX_STRETCH) return 0;
    return this.budgetMs - this.countedMs();
  }

  expired(): boolean {
    return this.remainingMs() <= 0;
  }
}

/**
 * setTimeout for a VM timeout: `onExpire` runs once `ms` of time that counts have passed (re-armed for
 * what is left while the VM was starved). Returns the cancel function.
 */
export function patientTimeout(ms: number, onExpire: () => void): () => void {
  const patience = new Patience(ms);
  let timer: NodeJS.Timeout;
  const arm = (delay: number) => {
    timer = setTimeout(() => {
      const left = patience.remainingMs();
      if (left <= 0) onExpire();
      else arm(Math.max(left, 20));
    }, delay);
  };
  arm(ms);
  return () => clearTimeout(timer);
}
