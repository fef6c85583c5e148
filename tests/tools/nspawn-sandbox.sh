#!/bin/sh
# A throwaway container whose PID 1 is systemd, for tests/prod_nspawn.rs:
#
#   unshare --mount tests/tools/nspawn-sandbox.sh ROOT
#
# The container's root, ROOT/root, is an overlay of this host's own root file system with its
# upper layer in ROOT/up: the host's systemd, libraries and units, and every change (installed
# units, /etc/vhost-user-spice, enabled sockets) lands in ROOT and nowhere else. The overlay lives
# in this private mount namespace, so it disappears with the process. systemd boots to
# basic.target (sockets, no services of the host's multi-user.target) and shares the host's
# network, so its socket units listen on the host's loopback.
#
# --register=no --keep-unit: no machined and no D-Bus here (nspawn otherwise needs the system bus
# to allocate a scope). SIGTERM to this process (nspawn) powers the container off.
set -eu

root=$1

mkdir -p "$root/up" "$root/work" "$root/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$root/up,workdir=$root/work" "$root/root"
# nspawn keeps state under /run/systemd/nspawn and cannot clean it up where /run is not a tmpfs.
mount -t tmpfs tmpfs /run
exec systemd-nspawn --quiet --directory="$root/root" --register=no --keep-unit --boot \
    --console=pipe -- systemd.unit=basic.target
