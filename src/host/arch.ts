/**
 * One spelling per CPU architecture, so `<arch>` in a definition can use Node's names (`x64`), the
 * kernel's (`x86_64`, `aarch64`) or Debian's (`amd64`, `arm64`) and still match the host.
 */
const ALIASES: Record<string, string> = {
  x86_64: 'x86_64', amd64: 'x86_64', x64: 'x86_64', 'x86-64': 'x86_64',
  i386: 'i686', i486: 'i686', i586: 'i686', i686: 'i686', x86: 'i686', ia32: 'i686',
  aarch64: 'aarch64', arm64: 'aarch64', armv8l: 'arm',
  arm: 'arm', armv6l: 'arm', armv7l: 'arm', armv7: 'arm', armhf: 'arm', armel: 'arm',
  ppc64le: 'ppc64le', powerpc64le: 'ppc64le', ppc64: 'ppc64', s390x: 's390x',
  riscv64: 'riscv64', loong64: 'loongarch64', loongarch64: 'loongarch64', mips64el: 'mips64el',
};

/** The canonical name of an architecture spelling (lower-cased and returned as is when unknown). */
export function normaliseArch(a: string): string {
  const k = a.trim().toLowerCase();
  return ALIASES[k] ?? k;
}

/** The `qemu-system-<arch>` suffix that runs guests of the host's own architecture. */
export function qemuSystemArch(canonicalArch: string): string {
  switch (canonicalArch) {
    case 'i686':
      return 'i386';
    case 'ppc64le':
      return 'ppc64';
    case 'loongarch64':
      return 'loongarch64';
    default:
      return canonicalArch;
  }
}
