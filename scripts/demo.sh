#!/usr/bin/env bash
# The paper's experiment end to end (`npm run demo`, after scripts/setup.sh has installed everything and
# built the image): a Linux machine plays the paper's Windows volunteer host (windows_x86_64), advertises
# the two reference alternate platforms, and runs the Appendix A program's Linux builds in QEMU VMs and
# (the x86-64 ones) in Podman containers, the platform's second backend; the table compares each build's
# result in each backend with the same binary run natively.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="$PWD/demo-data"
# A second volunteer data dir whose x86-64 platform runs on the container backend.
DATA_CT="$PWD/demo-data-podman"
altplat() { node dist/src/cli/main.js "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$DATA" "$DATA_CT"
mkdir -p "$DATA" "$DATA_CT/altplat"

say "0. Discovery on the bundled example data dir: good, unsupported and broken platforms side by side"
echo "\$ altplat list --data-dir fixtures/example-data --host-platform windows_x86_64"
altplat list --data-dir fixtures/example-data --host-platform windows_x86_64

say "1. Install the reference alternate platforms (built from Debian packages by scripts/build-image.sh)"
for p in x86_64-pc-linux-gnu i686-pc-linux-gnu; do
  echo "\$ altplat install --data-dir demo-data alt_platforms/$p"
  altplat install --data-dir "$DATA" "alt_platforms/$p"
done

say "2. What a Windows host (windows_x86_64) can now offer, and which backend each platform would use"
echo "\$ altplat list --data-dir demo-data --host-platform windows_x86_64"
altplat list --data-dir "$DATA" --host-platform windows_x86_64
echo "This run's volunteer prefers the VM (docs/PLATFORM_FORMAT.md, backend order); a second data dir prefers the container:"
echo '$ echo '"'"'["qemu-kvm", "qemu-tcg"]'"'"' > demo-data/altplat/backend_order.json'
echo '["qemu-kvm", "qemu-tcg"]' > "$DATA/altplat/backend_order.json"
echo '$ echo '"'"'["podman"]'"'"' > demo-data-podman/altplat/backend_order.json'
echo '["podman"]' > "$DATA_CT/altplat/backend_order.json"
altplat install --data-dir "$DATA_CT" alt_platforms/x86_64-pc-linux-gnu >/dev/null
echo "\$ altplat list --json --data-dir demo-data-podman --host-platform windows_x86_64   (the backend field)"
altplat list --json --data-dir "$DATA_CT" --host-platform windows_x86_64 | node -e '
  const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
  for (const p of r.platforms) console.log(`  ${p.name}: ${JSON.stringify(p.backend)}`);' 

say "3. The Windows client's scheduler request, with the alternate platforms added"
echo "\$ altplat request --data-dir demo-data scripts/demo/sched_request_windows.xml -o demo-data/sched_request.xml"
altplat request --data-dir "$DATA" scripts/demo/sched_request_windows.xml -o "$DATA/sched_request.xml"
diff -u scripts/demo/sched_request_windows.xml "$DATA/sched_request.xml" || true

say "4. The Appendix A program and a libm-heavy program, built for Linux and run natively (libm: also with glibc held to the platform CPU baseline)"
npx --no-install tsx scripts/demo/demo.ts prepare "$DATA"

say "5. The project's reply sends Linux work to the Windows host; altplat runs it in the VMs"
echo "\$ altplat run --data-dir demo-data --host-platform windows_x86_64 --max-tasks 2 --files demo-data/files demo-data/sched_reply_example.org_pidemo.xml"
altplat run --data-dir "$DATA" --host-platform windows_x86_64 --max-tasks 2 --files "$DATA/files" "$DATA/sched_reply_example.org_pidemo.xml"

say "5b. The same x86-64 work on the container backend (Podman, rootfs from the same Debian packages as the guest)"
echo "\$ altplat run --data-dir demo-data-podman --host-platform windows_x86_64 --max-tasks 2 --files demo-data/files demo-data/sched_reply_example.org_pidemo_x86_64.xml"
altplat run --data-dir "$DATA_CT" --host-platform windows_x86_64 --max-tasks 2 --files "$DATA/files" "$DATA/sched_reply_example.org_pidemo_x86_64.xml"

say "6. Table 1, reproduced, a column per backend"
npx --no-install tsx scripts/demo/demo.ts table "$DATA" "$DATA_CT"

say "7. Nothing left behind: the platforms' files (base image included) are unchanged"
echo "\$ altplat verify --data-dir demo-data"
altplat verify --data-dir "$DATA"
echo "\$ altplat verify --data-dir demo-data-podman"
altplat verify --data-dir "$DATA_CT"
