import { constants, promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { STATE_DIR } from '../paths.js';
import { writeFileAtomic } from '../util/atomic.js';
import { ensureOwnedDir, realDataRoot } from '../util/owned-dir.js';

/**
 * One hardware-acceleration verdict shared by discovery and the QEMU manager. As vboxwrapper reports
 * ERR_CPU_VM_EXTENSIONS_DISABLED and the BOINC client then keeps p_vm_extensions_disabled for the
 * host (client/app_control.cpp), the manager records what its timed KVM boot found in
 * `<data>/altplat/hw_accel.json`, keyed by host kernel, QEMU binary and CPU model; discovery reads
 * it — it never boots a VM — so a platform that `<requires><hw_accel/>` is not advertised where the
 * manager found KVM failing. Both sides also apply the same cheap pre-check (kvmPrecheck).
 */
export const ACCEL_VERDICT_FILE = path.join(STATE_DIR, 'hw_accel.json');

export interface KvmPrecheck {
  usable: boolean;
  reason: string;
}

export interface PrecheckInputs {
  arch?: string;
  /** Whether /dev/kvm opens read-write; default: try it. */
  kvmOpens?: () => Promise<true | string>;
  /** /proc/cpuinfo's text; default: read it. */
  cpuinfo?: () => Promise<string>;
}

async function kvmOpens(): Promise<true | string> {
  try {
    await fsp.access('/dev/kvm', constants.R_OK | constants.W_OK);
    const fh = await fsp.open('/dev/kvm', constants.O_RDWR);
    await fh.close();
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'no /dev/kvm (KVM module not loaded, or virtualization off in the firmware)';
    if (code === 'EACCES' || code === 'EPERM') return '/dev/kvm exists but this user may not open it (add the user to group kvm)';
    return `/dev/kvm does not open: ${code ?? (e as Error).message}`;
  }
}

/**
 * Can KVM be tried at all? /dev/kvm must open read-write, the CPU must advertise vmx or svm (on the
 * nested "PVM" hosts /dev/kvm opens without them, and KVM there is broken or far slower than TCG), and
 * the host must be x86-64 like the guest.
 */
export async function kvmPrecheck(inputs: PrecheckInputs = {}): Promise<KvmPrecheck> {
  const arch = inputs.arch ?? process.arch;
  if (arch !== 'x64') return { usable: false, reason: `host is ${arch}; the guest is x86-64` };
  const opens = await (inputs.kvmOpens ?? kvmOpens)();
  if (opens !== true) return { usable: false, reason: opens };
  let cpuinfo: string;
  try {
    cpuinfo = await (inputs.cpuinfo ?? (() => fsp.readFile('/proc/cpuinfo', 'utf8')))();
  } catch {
    return { usable: false, reason: 'cannot read /proc/cpuinfo' };
  }
  const flags = cpuinfo.split('\n').find((l) => l.startsWith('flags')) ?? '';
  if (!/\b(vmx|svm)\b/.test(flags)) {
    return { usable: false, reason: '/dev/kvm opens but the CPU does not expose vmx/svm (nested or emulated KVM; too slow or broken)' };
  }
  return { usable: true, reason: 'vmx/svm present and /dev/kvm opens read-write' };
}

export interface AccelVerdict {
  works: boolean;
  reason: string;
  /** Seconds from start to guest agent ready, when it worked. */
  bootSec?: number;
  kernel: string;
  qemu: string;
  cpuModel: string;
  at: string;
}

export interface VerdictKeyParts { kernel: string; qemu: string; cpuModel: string }

/** A verdict holds for one host kernel, one QEMU binary (path, size, mtime) and one virtual CPU model. */
export async function verdictKeyParts(qemuBinary: string, cpuModel = ''): Promise<VerdictKeyParts> {
  let qemu = qemuBinary;
  try {
    const st = await fsp.stat(qemuBinary);
    qemu = `${qemuBinary}@${st.size}:${Math.trunc(st.mtimeMs)}`;
  } catch { /* a PATH name: fine as it is */ }
  return { kernel: os.release(), qemu, cpuModel };
}

export const verdictKey = (k: VerdictKeyParts) => `${k.kernel}|${k.qemu}|${k.cpuModel}`;

interface VerdictFile { version: 1; verdicts: Record<string, AccelVerdict> }

/** Every recorded verdict; none when the file is missing or damaged (a damaged file is rewritten at the next record). */
export async function readAccelVerdicts(dataDir: string): Promise<AccelVerdict[]> {
  try {
    const v = JSON.parse(readFileSync(path.join(dataDir, ACCEL_VERDICT_FILE), 'utf8')) as VerdictFile; // small, read before every launch
    return v && v.version === 1 && v.verdicts && typeof v.verdicts === 'object' ? Object.values(v.verdicts) : [];
  } catch {
    return [];
  }
}

export async function readAccelVerdict(dataDir: string, key: VerdictKeyParts): Promise<AccelVerdict | undefined> {
  return (await readAccelVerdicts(dataDir)).find((v) => verdictKey(v) === verdictKey(key));
}

/**
 * Record a verdict (atomic: temp, fsync, rename), keeping the others. Refused with OWNED_DIR_NOT_REAL,
 * writing nothing, when `<data>/altplat` is not a real folder inside the data dir (a planted link must
 * not be written through; src/util/owned-dir.ts).
 */
export async function recordAccelVerdict(dataDir: string, v: Omit<AccelVerdict, 'at'> & { at?: string }): Promise<AccelVerdict> {
  const root = realDataRoot(dataDir);
  await ensureOwnedDir(root, STATE_DIR);
  const verdict: AccelVerdict = { ...v, at: v.at ?? new Date().toISOString() };
  const all: Record<string, AccelVerdict> = {};
  for (const old of await readAccelVerdicts(dataDir)) all[verdictKey(old)] = old;
  all[verdictKey(verdict)] = verdict;
  await writeFileAtomic(path.join(root, ACCEL_VERDICT_FILE), `${JSON.stringify({ version: 1, verdicts: all } satisfies VerdictFile, null, 2)}\n`);
  return verdict;
}

/**
 * What discovery makes of the manager's verdicts for this kernel: the newest one decides (a later boot
 * on the same kernel knows more). `undefined` when the manager has not tried KVM on this kernel.
 */
export async function managerVerdictForHost(dataDir: string, kernel = os.release()): Promise<AccelVerdict | undefined> {
  const mine = (await readAccelVerdicts(dataDir)).filter((v) => v.kernel === kernel);
  return mine.sort((a, b) => b.at.localeCompare(a.at))[0];
}
