/**
 * Entry point of the reference platform's manager (bundled into alt_platforms/<name>/image/manager.mjs
 * by scripts/build-image.sh). Started by the client with cwd = the slot:
 *   manager --config vm_config.xml --working-dir <working copy> --platform <name>
 * with ALTPLAT_JOB_FILE naming the job description (src/job/jobfile.ts).
 */
import { BoincApp } from '../ipc/app.js';
import { managerLog, runManagerMain } from '../job/manager-main.js';
import { Manager, parseManagerArgs } from './manager.js';

const log = managerLog('altplat-qemu');

async function main(): Promise<void> {
  const args = parseManagerArgs(process.argv.slice(2), process.env);
  // immediateFinish: no 2 s wait in boinc_finish (docs/MANAGER_CONTRACT.md, "Finishing without libboinc's sleep").
  const app = await BoincApp.init({ log, immediateFinish: true });
  log(`platform ${args.platform ?? '?'}, working copy ${args.workingDir}`);
  const manager = new Manager({ ...args, slotDir: app.slotDir, app, log, exit: (code) => process.exit(code) });
  await manager.run();
}

runManagerMain(main, log);
