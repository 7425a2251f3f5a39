import { performance } from 'node:perf_hooks';

/** Median wall time in ms of `reps` runs of `fn` (after one warm-up run unless `warmup` is false). */
export async function medianMs(fn: () => unknown | Promise<unknown>, reps = 5, warmup = true): Promise<number> {
  if (warmup) await fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

export interface BenchLine {
  name: string;
  /** Measured value and its baseline, measured in the same run. */
  value: number;
  baseline?: number;
  unit?: string;
  /** e.g. '<= 3x' — printed, never asserted. */
  goal?: string;
  note?: string;
}

export function printLine(l: BenchLine): void {
  const unit = l.unit ?? 'ms';
  const v = `${l.value.toFixed(2)} ${unit}`;
  const parts = [`${l.name.padEnd(58)} ${v.padStart(14)}`];
  if (l.baseline !== undefined) {
    parts.push(`baseline ${l.baseline.toFixed(2)} ${unit}`.padStart(26));
    parts.push(`ratio ${(l.value / l.baseline).toFixed(2)}x`);
  }
  if (l.goal) parts.push(`(goal ${l.goal})`);
  if (l.note) parts.push(`— ${l.note}`);
  console.log(parts.join('  '));
}

export type BenchSection = { title: string; run: () => Promise<void> };
