#!/bin/bash
# Builds the Linux test guest (OUTDIR/vmlinuz + OUTDIR/initrd.gz) from Debian packages only:
# the bookworm-backports kernel (linux-image-amd64 -> 6.12), busybox-static, a handful of modules
# and guest/ (init, draw-pattern). Nothing is installed on the host: packages are fetched with
# `apt-get download` into OUTDIR/debs (kept as a cache) and unpacked with dpkg-deb into a scratch
# directory.
#
# Usage: scripts/build-guest.sh OUTDIR
# Env:   VUS_KERNEL_DEB=path   use this linux-image .deb instead of resolving linux-image-amd64
#        VUS_GUEST_MODULES     module names to load (default below); their deps are added
#        VUS_FORCE=1           rebuild even when the outputs are up to date
#
# Needs: apt-get with bookworm-backports in its lists (scripts/install-test-deps.sh sets that up),
# dpkg-deb, tar, gzip, flock. Everything else (xz, strings, cpio) comes from the busybox .deb.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
guest_dir=$(cd "$here/../guest" && pwd)
self=$here/$(basename "${BASH_SOURCE[0]}")
out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)
modules=${VUS_GUEST_MODULES:-"drm drm_kms_helper drm_shmem_helper virtio_dma_buf virtio_gpu virtio_input evdev"}

# Parallel test threads and test binaries all call this; one builder at a time, the others find
# the finished outputs when they get the lock.
exec 9>"$out/.build.lock"
flock 9

up_to_date() {
    local f src
    for f in "$out/vmlinuz" "$out/initrd.gz"; do
        [ -s "$f" ] || return 1
        for src in "$self" "$guest_dir"/*; do
            [ "$f" -nt "$src" ] || return 1
        done
    done
}
if [ "${VUS_FORCE:-0}" != 1 ] && up_to_date; then
    exit 0
fi

start=$(date +%s.%N)
debs=$out/debs
mkdir -p "$debs"
scratch=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

apt_download() {
    # apt drops root to _apt for downloads, which cannot write into our cache directory.
    local opts=(-q)
    [ "$(id -u)" = 0 ] && opts+=(-o APT::Sandbox::User=root)
    (cd "$debs" && apt-get download "${opts[@]}" "$@" >/dev/null)
}

# cached_deb NAME: the newest cached .deb of package NAME, or nothing.
cached_deb() {
    local f
    # $1 may be a glob (linux-image-6.*), hence unquoted.
    f=$(ls -1 "$debs"/${1}_*.deb 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$f" ] && echo "$f"
}

fetch_deb() {
    local name=$1 f
    f=$(cached_deb "$name") || true
    if [ -z "$f" ]; then
        apt_download "$name"
        f=$(cached_deb "$name")
    fi
    echo "$f"
}

# The kernel: linux-image-amd64 from bookworm-backports is a metapackage naming the real one.
if [ -n "${VUS_KERNEL_DEB:-}" ]; then
    kernel_deb=$VUS_KERNEL_DEB
else
    kernel_pkg=$(apt-cache depends -t bookworm-backports linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }' || true)
    case "$kernel_pkg" in
        linux-image-6.*) kernel_deb=$(fetch_deb "$kernel_pkg") ;;
        *)
            # No backports in the apt lists (offline?): fall back to a kernel fetched earlier.
            kernel_deb=$(cached_deb 'linux-image-6.*') || {
                echo "build-guest: bookworm-backports linux-image-amd64 not found in the apt lists;" \
                    "run scripts/install-test-deps.sh" >&2
                exit 1
            }
            ;;
    esac
fi
busybox_deb=$(fetch_deb busybox-static)

dpkg-deb -x "$busybox_deb" "$scratch/bb"
bb=$scratch/bb/bin/busybox
dpkg-deb -x "$kernel_deb" "$scratch/k"
kdir=$(ls -d "$scratch"/k/lib/modules/*/ | head -n 1)
kver=$(basename "$kdir")

# Module name -> file. File names use '-' where module names use '_' (virtio-gpu.ko.xz).
declare -A mod_path
while IFS= read -r f; do
    n=${f##*/}
    n=${n%%.ko*}
    mod_path[${n//-/_}]=$f
done < <(find "$kdir" -name '*.ko*')

root=$scratch/root
mkdir -p "$root/bin" "$root/lib/modules" "$root/dev" "$root/proc" "$root/sys" "$root/tmp"
declare -A mod_done
load_order=()

# add_module NAME: decompress NAME and, depth first, everything its modinfo `depends=` names, so
# load_order lists every module after its dependencies.
add_module() {
    local name=${1//-/_} src ko deps dep
    [ -n "${mod_done[$name]:-}" ] && return 0
    mod_done[$name]=1
    src=${mod_path[$name]:-}
    if [ -z "$src" ]; then
        if grep -q "/${name}.ko\$\|/${name//_/-}.ko\$" "$kdir/modules.builtin"; then
            return 0
        fi
        echo "build-guest: module $name not found in $kver" >&2
        exit 1
    fi
    ko=$root/lib/modules/$name.ko
    case "$src" in
        *.xz) "$bb" xz -dc "$src" > "$ko" ;;
        *.zst) zstd -q -dc "$src" > "$ko" ;;
        *) cp "$src" "$ko" ;;
    esac
    deps=$("$bb" strings "$ko" | sed -n 's/^depends=//p' | head -n 1)
    for dep in ${deps//,/ }; do
        add_module "$dep"
    done
    load_order+=("$name")
}
for m in $modules; do
    add_module "$m"
done
printf '%s\n' "${load_order[@]}" > "$root/lib/modules/load-order"

cp "$bb" "$root/bin/busybox"
cp "$guest_dir/init" "$root/init"
cp "$guest_dir/draw-pattern" "$root/bin/draw-pattern"
chmod 755 "$root/init" "$root/bin/busybox" "$root/bin/draw-pattern"

(cd "$root" && find . | LC_ALL=C sort | "$bb" cpio -o -H newc -R 0:0 2>/dev/null) |
    gzip -6 > "$scratch/initrd.gz"
cp "$scratch"/k/boot/vmlinuz-* "$scratch/vmlinuz"

# Both outputs appear only complete: a killed build never leaves a half-written initrd behind.
mv -f "$scratch/initrd.gz" "$out/initrd.gz"
mv -f "$scratch/vmlinuz" "$out/vmlinuz"
echo "$kver" > "$out/kernel-version"
echo "build-guest: kernel $kver, modules: ${load_order[*]} ($(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s)" >&2
