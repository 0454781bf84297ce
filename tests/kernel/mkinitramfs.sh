#!/usr/bin/env bash
# Pack a newc initramfs for the kernel suite.
#
#   tests/kernel/mkinitramfs.sh OUT.cpio[.gz] [--sysroot DIR] [--bin PATH]... [--file SRC:DEST]... --init SCRIPT
#
#   OUT ending in .gz is gzip'd (-1); otherwise the cpio is left uncompressed, which boots
#   ~1 s faster under TCG (no in-guest gunzip of ~70 MB) and packs ~2 s faster.
#   --bin PATH       an ELF executable, installed as /usr/bin/<basename>; its shared libraries
#                    (resolved with ldd on the host) are copied to the same paths in the image,
#                    the dynamic loader included (/lib64/ld-linux-x86-64.so.2).
#   --file SRC:DEST  a file or directory copied to DEST (absolute path in the guest).
#   --init SCRIPT    the guest script, installed as /ifb/guest.sh and run by /init with
#                    /bin/sh (busybox).
#   --sysroot DIR    the image is for another architecture (the arm64 boots): busybox is
#                    DIR/bin/busybox (busybox-static of that architecture, unpacked in DIR), and
#                    each --bin's libraries are its DT_NEEDED entries, followed recursively and
#                    found in DIR's multiarch library directories (ldd cannot run a foreign
#                    binary), plus its PT_INTERP loader; copied to the same paths in the image.
#                    The applet list is the host busybox-static's (the same Debian version).
#
# Contents: busybox-static with all its applet links, a merged-/usr layout like the host
# (/bin -> usr/bin, /lib -> usr/lib, ...), /etc/passwd + /etc/group (root, nobody), and /init:
#   mounts proc, sysfs, devtmpfs (/dev), tmpfs (/tmp, /run), cgroup2 (/sys/fs/cgroup);
#   exports every `ifb.NAME=VALUE` from the kernel command line as IFB_NAME=VALUE
#   (e.g. ifb.viommu=vtd -> IFB_VIOMMU=vtd);
#   prints `IFB-GUEST-START uptime=<s>`, runs /ifb/guest.sh, prints `IFB-GUEST-END uptime=<s>`
#   and `IFB-GUEST-EXIT=<status>` on lines of their own, powers off.
set -euo pipefail
IFB_TAG=mkinitramfs
. "$(dirname "$0")/lib.sh"

usage() { echo "usage: $0 OUT.cpio[.gz] [--bin PATH]... [--file SRC:DEST]... --init SCRIPT" >&2; exit 2; }
[ $# -ge 1 ] || usage
out=$1; shift
bins=(); files=(); init=""; sysroot=""
while [ $# -gt 0 ]; do
    case "$1" in
        --sysroot) [ $# -ge 2 ] || usage; sysroot=$2; shift 2 ;;
        --bin)  [ $# -ge 2 ] || usage; bins+=("$2"); shift 2 ;;
        --file) [ $# -ge 2 ] || usage; files+=("$2"); shift 2 ;;
        --init) [ $# -ge 2 ] || usage; init=$2; shift 2 ;;
        *) usage ;;
    esac
done
[ -n "$init" ] || usage
[ -f "$init" ] || die "--init $init: no such file"
[ -x /bin/busybox ] || die "/bin/busybox missing (apt-get install -t bookworm busybox-static)"
file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' ||
    ldd /bin/busybox 2>&1 | grep -q 'not a dynamic executable' ||
    die "/bin/busybox is not static (install busybox-static, not busybox)"
busybox=/bin/busybox
if [ -n "$sysroot" ]; then
    busybox=$sysroot/bin/busybox
    [ -f "$busybox" ] || die "--sysroot $sysroot: no bin/busybox (busybox-static of that architecture)"
    readelf -d "$busybox" 2>/dev/null | grep -q NEEDED && die "$busybox is not static"
fi

t0=$(date +%s%N)
stage=$(mktemp -d /tmp/ifb-initramfs.XXXXXX)
trap 'rm -rf "$stage"' EXIT

# Same merged-/usr layout as the host, so paths reported by ldd work as they are.
mkdir -p "$stage"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc,proc,sys,dev,tmp,run,root,ifb,var}
for d in bin sbin lib lib64; do
    if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$stage/$d"; else mkdir -p "$stage/$d"; fi
done
ln -s ../run "$stage/var/run"
chmod 1777 "$stage/tmp"

# busybox and its applets
cp "$busybox" "$stage/usr/bin/busybox"
nappl=0
while IFS= read -r a; do
    [ -e "$stage/$a" ] || [ -L "$stage/$a" ] && continue
    mkdir -p "$stage/$(dirname "$a")"
    ln -s /usr/bin/busybox "$stage/$a"
    nappl=$((nappl + 1))
done < <(/bin/busybox --list-full)

# copy one host file to the same path in the image (following symlinks)
put() {
    local src=$1 dest=$2
    [ -e "$stage$dest" ] && return 0
    mkdir -p "$stage$(dirname "$dest")"
    cp -L "$src" "$stage$dest"
}

# foreign_libs BIN: the libraries BIN needs, as paths inside $sysroot (recursively, with the
# loader), one a line; fails naming a library found nowhere.
foreign_libs() {
    local todo=("$1") f lib d found interp
    declare -A visited=()
    interp=$(readelf -l "$1" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
    [ -z "$interp" ] || echo "$interp"
    while [ ${#todo[@]} -gt 0 ]; do
        f=${todo[0]}; todo=("${todo[@]:1}")
        for lib in $(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            [ -n "${visited[$lib]:-}" ] && continue
            visited[$lib]=1
            found=""
            for d in /lib/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu /lib /usr/lib; do
                [ -e "$sysroot$d/$lib" ] && { found=$d/$lib; break; }
            done
            [ -n "$found" ] || { echo "$lib (needed by $(basename "$f")) not found in $sysroot" >&2; return 1; }
            echo "$found"
            todo+=("$sysroot$found")
        done
    done
}

nlibs=0
declare -A seen=()
for b in "${bins[@]}"; do
    [ -f "$b" ] || die "--bin $b: no such file"
    [ -x "$b" ] || die "--bin $b: not executable"
    put "$b" "/usr/bin/$(basename "$b")"
    if [ -n "$sysroot" ]; then
        libs=$(foreign_libs "$b") || die "--bin $b: unresolved libraries"
        while IFS= read -r lib; do
            [ -n "$lib" ] && [ -z "${seen[$lib]:-}" ] || continue
            seen[$lib]=1
            put "$sysroot$lib" "$lib"
            nlibs=$((nlibs + 1))
        done <<<"$libs"
        continue
    fi
    if ! lddout=$(ldd "$b" 2>&1); then
        echo "$lddout" | grep -q 'not a dynamic executable' && continue
        die "ldd $b failed: $lddout"
    fi
    if echo "$lddout" | grep -q 'not found'; then
        die "ldd $b: unresolved libraries: $(echo "$lddout" | grep 'not found' | tr -s ' \t' ' ')"
    fi
    # "libx.so.1 => /usr/lib/x86_64-linux-gnu/libx.so.1 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)"
    while IFS= read -r lib; do
        [ -n "$lib" ] || continue
        [ -n "${seen[$lib]:-}" ] && continue
        seen[$lib]=1
        put "$lib" "$lib"
        nlibs=$((nlibs + 1))
    done < <(echo "$lddout" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
done

for f in "${files[@]}"; do
    src=${f%%:*}; dest=${f#*:}
    [ "$src" != "$f" ] && [ "${dest#/}" != "$dest" ] || die "--file $f: want SRC:/abs/dest"
    [ -e "$src" ] || die "--file $f: $src does not exist"
    mkdir -p "$stage$(dirname "$dest")"
    cp -a "$src" "$stage$dest"
done

cp "$init" "$stage/ifb/guest.sh"
chmod 0755 "$stage/ifb/guest.sh"

cat > "$stage/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat > "$stage/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo ifb-guest > "$stage/etc/hostname"

cat > "$stage/init" <<'EOF'
#!/bin/sh
# iommufd-broker kernel-suite init (generated by tests/kernel/mkinitramfs.sh)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || true   # DEVTMPFS_MOUNT may have done it
mkdir -p /dev/pts /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
hostname ifb-guest
# ifb.NAME=VALUE on the kernel command line -> IFB_NAME=VALUE
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        ifb.*=*)
            k=${arg%%=*}; k=${k#ifb.}; v=${arg#*=}
            k=$(echo "$k" | tr 'a-z.-' 'A-Z__')
            export "IFB_$k=$v" ;;
    esac
done
echo "IFB-GUEST-START uptime=$(cut -d" " -f1 /proc/uptime)"
cd /
/bin/sh /ifb/guest.sh
rc=$?
sync
echo "IFB-GUEST-END uptime=$(cut -d" " -f1 /proc/uptime)"
echo "IFB-GUEST-EXIT=$rc"
poweroff -f
# not reached unless poweroff failed; with QEMU -no-reboot a reboot ends the run too
reboot -f
EOF
chmod 0755 "$stage/init"

mkdir -p "$(dirname "$out")"
compress=cat
case "$out" in *.gz) compress="gzip -1" ;; esac
(cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) |
    $compress > "$out.tmp"
mv "$out.tmp" "$out"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
say "$out: $(du -sh --apparent-size "$stage" | cut -f1) unpacked, $(stat -c %s "$out") bytes packed;" \
    "${#bins[@]} binaries, $nlibs shared libraries, ${#files[@]} extra files, $nappl busybox applets; ${ms} ms"
