import { AltplatError } from '../errors.js';

/**
 * Splits a BOINC command line into arguments the way the BOINC API's parse_command_line does
 * (lib/str_util.cpp): whitespace separates arguments, and a double-quoted stretch is one argument
 * without its quotes.
 */
export function splitCommandLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length) break;
    if (line[i] === '"') {
      const end = line.indexOf('"', i + 1);
      if (end < 0) throw new AltplatError('JOB_BAD_COMMAND_LINE', `unbalanced double quote in command line: ${line}`, { line });
      out.push(line.slice(i + 1, end));
      i = end + 1;
    } else {
      let j = i;
      while (j < line.length && !/\s/.test(line[j]!)) j++;
      out.push(line.slice(i, j));
      i = j;
    }
  }
  return out;
}

/** Quotes one argument for the guest's /bin/sh so that it reaches the program unchanged. */
export function shQuote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}
