import * as path from 'node:path';
import { parseManagerCommandLine } from '../job/manager-args.js';

export interface ContainerManagerArgs {
  configFile: string;
  workingDir: string;
  platform?: string;
  jobFile: string;
  cleanup: boolean;
}

export function parseContainerManagerArgs(argv: string[], env: NodeJS.ProcessEnv, dflt: string): ContainerManagerArgs {
  const a = parseManagerCommandLine(argv, env, 'container_config.xml');
  return { ...a, workingDir: a.workingDir ?? path.resolve(dflt) };
}
