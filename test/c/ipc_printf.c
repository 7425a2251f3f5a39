/* Prints each argument (a double given as 16 hex digits of its IEEE-754 bits) as "%e %f",
   one line each, so altplat's C-style formatter can be checked against glibc's printf. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

int main(int argc, char** argv) {
    for (int i = 1; i < argc; i++) {
        uint64_t bits = strtoull(argv[i], NULL, 16);
        double x;
        memcpy(&x, &bits, sizeof(x));
        printf("%e %f\n", x, x);
    }
    return 0;
}
