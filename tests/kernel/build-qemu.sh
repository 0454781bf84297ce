#!/usr/bin/env bash
# Build (or fetch from cache) the adopting QEMU of contrib/qemu/ for the kernel suite.
#
#   tests/kernel/build-qemu.sh      -> prints the path of the patched QEMU on its last line of
#                                      stdout: <cache>/<key>/qemu-system-x86_64-adopt (named
#                                      apart from Debian's qemu-system-x86_64, which shares
#                                      the kernel suite's initramfs)
#
# Source: the upstream tarball of Debian's qemu source package in bookworm-backports
# (qemu_10.0.x+ds.orig.tar.xz), fetched with `apt-get source` through a deb-src entry that
# `tools/install-deps qemu-build` adds by reusing the configured mirror. Only the orig tarball
# is used (Debian's own patches are not applied): contrib/qemu/*.patch are made against it.
# Its SHA256 is checked against the signed Sources index (`apt-get source --print-uris`).
# QEMU 10 wants meson >= 1.5 and pycotap; bookworm has meson 1.0, so bookworm-backports'
# meson and python3-pycotap are unpacked (`apt-get download` + `dpkg-deb -x`) into the build
# tree and found through PYTHONPATH by QEMU's configure; the system's meson is not touched.
#
# Configure: x86_64-softmmu, TCG + KVM, no optional features, no docs, no downloads, no blobs;
# Debian's paths (--prefix=/usr, its firmware path, not relocatable).
# The +ds tarball lacks the edk2 firmware images: a native file (configs/meson/linux.txt in the
# extracted tree, which configure picks up) points meson's `bzip2` at a name that does not
# exist, so the images are not unpacked.
#
# Cache (outside the clone):
#   ${IFB_QEMU_CACHE:-/var/cache/iommufd-broker/qemu}/<key>/{qemu-system-x86_64-adopt,info,
#                                                            build.log,patches/}
#   ${IFB_QEMU_CACHE}/downloads/   the orig tarball and the two .debs, kept for rebuilds
#   key = first 16 hex of sha256(orig tarball name + SHA256, every contrib/qemu/*.patch,
#         the meson and pycotap .deb names, recipe rev)
# A second run with the same key returns at once and needs no network. Builds are serialised
# with flock on <cache>/.build.lock (waiters re-check the cache once the lock is theirs).
#
# Env: IFB_QEMU_CACHE, IFB_QEMU_JOBS (default: 2), IFB_PROGRESS_SECS (default: 30).
set -euo pipefail
IFB_TAG=build-qemu
. "$(dirname "$0")/lib.sh"

RECIPE_REV=1   # bump when this script changes how QEMU is built
CACHE=${IFB_QEMU_CACHE:-/var/cache/iommufd-broker/qemu}
JOBS=${IFB_QEMU_JOBS:-2}
EVERY=${IFB_PROGRESS_SECS:-30}
PATCHDIR=$REPO/contrib/qemu
SUITE=bookworm-backports
# Installed paths as Debian's QEMU, not relocatable: wherever the binary lies, it finds the
# firmware of Debian's seabios, qemu-system-data and ipxe-qemu packages without -L.
CONFIGURE_FLAGS=(--target-list=x86_64-softmmu --without-default-features --enable-tcg
                 --enable-kvm --disable-fdt --disable-docs --disable-download
                 --disable-install-blobs --prefix=/usr --disable-relocatable
                 --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu)

[ $# -eq 0 ] || { echo "usage: $0" >&2; exit 2; }

# -- prerequisites: tools/install-deps qemu-build (also adds the deb-src entry)
need=0
for t in gcc make ninja pkg-config python3 patch strip dpkg-deb flock xz; do
    command -v "$t" >/dev/null 2>&1 || need=1
done
for p in python3-venv libglib2.0-dev zlib1g-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need=1
done
[ -f /etc/apt/sources.list.d/iommufd-broker-backports-src.sources ] ||
    grep -rqsE "^deb-src .* $SUITE( |\$)" /etc/apt/sources.list /etc/apt/sources.list.d/ || need=1
if [ $need = 1 ]; then
    [ "$(id -u)" = 0 ] || die "prerequisites missing and not root: run 'sudo tools/install-deps qemu-build'"
    say "installing prerequisites: tools/install-deps qemu-build"
    "$REPO/tools/install-deps" qemu-build || die "tools/install-deps qemu-build failed"
fi

# -- what would be built: from apt's (signed) indexes only, no download yet
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# lines: 'URI' NAME SIZE SHA256:HEX
src_uris=$(cd "$scratch" && apt-get source -qq -t "$SUITE" --print-uris qemu 2>/dev/null) ||
    die "apt-get source --print-uris qemu failed: is a deb-src entry for $SUITE configured? (tools/install-deps qemu-build)"
orig_line=$(printf '%s\n' "$src_uris" | awk '$2 ~ /^qemu_.*\.orig\.tar\.xz$/ {print; exit}')
[ -n "$orig_line" ] || die "no qemu_*.orig.tar.xz among the source files of qemu in $SUITE"
orig_name=$(awk '{print $2}' <<<"$orig_line")
orig_sha=$(awk '{sub(/^SHA256:/, "", $4); print $4}' <<<"$orig_line")
[[ $orig_sha =~ ^[0-9a-f]{64}$ ]] || die "no SHA256 for $orig_name in the Sources index ($orig_line)"
srcver=${orig_name#qemu_}; srcver=${srcver%.orig.tar.xz}

deb_uris=$(cd "$scratch" && apt-get download -qq -t "$SUITE" --print-uris meson python3-pycotap 2>/dev/null) ||
    die "apt-get download --print-uris -t $SUITE meson python3-pycotap failed"
deb_names=$(awk '{print $2}' <<<"$deb_uris" | sort)
[ "$(wc -l <<<"$deb_names")" = 2 ] || die "expected the meson and python3-pycotap .debs from $SUITE, got: $deb_names"

shopt -s nullglob
patches=("$PATCHDIR"/*.patch)
shopt -u nullglob
[ ${#patches[@]} -gt 0 ] || die "no patches in $PATCHDIR"

key=$( { echo "$orig_name $orig_sha"; cat "${patches[@]}"; echo "$deb_names"; echo "recipe=$RECIPE_REV"; } |
       sha256sum | cut -c1-16)
out=$CACHE/$key
bin=$out/qemu-system-x86_64-adopt

if [ -x "$bin" ]; then
    say "cached: $bin (QEMU $srcver + ${#patches[@]} patches)"
    echo "$bin"
    exit 0
fi

mkdir -p "$CACHE/downloads"
build_lock "$CACHE" QEMU
if [ -x "$bin" ]; then
    say "cached: $bin (built meanwhile)"
    echo "$bin"
    exit 0
fi

build_start "$key"
say "building QEMU $key (orig $srcver + ${#patches[@]} patches from contrib/qemu, ninja -j$JOBS); full log: $log"

fail() { build_fail "$@"; }

# -- sources: apt fetches into a directory its sandbox user may write to
dl=$CACHE/downloads
fetch_dir=$scratch/fetch
mkdir -p "$fetch_dir"
id -u _apt >/dev/null 2>&1 && chown _apt "$fetch_dir"
if ! { [ -f "$dl/$orig_name" ] && echo "$orig_sha  $dl/$orig_name" | sha256sum -c --quiet - >/dev/null 2>&1; }; then
    say "[$(elapsed)] apt-get source --download-only -t $SUITE qemu"
    # Only the orig tarball is needed: a mirror that lacks the .dsc or the Debian diff makes
    # apt-get fail after fetching the tarball, which is then checked by its hash.
    (cd "$fetch_dir" && apt-get source -qq -t "$SUITE" --download-only qemu) >>"$log" 2>&1 || true
    [ -f "$fetch_dir/$orig_name" ] || fail "apt-get source did not fetch $orig_name"
    echo "$orig_sha  $fetch_dir/$orig_name" | sha256sum -c --quiet - >>"$log" 2>&1 ||
        fail "$orig_name does not match the SHA256 of the Sources index"
    mv "$fetch_dir/$orig_name" "$dl/$orig_name"
fi
for deb in $deb_names; do
    [ -f "$dl/$deb" ] && continue
    say "[$(elapsed)] apt-get download -t $SUITE ${deb%%_*}"
    (cd "$fetch_dir" && apt-get download -qq -t "$SUITE" "${deb%%_*}") >>"$log" 2>&1 ||
        fail "apt-get download ${deb%%_*}"
    [ -f "$fetch_dir/$deb" ] || fail "apt-get download did not fetch $deb"
    mv "$fetch_dir/$deb" "$dl/$deb"
done

say "[$(elapsed)] extracting $orig_name"
mkdir -p "$work/src" "$work/pytools" "$work/build"
tar --no-same-owner -xJf "$dl/$orig_name" -C "$work/src" --strip-components=1 >>"$log" 2>&1 ||
    fail "extracting $orig_name"
for deb in $deb_names; do
    dpkg-deb -x "$dl/$deb" "$work/pytools" >>"$log" 2>&1 || fail "unpacking $deb"
done
pypath=$work/pytools/usr/lib/python3/dist-packages
[ -d "$pypath/mesonbuild" ] || fail "no mesonbuild in $pypath"

cd "$work/src"
for p in "${patches[@]}"; do
    say "[$(elapsed)] applying contrib/qemu/${p##*/}"
    patch -p1 --batch --forward --fuzz=0 < "$p" >>"$log" 2>&1 || fail "patch ${p##*/} does not apply to $srcver"
done
# The +ds tarball has no edk2 images: make meson find no bzip2 so it does not unpack them.
[ -e configs/meson/linux.txt ] && fail "configs/meson/linux.txt exists upstream now: revisit the edk2 work-around"
printf "[binaries]\nbzip2 = 'ifb-no-bzip2'\n" > configs/meson/linux.txt

say "[$(elapsed)] configure ${CONFIGURE_FLAGS[*]}"
cd "$work/build"
PYTHONPATH=$pypath "$work/src/configure" --python=/usr/bin/python3 "${CONFIGURE_FLAGS[@]}" >>"$log" 2>&1 ||
    fail "configure"
t_conf=$(( $(date +%s) - t0 ))

say "[$(elapsed)] ninja -j$JOBS qemu-system-x86_64 (progress every ${EVERY}s)"
ninja_progress() {
    local last
    last=$(grep -E '^\[[0-9]+/[0-9]+\]' "$log" | tail -n 1 | cut -c1-110)
    echo "${last:-starting}"
}
BUILD_CLEANUP='rm -rf "$scratch"'
rc=0; build_run ninja_progress ninja -j"$JOBS" qemu-system-x86_64 || rc=$?
[ $rc = 0 ] || fail "ninja exited $rc"
[ -x qemu-system-x86_64 ] || fail "ninja succeeded but qemu-system-x86_64 is missing"

mkdir -p "$new/patches"
strip -o "$new/${bin##*/}" qemu-system-x86_64 || fail "strip"
cp "${patches[@]}" "$new/patches/"
version=$("$new/${bin##*/}" --version | head -n 1)
build_finish "$key" "$out" "qemu_version=$version" "orig=$orig_name" "orig_sha256=$orig_sha" \
    "patches=$(cd "$PATCHDIR" && echo *.patch)" "python_tools=$(echo $deb_names)" \
    "configure=${CONFIGURE_FLAGS[*]}" "recipe_rev=$RECIPE_REV" "configured_after_seconds=$t_conf"
say "[$(elapsed)] done: $bin ($version, $(stat -c %s "$bin") bytes)"
echo "$bin"
