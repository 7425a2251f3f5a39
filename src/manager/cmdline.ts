/**
 * Splits a BOINC command line into arguments exactly as BOINC's parse_command_line does
 * (lib/str_util.cpp), which is how the client builds a native app's argv (client/app_start.cpp), so a
 * program gets the same argv in the VM as natively:
 *   - C isspace characters (space, \t, \n, \v, \f, \r) separate arguments;
 *   - an argument that *starts* with ' or " runs to the next same quote, without the quotes; the
 *     closing quote also ends the argument, so `"a b"c` gives `a b` and `c`;
 *   - a quote inside an unquoted argument is an ordinary character (`a"b` stays `a"b`);
 *   - the character right after an opening quote is never taken as the closing one (`'' x` is one
 *     argument `' x`);
 *   - there are no backslash escapes, and an unclosed quote runs to the end of the line.
 */
const C_SPACE = new Set([' ', '\t', '\n', '\v', '\f', '\r']);

export function splitCommandLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (C_SPACE.has(c)) {
      i++;
    } else if (c === '"' || c === "'") {
      // BOINC steps past the character after the opening quote before it looks for the closing one,
      // so `''` opens an argument that starts with ' rather than being empty.
      const end = i + 1 < line.length ? line.indexOf(c, i + 2) : -1;
      out.push(line.slice(i + 1, end < 0 ? line.length : end));
      i = end < 0 ? line.length : end + 1;
    } else {
      let j = i;
      while (j < line.length && !C_SPACE.has(line[j]!)) j++;
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
