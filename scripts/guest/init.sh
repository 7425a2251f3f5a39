#!/bin/sh
# PID 1 of the altplat reference guest: busybox-static + Debian's qemu-guest-agent, no udev, no systemd.
# The host drives everything through the agent; this script only brings up the devices the agent needs.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# The cloud kernel has DEVTMPFS but not DEVTMPFS_MOUNT, so /dev must be mounted by hand.
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /run/qga
echo "altplat-init: kernel up after $(cut -d' ' -f1 /proc/uptime)s" > /dev/console
# virtio drivers are modules in the cloud kernel; dependency order matters (no modprobe/depmod here).
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_console virtio_blk; do
  insmod /lib/modules/$m.ko 2>/dev/console
done
# Without udev nobody creates /dev/virtio-ports/<name>; build the links from sysfs, waiting up to ~2 s
# for the port to appear.
mkdir -p /dev/virtio-ports
i=0
while [ ! -e /dev/virtio-ports/org.qemu.guest_agent.0 ] && [ $i -lt 100 ]; do
  for p in /sys/class/virtio-ports/vport*; do
    [ -e "$p/name" ] || continue
    n=$(cat "$p/name")
    [ -n "$n" ] && ln -sf "/dev/${p##*/}" "/dev/virtio-ports/$n"
  done
  [ -e /dev/virtio-ports/org.qemu.guest_agent.0 ] || { i=$((i+1)); usleep 20000; }
done
# The task's disk (a qcow2 overlay on the host) holds the job's files; it must be qcow2 so that
# snapshots can include it.
if [ -b /dev/vda ]; then
  mount -t ext4 -o noatime /dev/vda /work 2>/dev/console && echo "altplat-init: /dev/vda on /work" > /dev/console
fi
echo "altplat-init: starting qemu-ga after $(cut -d' ' -f1 /proc/uptime)s" > /dev/console
while true; do
  qemu-ga -m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0 -t /run/qga -f /run/qga/qemu-ga.pid -l /dev/console
  echo "altplat-init: qemu-ga exited rc=$?, restarting" > /dev/console
  sleep 1
done
