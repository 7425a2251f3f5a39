import type { BenchSection } from './harness.js';

/** Filled in by the issue that owns this group. */
export const sections: BenchSection[] = [];
