export { splitCommandLine } from '../util/cmdline.js';

/** client/app_start.cpp: command line = workunit command_line + " " + app version cmdline. */
export function taskCommandLine(wuCommandLine: string, avCmdline: string): string {
  return [wuCommandLine, avCmdline].filter((s) => s.trim() !== '').join(' ');
}
