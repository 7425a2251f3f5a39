/*
 * A classic BOINC application in the shape of BOINC's own example (samples/example_app/uc2.cpp,
 * "upper_case"), linked with Debian's real libboinc-api. It copies its input to its output in upper case,
 * one character at a time, checkpointing with boinc_time_to_checkpoint/boinc_checkpoint_completed and
 * reporting boinc_fraction_done, and resumes from its checkpoint file after a restart.
 *
 * Everything else comes from its command line (workunit <command_line> + app version <cmdline>), as a
 * real project's app would take it:
 *   --in NAME / --out NAME   logical names to resolve (default "in" / "out"; may contain '/')
 *   --extra NAME             a second input to append to the output (e.g. a <copy_file/> input)
 *   --aux NAME               an optional output: written only when this flag is given
 *   --ms N                   sleep N ms per character (long enough to suspend/resume/quit)
 *   --options                boinc_init_options with direct_process_action=0: the app polls
 *                            boinc_status itself, as wrappers do (quit -> exit(0), abort -> exit 194)
 *   --trickle                send a trickle-up half way
 *   --notice TEXT            end with boinc_finish_message(0, TEXT, true)
 *   --status N               end with boinc_finish(N)
 *   --args                   print argc/argv to stderr, one per line
 *   --aid                    print what boinc_get_init_data() read from init_data.xml
 * The checkpoint file is "uc_state" in the slot: "<chars done> <bytes of output written>".
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <unistd.h>
#include "boinc_api.h"
#include "error_numbers.h"

static const char* arg_value(int argc, char** argv, const char* flag, const char* dflt) {
    for (int i = 1; i < argc - 1; i++) if (!strcmp(argv[i], flag)) return argv[i + 1];
    return dflt;
}
static int has_flag(int argc, char** argv, const char* flag) {
    for (int i = 1; i < argc; i++) if (!strcmp(argv[i], flag)) return 1;
    return 0;
}

static long read_state(void) {
    FILE* f = fopen("uc_state", "r");
    long done = 0;
    if (f) { if (fscanf(f, "%ld", &done) != 1) done = 0; fclose(f); }
    return done;
}
static void write_state(long done) {
    FILE* f = fopen("uc_state.tmp", "w");
    if (!f) return;
    fprintf(f, "%ld\n", done);
    fclose(f);
    rename("uc_state.tmp", "uc_state");
}

int main(int argc, char** argv) {
    int use_options = has_flag(argc, argv, "--options");
    int retval;
    if (use_options) {
        BOINC_OPTIONS opt;
        boinc_options_defaults(opt);
        opt.direct_process_action = 0;   /* we act on boinc_status ourselves */
        opt.multi_thread = 0;
        retval = boinc_init_options(&opt);
    } else {
        retval = boinc_init();
    }
    if (retval) { fprintf(stderr, "boinc_init failed: %d\n", retval); exit(retval); }

    if (has_flag(argc, argv, "--args")) {
        fprintf(stderr, "argc %d\n", argc);
        for (int i = 1; i < argc; i++) fprintf(stderr, "argv[%d]=%s\n", i, argv[i]);
    }
    if (has_flag(argc, argv, "--aid")) {
        APP_INIT_DATA aid;
        boinc_get_init_data(aid);
        fprintf(stderr, "aid app_name=%s app_version=%d wu_name=%s result_name=%s slot=%d\n",
            aid.app_name, aid.app_version, aid.wu_name, aid.result_name, aid.slot);
        fprintf(stderr, "aid userid=%d hostid=%d user_name=%s team_name=%s\n", aid.userid, aid.hostid, aid.user_name, aid.team_name);
        fprintf(stderr, "aid project_preferences=%s\n", aid.project_preferences ? aid.project_preferences : "(none)");
        fprintf(stderr, "aid rsc_fpops_est=%.0f computation_deadline=%.0f checkpoint_period=%.0f fraction_done_end=%.1f\n",
            aid.rsc_fpops_est, aid.computation_deadline, aid.checkpoint_period, aid.fraction_done_end);
        fprintf(stderr, "aid project_dir=%s\n", aid.project_dir);
    }
    const char* in_name = arg_value(argc, argv, "--in", "in");
    const char* out_name = arg_value(argc, argv, "--out", "out");
    const char* extra_name = arg_value(argc, argv, "--extra", NULL);
    const char* aux_name = arg_value(argc, argv, "--aux", NULL);
    int ms = atoi(arg_value(argc, argv, "--ms", "0"));

    char in_path[1024], out_path[1024];
    boinc_resolve_filename(in_name, in_path, sizeof(in_path));
    boinc_resolve_filename(out_name, out_path, sizeof(out_path));
    fprintf(stderr, "resolved %s -> %s, %s -> %s\n", in_name, in_path, out_name, out_path);

    FILE* in = boinc_fopen(in_path, "r");
    if (!in) { fprintf(stderr, "cannot open input %s\n", in_path); boinc_finish(ERR_FOPEN); }
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);

    long done = read_state();
    if (done > size) done = 0;
    fprintf(stderr, "start at %ld of %ld\n", done, size);
    /* Resume: keep exactly `done` bytes of output (a crash may have written more than checkpointed). */
    FILE* out = boinc_fopen(out_path, done > 0 ? "r+" : "w");
    if (!out) { fprintf(stderr, "cannot open output %s\n", out_path); boinc_finish(ERR_FOPEN); }
    if (done > 0) { if (ftruncate(fileno(out), done) != 0) boinc_finish(ERR_WRITE); fseek(out, done, SEEK_SET); }
    fseek(in, done, SEEK_SET);

    int trickled = 0;
    for (long i = done; i < size; i++) {
        if (use_options) {
            if (boinc_status.abort_request) { fprintf(stderr, "abort requested\n"); exit(EXIT_ABORTED_BY_CLIENT); }
            if (boinc_status.quit_request) { fprintf(stderr, "quit requested\n"); exit(0); }
            while (boinc_status.suspended && !boinc_status.quit_request && !boinc_status.abort_request) usleep(20000);
        }
        int c = fgetc(in);
        fputc(toupper(c), out);
        if (ms > 0) usleep(ms * 1000);
        if (has_flag(argc, argv, "--trickle") && !trickled && i >= size / 2) {
            char variety[] = "uc_progress", text[128];
            snprintf(text, sizeof(text), "<chars>%ld</chars>\n", i);
            boinc_send_trickle_up(variety, text);
            trickled = 1;
        }
        if (boinc_time_to_checkpoint()) {
            fflush(out);
            write_state(i + 1);
            boinc_checkpoint_completed();
        }
        boinc_fraction_done(size > 0 ? (double)(i + 1) / size : 1.0);
    }
    fclose(in);
    if (extra_name) {
        char extra_path[1024];
        boinc_resolve_filename(extra_name, extra_path, sizeof(extra_path));
        FILE* e = boinc_fopen(extra_path, "r");
        if (!e) { fprintf(stderr, "cannot open extra %s\n", extra_path); boinc_finish(ERR_FOPEN); }
        int c;
        while ((c = fgetc(e)) != EOF) fputc(c, out);
        fclose(e);
    }
    fclose(out);
    if (aux_name) {
        char aux_path[1024];
        boinc_resolve_filename(aux_name, aux_path, sizeof(aux_path));
        FILE* a = boinc_fopen(aux_path, "w");
        if (a) { fprintf(a, "aux %ld\n", size); fclose(a); }
    }
    write_state(size);
    boinc_fraction_done(1.0);
    const char* notice = arg_value(argc, argv, "--notice", NULL);
    if (notice) boinc_finish_message(0, notice, true);
    boinc_finish(atoi(arg_value(argc, argv, "--status", "0")));
    return 0;
}
