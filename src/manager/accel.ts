import { constants, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';

/**
 * Whether KVM can be tried at all, and the remembered verdict of a real timed boot with it.
 *
 * "/dev/kvm exists" is not enough: on the nested "PVM" hosts these machines run on, /dev/kvm opens and
 * `query-kvm` says enabled, yet a stock kernel either aborts QEMU or runs orders of magnitude slower
 * than TCG (shared/docs/qemu-recipe.md §2). So: a cheap pre-check (device usable, CPU advertises
 * vmx/svm, host is x86-64 like the guest), then the first boot with KVM is timed by the caller and
 * its verdict cached per kernel + QEMU binary, so later tasks do not pay for a failed probe again.
 */
export interface KvmPrecheck {
  usable: boolean;
  reason: string;
}

export async function kvmPrecheck(): Promise<KvmPrecheck> {
  if (process.arch !== 'x64') return { usable: false, reason: `host is ${process.arch}; the guest is x86-64` };
  try {
    await fsp.access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch (e) {
    return { usable: false, reason: `/dev/kvm not usable: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  let cpuinfo = '';
  try {
    cpuinfo = await fsp.readFile('/proc/cpuinfo', 'utf8');
  } catch {
    return { usable: false, reason: 'cannot read /proc/cpuinfo' };
  }
  const flags = cpuinfo.split('\n').find((l) => l.startsWith('flags')) ?? '';
  if (!/\b(vmx|svm)\b/.test(flags)) {
    return { usable: false, reason: '/dev/kvm exists but the CPU does not expose vmx/svm (nested or emulated KVM; too slow or broken)' };
  }
  return { usable: true, reason: 'vmx/svm present and /dev/kvm usable' };
}

export interface KvmVerdict {
  works: boolean;
  reason: string;
  /** Seconds from start to guest agent ready, when it worked. */
  bootSec?: number;
  key: string;
  at: string;
}

export function verdictCacheFile(): string {
  return path.join(os.tmpdir(), `altplat-kvm-verdict-${process.getuid?.() ?? 'u'}.json`);
}

/** The cache key: a verdict holds for one host kernel and one QEMU binary. */
export async function verdictKey(qemuBinary: string): Promise<string> {
  let qemuStamp = qemuBinary;
  try {
    const st = await fsp.stat(qemuBinary);
    qemuStamp = `${qemuBinary}@${st.size}:${st.mtimeMs}`;
  } catch { /* a PATH name: fine as it is */ }
  return `${os.release()}|${qemuStamp}`;
}

export async function readVerdict(key: string, file = verdictCacheFile()): Promise<KvmVerdict | undefined> {
  try {
    const v = JSON.parse(await fsp.readFile(file, 'utf8')) as KvmVerdict;
    return v.key === key ? v : undefined;
  } catch {
    return undefined;
  }
}

export async function writeVerdict(v: KvmVerdict, file = verdictCacheFile()): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(v) + '\n');
}
