/**
 * Split a BOINC command line into argv the way lib/str_util.cpp parse_command_line does: whitespace
 * separates arguments, double quotes group (and are removed). No shell is ever involved.
 */
export function splitCommandLine(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inArg = false;
  let quoted = false;
  for (const ch of s) {
    if (ch === '"') {
      quoted = !quoted;
      inArg = true;
    } else if (!quoted && /\s/.test(ch)) {
      if (inArg) out.push(cur);
      cur = '';
      inArg = false;
    } else {
      cur += ch;
      inArg = true;
    }
  }
  if (inArg) out.push(cur);
  return out;
}

/** client/app_start.cpp: command line = workunit command_line + " " + app version cmdline. */
export function taskCommandLine(wuCommandLine: string, avCmdline: string): string {
  return [wuCommandLine, avCmdline].filter((s) => s.trim() !== '').join(' ');
}
