import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/*
 * The longest files first (measured; a fresh clone has no duration cache, and vitest would order by
 * file size): with two workers, a long file started last would run alone at the end.
 */
const LONGEST_FIRST = [
  'manager', 'qemu-fast', 'qemu', 'container', 'qemu-workunits', 'boinc-client', 'crash', 'lifecycle-control',
  'run-boinc-apps', 'ipc-app', 'ipc-interop', 'homogeneity', 'run-cli', 'lifecycle', 'cpu-model',
];
const rank = (file: string): number => {
  const i = LONGEST_FIRST.indexOf(file.replace(/^.*\//, '').replace(/\.test\.ts$/, ''));
  return i < 0 ? LONGEST_FIRST.length : i;
};

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    return base.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f.moduleId) - rank(b.f.moduleId) || a.i - b.i).map((x) => x.f);
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // QEMU and real child processes are slow under TCG on 2 cores; files run one per core.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    sequence: { sequencer: LongestFirst },
  },
});
