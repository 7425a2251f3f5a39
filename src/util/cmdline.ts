/** C isspace() in the C locale: what separates arguments in parse_command_line. */
const C_SPACE = new Set([' ', '\t', '\n', '\v', '\f', '\r']);

/**
 * Split a BOINC command line into argv exactly as lib/str_util.cpp parse_command_line does — the argv the
 * client gives a native app (client/app_start.cpp). The lifecycle uses it for native runs and the QEMU
 * manager for the program in the guest, so a program gets the same arguments natively and in the VM:
 *   - C isspace characters separate arguments; there are no backslash escapes;
 *   - an argument that *starts* with ' or " runs to the next same quote, without the quotes, and that
 *     quote also ends the argument (`"a b"c` gives `a b` and `c`);
 *   - a quote inside an unquoted argument is an ordinary character (`a"b` stays `a"b`);
 *   - the character right after an opening quote is never taken as the closing one (the C loop steps
 *     past it), so `'' x` is the single argument `' x`; an unclosed quote runs to the end of the line.
 * Checked against libboinc's own function in the tests. No shell is ever involved.
 */
export function splitCommandLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (C_SPACE.has(c)) {
      i++;
    } else if (c === '"' || c === "'") {
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
