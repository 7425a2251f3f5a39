/* A CPU-bound work unit for the container benchmark: N rounds of integer and floating-point work with no
 * memory traffic, then the result and the process's own CPU and wall seconds (so the comparison does not
 * depend on what else the shared machine runs). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 200000000L;
  struct timespec w0, w1, c0, c1;
  clock_gettime(CLOCK_MONOTONIC, &w0);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
  unsigned long long x = 88172645463325252ULL;
  double acc = 0.0;
  for (long i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    acc += (double)(x & 0xffff) * 1e-5;
  }
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
  clock_gettime(CLOCK_MONOTONIC, &w1);
  printf("result %llu %.6f\ncpu %.4f\nwall %.4f\n", x, acc,
         (c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9,
         (w1.tv_sec - w0.tv_sec) + (w1.tv_nsec - w0.tv_nsec) / 1e9);
  return 0;
}
