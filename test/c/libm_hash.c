/*
 * Homogeneity corpus (docs/HOMOGENEITY.md): hashes the exact bits of many libm results. glibc picks its
 * exp/log/pow/sin/cos/tan/atan/... code at load time from the CPU's features (FMA/AVX2 variants through
 * ifunc, in static binaries too), and the variants differ in the last bit for some inputs — so the hashes
 * tell which code ran. One line per function, then the hash of everything:
 *   exp    0123456789abcdef
 *   ...
 *   all    0123456789abcdef
 * argv[1] = results per function (default 20000: 15 functions, 300 000 results, well under a second
 * natively and a few seconds under TCG). Inputs come from a fixed xorshift64 sequence.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

static double uniform(double lo, double hi) { return lo + (hi - lo) * ((double)(next() >> 11) * 0x1p-53); }

/* FNV-1a over the 8 bytes of the result, little end first (the same on i686 and x86-64). */
static uint64_t fnv(uint64_t h, double v) {
  uint64_t b;
  memcpy(&b, &v, sizeof b);
  for (int i = 0; i < 8; i++) {
    h ^= (b >> (8 * i)) & 0xff;
    h *= 0x100000001b3ULL;
  }
  return h;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 20000;
  static const char *names[] = {"exp", "log", "pow", "sin", "cos", "tan", "atan", "atan2", "asin", "exp2",
                                "expf", "logf", "powf", "sinf", "cosf"};
  const int nf = (int)(sizeof names / sizeof *names);
  uint64_t all = 0xcbf29ce484222325ULL;
  for (int f = 0; f < nf; f++) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (long i = 0; i < n; i++) {
      double r;
      switch (f) {
      case 0: r = exp(uniform(-700, 700)); break;
      case 1: r = log(uniform(0, 1e6)); break;
      case 2: { double x = uniform(0, 100); r = pow(x, uniform(-50, 50)); break; }
      case 3: r = sin(uniform(-1e4, 1e4)); break;
      case 4: r = cos(uniform(-1e4, 1e4)); break;
      case 5: r = tan(uniform(-1e4, 1e4)); break;
      case 6: r = atan(uniform(-100, 100)); break;
      case 7: { double y = uniform(-10, 10); r = atan2(y, uniform(-10, 10)); break; }
      case 8: r = asin(uniform(-1, 1)); break;
      case 9: r = exp2(uniform(-1000, 1000)); break;
      case 10: r = expf((float)uniform(-80, 80)); break;
      case 11: r = logf((float)uniform(0, 1e6)); break;
      case 12: { float x = (float)uniform(0, 100); r = powf(x, (float)uniform(-10, 10)); break; }
      case 13: r = sinf((float)uniform(-1e4, 1e4)); break;
      default: r = cosf((float)uniform(-1e4, 1e4)); break;
      }
      h = fnv(h, r);
      all = fnv(all, r);
    }
    printf("%-6s %016llx\n", names[f], (unsigned long long)h);
  }
  printf("all    %016llx\n", (unsigned long long)all);
  return 0;
}
