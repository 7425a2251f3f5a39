import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadVmConfig, type VmConfig } from '../src/manager/vm-config.js';

/** Shared by the QEMU tests and bench: the built reference image (built here if missing). */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
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

/** Pids of QEMU processes whose -name carries `tagPart` (every test asserts none is left). */
export function qemuPidsTagged(tagPart: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') continue;
      if (cmd.startsWith('qemu-system') || cmd.includes('/qemu-system')) {
        if (cmd.includes(`altplat:${tagPart}`)) pids.push(Number(d));
      }
    } catch { /* exited meanwhile */ }
  }
  return pids;
}
