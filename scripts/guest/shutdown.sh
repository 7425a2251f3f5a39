#!/bin/sh
# /sbin/shutdown for busybox: qemu-ga's guest-shutdown runs `shutdown -h|-P|-H|-r +0 "<message>"`,
# which busybox does not provide. Flush the task disk first so nothing written is lost.
sync
case " $* " in
  *" -r "*) reboot -f ;;
  *" -H "*) halt -f ;;
  *) umount /work 2>/dev/null; sync; poweroff -f ;;
esac
