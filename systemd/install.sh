#!/bin/sh
# Installs vhost-user-spice for systemd and libvirt: install.sh [DESTDIR]
#
#   cargo build --release && sudo systemd/install.sh          # onto this host
#   systemd/install.sh /tmp/pkgroot                           # into a staging tree (packaging)
#
# Env: BINARY   the daemon to install (default: target/release/vhost-user-spice)
#      PREFIX   /usr by default
# Installs: $PREFIX/libexec/vhost-user-spice, the unit templates in $PREFIX/lib/systemd/system,
# the libvirt/QEMU descriptor in $PREFIX/share/qemu/vhost-user, docs and example.toml in
# $PREFIX/share/doc/vhost-user-spice, and creates /etc/vhost-user-spice (mode 0755).
# It enables nothing; docs/systemd.md has the per-VM steps.
set -eu

destdir=${1:-}
prefix=${PREFIX:-/usr}
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
binary=${BINARY:-$top/target/release/vhost-user-spice}

if [ ! -x "$binary" ]; then
    echo "install.sh: $binary is missing; run cargo build --release (or set BINARY=)" >&2
    exit 1
fi

install -D -m 0755 "$binary" "$destdir$prefix/libexec/vhost-user-spice"
# The service and the descriptor name the binary by absolute path: point them at where it went.
installed() { # SOURCE TARGET
    mkdir -p "$(dirname "$2")"
    sed "s#/usr/libexec/vhost-user-spice#$prefix/libexec/vhost-user-spice#" "$1" > "$2"
    chmod 0644 "$2"
}
for unit in vhost-user-spice@.service vhost-user-spice-gpu@.socket \
            vhost-user-spice-input@.socket vhost-user-spice-spice@.socket; do
    installed "$here/$unit" "$destdir$prefix/lib/systemd/system/$unit"
done
installed "$here/40-vhost-user-spice-gpu.json" \
    "$destdir$prefix/share/qemu/vhost-user/40-vhost-user-spice-gpu.json"
install -D -m 0644 "$here/example.toml" "$destdir$prefix/share/doc/vhost-user-spice/example.toml"
for doc in "$top"/docs/*.md; do
    if [ -e "$doc" ]; then
        install -D -m 0644 "$doc" "$destdir$prefix/share/doc/vhost-user-spice/$(basename "$doc")"
    fi
done
install -d -m 0755 "$destdir/etc/vhost-user-spice"

if [ -z "$destdir" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
