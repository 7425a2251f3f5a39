#!/usr/bin/env bash
# Idempotent set-up of everything altplat needs on a fresh Debian 12 machine: the Debian packages
# (QEMU and qemu-img; cpio, e2fsprogs and binutils for the image builder, which downloads the guest's
# own packages — kernel, busybox, qemu-guest-agent — without installing them; libboinc-app-dev for the
# BOINC API interop tests; gcc-multilib for the paper's 32-bit program), the npm packages, the compiled
# CLI and the reference guest image. Quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(qemu-system-x86 qemu-utils cpio e2fsprogs binutils
              libboinc-app-dev gcc g++ gcc-multilib make)

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
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
