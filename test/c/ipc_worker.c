/*
 * A small BOINC application for altplat's interop tests, linked with Debian's real libboinc-api.
 * It counts from its checkpoint to --target, burning --step-ms of CPU per step, reports fraction
 * done, checkpoints its counter when boinc_time_to_checkpoint() says so, and finishes.
 * Files it writes in the slot (its cwd):
 *   starts.txt      one line per run: the count it started from
 *   progress.txt    "<count> <wall clock ms>" after every step (replaced atomically)
 *   checkpoint.txt  the counter, at each checkpoint
 *   result.txt      the final count, before boinc_finish
 * Options: --target N  --step-ms X  --want-network  --exit-status N  --message TEXT  --notice
 *          --temporary-exit DELAY (calls boinc_temporary_exit(DELAY, --message, --notice) at once)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "boinc_api.h"

static void write_atomic(const char* name, const char* text) {
    char tmp[256];
    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    FILE* f = fopen(tmp, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
    rename(tmp, name);
}

static long long wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char** argv) {
    long target = 200;
    double step_ms = 5;
    int want_network = 0, exit_status = 0, notice = 0, temp_delay = -1;
    const char* message = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--target") && i + 1 < argc) target = atol(argv[++i]);
        else if (!strcmp(argv[i], "--step-ms") && i + 1 < argc) step_ms = atof(argv[++i]);
        else if (!strcmp(argv[i], "--want-network")) want_network = 1;
        else if (!strcmp(argv[i], "--exit-status") && i + 1 < argc) exit_status = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--message") && i + 1 < argc) message = argv[++i];
        else if (!strcmp(argv[i], "--notice")) notice = 1;
        else if (!strcmp(argv[i], "--temporary-exit") && i + 1 < argc) temp_delay = atoi(argv[++i]);
    }
    int rc = boinc_init();
    if (rc) {
        fprintf(stderr, "ipc_worker: boinc_init failed: %d\n", rc);
        return 1;
    }
    if (temp_delay >= 0) {
        boinc_temporary_exit(temp_delay, message, notice != 0);
    }
    if (want_network) boinc_need_network();

    long count = 0;
    FILE* cp = fopen("checkpoint.txt", "r");
    if (cp) {
        if (fscanf(cp, "%ld", &count) != 1) count = 0;
        fclose(cp);
    }
    FILE* st = fopen("starts.txt", "a");
    if (st) {
        fprintf(st, "%ld\n", count);
        fclose(st);
    }
    char buf[128];
    while (count < target) {
        clock_t start = clock();
        while ((double)(clock() - start) * 1000.0 / CLOCKS_PER_SEC < step_ms) {
            /* burn CPU; a suspended worker thread sleeps in the API's SIGALRM handler instead */
        }
        count++;
        snprintf(buf, sizeof(buf), "%ld %lld\n", count, wall_ms());
        write_atomic("progress.txt", buf);
        boinc_fraction_done((double)count / (double)target);
        if (boinc_time_to_checkpoint()) {
            snprintf(buf, sizeof(buf), "%ld\n", count);
            write_atomic("checkpoint.txt", buf);
            boinc_checkpoint_completed();
        }
    }
    snprintf(buf, sizeof(buf), "%ld\n", count);
    write_atomic("result.txt", buf);
    if (message) boinc_finish_message(exit_status, message, notice != 0);
    boinc_finish(exit_status);
    return 0;
}
