import type { BoincApp } from '../ipc/app.js';

/** What every reference manager's entry point shares: its options, its stderr log line and its fatal-error exit. */

/** What a reference manager (QEMU, container) is started with. */
export interface ManagerRunOptions {
  /** Working copy of the platform folder (--working-dir). */
  workingDir: string;
  /** The backend's config file (vm_config.xml, container_config.xml), relative to the working copy (--config). */
  configFile: string;
  slotDir: string;
  jobFile: string;
  app: BoincApp;
  log: (line: string) => void;
  /** Ends the process (tests inject their own). */
  exit: (code: number) => void;
}

/** A stderr.txt line stamped with the time and the manager's tag, e.g. `[altplat-qemu]`. */
export function managerLog(tag: string): (line: string) => void {
  const stamp = () => new Date().toISOString().replace('T', ' ').slice(0, 19);
  return (line) => void process.stderr.write(`${stamp()} [${tag}] ${line}\n`);
}

/**
 * Runs a manager's main. A failure is logged (an AltplatError by its code, anything else with its stack)
 * and ends the process with 1 without boinc_finish_called: the client reports the task as failed
 * (client/app_control.cpp).
 */
export function runManagerMain(main: () => Promise<void>, log: (line: string) => void): void {
  main().catch((e: unknown) => {
    const err = e as { code?: string; message?: string; stack?: string };
    log(`fatal: ${err.code ? `${err.code}: ` : ''}${err.message ?? String(e)}`);
    if (!err.code && err.stack) log(err.stack);
    process.exit(1);
  });
}
