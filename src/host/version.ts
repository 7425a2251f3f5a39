/**
 * Read a semantic version out of what a hypervisor prints for `--version`, tolerantly:
 *
 *   QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)   -> 7.2.22
 *   7.0.14_SUSEr161095   (VBoxManage --version)                  -> 7.0.14
 *   7.1.4r165100                                                 -> 7.1.4
 *   Docker version 26.1.3, build b72abbb                         -> 26.1.3
 *   podman version 4.3.1                                         -> 4.3.1
 *   vmrun version 1.17.0 build-21581411                          -> 1.17.0
 *   Version:           24.0.7   (`docker version`)              -> 24.0.7
 *
 * First choice: the number after the word "version"; else a line that starts with a number (VirtualBox
 * prints warnings before it). Two-part versions get `.0`; leading zeros are dropped. Anything else is
 * `null` — reported as unparseable, never guessed.
 */
export function parseHypervisorVersion(output: string): string | null {
  const afterWord = /\bversion:?\s+v?(\d+)\.(\d+)(?:\.(\d+))?/i.exec(output);
  const m = afterWord ?? /^\s*v?(\d+)\.(\d+)(?:\.(\d+))?/m.exec(output);
  if (!m) return null;
  const parts = [m[1], m[2], m[3] ?? '0'].map((p) => String(Number(p)));
  if (parts.some((p) => !Number.isSafeInteger(Number(p)))) return null;
  return parts.join('.');
}
