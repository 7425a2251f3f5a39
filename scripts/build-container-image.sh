#!/usr/bin/env bash
# Builds the reference container image: a root file system tarball holding the same userland as the
# VM guest (busybox-static and libc6 — libc, libm, the loader and the rest of libc6's libraries — from
# the very packages scripts/build-image.sh unpacked), so that one binary gives the same bits in the VM,
# in the container and on the reference Linux.
#
#   build-container-image.sh EXTRACT_DIR OUT_DIR EPOCH
#
# EXTRACT_DIR holds the unpacked packages (EXTRACT_DIR/<package>/...), as build-image.sh leaves them;
# OUT_DIR receives rootfs.tar. Nothing is downloaded here and nothing is installed on the host.
# The tarball is deterministic: entries sorted by name, mtimes fixed to EPOCH, owner and group 0,
# no atime/ctime, GNU format. Podman imports it on first use under a tag made of its sha256
# (src/container/image.ts); podman's own storage is outside the data dir.
set -euo pipefail
X="$1"; OUT="$2"; EPOCH="$3"
die() { echo "build-container-image: error: $*" >&2; exit 1; }
[ -x "$X/busybox-static/bin/busybox" ] || die "$X/busybox-static not unpacked"
[ -f "$X/libc6/lib/x86_64-linux-gnu/libc.so.6" ] || die "$X/libc6 not unpacked"

R="$OUT/rootfs-tree"
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc,work/job,lib/x86_64-linux-gnu,lib64,var/tmp}
cp "$X/busybox-static/bin/busybox" "$R/bin/busybox"
for app in $("$R/bin/busybox" --list-full); do
  [ -e "$R/$app" ] || [ -L "$R/$app" ] || ln -s /bin/busybox "$R/$app"
done
# libc6's shared libraries, selected as build-image.sh selects them for the guest (which keeps them all).
find "$X/libc6/lib/x86_64-linux-gnu" -maxdepth 1 \( -type f -o -type l \) \( -name '*.so.*' -o -name 'ld-linux-x86-64.so.2' \) -exec cp -P {} "$R/lib/x86_64-linux-gnu/" \;
ln -s /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$R/lib64/ld-linux-x86-64.so.2"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$R/etc/group"
# Mount points podman fills in (a read-only root cannot get them created at run time).
: > "$R/etc/hosts"; : > "$R/etc/resolv.conf"; : > "$R/etc/hostname"
chmod 1777 "$R/tmp" "$R/var/tmp"
chmod 755 "$R/work" "$R/work/job"

find "$R" -exec touch -h -d "@$EPOCH" {} +
(cd "$R" && LC_ALL=C tar --sort=name --mtime="@$EPOCH" --owner=0 --group=0 --numeric-owner \
  --format=gnu -cf "$OUT/rootfs.tar.tmp" .)
mv "$OUT/rootfs.tar.tmp" "$OUT/rootfs.tar"
rm -rf "$R"
