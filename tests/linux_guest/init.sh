#!/bin/busybox sh
# /init of the test guest's initramfs: PID 1 of a real Debian kernel booted directly by
# QEMU (no disk). It brings up just enough of a system for ucode-agent to find its
# virtio-serial port, then keeps the agent running. PID 1 must never exit (the kernel
# panics), so the agent is restarted if it ever stops.
#
# Markers printed on the serial console (ttyS0), read by tests and by people debugging:
#   "ucode-guest: init"            /init started
#   "ucode-guest: port NAME=DEV"   a virtio-serial port appeared
#   "ucode-guest: agent start"     the agent is being exec'd
#   "ucode-guest: agent exited N"  the agent stopped with status N (it is restarted)

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mkdir -p /proc /sys /dev /run /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# CONFIG_DEVTMPFS=y but DEVTMPFS_MOUNT is off in Debian's config: the /dev/vportNpM nodes
# of virtio_console appear here without an mdev/udev.
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
echo "ucode-guest: init" > /dev/console

# Modules in dependency order, written by build_initramfs.sh from modules.dep.
while read -r ko; do
  [ -n "$ko" ] || continue
  insmod "/lib/modules/$ko" || echo "ucode-guest: insmod $ko failed" > /dev/console
done < /etc/ucode-guest/modules.order

# The port's name comes from the host (<target type='virtio' name='...'/>) through the
# virtio_console control queue, shortly after the device is probed.
port_name="$(cat /etc/ucode-guest/port)"
i=0
while [ "$i" -lt 100 ]; do
  for f in /sys/class/virtio-ports/*/name; do
    [ -r "$f" ] || continue
    if [ "$(cat "$f")" = "$port_name" ]; then
      dev="/dev/$(basename "$(dirname "$f")")"
      echo "ucode-guest: port $port_name=$dev" > /dev/console
      i=100
    fi
  done
  [ "$i" -ge 100 ] || { i=$((i + 1)); sleep 0.1; }
done

agent_args="$(cat /etc/ucode-guest/agent-args)"
while true; do
  echo "ucode-guest: agent start" > /dev/console
  # Word splitting of agent_args is intended: it holds the arguments chosen at build time.
  # shellcheck disable=SC2086
  /sbin/ucode-agent $agent_args < /dev/null > /dev/console 2>&1
  echo "ucode-guest: agent exited $?" > /dev/console
  sleep 1
done
