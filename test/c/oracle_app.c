/*
 * The app of the real-client oracle tests (test/boinc-client.test.ts), linked with Debian's real BOINC
 * API (libboinc-api). The same binary is run by Debian's boinc-client 7.20.5 and by altplat on the same
 * scheduler reply. It prints its argv to stderr (it reaches <stderr_out>), writes init_data.xml as it
 * read it through boinc_get_init_data (write_init_data_file, lib/app_ipc.cpp) into its output "out",
 * followed by the slot's init_data.xml byte for byte,
 * and ends the way the first word of its input "in" says:
 *   success         write "out", boinc_finish(0)
 *   error           boinc_finish(3)
 *   premature_once  first run exit(0) without finishing, the next run succeeds
 *   temporary_once  first run boinc_temporary_exit(1), the next run succeeds
 *   segv_caught     raise SIGSEGV; the API's handler (boinc_catch_signal) exits with EXIT_SIGNAL
 *   segv_default    raise SIGSEGV with the default action: the process is killed by the signal
 *   no_output       boinc_finish(0) without writing "out"
 *   big_output      write 4096 bytes to "out" (the tests give max_nbytes 1000), boinc_finish(0)
 *   forever         run until the client aborts, quits or suspends it; "go" in the slot ends it
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "app_ipc.h"
#include "boinc_api.h"
#include "util.h"

static int read_int(const char* file, int dflt) {
    FILE* f = fopen(file, "r");
    int v = dflt;
    if (f) { if (fscanf(f, "%d", &v) != 1) v = dflt; fclose(f); }
    return v;
}

static void write_int(const char* file, int v) {
    FILE* f = fopen(file, "w");
    if (f) { fprintf(f, "%d\n", v); fclose(f); }
}

static int cmp(const void* a, const void* b) { return strcmp(*(char* const*)a, *(char* const*)b); }

/* The slot as the client set it up: its entries (sorted) and where the soft links lead. */
static void print_slot(void) {
    char* names[256];
    int n = 0;
    DIR* d = opendir(".");
    struct dirent* e;
    while (d && (e = readdir(d)) && n < 256) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "runs")) continue;
        names[n++] = strdup(e->d_name);
    }
    if (d) closedir(d);
    qsort(names, n, sizeof(char*), cmp);
    fprintf(stderr, "slot:");
    for (int i = 0; i < n; i++) { fprintf(stderr, " %s", names[i]); free(names[i]); }
    fprintf(stderr, "\n");
    char path[1024];
    boinc_resolve_filename("in", path, sizeof(path));
    fprintf(stderr, "resolved in -> %s\n", path);
    boinc_resolve_filename("out", path, sizeof(path));
    fprintf(stderr, "resolved out -> %s\n", path);
}

static void write_output(int nbytes) {
    char path[1024];
    boinc_resolve_filename("out", path, sizeof(path));
    FILE* f = boinc_fopen(path, "w");
    if (!f) { fprintf(stderr, "cannot open output %s\n", path); boinc_finish(5); }
    if (nbytes > 0) {
        for (int i = 0; i < nbytes; i++) fputc('x', f);
    } else {
        APP_INIT_DATA aid;
        boinc_get_init_data(aid);
        write_init_data_file(f, aid);
        /* then the file the client wrote, byte for byte */
        fputs("=====RAW=====\n", f);
        FILE* raw = fopen("init_data.xml", "r");
        if (raw) { int c; while ((c = fgetc(raw)) != EOF) fputc(c, f); fclose(raw); }
    }
    fclose(f);
}

int main(int argc, char** argv) {
    int retval = boinc_init();
    if (retval) { fprintf(stderr, "boinc_init failed %d\n", retval); exit(retval); }
    char path[1024], mode[64] = "";
    boinc_resolve_filename("in", path, sizeof(path));
    FILE* in = boinc_fopen(path, "r");
    if (!in) { fprintf(stderr, "cannot open input %s\n", path); boinc_finish(4); }
    if (fscanf(in, "%63s", mode) < 1) { fprintf(stderr, "empty input\n"); boinc_finish(4); }
    fclose(in);
    int runs = read_int("runs", 0) + 1;
    write_int("runs", runs);
    fprintf(stderr, "oracle_app: mode %s run %d argc %d\n", mode, runs, argc);
    for (int i = 0; i < argc; i++) fprintf(stderr, "argv[%d]=%s\n", i, argv[i]);
    char cwd[1024];
    if (getcwd(cwd, sizeof(cwd))) {
        const char* slash = strrchr(cwd, '/');
        fprintf(stderr, "cwd=.../%s\n", slash ? slash + 1 : cwd);
    }
    const char* ld = getenv("LD_LIBRARY_PATH");
    fprintf(stderr, "LD_LIBRARY_PATH=%s\n", ld ? ld : "");
    if (runs == 1) print_slot();

    if (!strcmp(mode, "success")) {
        write_output(0);
        boinc_finish(0);
    } else if (!strcmp(mode, "error")) {
        boinc_finish(3);
    } else if (!strcmp(mode, "premature_once")) {
        if (runs == 1) exit(0);
        write_output(0);
        boinc_finish(0);
    } else if (!strcmp(mode, "temporary_once")) {
        if (runs == 1) boinc_temporary_exit(1, "oracle wants a pause", false);
        write_output(0);
        boinc_finish(0);
    } else if (!strcmp(mode, "segv_caught")) {
        raise(SIGSEGV);
    } else if (!strcmp(mode, "segv_default")) {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    } else if (!strcmp(mode, "no_output")) {
        boinc_finish(0);
    } else if (!strcmp(mode, "big_output")) {
        write_output(4096);
        boinc_finish(0);
    } else if (!strcmp(mode, "forever")) {
        for (;;) {
            boinc_sleep(0.2);
            if (access("go", F_OK) == 0) { write_output(0); boinc_finish(0); }
        }
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    boinc_finish(9);
    return 9;
}
