/*
 * altplat-resume: the guest side of a task's start, in one process (each program the guest starts
 * costs tens of milliseconds under TCG, most of it translating code not run before). Run by the QEMU
 * manager through the guest agent (src/manager/boot-state.ts, src/manager/job-disk.ts). Options, in
 * the order they act:
 *   -t SEC NSEC   set CLOCK_REALTIME to the host's time: a guest resumed from a saved booted state has
 *                 the clock of the moment it was saved;
 *   -e            mix the host entropy given on stdin into the input pool, credited (RNDADDENTROPY), and
 *                 force the CRNG to reseed from it now (RNDRESEEDCRNG): every task resumed from one
 *                 state would otherwise start with the same random-number state (a plain write to
 *                 /dev/urandom only mixes, Linux 6.1 would reseed about a second later; the cloud
 *                 kernel has no VMGENID and the pinned CPU model no RDRAND). busybox can do neither;
 *   -m DEV DIR    drop DEV's buffers (BLKFLSBUF: a resumed guest read the placeholder disk's first
 *                 blocks at boot, the task's disk is another) and mount it (ext4) at DIR, made first;
 *   -x FILE       chmod 755 FILE (the main program);
 *   -r DIR        after the program: sync and remount DIR read-only, so that everything is on the disk
 *                 for the host to read (src/manager/job-disk.ts copyOutDisk).
 *   -i FILE       fail (exit 3, "no interpreter FILE" on stderr) unless FILE exists: the main program's
 *                 ELF loader or `#!` interpreter, read on the host (src/manager/guest-job.ts);
 *   -R DIR        with `--`: after the program has exited, do what -r does, then end as the program did;
 *   -c DIR -o OUT -E ERR [-l] -- PROG ARG...
 *                 start the task's program, as `cd DIR && exec PROG ARG... >OUT 2>ERR` from busybox sh did
 *                 (same environment: LD_LIBRARY_PATH=.[:old], PWD, OLDPWD, SHLVL + 1; stdin /dev/null; a
 *                 file the kernel cannot execute run by /bin/sh; 127 not found, 126 not executable), -l
 *                 under the linux32 personality. Without -R the program replaces this process (its pid
 *                 is the one the guest agent reports); with -R this process waits for it, remounts, and
 *                 exits with its status (re-raising the signal that killed it), after a line on the console
 *                 (the host watches its log: no polling delay). Writes "started" on
 *                 stdout just before the program starts and "readonly" after a successful -R, so the
 *                 host tells a failed preparation (no "started"; the reason on stderr) from a program
 *                 that ran, and knows whether the job disk is ready to read.
 * Built static by scripts/build-image.sh; needs root, which the guest agent has.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_ENTROPY 512

static int fail(const char *what) {
  fprintf(stderr, "altplat-resume: %s: %s\n", what, strerror(errno));
  return 1;
}

static int set_clock(const char *sec, const char *nsec) {
  struct timespec ts = { .tv_sec = (time_t)strtoll(sec, NULL, 10), .tv_nsec = strtol(nsec, NULL, 10) };
  return clock_settime(CLOCK_REALTIME, &ts) == 0 ? 0 : fail("clock_settime");
}

static int reseed(void) {
  struct { int entropy_count; int buf_size; unsigned char buf[MAX_ENTROPY]; } info;
  size_t n = 0;
  while (n < MAX_ENTROPY) {
    ssize_t r = read(0, info.buf + n, MAX_ENTROPY - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  if (n < 32) {
    fprintf(stderr, "altplat-resume: need at least 32 bytes of entropy on stdin, got %zu\n", n);
    return 1;
  }
  info.entropy_count = (int)(n * 8);
  info.buf_size = (int)n;
  int fd = open("/dev/urandom", O_WRONLY);
  if (fd < 0) return fail("/dev/urandom");
  if (ioctl(fd, RNDADDENTROPY, &info) != 0) return fail("RNDADDENTROPY");
  if (ioctl(fd, RNDRESEEDCRNG) != 0) return fail("RNDRESEEDCRNG");
  close(fd);
  return 0;
}

static int mkdirs(const char *dir) {
  char p[4096];
  if (strlen(dir) >= sizeof p) return fail("path too long");
  strcpy(p, dir);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST) return fail(p);
    *s = '/';
  }
  return mkdir(p, 0755) != 0 && errno != EEXIST ? fail(p) : 0;
}

static int mount_disk(const char *dev, const char *dir) {
  int fd = open(dev, O_RDONLY);
  if (fd < 0) return fail(dev);
  if (ioctl(fd, BLKFLSBUF, 0) != 0) return fail("BLKFLSBUF");
  close(fd);
  if (mkdirs(dir) != 0) return 1;
  return mount(dev, dir, "ext4", MS_NOATIME, "noinit_itable") == 0 ? 0 : fail("mount");
}

static int remount_ro(const char *dir) {
  sync();
  return mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, NULL) == 0 ? 0 : fail("remount read-only");
}

static void say(const char *line) {
  ssize_t r = write(1, line, strlen(line));
  (void)r;
}

/* The environment busybox sh gave the program after `cd DIR && LD_LIBRARY_PATH=...; export`. */
static int shell_env(const char *dir) {
  const char *old = getenv("LD_LIBRARY_PATH");
  char lib[8192];
  snprintf(lib, sizeof lib, ".%s%s", old && *old ? ":" : "", old && *old ? old : "");
  const char *pwd = getenv("PWD");
  const char *lvl = getenv("SHLVL");
  char shlvl[32];
  snprintf(shlvl, sizeof shlvl, "%ld", (lvl ? strtol(lvl, NULL, 10) : 0) + 1);
  if (setenv("OLDPWD", pwd ? pwd : "/", 1) || setenv("PWD", dir, 1) || setenv("SHLVL", shlvl, 1) || setenv("LD_LIBRARY_PATH", lib, 1)) return fail("setenv");
  return 0;
}

static int redirect(int fd, const char *file, int flags) {
  int f = open(file, flags | O_CLOEXEC, 0644);
  if (f < 0) return fail(file);
  if (dup2(f, fd) < 0) return fail("dup2");
  close(f);
  return 0;
}

/* In the child (or in place): the redirections, then exec; a failure is reported as the shell does. */
static int exec_program(const char *out, const char *err, int linux32, char **argv) {
  if (redirect(0, "/dev/null", O_RDONLY) || redirect(1, out, O_WRONLY | O_CREAT | O_TRUNC) || redirect(2, err, O_WRONLY | O_CREAT | O_TRUNC)) return 126;
  if (linux32 && personality(PER_LINUX32) < 0) return fail("personality"), 126;
  execv(argv[0], argv);
  int e = errno;
  if (e == ENOEXEC) {
    /* as sh does for a file without a #! line: run it as a script */
    int n = 0;
    while (argv[n]) n++;
    char **sh = calloc((size_t)n + 2, sizeof *sh);
    if (!sh) return 126;
    sh[0] = "sh";
    for (int i = 0; i < n; i++) sh[i + 1] = argv[i];
    execv("/bin/sh", sh);
    e = errno;
  }
  fprintf(stderr, "sh: %s: %s\n", argv[0], e == ENOENT ? "not found" : strerror(e));
  return e == ENOENT ? 127 : 126;
}

static int run_program(const char *dir, const char *out, const char *err, int linux32, const char *after, char **argv) {
  if (!dir || !out || !err || !argv[0]) {
    fprintf(stderr, "altplat-resume: -- needs -c, -o and -E\n");
    return 2;
  }
  if (chdir(dir) != 0) return fail(dir);
  if (shell_env(dir) != 0) return 1;
  say("started\n");
  if (!after) return exec_program(out, err, linux32, argv);
  pid_t pid = fork();
  if (pid < 0) return fail("fork");
  if (pid == 0) _exit(exec_program(out, err, linux32, argv));
  /* A signal the program sends its process group must not end this waiter before the program. */
  for (int s = 1; s < NSIG; s++) if (s != SIGKILL && s != SIGSTOP && s != SIGCHLD) signal(s, SIG_IGN);
  int st;
  while (waitpid(pid, &st, 0) < 0) if (errno != EINTR) return fail("waitpid");
  if (chdir("/") == 0 && remount_ro(after) == 0) say("readonly\n");
  /* The host watches the console log for a change: it asks for the exit status at once, not on its next poll. */
  int con = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (con >= 0) {
    ssize_t r = write(con, "altplat-resume: program ended\n", 30);
    (void)r;
    close(con);
  }
  if (WIFSIGNALED(st)) {
    int sig = WTERMSIG(st);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    return 128 + sig;
  }
  return WEXITSTATUS(st);
}

int main(int argc, char **argv) {
  const char *dir = NULL, *out = NULL, *err = NULL, *after = NULL;
  int linux32 = 0;
  for (int i = 1; i < argc; i++) {
    int rc;
    if (!strcmp(argv[i], "-t") && i + 2 < argc) rc = set_clock(argv[i + 1], argv[i + 2]), i += 2;
    else if (!strcmp(argv[i], "-e")) rc = reseed();
    else if (!strcmp(argv[i], "-m") && i + 2 < argc) rc = mount_disk(argv[i + 1], argv[i + 2]), i += 2;
    else if (!strcmp(argv[i], "-r") && i + 1 < argc) rc = remount_ro(argv[i + 1]), i += 1;
    else if (!strcmp(argv[i], "-x") && i + 1 < argc) rc = chmod(argv[i + 1], 0755) == 0 ? 0 : fail(argv[i + 1]), i += 1;
    else if (!strcmp(argv[i], "-i") && i + 1 < argc) {
      if (access(argv[i + 1], F_OK) != 0) {
        fprintf(stderr, "altplat-resume: no interpreter %s\n", argv[i + 1]);
        return 3;
      }
      rc = 0, i += 1;
    }
    else if (!strcmp(argv[i], "-c") && i + 1 < argc) dir = argv[++i], rc = 0;
    else if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i], rc = 0;
    else if (!strcmp(argv[i], "-E") && i + 1 < argc) err = argv[++i], rc = 0;
    else if (!strcmp(argv[i], "-R") && i + 1 < argc) after = argv[++i], rc = 0;
    else if (!strcmp(argv[i], "-l")) linux32 = 1, rc = 0;
    else if (!strcmp(argv[i], "--")) return run_program(dir, out, err, linux32, after, argv + i + 1);
    else {
      fprintf(stderr, "usage: altplat-resume [-t SEC NSEC] [-e] [-m DEV DIR] [-x FILE] [-r DIR] [-i FILE] [-R DIR] [-c DIR -o OUT -E ERR [-l] -- PROG ARG...]\n");
      return 2;
    }
    if (rc != 0) return rc;
  }
  return 0;
}
