export { splitCommandLine } from '../util/cmdline.js';

/** Quotes one argument for the guest's /bin/sh so that it reaches the program unchanged. */
export function shQuote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}
