import { promises as fsp } from 'node:fs';
import { readAccelVerdict, recordAccelVerdict, verdictKeyParts } from '../host/accel-verdict.js';
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
export { kvmPrecheck, type KvmPrecheck } from '../host/accel-verdict.js';

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

/**
 * Where this manager keeps its verdict: with a data dir, `<data>/altplat/hw_accel.json`, shared with
 * discovery (src/host/accel-verdict.ts); standalone (no init_data.xml), the per-user temp file above.
 * A verdict that cannot be recorded is logged, never fatal.
 */
export async function verdictStore(qemuBinary: string, dataDir: string | undefined, cpuModel: string | undefined, log: (s: string) => void) {
  if (dataDir === undefined) {
    const key = await verdictKey(qemuBinary);
    return {
      read: () => readVerdict(key),
      write: (v: { works: boolean; reason: string; bootSec?: number }) => writeVerdict({ ...v, key, at: new Date().toISOString() }),
    };
  }
  const parts = await verdictKeyParts(qemuBinary, cpuModel);
  return {
    read: () => readAccelVerdict(dataDir, parts),
    write: async (v: { works: boolean; reason: string; bootSec?: number }) => {
      try {
        await recordAccelVerdict(dataDir, { ...v, ...parts });
      } catch (e) {
        log(`accel: verdict not recorded: ${(e as Error).message}`);
      }
    },
  };
}
