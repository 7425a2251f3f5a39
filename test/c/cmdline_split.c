/*
 * Splits each line of stdin with libboinc's own parse_command_line (lib/str_util.cpp), the function the
 * client uses to build a native app's argv, and prints the arguments as JSON arrays, one line each.
 * test/run-boinc-apps.test.ts compares altplat's splitter with it.
 */
#include <stdio.h>
#include <string.h>
#include "str_util.h"

static void json_string(const char* s) {
    putchar('"');
    for (const unsigned char* p = (const unsigned char*)s; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

int main(void) {
    static char line[65536];
    static char* argv[4096];
    while (fgets(line, sizeof(line), stdin)) {
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\n') line[n - 1] = 0;
        /* The test writes "\x01" for a newline inside a command line, so lines stay lines. */
        for (char* p = line; *p; p++) if (*p == '\x01') *p = '\n';
        int argc = parse_command_line(line, argv);
        putchar('[');
        for (int i = 0; i < argc; i++) { if (i) putchar(','); json_string(argv[i]); }
        puts("]");
    }
    return 0;
}
