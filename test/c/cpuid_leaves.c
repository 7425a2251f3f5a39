/*
 * Homogeneity corpus (docs/HOMOGENEITY.md): the CPUID leaves glibc reads to choose its code paths, as
 * the program sees them — leaf 1, leaf 7 subleaf 0, leaf 0xd subleaves 0 and 1, leaf 0x80000001 — one
 * line each:
 *   00000001.0 eax=000106a2 ebx=00000800 ecx=80982201 edx=078bfbff
 * plus XCR0 (the register state the OS enabled) when OSXSAVE says xgetbv may be used.
 */
#include <cpuid.h>
#include <stdio.h>

static void leaf(unsigned int l, unsigned int sub) {
  unsigned int a = 0, b = 0, c = 0, d = 0;
  unsigned int max = __get_cpuid_max(l & 0x80000000u, 0);
  if (l <= max) __cpuid_count(l, sub, a, b, c, d);
  printf("%08x.%x eax=%08x ebx=%08x ecx=%08x edx=%08x\n", l, sub, a, b, c, d);
}

int main(void) {
  leaf(1, 0);
  leaf(7, 0);
  leaf(0xd, 0);
  leaf(0xd, 1);
  leaf(0x80000001u, 0);
  unsigned int a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27))) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    printf("xcr0 %08x%08x\n", hi, lo);
  } else {
    printf("xcr0 none\n");
  }
  return 0;
}
