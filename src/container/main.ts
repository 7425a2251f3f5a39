/**
 * Entry point of the container backend's manager (bundled into alt_platforms/<name>/image/
 * container-manager.mjs by scripts/build-image.sh). Started by the client with cwd = the slot:
 *   container_manager --config container_config.xml --working-dir <working copy> --platform <name>
 * and, as the definition's <cleanup_cmdline>, after the client killed the manager's process group:
 *   container_manager --cleanup        (cwd = the slot; removes the slot's container; exit 0)
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BoincApp } from '../ipc/app.js';
import { managerLog, runManagerMain } from '../job/manager-main.js';
import { cleanupSlot } from './cleanup.js';
import { loadContainerConfig } from './config.js';
import { Engine } from './engine.js';
import { ContainerManager } from './manager.js';
import { parseContainerManagerArgs } from './args.js';

const log = managerLog('altplat-container');

/** The folder the bundle was started from: `<platform folder>/image/container-manager.mjs`. */
function bundleFolder(): string {
  return path.dirname(path.dirname(fileURLToPath(import.meta.url)));
}

async function main(): Promise<void> {
  const args = parseContainerManagerArgs(process.argv.slice(2), process.env, bundleFolder());
  if (args.cleanup) {
    const config = await loadContainerConfig(path.resolve(args.workingDir, args.configFile));
    const removed = await cleanupSlot(new Engine(config.engine, config.engineConf), process.cwd());
    log(`cleanup: ${removed.length ? `removed ${removed.join(', ')}` : 'no container of this slot'}`);
    process.exit(0);
  }
  const app = await BoincApp.init({ log });
  log(`platform ${args.platform ?? '?'}, working copy ${args.workingDir}`);
  const manager = new ContainerManager({ ...args, slotDir: app.slotDir, app, log, exit: (code) => process.exit(code) });
  await manager.run();
}

runManagerMain(main, log);
