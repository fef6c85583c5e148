#!/bin/bash
# Installs what the VM and SPICE-client tests need on a Debian bookworm host (run as root).
# Idempotent and quiet: when every package is present it only runs dpkg-query and exits.
#
# QEMU 10 comes from bookworm-backports (vhost-user-gpu-pci as the tests drive it); everything else
# from bookworm. Never trixie: it has the same apt priority as bookworm and would upgrade the host
# piecemeal (shared/research/vmm-frontends.md §1.2).
#
# Env: VUS_WITH_REFERENCE_GPU=1  also install qemu-system-gui (QEMU's /usr/lib/qemu/vhost-user-gpu,
#                                used only for manual comparison runs).
set -euo pipefail

backports_pkgs=(qemu-system-x86)
[ "${VUS_WITH_REFERENCE_GPU:-0}" = 1 ] && backports_pkgs+=(qemu-system-gui)
# busybox-static, cpio, zstd, xz-utils: guest assembly; spice-client-gtk (spicy-screenshot) and the
# GObject bindings: headless SPICE clients; imagemagick: PPM -> PNG for failure artefacts;
# systemd: systemd-analyze and systemd-socket-activate for the prod_* tests; openssl: the
# certificates of docs/tls.md in spice_tls; libvirt-daemon-system, libvirt-daemon-driver-qemu,
# libvirt-clients (libvirt 9.0) and iproute2: vm_libvirt's libvirtd in a namespace;
# systemd-container: prod_nspawn's systemd-nspawn.
bookworm_pkgs=(spice-client-gtk gir1.2-spiceclientglib-2.0 python3-gi cpio busybox-static zstd
    xz-utils imagemagick util-linux systemd openssl libvirt-daemon-system
    libvirt-daemon-driver-qemu libvirt-clients iproute2 systemd-container)
backports_line='deb http://deb.debian.org/debian bookworm-backports main'
backports_list=/etc/apt/sources.list.d/bookworm-backports.list

missing() {
    local p
    for p in "$@"; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || echo "$p"
    done
}

# The backports qemu-system-x86 is 1:10.x; bookworm's own is 1:7.2 and lacks nothing we need to
# detect here, but the tests are written against 10.x, so an old one counts as missing.
qemu_from_backports() {
    local v
    v=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null) || return 1
    dpkg --compare-versions "$v" ge 1:10
}

need_bp=$(missing "${backports_pkgs[@]}")
qemu_from_backports || need_bp=$(printf '%s\n' $need_bp qemu-system-x86 | sort -u)
need_main=$(missing "${bookworm_pkgs[@]}")
has_backports_source() {
    grep -rqsE '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/
}
# build-guest.sh resolves the backports kernel from the apt lists even when no package is missing.
has_backports_lists() {
    ls /var/lib/apt/lists/ 2>/dev/null | grep -q 'bookworm-backports_main_binary-amd64_Packages'
}

if [ -z "$need_bp" ] && [ -z "$need_main" ] && has_backports_source && has_backports_lists; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps: missing: $need_bp $need_main (run as root)" >&2
    exit 1
fi

# Parallel tests may all find something missing; apt itself refuses concurrent runs.
{ exec 9>/run/lock/vus-install-test-deps.lock; } 2>/dev/null || exec 9>/tmp/vus-install-test-deps.lock
flock 9

if ! has_backports_source; then
    echo "$backports_line" > "$backports_list"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ -n "$need_bp" ]; then
    # shellcheck disable=SC2086 # one package per word
    apt-get install -y -qq --no-install-recommends -t bookworm-backports $need_bp >/dev/null
fi
if [ -n "$need_main" ]; then
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need_main >/dev/null
fi
