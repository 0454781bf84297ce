#!/usr/bin/env bash
# The root file system of one platform of the full-stack tier, cached by content; prints the
# path of its ext4 image (booted read-only: QEMU's snapshot=on keeps the writes in a temporary
# overlay).
#
#   tests/fullstack/mkrootfs.sh deb12|deb13 PACKAGE.deb
#
# mmdebstrap (variant apt, no recommends) from the mirror apt is configured with (lib.sh
# mirror_uri: no host name is typed here), with the platform's four suites and its pin
# (lib.sh platform_pin), the packages below plus every package the broker's .deb depends on, so
# that `apt install ./iommufd-broker_*.deb` inside the guest needs no network. The broker itself
# is NOT installed: installing it is a step of the guest script. rootfs-setup.sh (customize
# hook) makes it boot to the test: fstab, masked timers and gettys, the test unit.
# Cache: $IFB_FULLSTACK_CACHE/rootfs/<platform>-<key>/{rootfs.ext4,versions,packages,info,
#   mmdebstrap.log}, key = sha256(platform, suites, pin, package list, this script,
#   rootfs-setup.sh).
set -euo pipefail
IFB_TAG=fullstack-rootfs
. "$(dirname "$0")/lib.sh"

REV=1
[ $# -eq 2 ] || { echo "usage: $0 deb12|deb13 PACKAGE.deb" >&2; exit 2; }
platform=$1
deb=$2
codename=$(platform_codename "$platform")
[ -f "$deb" ] || die "$deb: no such package"
command -v mmdebstrap >/dev/null || die "mmdebstrap missing: tools/install-deps fullstack"
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 missing: tools/install-deps fullstack"

# systemd as PID 1 with udev and D-Bus, libvirtd + virtlogd (libvirt-daemon-system), machined
# (systemd-container), QEMU, and the broker's dependencies.
pkgs="systemd systemd-sysv udev dbus systemd-container libvirt-daemon-system libvirt-clients qemu-system-x86 procps"
debdeps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/^ *//; s/ *$//' | grep -v '^$' | sort -u | tr '\n' ' ')
pkgs="$pkgs $debdeps"
key=$( { echo "rev=$REV"; echo "$platform"; platform_sources "$platform"; platform_pin "$platform"; echo "$pkgs";
         cat "$0" "$FDIR/rootfs-setup.sh"; } | sha256sum | cut -c1-16)
out=$FS_CACHE/rootfs/$platform-$key
if [ -s "$out/rootfs.ext4" ]; then
    say "cached: $out/rootfs.ext4 ($(cat "$out/versions" 2>/dev/null | tr '\n' ' '))"
    echo "$out/rootfs.ext4"
    exit 0
fi

mkdir -p "$FS_CACHE/rootfs"
build_lock "$FS_CACHE/rootfs" "fullstack root file system"
if [ -s "$out/rootfs.ext4" ]; then echo "$out/rootfs.ext4"; exit 0; fi
t0=$(date +%s)
work=$out.partial
rm -rf "$work"
mkdir -p "$work/new" "$work/pin"
log=$work/new/mmdebstrap.log
platform_pin "$platform" > "$work/pin/ifb-fullstack"
sources=()
while IFS= read -r line; do sources+=("$line"); done < <(platform_sources "$platform")
say "[$(elapsed)] mmdebstrap $codename ($(echo $pkgs | wc -w) packages + their dependencies; log $log)"
nice -n 10 mmdebstrap --variant=apt --components=main --format=directory \
    --include="$(echo $pkgs | tr ' ' ',')" \
    --setup-hook='mkdir -p "$1/etc/apt/preferences.d"' \
    --setup-hook="copy-in $work/pin/ifb-fullstack /etc/apt/preferences.d" \
    --customize-hook="$FDIR/rootfs-setup.sh" \
    "$codename" "$work/root" "${sources[@]}" >>"$log" 2>&1 &
progress_wait $! "mmdebstrap $codename" "$log" || build_fail "mmdebstrap $codename"
t_strap=$(( $(date +%s) - t0 ))

ver() { chroot "$work/root" dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo none; }
{
    echo "systemd $(ver systemd)"
    echo "libvirt $(ver libvirt-daemon)"
    echo "qemu $(ver qemu-system-x86)"
    echo "json-c $(chroot "$work/root" dpkg-query -W -f='${Version}\n' 'libjson-c5*' 2>/dev/null | head -n1)"
    echo "kernel-userland $codename"
} > "$work/new/versions"
chroot "$work/root" dpkg-query -W -f='${Package} ${Version}\n' > "$work/new/packages"
mb=$(du -sm "$work/root" | cut -f1)
say "[$(elapsed)] mkfs.ext4 -d: $mb MiB of files into a $(( mb + 1536 )) MiB image"
mkfs.ext4 -q -F -L ifbroot -d "$work/root" "$work/new/rootfs.ext4" "$(( mb + 1536 ))M" >>"$log" 2>&1 ||
    build_fail "mkfs.ext4"
cat > "$work/new/info" <<EOI
key=$key
platform=$platform
packages=$pkgs
mmdebstrap_seconds=$t_strap
build_seconds=$(( $(date +%s) - t0 ))
files_mib=$mb
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOI
build_publish "$work/new" "$out" "$work"
say "[$(elapsed)] done: $out/rootfs.ext4 ($(tr '\n' ' ' < "$out/versions"))"
echo "$out/rootfs.ext4"
