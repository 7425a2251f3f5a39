/**
 * Entry point of the reference platform's manager (bundled into alt_platforms/<name>/image/manager.mjs
 * by scripts/build-image.sh). Started by the client with cwd = the slot:
 *   manager --config vm_config.xml --working-dir <working copy> --platform <name>
 * with ALTPLAT_JOB_FILE naming the job description (src/job/jobfile.ts).
 */
import { BoincApp } from '../ipc/app.js';
import { Manager, parseManagerArgs } from './manager.js';

const stamp = () => new Date().toISOString().replace('T', ' ').slice(0, 19);
const log = (line: string) => void process.stderr.write(`${stamp()} [altplat-qemu] ${line}\n`);

async function main(): Promise<void> {
  const args = parseManagerArgs(process.argv.slice(2), process.env);
  // immediateFinish: no 2 s wait in boinc_finish (docs/MANAGER_CONTRACT.md, "Finishing without libboinc's sleep").
  const app = await BoincApp.init({ log, immediateFinish: true });
  log(`platform ${args.platform ?? '?'}, working copy ${args.workingDir}`);
  const manager = new Manager({ ...args, slotDir: app.slotDir, app, log, exit: (code) => process.exit(code) });
  await manager.run();
}

main().catch((e: unknown) => {
  const err = e as { code?: string; message?: string; stack?: string };
  log(`fatal: ${err.code ? `${err.code}: ` : ''}${err.message ?? String(e)}`);
  if (!err.code && err.stack) log(err.stack);
  // A non-zero exit without boinc_finish_called: the client reports the task as failed (client/app_control.cpp).
  process.exit(1);
});
