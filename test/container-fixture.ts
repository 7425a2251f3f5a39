import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { PLATFORM_DIR } from './qemu-fixture.js';

/** The reference platform's podman configuration (the manager passes it as CONTAINERS_CONF). */
export const CONTAINERS_CONF = path.join(PLATFORM_DIR, 'containers.conf');

/** The container backend first: what the reference platform picks on these machines anyway. */
export const PODMAN_FIRST = ['podman'];

/** Runs podman as the manager does (its own configuration file, never the session's). */
export function podman(args: string[]): string {
  return execFileSync('podman', args, { encoding: 'utf8', env: { ...process.env, CONTAINERS_CONF } });
}

/** Names of the containers of a data dir (by altplat's label), any state. */
export function containersOf(dataDir: string): string[] {
  return podman(['ps', '-a', '--filter', `label=altplat.data_dir=${dataDir}`, '--format', '{{.Names}}'])
    .split('\n').map((l) => l.trim()).filter(Boolean);
}
