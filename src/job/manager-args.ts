import * as path from 'node:path';
import { AltplatError } from '../errors.js';
import { JOB_FILE } from './jobfile.js';

/** What a reference manager is started with (docs/MANAGER_CONTRACT.md): its command line and environment. */
export interface ManagerCommandLine {
  /** Its backend config, relative to the working copy (--config). */
  configFile: string;
  /** The working copy (--working-dir, else ALTPLAT_WORKING_DIR); absent when neither gives it. */
  workingDir?: string;
  platform?: string;
  jobFile: string;
  /** `--cleanup`: the opt-in verb the client runs in the slot (a manager without one ignores it). */
  cleanup: boolean;
}

/**
 * `<manager> --config FILE --working-dir DIR --platform NAME [--cleanup]`, as the lifecycle starts every
 * reference manager; one parser for the QEMU and the container manager.
 */
export function parseManagerCommandLine(argv: string[], env: NodeJS.ProcessEnv, defaultConfig: string): ManagerCommandLine {
  let configFile = defaultConfig;
  let workingDir = env.ALTPLAT_WORKING_DIR;
  let platform = env.ALTPLAT_PLATFORM;
  let cleanup = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new AltplatError('MANAGER_USAGE', `${a} needs a value`);
      return v;
    };
    if (a === '--config') configFile = val();
    else if (a === '--working-dir') workingDir = val();
    else if (a === '--platform') platform = val();
    else if (a === '--cleanup') cleanup = true;
  }
  return {
    configFile, workingDir: workingDir === undefined ? undefined : path.resolve(workingDir), platform,
    jobFile: env.ALTPLAT_JOB_FILE ?? path.resolve(JOB_FILE), cleanup,
  };
}
