#!/bin/sh
# A throwaway libvirt host for tests/vm_libvirt.rs: the system libvirtd of Debian's packages with
# its real paths, but every change lands in ROOT and vanishes with the namespaces.
#
#   unshare --mount --net --pid --fork --kill-child tests/tools/libvirt-sandbox.sh ROOT
#
# Inside: /etc, /usr and /var are overlays whose upper layers are ROOT/ov/{etc,usr,var}-up, so
# `systemd/install.sh`, /etc/vhost-user-spice and /var/lib/libvirt work as on a real host;
# ROOT/run is /run (libvirtd's socket is ROOT/run/libvirt/libvirt-sock, reachable from outside
# with `virsh -c 'qemu:///system?socket=…'`); the network namespace has only loopback, so the
# VM's SPICE port collides with nothing. This script stays as PID 1 of the namespace and reaps
# what libvirt daemonizes (QEMU, the vhost-user backend); when it dies, the kernel kills the rest.
set -eu

root=$1

for dir in etc usr var; do
    mkdir -p "$root/ov/$dir-up" "$root/ov/$dir-work"
    mount -t overlay overlay \
        -o "lowerdir=/$dir,upperdir=$root/ov/$dir-up,workdir=$root/ov/$dir-work" "/$dir"
done
mkdir -p "$root/run"
mount --bind "$root/run" /run
# libvirt reads its children's state from /proc: it must show this PID namespace.
mount -t proc proc /proc
ip link set lo up

# The packaged default network would create a bridge; nothing here needs one.
rm -f /etc/libvirt/qemu/networks/autostart/*.xml
# No virtlogd on a host without systemd: QEMU's output goes straight to
# /var/log/libvirt/qemu/<domain>.log.
echo 'stdio_handler = "file"' >> /etc/libvirt/qemu.conf

libvirtd &
# PID 1's duty: reap everything (dash's wait reaps any child, adopted orphans included) until
# libvirtd exits. Without this libvirt waits 40 s for each probe QEMU it cannot see die.
wait
