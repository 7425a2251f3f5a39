#!/usr/bin/env bash
# Idempotent set-up of everything altplat needs on a fresh Debian 12 machine: the Debian packages
# (QEMU and qemu-img; cpio, e2fsprogs and binutils for the image builder, which downloads the guest's
# own packages — kernel, busybox, qemu-guest-agent — without installing them; libboinc-app-dev for the
# BOINC API interop tests; boinc-client, the real BOINC client the oracle tests compare altplat with, run
# as a plain process in a temp dir — never as the system service its package would start; gcc-multilib for
# the paper's 32-bit program; podman and runc for the container backend), the npm packages, the compiled
# CLI, the reference guest image and container rootfs. Quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# podman + runc: the container backend (crun, podman's default, fails on these cgroup v1/hybrid hosts;
# the platform's containers.conf selects runc). Rootful podman needs neither uidmap nor slirp4netns
# (containers run with --network=none); util-linux's chrt sets SCHED_IDLE on the container's program.
DEB_PACKAGES=(qemu-system-x86 qemu-utils cpio e2fsprogs binutils
              libboinc-app-dev boinc-client gcc g++ gcc-multilib make
              podman runc)

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  # boinc-client's postinst starts the system service: a temporary policy-rc.d (exit 101 = "not allowed",
  # honoured by invoke-rc.d and deb-systemd-invoke) keeps it from starting; an existing one is left alone.
  policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    policy=/usr/sbin/policy-rc.d
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" || { [ -z "$policy" ] || $SUDO rm -f "$policy"; exit 1; }
  [ -z "$policy" ] || $SUDO rm -f "$policy"
fi
# The tests run their own client; a boinc-client service (started before this script, or at boot) is not wanted.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && systemctl list-unit-files boinc-client.service >/dev/null 2>&1; then
  $SUDO systemctl disable --now boinc-client.service >/dev/null 2>&1 || true
fi

# The image builder resolves the guest's packages from apt's lists: fetch them if this machine has none.
if ! apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1; then
  $SUDO apt-get update -q
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

npx tsc -p tsconfig.json

if [ -x scripts/build-image.sh ] && [ "${ALTPLAT_SKIP_IMAGE:-0}" != 1 ]; then
  bash scripts/build-image.sh
fi

# The container backend's engine must work with the platform's own configuration (never a registry:
# the rootfs is imported from the image build). A failure is reported, not fatal: the QEMU backends
# still work, and `altplat list` says why Podman is not chosen.
if [ "${ALTPLAT_SKIP_IMAGE:-0}" != 1 ] && [ -f alt_platforms/x86_64-pc-linux-gnu/image/rootfs.tar ] && command -v podman >/dev/null; then
  tmp=$(mktemp -d)
  tar -C "$tmp" -xf alt_platforms/x86_64-pc-linux-gnu/image/rootfs.tar ./bin/busybox
  if CONTAINERS_CONF="$PWD/alt_platforms/x86_64-pc-linux-gnu/containers.conf" podman run --rm --network=none --read-only \
      --rootfs "$tmp" /bin/busybox true >/dev/null 2>"$tmp.err"; then
    echo "setup: podman (runc) runs containers"
  else
    echo "setup: warning: podman cannot run a container here: $(tail -1 "$tmp.err")" >&2
  fi
  rm -rf "$tmp" "$tmp.err"
fi
