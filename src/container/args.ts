import * as path from 'node:path';
import { AltplatError } from '../errors.js';
import { JOB_FILE } from '../job/jobfile.js';

export interface ContainerManagerArgs {
  configFile: string;
  workingDir: string;
  platform?: string;
  jobFile: string;
  cleanup: boolean;
}

export function parseContainerManagerArgs(argv: string[], env: NodeJS.ProcessEnv, dflt: string): ContainerManagerArgs {
  let configFile = 'container_config.xml';
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
  return { configFile, workingDir: path.resolve(workingDir ?? dflt), platform, jobFile: env.ALTPLAT_JOB_FILE ?? path.resolve(JOB_FILE), cleanup };
}
