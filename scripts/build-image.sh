#!/usr/bin/env bash
# Builds the reference guest image from Debian packages and writes the two reference platform folders
# (alt_platforms/x86_64-pc-linux-gnu and alt_platforms/i686-pc-linux-gnu, the same image: the 64-bit
# kernel runs 32-bit programs).
#
# Nothing is installed on the host: the packages are fetched with `apt-get download` into a cache
# (.cache/debs, gitignored) and unpacked with `dpkg-deb -x`. The guest is
#   vmlinuz            Debian's cloud kernel (its ABI resolved from linux-image-cloud-amd64)
#   initramfs.cpio.gz  busybox-static + qemu-guest-agent + the shared libraries it links + 7 virtio modules
#   base.qcow2         an empty ext4 disk; every task gets a qcow2 overlay on it (a linked clone)
# The output is deterministic for the same packages (fixed mtimes, sorted cpio, fixed ext4 UUID/time).
# Quick when already up to date: a stamp of every input is compared first.
#
# Environment: ALTPLAT_IMAGE_FORCE=1 rebuilds; SOURCE_DATE_EPOCH fixes timestamps (default below).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

CACHE="$ROOT/.cache/debs"
# Both overridable so that a test can rebuild elsewhere and compare (determinism) without touching
# the folders other runs are using.
BUILD="${ALTPLAT_BUILD_DIR:-$ROOT/build/image}"
OUTROOT="${ALTPLAT_PLATFORMS_OUT:-$ROOT/alt_platforms}"
PLATFORMS=(x86_64-pc-linux-gnu i686-pc-linux-gnu)
EPOCH="${SOURCE_DATE_EPOCH:-1700000000}"
DISK_MB=256
# Fixed so that two builds of the same packages give the same base.qcow2 (mke2fs otherwise randomises them).
DISK_UUID=5a1e7a17-0000-4000-8000-a17f1a7f0000
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_console virtio_blk)

STEPS=10
step_no=0
t_start=$(date +%s.%N)
elapsed() { awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
mb() { awk -v n="$(stat -c %s "$1")" 'BEGIN { printf "%.2f", n / 1e6 }'; }
step() {
  step_no=$((step_no + 1))
  printf 'build-image [%d/%d] %-52s (%5.1fs)\n' "$step_no" "$STEPS" "$1" "$(elapsed)"
}
die() { echo "build-image: error: $*" >&2; exit 1; }

for tool in apt-get apt-cache dpkg-deb cpio gzip mke2fs qemu-img readelf sha256sum node flock gcc; do
  command -v "$tool" >/dev/null || die "missing tool '$tool' (run scripts/setup.sh)"
done

mkdir -p "$CACHE" "$BUILD"
# One build at a time per build dir (parallel test files may all ask for the image); a waiter then
# finds it up to date.
exec 9>"$BUILD/.lock"
flock 9

step "resolving the packages (kernel ABI, qemu-ga's libraries)"
# (no early `exit` in awk or `head` after a producer: with pipefail, SIGPIPE would fail the build)
KPKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ && !k {k = $2} END {print k}')
[ -n "$KPKG" ] || die "cannot resolve linux-image-cloud-amd64's kernel package (apt-get update?)"
KV=${KPKG#linux-image-}

# Exact versions of everything that goes into the image; with the scripts, the stamp of this build.
POLICY=""
pkg_version() { printf '%s\n' "$POLICY" | awk -v p="$1" '/^[^ ]/ {cur = $1; sub(/:$/, "", cur)} cur == p && /Candidate:/ && !v {v = $2} END {print v}'; }
# qemu-ga's libraries, found without anything installed on the host: the qemu-guest-agent package and
# its dependency closure (apt-cache depends --recurse) are downloaded and unpacked, and the sonames in
# qemu-ga's NEEDED entries (followed transitively) are looked up in those packages' files.
LIBPKGS=()
APT_DEPS_OPTS=(--recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances --no-pre-depends)
download_into_cache() {  # pkg=version ...
  (
    cd "$CACHE"
    for pv in "$@"; do
      p=${pv%%=*} v=${pv#*=}
      if ! ls "${p}_${v//:/%3a}_"*.deb >/dev/null 2>&1; then
        apt-get download -q "$p=$v" 2>&1 | grep -E "^(E:|Err)" >&2 || true
        echo "  fetched $p $v"
        ls "${p}_${v//:/%3a}_"*.deb >/dev/null 2>&1 || die "apt-get download $p=$v failed"
      fi
    done
  )
}
deb_of() { ls "$CACHE/${1}_${2//:/%3a}_"*.deb | awk 'NR == 1'; }
resolve_lib_pkgs() {
  local closure pol p v pvs=() R="$BUILD/resolve" queue so more found
  closure=$(apt-cache depends "${APT_DEPS_OPTS[@]}" qemu-guest-agent 2>/dev/null | awk '/^[^ <]/' | LC_ALL=C sort -u)
  [ -n "$closure" ] || die "cannot resolve qemu-guest-agent's dependencies (apt-get update?)"
  # shellcheck disable=SC2086
  pol=$(apt-cache policy $closure 2>/dev/null)
  for p in $closure; do
    v=$(POLICY=$pol pkg_version "$p")
    [ -n "$v" ] && [ "$v" != "(none)" ] || continue  # (a virtual or unavailable package: no files)
    pvs+=("$p=$v")
  done
  download_into_cache "${pvs[@]}"
  rm -rf "$R"; mkdir -p "$R"
  for pv in "${pvs[@]}"; do dpkg-deb -x "$(deb_of "${pv%%=*}" "${pv#*=}")" "$R/${pv%%=*}"; done
  queue=$(readelf -d "$R/qemu-guest-agent/usr/sbin/qemu-ga" | awk '/NEEDED/ {gsub(/[\[\]]/, "", $5); print $5}')
  local seen=" "
  while [ -n "$queue" ]; do
    so=${queue%%$'\n'*}; [ "$queue" = "$so" ] && queue="" || queue=${queue#*$'\n'}
    case "$seen" in *" $so "*) continue ;; esac
    seen="$seen$so "
    found=$(cd "$R" && find . -path "*/lib/x86_64-linux-gnu/$so" \( -type f -o -type l \) | LC_ALL=C sort | awk 'NR == 1')
    [ -n "$found" ] || die "qemu-ga needs $so, which no package of its dependency closure ships"
    p=${found#./}; p=${p%%/*}
    case " ${LIBPKGS[*]-} " in *" $p "*) ;; *) LIBPKGS+=("$p") ;; esac
    more=$(readelf -d "$(readlink -f "$R/${found#./}")" | awk '/NEEDED/ {gsub(/[\[\]]/, "", $5); print $5}')
    [ -n "$more" ] && queue=$(printf '%s\n%s' "$queue" "$more" | sed '/^$/d')
  done
  rm -rf "$R"
}
# The answer only changes with the qemu-guest-agent version (resolving takes seconds): cached by it.
QGA_VERSION=$(POLICY=$(apt-cache policy qemu-guest-agent 2>/dev/null) pkg_version qemu-guest-agent)
[ -n "$QGA_VERSION" ] && [ "$QGA_VERSION" != "(none)" ] || die "no candidate version for qemu-guest-agent (apt-get update?)"
LIBCACHE="$BUILD/libpkgs.$(printf '%s' "$QGA_VERSION" | sha256sum | cut -c1-16)"
if [ -s "$LIBCACHE" ]; then
  read -r -a LIBPKGS < "$LIBCACHE"
else
  resolve_lib_pkgs
  rm -f "$BUILD"/libpkgs.*
  echo "${LIBPKGS[*]}" > "$LIBCACHE"
fi
PKGS=("$KPKG" busybox-static qemu-guest-agent "${LIBPKGS[@]}")
POLICY=$(apt-cache policy "${PKGS[@]}" 2>/dev/null)  # one call: apt-cache takes ~1 s per run
MANIFEST=""
for p in "${PKGS[@]}"; do
  v=$(pkg_version "$p"); [ -n "$v" ] && [ "$v" != "(none)" ] || die "no candidate version for $p"
  MANIFEST+="$p=$v"$'\n'
done
# The manager is bundled first (well under a second) so that the stamp covers exactly what it
# contains, whatever else changes in the repository.
npx --no-install esbuild src/manager/main.ts --bundle --platform=node --format=esm --target=node20 \
  --log-level=warning --legal-comments=none \
  --banner:js="import { createRequire as __altplatCreateRequire } from 'node:module'; const require = __altplatCreateRequire(import.meta.url);" \
  --outfile="$BUILD/manager.mjs"
# The container backend's manager (docs/CONTAINER_PLATFORM.md), bundled the same way.
npx --no-install esbuild src/container/main.ts --bundle --platform=node --format=esm --target=node20 \
  --log-level=warning --legal-comments=none \
  --banner:js="import { createRequire as __altplatCreateRequire } from 'node:module'; const require = __altplatCreateRequire(import.meta.url);" \
  --outfile="$BUILD/container-manager.mjs"
MANAGER_SRC_HASH=$( (gcc --version | awk 'NR == 1'; cat "$BUILD/manager.mjs" "$BUILD/container-manager.mjs" scripts/guest/* scripts/build-image.sh \
  scripts/build-container-image.sh "$ROOT"/alt_platforms/x86_64-pc-linux-gnu/{container_manager,container_config.xml,containers.conf} \
  "$ROOT"/alt_platforms/{x86_64,i686}-pc-linux-gnu/{manager,vm_config.xml,alt_platform.xml.in}) | sha256sum | cut -c1-64)
STAMP=$(printf '%sepoch=%s\ndisk=%s\nsrc=%s\n' "$MANIFEST" "$EPOCH" "$DISK_MB" "$MANAGER_SRC_HASH" | sha256sum | cut -c1-64)

up_to_date=1
[ "${ALTPLAT_IMAGE_FORCE:-0}" = 1 ] && up_to_date=0
[ "$(cat "$BUILD/stamp" 2>/dev/null)" = "$STAMP" ] || up_to_date=0
for name in "${PLATFORMS[@]}"; do
  for f in alt_platform.xml image/vmlinuz image/initramfs.cpio.gz image/base.qcow2 image/manager.mjs; do
    [ -f "$OUTROOT/$name/$f" ] || up_to_date=0
  done
done
if [ $up_to_date = 1 ]; then
  echo "build-image: up to date ($KV; stamp ${STAMP:0:12}); ALTPLAT_IMAGE_FORCE=1 rebuilds"
  exit 0
fi

step "downloading ${#PKGS[@]} Debian packages (cached in .cache/debs)"
pvs=()
for p in "${PKGS[@]}"; do pvs+=("$p=$(printf '%s' "$MANIFEST" | awk -F= -v p="$p" '$1 == p {print $2}')"); done
download_into_cache "${pvs[@]}"

step "unpacking packages (dpkg-deb -x, nothing installed)"
X="$BUILD/extract"
rm -rf "$X"; mkdir -p "$X"
for p in "${PKGS[@]}"; do
  v=$(printf '%s' "$MANIFEST" | awk -F= -v p="$p" '$1 == p {print $2}')
  dpkg-deb -x "$(ls "$CACHE/${p}_${v//:/%3a}_"*.deb | awk 'NR == 1')" "$X/$p"
done
KROOT="$X/$KPKG"
[ -f "$KROOT/boot/vmlinuz-$KV" ] || die "kernel package has no boot/vmlinuz-$KV"

step "assembling the initramfs tree"
R="$BUILD/initramfs-root"
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc,work,root,lib/modules,lib64}
mkdir -p "$R/var"; ln -s ../run "$R/var/run"
cp "$X/busybox-static/bin/busybox" "$R/bin/busybox"
for app in $("$R/bin/busybox" --list-full); do
  [ -e "$R/$app" ] || [ -L "$R/$app" ] || ln -s /bin/busybox "$R/$app"
done
for m in "${MODULES[@]}"; do
  f=$(find "$KROOT/lib/modules/$KV" -name "$m.ko" | awk 'NR == 1')
  [ -n "$f" ] || die "kernel module $m.ko not in $KPKG"
  cp "$f" "$R/lib/modules/$m.ko"
done
cp "$X/qemu-guest-agent/usr/sbin/qemu-ga" "$R/usr/sbin/qemu-ga"
# Libraries from the unpacked packages (never the host's), placed where the guest's loader looks.
mkdir -p "$R/lib/x86_64-linux-gnu"
for p in "${LIBPKGS[@]}"; do
  # (libc6's /lib64/ld-linux-x86-64.so.2 is only a symlink to this directory's copy: skipped.)
  find "$X/$p" \( -type f -o -type l \) \( -name '*.so.*' -o -name 'ld-linux-x86-64.so.2' \) \
      -path '*/lib/x86_64-linux-gnu/*' ! -path '*/gconv/*' | while read -r f; do
    dest="$R/lib/x86_64-linux-gnu/$(basename "$f")"
    cp -P "$f" "$dest"
  done
done
# The loader's canonical path is /lib64/ld-linux-x86-64.so.2.
ln -sf /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$R/lib64/ld-linux-x86-64.so.2"
# Keep only the libraries qemu-ga actually loads (libc6 ships many more).
keep=" ld-linux-x86-64.so.2 "
queue=$(readelf -d "$R/usr/sbin/qemu-ga" | awk '/NEEDED/ {gsub(/[\[\]]/, "", $5); print $5}')
while [ -n "$queue" ]; do
  so=${queue%%$'\n'*}; [ "$queue" = "$so" ] && queue="" || queue=${queue#*$'\n'}
  case "$keep" in *" $so "*) continue ;; esac
  keep="$keep$so "
  [ -e "$R/lib/x86_64-linux-gnu/$so" ] || die "qemu-ga needs $so, not found in the unpacked packages"
  more=$(readelf -d "$R/lib/x86_64-linux-gnu/$so" | awk '/NEEDED/ {gsub(/[\[\]]/, "", $5); print $5}')
  [ -n "$more" ] && queue=$(printf '%s\n%s' "$queue" "$more" | sed '/^$/d')
done
for f in "$R"/lib/x86_64-linux-gnu/*; do
  b=$(basename "$f")
  case "$keep" in *" $b "*) continue ;; esac
  # All of libc6's libraries stay, so that the guest and the container image hold the same libc6.
  [ -e "$X/libc6/lib/x86_64-linux-gnu/$b" ] && continue
  # keep the real file a kept soname points to
  keep_target=0
  for k in $keep; do
    [ -L "$R/lib/x86_64-linux-gnu/$k" ] && [ "$(basename "$(readlink "$R/lib/x86_64-linux-gnu/$k")")" = "$b" ] && keep_target=1
  done
  [ $keep_target = 1 ] || rm -f "$f"
done
rm -f "$R/sbin/shutdown"
install -m 755 scripts/guest/shutdown.sh "$R/sbin/shutdown"
install -m 755 scripts/guest/init.sh "$R/init"
# The project's own helper for a guest resumed from a saved booted state (clock, RNG reseed); static,
# so it needs nothing of the guest's. Deterministic for one gcc: no build id, no timestamps.
gcc -static -O2 -s -Wl,--build-id=none -o "$R/sbin/altplat-resume" scripts/guest/altplat-resume.c
echo "root:x:0:0:root:/root:/bin/sh" > "$R/etc/passwd"
echo "root:x:0:" > "$R/etc/group"

step "packing initramfs.cpio.gz (sorted, fixed mtimes)"
OUT="$BUILD/out"
rm -rf "$OUT"; mkdir -p "$OUT"
find "$R" -exec touch -h -d "@$EPOCH" {} +
(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 --reproducible) | gzip -n -9 > "$OUT/initramfs.cpio.gz"
cp "$KROOT/boot/vmlinuz-$KV" "$OUT/vmlinuz"

step "making the base disk (ext4 ${DISK_MB} MiB -> qcow2)"
rm -f "$BUILD/base.raw"
# An empty file system: populating it with -d would copy the build dir's ctimes (not settable) and
# make the image differ from build to build. The manager creates the job directory in the guest.
E2FSPROGS_FAKE_TIME=$EPOCH mke2fs -q -F -t ext4 -L altplat-work -U "$DISK_UUID" \
  -E "hash_seed=$DISK_UUID,root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0" "$BUILD/base.raw" "${DISK_MB}M" >/dev/null
qemu-img convert -q -f raw -O qcow2 "$BUILD/base.raw" "$OUT/base.qcow2"
rm -f "$BUILD/base.raw"

step "adding the manager (bundled with esbuild) -> manager.mjs"
cp "$BUILD/manager.mjs" "$OUT/manager.mjs"

step "container image rootfs.tar (same busybox and libc6)"
bash scripts/build-container-image.sh "$X" "$OUT" "$EPOCH"
cp "$BUILD/container-manager.mjs" "$OUT/container-manager.mjs"

step "writing the platform folders"
printf '%s' "$MANIFEST" > "$OUT/packages.txt"
for name in "${PLATFORMS[@]}"; do
  SRC="$ROOT/alt_platforms/$name"
  P="$OUTROOT/$name"
  [ -f "$SRC/alt_platform.xml.in" ] || die "$SRC/alt_platform.xml.in missing"
  if [ "$(cd "$SRC" && pwd)" != "$(mkdir -p "$P" && cd "$P" && pwd)" ]; then
    install -m 755 "$SRC/manager" "$P/manager"
    install -m 644 "$SRC/vm_config.xml" "$P/vm_config.xml"
    if [ -f "$SRC/container_config.xml" ]; then
      install -m 755 "$SRC/container_manager" "$P/container_manager"
      install -m 644 "$SRC/container_config.xml" "$P/container_config.xml"
      install -m 644 "$SRC/containers.conf" "$P/containers.conf"
    fi
  fi
  image_files=(vmlinuz initramfs.cpio.gz base.qcow2 manager.mjs packages.txt)
  listed=(manager vm_config.xml image/manager.mjs image/vmlinuz image/initramfs.cpio.gz image/base.qcow2)
  # A platform with a container backend (a container_config.xml) also gets its manager and rootfs.
  if [ -f "$SRC/container_config.xml" ]; then
    image_files+=(container-manager.mjs rootfs.tar)
    listed+=(container_manager container_config.xml containers.conf image/container-manager.mjs image/rootfs.tar)
  fi
  rm -rf "$P/image"; mkdir -p "$P/image"
  for f in "${image_files[@]}"; do
    # Hard links: both folders share one copy on disk; the files are read-only, never written.
    ln "$OUT/$f" "$P/image/$f" 2>/dev/null || cp "$OUT/$f" "$P/image/$f"
  done
  chmod 444 "$P"/image/*
  files_xml=""
  for f in "${listed[@]}"; do
    [ -f "$P/$f" ] || die "$P/$f missing"
    shared=""
    case "$f" in image/*) shared=$'\n        <shared/>' ;; esac
    files_xml+="    <file>
        <name>$f</name>
        <nbytes>$(stat -c %s "$P/$f")</nbytes>
        <sha256>$(sha256sum "$P/$f" | cut -c1-64)</sha256>$shared
    </file>
"
  done
  awk -v files="$files_xml" -v kv="$KV" '{ gsub(/@KERNEL@/, kv) } /@FILES@/ { printf "%s", files; next } { print }' \
    "$SRC/alt_platform.xml.in" > "$P/alt_platform.xml.tmp"
  mv "$P/alt_platform.xml.tmp" "$P/alt_platform.xml"
done

step "done"
echo "$STAMP" > "$BUILD/stamp"
rm -rf "$X" "$R"
total=$(du -cb "$OUT/vmlinuz" "$OUT/initramfs.cpio.gz" "$OUT/base.qcow2" "$OUT/manager.mjs" | tail -1 | cut -f1)
echo "build-image: kernel $KV; image $(awk -v n="$total" 'BEGIN { printf "%.1f", n / 1e6 }') MB" \
  "(vmlinuz $(mb "$OUT/vmlinuz") + initramfs $(mb "$OUT/initramfs.cpio.gz") + base.qcow2 $(mb "$OUT/base.qcow2")" \
  "+ manager $(mb "$OUT/manager.mjs")) in $(elapsed)s"
