import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, promises as fsp, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadVmConfig, type VmConfig } from '../src/manager/vm-config.js';

/** Shared by the QEMU tests and bench: the built reference image (built here if missing). */
function findRepo(from: string): string {
  // Works from test/ (vitest) and from dist/test/ (the compiled bench): the first folder up with package.json.
  let d = from;
  while (!existsSync(path.join(d, 'package.json')) && path.dirname(d) !== d) d = path.dirname(d);
  return d;
}
export const REPO = findRepo(path.dirname(fileURLToPath(import.meta.url)));
export const PLATFORM_DIR = path.join(REPO, 'alt_platforms', 'x86_64-pc-linux-gnu');

export function ensureImage(): void {
  if (!existsSync(path.join(PLATFORM_DIR, 'image', 'base.qcow2')) || !existsSync(path.join(PLATFORM_DIR, 'alt_platform.xml'))) {
    execFileSync('bash', [path.join(REPO, 'scripts', 'build-image.sh')], { stdio: 'inherit' });
  }
}

export async function platformConfig(): Promise<VmConfig> {
  ensureImage();
  return loadVmConfig(path.join(PLATFORM_DIR, 'vm_config.xml'));
}

export function sha256File(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/**
 * Pids of QEMU processes whose -name carries `tagPart` (every test asserts none is left); with `under`,
 * only those whose command line names a path below it (the test's own data dirs: other checkouts on the
 * same machine may run the same tests, with the same tags, at the same time).
 */
export function qemuPidsTagged(tagPart: string, under?: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') continue;
      if (cmd.startsWith('qemu-system') || cmd.includes('/qemu-system')) {
        if (cmd.includes(`altplat:${tagPart}`) && (!under || cmd.includes(under))) pids.push(Number(d));
      }
    } catch { /* exited meanwhile */ }
  }
  return pids;
}

const PI_SOURCE = path.join(REPO, 'test', 'paper', 'pi.c');
/** The paper's two builds: x86-64 -O3 (SSE math) and i686 -O3 with x87 math; both static. */
export const PI_BUILDS = {
  sse: { platform: 'x86_64-pc-linux-gnu', flags: ['-O3', '-static'], expected: '3.140592575' },
  x87: { platform: 'i686-pc-linux-gnu', flags: ['-m32', '-O3', '-mfpmath=387', '-static'], expected: '3.140592860' },
} as const;

/** Compiles test/paper/pi.c (cached under .cache/pi by source hash and flags). */
export function buildPi(kind: keyof typeof PI_BUILDS): string {
  const flags = PI_BUILDS[kind].flags;
  const src = readFileSync(PI_SOURCE);
  const key = createHash('sha256').update(src).update(flags.join(' ')).digest('hex').slice(0, 16);
  const out = path.join(REPO, '.cache', 'pi', `pi_${kind}_${key}`);
  if (!existsSync(out)) {
    mkdirSync(path.dirname(out), { recursive: true });
    execFileSync('gcc', [...flags, '-o', `${out}.tmp`, PI_SOURCE]);
    renameSync(`${out}.tmp`, out);
  }
  return out;
}

/**
 * The volunteer's backend order these tests use unless told otherwise: the QEMU backends first, so
 * the QEMU tests run the VM whichever backend the host would pick (Podman on these machines).
 */
export const QEMU_FIRST = ['qemu-kvm', 'qemu-tcg'];

/**
 * Copies a built reference platform folder into `<dataDir>/alt_platforms/<name>` (what `altplat install` does)
 * and writes the data dir's backend order (`<data>/altplat/backend_order.json`; `null` = none).
 */
export function installReferencePlatform(dataDir: string, name: string, backendOrder: string[] | null = QEMU_FIRST): string {
  ensureImage();
  if (backendOrder) {
    mkdirSync(path.join(dataDir, 'altplat'), { recursive: true });
    writeFileSync(path.join(dataDir, 'altplat', 'backend_order.json'), JSON.stringify(backendOrder) + '\n');
  }
  const src = path.join(REPO, 'alt_platforms', name);
  const dest = path.join(dataDir, 'alt_platforms', name);
  mkdirSync(path.join(dest, 'image'), { recursive: true });
  const xml = readFileSync(path.join(src, 'alt_platform.xml'), 'utf8');
  for (const m of xml.matchAll(/<name>([^<]+)<\/name>\s*<nbytes>/g)) {
    copyFileSync(path.join(src, m[1]!), path.join(dest, m[1]!));
    chmodSync(path.join(dest, m[1]!), statSync(path.join(src, m[1]!)).mode & 0o777);
  }
  copyFileSync(path.join(src, 'alt_platform.xml'), path.join(dest, 'alt_platform.xml'));
  return dest;
}

export interface QemuJobSpec {
  result: string;
  platform: string;
  /** The research program (main program of the app version). */
  program: Buffer;
  commandLine?: string;
  inputs?: Array<{ openName: string; content: Buffer }>;
  /** Output open names; 'stdout.txt' receives the program's standard output. */
  outputs?: string[];
  rscFpopsEst?: number;
  /** max_nbytes of every output (default 10 MB). */
  maxNbytes?: number;
}

export const QEMU_MASTER_URL = 'https://example.org/vmtest/';
export const QEMU_PROJECT = 'example.org_vmtest';

/** A scheduler reply (file_infos before their users, as BOINC's server writes it) and its files. */
export function makeQemuReply(jobs: QemuJobSpec[]): { xml: string; files: Record<string, Buffer> } {
  const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
  const files: Record<string, Buffer> = {};
  const parts = [`<scheduler_reply>
<scheduler_version>803</scheduler_version>
<master_url>${QEMU_MASTER_URL}</master_url>
<project_name>VM test</project_name>
<app>
    <name>vmt</name>
    <user_friendly_name>VM test app</user_friendly_name>
</app>`];
  // One app version per distinct (platform, program).
  const keyOf = (j: QemuJobSpec) => `${j.platform}:${createHash('sha256').update(j.program).digest('hex')}`;
  let v = 100;
  const vnum = new Map<string, number>();
  for (const j of jobs) {
    if (vnum.has(keyOf(j))) continue;
    v++;
    vnum.set(keyOf(j), v);
    const { platform, program } = j;
    const fname = `vmt_${v}_${platform}`;
    files[fname] = program;
    parts.push(`<file_info>
    <name>${fname}</name>
    <url>https://example.org/vmtest/download/${fname}</url>
    <executable/>
    <md5_cksum>${md5(program)}</md5_cksum>
    <nbytes>${program.length}</nbytes>
</file_info>
<app_version>
    <app_name>vmt</app_name>
    <version_num>${v}</version_num>
    <api_version>8.0.0</api_version>
    <file_ref>
        <file_name>${fname}</file_name>
        <main_program/>
    </file_ref>
    <platform>${platform}</platform>
    <avg_ncpus>1.000000</avg_ncpus>
    <flops>1000000000.000000</flops>
</app_version>`);
  }
  for (const j of jobs) {
    const refs: string[] = [];
    for (const inp of j.inputs ?? []) {
      const fname = `${j.result}_${inp.openName}`;
      files[fname] = inp.content;
      parts.push(`<file_info>
    <name>${fname}</name>
    <url>https://example.org/vmtest/download/${fname}</url>
    <md5_cksum>${md5(inp.content)}</md5_cksum>
    <nbytes>${inp.content.length}</nbytes>
</file_info>`);
      refs.push(`    <file_ref>
        <file_name>${fname}</file_name>
        <open_name>${inp.openName}</open_name>
    </file_ref>`);
    }
    parts.push(`<workunit>
    <rsc_fpops_est>${j.rscFpopsEst ?? 1e10}</rsc_fpops_est>
    <name>${j.result}_wu</name>
    <app_name>vmt</app_name>
<command_line>
${j.commandLine ?? ''}
</command_line>
${refs.join('\n')}
</workunit>`);
    const outs = (j.outputs ?? ['stdout.txt']).map((o) => ({ open: o, file: `${j.result}_${o.replace(/[^A-Za-z0-9]/g, '_')}` }));
    for (const o of outs) {
      parts.push(`<file_info>
    <name>${o.file}</name>
    <generated_locally/>
    <upload_when_present/>
    <max_nbytes>${j.maxNbytes ?? 10000000}</max_nbytes>
    <url>https://example.org/vmtest_cgi/file_upload_handler</url>
</file_info>`);
    }
    parts.push(`<result>
<report_deadline>1900000000</report_deadline>
<wu_name>${j.result}_wu</wu_name>
<name>${j.result}</name>
${outs.map((o) => `    <file_ref>
        <file_name>${o.file}</file_name>
        <open_name>${o.open}</open_name>
    </file_ref>`).join('\n')}
    <platform>${j.platform}</platform>
    <version_num>${vnum.get(keyOf(j))}</version_num>
    <plan_class></plan_class>
</result>`);
  }
  parts.push('</scheduler_reply>\n');
  return { xml: parts.join('\n'), files };
}

/** Writes a reply and its files (`<dir>/files`, for `altplat run --files`). */
export function writeQemuReply(dir: string, reply: { xml: string; files: Record<string, Buffer> }, name = 'reply.xml'): { replyFile: string; filesDir: string } {
  const filesDir = path.join(dir, 'files');
  mkdirSync(filesDir, { recursive: true });
  for (const [n, b] of Object.entries(reply.files)) writeFileSync(path.join(filesDir, n), b, { mode: 0o755 });
  const replyFile = path.join(dir, name);
  writeFileSync(replyFile, reply.xml);
  return { replyFile, filesDir };
}

/*
 * Saved booted guests shared by one test run. Every fresh data dir would otherwise cold-boot and save
 * its own (≈10 s of CPU each, a third of the VM tests' time); a host that has used the platform before
 * has one, so most tests start from a copy. The state is the product's own (prepareBootState), built
 * once per run under a lock; the key does not depend on the data dir. Tests of the state itself
 * (qemu-fast) do not seed. The run is the vitest process (every worker's parent).
 */
const SEED_ROOT = path.join(os.tmpdir(), `altplat-test-bootstates-${process.ppid}`);

async function builtBootStates(): Promise<string> {
  const vmDir = path.join(SEED_ROOT, 'data', 'altplat', 'vm');
  const done = path.join(SEED_ROOT, 'done');
  if (existsSync(done)) return vmDir;
  mkdirSync(SEED_ROOT, { recursive: true });
  const lock = path.join(SEED_ROOT, 'lock');
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (existsSync(done)) return vmDir;
      // A worker killed while it held the lock: a build takes ~10 s, so one older than 3 minutes is dead.
      const held = statSync(lock, { throwIfNoEntry: false });
      if (held && Date.now() - held.mtimeMs > 180_000) rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    if (existsSync(done)) return vmDir;
    const { prepareBootState } = await import('../src/manager/boot-state.js');
    for (const name of ['x86_64-pc-linux-gnu', 'i686-pc-linux-gnu']) {
      const cfg = path.join(REPO, 'alt_platforms', name, 'vm_config.xml');
      if (!existsSync(cfg)) continue;
      ensureImage();
      const r = await prepareBootState({ dataDir: path.join(SEED_ROOT, 'data'), config: await loadVmConfig(cfg), platform: name, log: () => {} });
      if ('reason' in r) throw new Error(`saved booted state for the tests: ${r.reason}`);
    }
    writeFileSync(done, '');
    return vmDir;
  } finally {
    await fsp.rm(lock, { recursive: true, force: true });
  }
}

/** Gives a data dir the run's saved booted guests (copies, reflinked where the file system can). */
export async function seedBootStates(dataDir: string): Promise<void> {
  const from = await builtBootStates();
  const to = path.join(dataDir, 'altplat', 'vm');
  mkdirSync(to, { recursive: true });
  for (const key of readdirSync(from)) {
    if (!/^[0-9a-f]{32}$/.test(key)) continue; // not the lock files or the hash cache (it is keyed by inode)
    execFileSync('cp', ['-a', '--reflink=auto', path.join(from, key), path.join(to, `.seed-${key}`)]);
    renameSync(path.join(to, `.seed-${key}`), path.join(to, key));
  }
}
