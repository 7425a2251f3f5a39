import { DOMParser } from '@xmldom/xmldom';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { HashCache } from '../../src/definition/hash.js';
import { discoverPlatforms } from '../../src/discovery/discover.js';
import { probeHost, type HostInfo } from '../../src/host/probes.js';
import { patchSchedulerRequest } from '../../src/scheduler/request.js';
import { printLine, type BenchSection } from './harness.js';

/**
 * Issue 2's four figures, each against a baseline measured in the same run:
 *   1. discovery of 1,000 generated platform folders vs plainly reading the same files (goal <= 3x);
 *   2. a second scan (hash cache warm) vs the first (empty cache);
 *   3. `altplat list` on one platform vs `node -e 0` (goal <= 2.5x);
 *   4. patching a 1 MB scheduler request vs parsing it with a DOM parser (xmldom) and vs a bare copy.
 */
const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
// Compiled to dist/test/bench/discovery.js: the repository is three levels up.
const repo = path.resolve(here, '..', '..', '..');
const cli = path.join(repo, 'dist', 'src', 'cli', 'main.js');

const PLATFORMS = 1000;

function definition(name: string, files: { name: string; data: Buffer; shared?: boolean }[]): string {
  return `<alt_platform>
    <name>${name}</name>
    <user_friendly_name>Generated platform ${name}</user_friendly_name>
    <version>1.0.0</version>
    <manager>
        <file_name>manager</file_name>
        <cmdline>--config vm_config.xml</cmdline>
    </manager>
    <requires>
        <hypervisor>
            <name>qemu</name>
            <version>&gt;=7.2.0</version>
        </hypervisor>
        <arch>x86_64</arch>
        <min_ram_mb>512</min_ram_mb>
    </requires>
${files.map((f) => `    <file>
        <name>${f.name}</name>
        <nbytes>${f.data.length}</nbytes>
        <sha256>${createHash('sha256').update(f.data).digest('hex')}</sha256>${f.shared ? '\n        <shared/>' : ''}
    </file>
`).join('')}</alt_platform>
`;
}

/** `count` platform folders: definition, manager script, a small VM config and a 4 KiB image, all listed with sha256. */
function generate(dataDir: string, count: number): string[] {
  const alt = path.join(dataDir, 'alt_platforms');
  const manager = Buffer.from('#!/bin/sh\nexec node "$(dirname "$0")/image/manager.mjs" "$@"\n');
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `gen-${String(i).padStart(4, '0')}-pc-linux-gnu`;
    const dir = path.join(alt, name);
    fs.mkdirSync(path.join(dir, 'image'), { recursive: true });
    const config = Buffer.from(`<vm_config><memory_mb>256</memory_mb><platform>${name}</platform></vm_config>\n`);
    const image = Buffer.alloc(4096, i % 251);
    fs.writeFileSync(path.join(dir, 'manager'), manager, { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'vm_config.xml'), config);
    fs.writeFileSync(path.join(dir, 'image', 'base.img'), image);
    fs.writeFileSync(path.join(dir, 'alt_platform.xml'), definition(name, [
      { name: 'manager', data: manager }, { name: 'vm_config.xml', data: config }, { name: 'image/base.img', data: image, shared: true },
    ]));
    for (const f of ['alt_platform.xml', 'manager', 'vm_config.xml', 'image/base.img']) files.push(path.join(dir, f));
  }
  return files;
}

/** The baseline: list the folders and read every file of every platform, synchronously (the fastest way in Node). */
function plainRead(dataDir: string): number {
  const alt = path.join(dataDir, 'alt_platforms');
  let bytes = 0;
  for (const name of fs.readdirSync(alt)) {
    for (const f of ['alt_platform.xml', 'manager', 'vm_config.xml', 'image/base.img']) bytes += fs.readFileSync(path.join(alt, name, f)).length;
  }
  return bytes;
}

async function interleaved<K extends string>(fns: Record<K, () => unknown>, reps: number): Promise<Record<K, number>> {
  const keys = Object.keys(fns) as K[];
  const times = Object.fromEntries(keys.map((k) => [k, [] as number[]])) as Record<K, number[]>;
  for (const k of keys) await fns[k](); // warm-up
  for (let i = 0; i < reps; i++) {
    for (const k of keys) {
      const t0 = performance.now();
      await fns[k]();
      times[k].push(performance.now() - t0);
    }
  }
  return Object.fromEntries(keys.map((k) => [k, median(times[k])])) as Record<K, number>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const scanSection: BenchSection = {
  title: `discovery of ${PLATFORMS} generated platform folders`,
  async run() {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'altplat-bench-'));
    try {
      generate(tmp, PLATFORMS);
      // The host is probed once, outside the timed scans (its own line below): scans compare file work.
      const tProbe0 = performance.now();
      const host: HostInfo = await probeHost();
      const probeMs = performance.now() - tProbe0;
      const opts = { dataDir: tmp, host, hostPlatforms: ['windows_x86_64'] };
      const cache = HashCache.memory();
      const runs = {
        plain: () => plainRead(tmp),
        first: async () => {
          const r = await discoverPlatforms({ ...opts, hashCache: HashCache.memory() });
          if (r.advertised.length !== PLATFORMS) throw new Error(`only ${r.advertised.length} advertised`);
        },
        second: async () => {
          const r = await discoverPlatforms({ ...opts, hashCache: cache });
          if (r.stats.hashedFiles !== 0) throw new Error('the second scan hashed files');
        },
      };
      await discoverPlatforms({ ...opts, hashCache: cache });
      // Interleaved, so that load from other processes hits all three alike; medians of 9.
      const times = await interleaved(runs, 9);
      const { plain, first, second } = times;
      printLine({ name: `first scan (empty hash cache, ${3 * PLATFORMS} sha256) vs plain reading`, value: first, baseline: plain, goal: '<= 3x' });
      printLine({ name: 'second scan (hash cache warm) vs first scan', value: second, baseline: first });
      printLine({ name: 'second scan vs plain reading', value: second, baseline: plain });
      printLine({ name: 'host probes (once per scan; qemu, docker started here)', value: probeMs, note: 'not in the scans above' });
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  },
};

const cliSection: BenchSection = {
  title: 'CLI start: `altplat list` on one platform',
  async run() {
    if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: build with npx tsc first`);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'altplat-bench-cli-'));
    try {
      generate(tmp, 1);
      const list = () => run(process.execPath, [cli, 'list', '--data-dir', tmp, '--host-platform', 'windows_x86_64']);
      const bare = () => run(process.execPath, ['-e', '0']);
      await list(); // fills the hash and probe caches, as any earlier run on this host would have
      const times = { list: [] as number[], bare: [] as number[], cold: [] as number[] };
      for (let i = 0; i < 11; i++) {
        let t = performance.now();
        await bare();
        times.bare.push(performance.now() - t);
        t = performance.now();
        await list();
        times.list.push(performance.now() - t);
        fs.rmSync(path.join(tmp, 'altplat'), { recursive: true, force: true });
        t = performance.now();
        await list();
        times.cold.push(performance.now() - t);
      }
      printLine({ name: 'altplat list (caches warm) vs node -e 0', value: median(times.list), baseline: median(times.bare), goal: '<= 2.5x' });
      printLine({ name: 'altplat list (no caches: probes started, files hashed) vs node -e 0', value: median(times.cold), baseline: median(times.bare) });
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  },
};

const requestSection: BenchSection = {
  title: 'scheduler request patching',
  async run() {
    const base = fs.readFileSync(path.join(repo, 'fixtures', 'requests', 'linux-x86_64.xml'), 'utf8');
    const entry = '    <other_result>\n        <name>wu_0000000_0</name>\n        <app_version>0</app_version>\n    </other_result>\n';
    const reps = Math.ceil((1024 * 1024 - base.length) / entry.length);
    const big = Buffer.from(base.replace('<other_results>\n', `<other_results>\n${entry.repeat(reps)}`));
    const names = ['i686-pc-linux-gnu', 'windows_x86_64'];
    const { patch, dom, copy } = await interleaved({
      patch: () => patchSchedulerRequest(big, names),
      dom: () => new DOMParser().parseFromString(big.toString('utf8'), 'text/xml'),
      copy: () => Buffer.concat([big.subarray(0, 100), Buffer.from(big.toString('latin1'), 'latin1')]),
    }, 9);
    printLine({ name: `patch a ${(big.length / 1048576).toFixed(2)} MiB request vs DOM parse (xmldom)`, value: patch, baseline: dom });
    printLine({ name: 'patch vs decoding and copying the bytes (lower bound)', value: patch, baseline: copy });
  },
};

export const sections: BenchSection[] = [scanSection, cliSection, requestSection];
