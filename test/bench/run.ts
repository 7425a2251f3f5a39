import { sections as discovery } from './discovery.js';
import { sections as lifecycle } from './lifecycle.js';
import { sections as ipc } from './ipc.js';
import { sections as qemu } from './qemu.js';
import { sections as container } from './container.js';
import { sections as reply } from './reply.js';
import type { BenchSection } from './harness.js';

/**
 * `npm run bench`: every figure is printed next to a baseline measured in this same run, as a ratio,
 * because machines here are noisy. Nothing is asserted. `npm run bench -- discovery` runs one group.
 */
const groups: Record<string, BenchSection[]> = { discovery, lifecycle, ipc, qemu, reply, container };
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const [group, sections] of Object.entries(groups)) {
  if (wanted.length > 0 && !wanted.includes(group)) continue;
  for (const s of sections) {
    console.log(`\n== ${group}: ${s.title}`);
    try {
      await s.run();
    } catch (e) {
      console.log(`   skipped: ${(e as Error).message}`);
    }
  }
}
