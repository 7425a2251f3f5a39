/*
 * Test program for the task lifecycle, linked with Debian's real BOINC API (libboinc-api).
 * Installed as an alt platform's manager (or run natively), it does what a BOINC app does: boinc_init,
 * resolve its input "in" and output "out" through the slot's soft-link files, and end through one of
 * BOINC's exit paths. The first word of the input file picks the path:
 *   success N        N steps of 50 ms (checkpointing each), write "out", boinc_finish(0)
 *   error            boinc_finish(3): exit code 3
 *   premature_once   first run exit(0) without finishing, second run succeeds
 *   premature_always exit(0) every run (BOINC aborts after 100: ERR_TOO_MANY_EXITS)
 *   temporary_once   first run boinc_temporary_exit(1, reason), second run succeeds
 *   signal           SIGSEGV: crash by signal
 *   finish_hang      write boinc_finish_called, then never exit (300 s rule)
 *   ignore_quit      enter a critical section forever (quit is deferred: 60 s rule)
 *   no_output        boinc_finish(0) without writing "out"
 *   big_output       write 4096 bytes (the tests give max_nbytes 1000)
 *   trickle          boinc_send_trickle_up, then succeed
 *   forever          run (sleeping) until the client aborts or quits it (elapsed time limit)
 *   disk N           write N bytes to "out" (through its soft link: the project dir), then run until
 *                    the client aborts or quits it (disk usage limit)
 *   wait_go N        without checkpointing, wait until a file "go" appears in the slot; then as success N
 * Progress is kept in "ckpt" in the slot so a restarted run resumes.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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

static void write_output(const char* text, int nbytes) {
    char path[1024];
    boinc_resolve_filename("out", path, sizeof(path));
    FILE* f = boinc_fopen(path, "w");
    if (!f) { fprintf(stderr, "cannot open output %s\n", path); boinc_finish(5); }
    if (nbytes > 0) { for (int i = 0; i < nbytes; i++) fputc('x', f); }
    else fputs(text, f);
    fclose(f);
}

int main(int argc, char** argv) {
    int retval = boinc_init();
    if (retval) { fprintf(stderr, "boinc_init failed %d\n", retval); exit(retval); }
    char path[1024], mode[64] = "";
    int n = 0;
    boinc_resolve_filename("in", path, sizeof(path));
    FILE* in = boinc_fopen(path, "r");
    if (!in) { fprintf(stderr, "cannot open input %s\n", path); boinc_finish(4); }
    if (fscanf(in, "%63s %d", mode, &n) < 1) { fprintf(stderr, "empty input\n"); boinc_finish(4); }
    fclose(in);
    int runs = read_int("runs", 0) + 1;
    write_int("runs", runs);
    fprintf(stderr, "lifecycle_app: mode %s run %d argc %d\n", mode, runs, argc);
    for (int i = 1; i < argc; i++) fprintf(stderr, "arg %d: %s\n", i, argv[i]);
    fprintf(stderr, "lifecycle_app: pid %d\n", (int)getpid());
    APP_INIT_DATA aid;
    boinc_get_init_data(aid);
    fprintf(stderr, "lifecycle_app: checkpoint_period %.0f\n", aid.checkpoint_period);
    if (!strcmp(mode, "wait_go")) {
        while (access("go", F_OK) != 0) boinc_sleep(0.05);
        strcpy(mode, "success");
    }

    if (!strcmp(mode, "success")) {
        int step = read_int("ckpt", 0);
        for (; step < n; step++) {
            usleep(50000);
            boinc_fraction_done((double)(step + 1) / n);
            write_int("ckpt", step + 1);
            boinc_checkpoint_completed();
        }
        char text[256];
        snprintf(text, sizeof(text), "done %d steps in %d runs\n", n, runs);
        write_output(text, 0);
        boinc_finish(0);
    } else if (!strcmp(mode, "trickle")) {
        boinc_send_trickle_up((char*)"lc_progress", (char*)"<steps>1</steps>");
        boinc_sleep(2.5); /* the API's timer sends the message at its next 1 s tick (sleep() would be cut short by its SIGALRM) */
        write_output("trickled\n", 0);
        boinc_finish(0);
    } else if (!strcmp(mode, "error")) {
        boinc_finish(3);
    } else if (!strcmp(mode, "premature_once")) {
        if (runs == 1) exit(0);
        write_output("after premature exit\n", 0);
        boinc_finish(0);
    } else if (!strcmp(mode, "premature_always")) {
        exit(0);
    } else if (!strcmp(mode, "temporary_once")) {
        if (runs == 1) boinc_temporary_exit(1, "test wants a pause", false);
        write_output("after temporary exit\n", 0);
        boinc_finish(0);
    } else if (!strcmp(mode, "signal")) {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    } else if (!strcmp(mode, "finish_hang")) {
        write_output("hang\n", 0);
        FILE* f = fopen("boinc_finish_called", "w");
        if (f) { fputs("0\n", f); fclose(f); }
        for (;;) sleep(1);
    } else if (!strcmp(mode, "ignore_quit")) {
        boinc_begin_critical_section();
        for (;;) sleep(1);
    } else if (!strcmp(mode, "forever")) {
        for (;;) boinc_sleep(1);
    } else if (!strcmp(mode, "disk")) {
        write_output(NULL, n);
        for (;;) boinc_sleep(1);
    } else if (!strcmp(mode, "no_output")) {
        boinc_finish(0);
    } else if (!strcmp(mode, "big_output")) {
        write_output(NULL, 4096);
        boinc_finish(0);
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    boinc_finish(9);
    return 9;
}
