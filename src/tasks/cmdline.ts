/** C isspace() in the C locale: what separates arguments in parse_command_line. */
const C_SPACE = new Set([' ', '\t', '\n', '\v', '\f', '\r']);

/**
 * Split a BOINC command line into argv exactly as lib/str_util.cpp parse_command_line does — the argv the
 * client gives a native app (client/app_start.cpp), so a program sees the same arguments natively as
 * through a manager. A token starting with ' or " runs to the next same quote (quotes removed), and that
 * quote also ends the token (`"ab"cd` gives `ab`, `cd`); a quote inside an unquoted token is an ordinary
 * character (`a"b`); the character right after an opening quote is never taken as the closing one (the
 * C loop steps past it), so `"" x` is the single argument `" x`; an unclosed quote runs to the end; no
 * backslash escapes. No shell is ever involved. Checked against libboinc's own function in the tests.
 */
export function splitCommandLine(s: string): string[] {
  const out: string[] = [];
  type State = 'none' | 'single' | 'double' | 'plain';
  let state: State = 'none';
  let cur = '';
  const end = () => { out.push(cur); cur = ''; state = 'none'; };
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    switch (state) {
      case 'none':
        if (C_SPACE.has(ch)) break;
        if (ch === "'" || ch === '"') {
          state = ch === "'" ? 'single' : 'double';
          // p++ to the token's first character, then the loop's own p++: that character is taken as is.
          if (i + 1 < s.length) cur += s[++i];
        } else {
          state = 'plain';
          cur = ch;
        }
        break;
      case 'single':
      case 'double':
        if (ch === (state === 'single' ? "'" : '"')) end();
        else cur += ch;
        break;
      case 'plain':
        if (C_SPACE.has(ch)) end();
        else cur += ch;
        break;
    }
  }
  if (state !== 'none') out.push(cur);
  return out;
}

/** client/app_start.cpp: command line = workunit command_line + " " + app version cmdline. */
export function taskCommandLine(wuCommandLine: string, avCmdline: string): string {
  return [wuCommandLine, avCmdline].filter((s) => s.trim() !== '').join(' ');
}
