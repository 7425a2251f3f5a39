import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { cpuModelProblem, DEFAULT_CPU_MODEL, DEFAULT_MACHINE_TYPE, machineTypeProblem } from '../definition/cpu-baseline.js';
import { AltplatError } from '../errors.js';
import { configValueReaders } from '../util/config-values.js';
import { childText, parseXml, type XmlNode } from '../util/xml.js';

export type AccelChoice = 'auto' | 'kvm' | 'tcg';

/** The platform folder's `vm_config.xml`: what to boot and how big; paths made absolute. */
export interface VmConfig {
  kernel: string;
  initrd: string;
  baseDisk: string;
  append: string;
  /**
   * QEMU machine type (`-M`) and CPU model (`-cpu <model>,enforce`). The job file's values (from the
   * platform definition) replace these; these are for a manager run without them. Defaults:
   * pc-q35-7.2 and Nehalem-v1 (src/definition/cpu-baseline.ts).
   */
  machine: string;
  cpuModel: string;
  memoryMb: number;
  cpus: number;
  accel: AccelChoice;
  bootTimeoutSec: number;
  /** Directory in the guest where the job's files live and the program runs. */
  guestDir: string;
  /** Optional app-version-supplied qcow2 overlay layered between the base and the task overlay. */
  appOverlay?: string;
  /**
   * Execution domain of the program: `linux32` runs it under the PER_LINUX32 personality (busybox
   * linux32), so that on the i686 platform `uname -m` says i686 as on a real 32-bit Linux host,
   * though the guest kernel is 64-bit. Default `native`.
   */
  personality: 'native' | 'linux32';
}

const { num, inside } = configValueReaders('vm_config.xml', 'VMCONFIG');

export function parseVmConfig(text: string, baseDir: string): VmConfig {
  const doc = parseXml(text, { what: 'vm_config.xml', codePrefix: 'VMCONFIG', maxBytes: 64 << 10 });
  const root = doc.qemu_vm as XmlNode | undefined;
  if (!root || typeof root !== 'object') throw new AltplatError('VMCONFIG_MISSING_ELEMENT', 'vm_config.xml lacks <qemu_vm>');
  const need = (tag: string) => {
    const v = childText(root, tag);
    if (!v) throw new AltplatError('VMCONFIG_MISSING_ELEMENT', `vm_config.xml lacks <${tag}>`, { tag });
    return v;
  };
  const accel = (childText(root, 'accel') ?? 'auto') as AccelChoice;
  if (!['auto', 'kvm', 'tcg'].includes(accel)) {
    throw new AltplatError('VMCONFIG_BAD_VALUE', `vm_config.xml: <accel> must be auto, kvm or tcg, got '${accel}'`, { tag: 'accel', value: accel });
  }
  const guestDir = childText(root, 'guest_dir') ?? '/work/job';
  if (!guestDir.startsWith('/') || guestDir.includes("'")) {
    throw new AltplatError('VMCONFIG_BAD_VALUE', `vm_config.xml: <guest_dir> must be an absolute guest path`, { tag: 'guest_dir', value: guestDir });
  }
  const appOverlay = childText(root, 'app_overlay');
  const personality = (childText(root, 'personality') ?? 'native') as VmConfig['personality'];
  if (!['native', 'linux32'].includes(personality)) {
    throw new AltplatError('VMCONFIG_BAD_VALUE', `vm_config.xml: <personality> must be native or linux32, got '${personality}'`, { tag: 'personality', value: personality });
  }
  const machine = childText(root, 'machine') ?? DEFAULT_MACHINE_TYPE;
  const cpuModel = childText(root, 'cpu_model') ?? DEFAULT_CPU_MODEL;
  for (const [tag, value, problem] of [['machine', machine, machineTypeProblem(machine)], ['cpu_model', cpuModel, cpuModelProblem(cpuModel)]] as const) {
    if (problem) throw new AltplatError('VMCONFIG_BAD_VALUE', `vm_config.xml: <${tag}>: ${problem}`, { tag, value });
  }
  return {
    kernel: inside(baseDir, need('kernel'), 'kernel'),
    initrd: inside(baseDir, need('initrd'), 'initrd'),
    baseDisk: inside(baseDir, need('base_disk'), 'base_disk'),
    append: childText(root, 'append') ?? 'console=ttyS0 quiet panic=-1 no_timer_check',
    machine,
    cpuModel,
    memoryMb: num(root, 'memory_mb', 256, 64, 65536),
    cpus: num(root, 'cpus', 1, 1, 64),
    accel,
    bootTimeoutSec: num(root, 'boot_timeout', 60, 5, 3600),
    guestDir,
    appOverlay: appOverlay ? inside(baseDir, appOverlay, 'app_overlay') : undefined,
    personality,
  };
}

export async function loadVmConfig(file: string): Promise<VmConfig> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    throw new AltplatError('VMCONFIG_UNREADABLE', `cannot read VM config ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  return parseVmConfig(text, path.dirname(path.resolve(file)));
}
