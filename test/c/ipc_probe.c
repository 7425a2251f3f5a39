/*
 * Looks at a slot through Debian's real libboinc / libboinc-api, for altplat's byte-level interop
 * tests. Run with the slot as cwd. Modes:
 *   layout            sizeof(SHARED_MEM) and the byte offset of each channel
 *   dump              attach boinc_mmap_file and take every unread message (MSG_CHANNEL::get_msg);
 *                     prints "<channel> <text with \n as \\n>" per message
 *   send CH TEXT      MSG_CHANNEL::send_msg(TEXT) on channel CH ("\n" in TEXT = newline); prints 1 or 0
 *   echo N            take N messages from process_control_request and send each back on
 *                     process_control_reply, waiting for the reader between them; a live
 *                     MAP_SHARED mapping talking to pread/pwrite on the other side
 *   resolve NAME      boinc_resolve_filename(NAME)
 *   initdata          parse init_data.xml with the API and print the fields it read
 *   lock [hold]       FILE_LOCK::lock("boinc_lockfile"); prints the return code; with "hold",
 *                     keeps the lock until stdin closes
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <unistd.h>
#include "boinc_api.h"
#include "app_ipc.h"
#include "filesys.h"
#include "lib/shmem.h"

static SHARED_MEM* attach(void) {
    void* p = 0;
    int rc = attach_shmem_mmap(MMAPPED_FILE_NAME, &p);
    if (rc || !p) {
        fprintf(stderr, "attach_shmem_mmap failed: %d\n", rc);
        exit(2);
    }
    return (SHARED_MEM*)p;
}

static MSG_CHANNEL* channel(SHARED_MEM* m, int i) {
    MSG_CHANNEL* all[8] = {
        &m->process_control_request, &m->process_control_reply, &m->graphics_request, &m->graphics_reply,
        &m->heartbeat, &m->app_status, &m->trickle_up, &m->trickle_down,
    };
    return all[i];
}

static void print_escaped(const char* s) {
    for (; *s; s++) {
        if (*s == '\n') fputs("\\n", stdout);
        else if (*s == '\\') fputs("\\\\", stdout);
        else putchar(*s);
    }
}

int main(int argc, char** argv) {
    if (argc < 2) return 2;
    const char* mode = argv[1];
    if (!strcmp(mode, "layout")) {
        printf("size %zu\n", sizeof(SHARED_MEM));
        printf("channel_size %zu\n", sizeof(MSG_CHANNEL));
        printf("offsets %zu %zu %zu %zu %zu %zu %zu %zu\n",
            offsetof(SHARED_MEM, process_control_request), offsetof(SHARED_MEM, process_control_reply),
            offsetof(SHARED_MEM, graphics_request), offsetof(SHARED_MEM, graphics_reply),
            offsetof(SHARED_MEM, heartbeat), offsetof(SHARED_MEM, app_status),
            offsetof(SHARED_MEM, trickle_up), offsetof(SHARED_MEM, trickle_down));
        return 0;
    }
    if (!strcmp(mode, "dump")) {
        SHARED_MEM* m = attach();
        char buf[MSG_CHANNEL_SIZE];
        for (int i = 0; i < 8; i++) {
            if (channel(m, i)->get_msg(buf)) {
                printf("%d ", i);
                print_escaped(buf);
                putchar('\n');
            }
        }
        return 0;
    }
    if (!strcmp(mode, "send") && argc >= 4) {
        SHARED_MEM* m = attach();
        char text[4096];
        size_t n = 0;
        for (const char* s = argv[3]; *s && n + 1 < sizeof(text); s++) {
            if (s[0] == '\\' && s[1] == 'n') { text[n++] = '\n'; s++; }
            else text[n++] = *s;
        }
        text[n] = 0;
        printf("%d\n", channel(m, atoi(argv[2]))->send_msg(text) ? 1 : 0);
        return 0;
    }
    if (!strcmp(mode, "echo") && argc >= 3) {
        SHARED_MEM* m = attach();
        int want = atoi(argv[2]);
        char buf[MSG_CHANNEL_SIZE];
        printf("ready\n");
        fflush(stdout);
        for (int got = 0; got < want;) {
            if (!m->process_control_request.get_msg(buf)) { usleep(50); continue; }
            while (!m->process_control_reply.send_msg(buf)) usleep(50);
            got++;
        }
        printf("done\n");
        return 0;
    }
    if (!strcmp(mode, "resolve") && argc >= 3) {
        char out[1024];
        boinc_resolve_filename(argv[2], out, sizeof(out));
        printf("%s\n", out);
        return 0;
    }
    if (!strcmp(mode, "initdata")) {
        int rc = boinc_parse_init_data_file();
        if (rc) { printf("error %d\n", rc); return 1; }
        APP_INIT_DATA aid;
        boinc_get_init_data(aid);
        printf("major_version %d\nminor_version %d\nrelease %d\napp_version %d\n", aid.major_version, aid.minor_version, aid.release, aid.app_version);
        printf("app_name %s\nuser_name %s\nteam_name %s\n", aid.app_name, aid.user_name, aid.team_name);
        printf("project_dir %s\nboinc_dir %s\nwu_name %s\nresult_name %s\nauthenticator %s\n", aid.project_dir, aid.boinc_dir, aid.wu_name, aid.result_name, aid.authenticator);
        printf("shm_key %d\nslot %d\nclient_pid %d\n", (int)aid.shmem_seg_name, aid.slot, aid.client_pid);
        printf("wu_cpu_time %f\nstarting_elapsed_time %f\ncheckpoint_period %f\n", aid.wu_cpu_time, aid.starting_elapsed_time, aid.checkpoint_period);
        printf("fraction_done_start %f\nfraction_done_end %f\n", aid.fraction_done_start, aid.fraction_done_end);
        printf("gpu_device_num %d\nncpus %f\n", aid.gpu_device_num, aid.ncpus);
        printf("rsc_fpops_est %f\nrsc_fpops_bound %f\nrsc_memory_bound %f\nrsc_disk_bound %f\ncomputation_deadline %f\n",
            aid.rsc_fpops_est, aid.rsc_fpops_bound, aid.rsc_memory_bound, aid.rsc_disk_bound, aid.computation_deadline);
        printf("host_p_ncpus %d\nhost_m_nbytes %f\nhost_os_name %s\nhost_p_model %s\n", aid.host_info.p_ncpus, aid.host_info.m_nbytes, aid.host_info.os_name, aid.host_info.p_model);
        printf("app_files %zu\n", aid.app_files.size());
        for (size_t i = 0; i < aid.app_files.size(); i++) printf("app_file %s\n", aid.app_files[i].c_str());
        printf("project_preferences %s\n", aid.project_preferences ? "yes" : "no");
        return 0;
    }
    if (!strcmp(mode, "lock")) {
        FILE_LOCK fl;
        int rc = fl.lock("boinc_lockfile");
        printf("%d\n", rc);
        fflush(stdout);
        if (rc == 0 && argc >= 3 && !strcmp(argv[2], "hold")) {
            char b[64];
            while (fread(b, 1, sizeof(b), stdin) > 0) {}
            fl.unlock("boinc_lockfile");
        }
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
