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

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    int rc;
    if (!strcmp(argv[i], "-t") && i + 2 < argc) rc = set_clock(argv[i + 1], argv[i + 2]), i += 2;
    else if (!strcmp(argv[i], "-e")) rc = reseed();
    else if (!strcmp(argv[i], "-m") && i + 2 < argc) rc = mount_disk(argv[i + 1], argv[i + 2]), i += 2;
    else if (!strcmp(argv[i], "-r") && i + 1 < argc) {
      sync();
      rc = mount(NULL, argv[i + 1], NULL, MS_REMOUNT | MS_RDONLY, NULL) == 0 ? 0 : fail("remount read-only"), i += 1;
    }
    else if (!strcmp(argv[i], "-x") && i + 1 < argc) rc = chmod(argv[i + 1], 0755) == 0 ? 0 : fail(argv[i + 1]), i += 1;
    else {
      fprintf(stderr, "usage: altplat-resume [-t SEC NSEC] [-e] [-m DEV DIR] [-x FILE] [-r DIR]\n");
      return 2;
    }
    if (rc != 0) return rc;
  }
  return 0;
}
