#!/usr/bin/env bash
# The project's Debian package for one platform of the full-stack tier, built from the committed
# tree (git archive HEAD) and cached by content; prints the directory holding
#   iommufd-broker_<version>_amd64.deb          the package
#   newer/iommufd-broker_<version>+fs1_amd64.deb the same package with a bumped version (the
#                                                upgrade step: apt install ./newer.deb)
#   check                                        "ok" or why the package's own unit tests failed
#   build.log
#
#   tests/fullstack/build-deb.sh deb12|deb13
#   tests/fullstack/build-deb.sh --check deb12|deb13   exit 0 when it is cached, 1 otherwise
#
# deb12: dpkg-buildpackage on this (Debian 12) host, as tests/package does.
# deb13: dpkg-buildpackage inside a Debian 13 chroot made by mmdebstrap (trixie + its updates,
#   security and backports suites, the package's Build-Depends; cached as a tarball), so
#   dh_auto_test runs the unit suite against Debian 13's libraries (json-c 0.18). When that
#   check fails, the reason is kept in "check" and the package is built again with
#   DEB_BUILD_OPTIONS=nocheck so the rest of the tier can run; run.sh reports the failure.
# Cache: $IFB_FULLSTACK_CACHE/deb/<platform>-<key>, key = sha256(HEAD's files but tests/fullstack, tests/kernel,
#   tools and contrib; REV below;
#   the chroot's key); $IFB_FULLSTACK_CACHE/chroot/<key>.tar.
set -euo pipefail
IFB_TAG=fullstack-deb
. "$(dirname "$0")/lib.sh"

REV=1   # bump when this script changes how the package is built
check=0
[ "${1:-}" = --check ] && { check=1; shift; }
[ $# -eq 1 ] || { echo "usage: $0 [--check] deb12|deb13" >&2; exit 2; }
platform=$1
codename=$(platform_codename "$platform")
git -C "$REPO" rev-parse --verify -q HEAD >/dev/null || die "$REPO is not a git checkout with a HEAD"
tree=$(git -C "$REPO" rev-parse 'HEAD^{tree}')
# What the package is made of: HEAD's files but the test tiers that never run in a package build,
# the tools and the README (installed as documentation only; a commit to those does not rebuild
# the package).
content=$(git -C "$REPO" ls-tree -r HEAD | grep -vE $'\t((tests/fullstack|tests/kernel|tools|contrib)/|README.md$)' | sha256sum | cut -c1-16)
if ! git -C "$REPO" diff --quiet HEAD -- daemon client proto units debian meson.build meson_options.txt man completion 2>/dev/null; then
    say "note: uncommitted changes to the product are not in the package (it is built from HEAD)"
fi
version=$(dpkg-parsechangelog -l "$REPO/debian/changelog" -S Version)
arch=$(dpkg --print-architecture)

# Build-Depends of debian/control as plain package names
build_deps() {
    awk '/^Build-Depends:/ {on=1; sub(/^Build-Depends:/, "")} on && /^[A-Za-z-]+:/ && !/^Build-Depends:/ {on=0}
         on {print}' "$REPO/debian/control" | tr ',' '\n' | sed 's/(.*)//; s/:native//; s/\[.*\]//; s/^ *//; s/ *$//' | grep -v '^$' | sort -u
}

chroot_key=""
chroot_tar=""
if [ "$platform" != deb12 ]; then
    deps=$(build_deps | tr '\n' ' ')
    chroot_key=$( { echo "rev=$REV"; echo "$codename"; echo "$deps"; platform_sources "$platform"; platform_pin "$platform";
                    sed -n '/^make_chroot()/,/^}/p' "$0"; } | sha256sum | cut -c1-16)
    chroot_tar=$FS_CACHE/chroot/$platform-$chroot_key.tar
fi
key=$( { echo "rev=$REV"; echo "$content"; echo "$platform"; echo "$chroot_key"; } | sha256sum | cut -c1-16)
out=$FS_CACHE/deb/$platform-$key
deb=iommufd-broker_${version}_$arch.deb
if [ $check = 1 ]; then
    [ -s "$out/$deb" ]
    exit
fi
if [ -s "$out/$deb" ] && [ -s "$out/newer/iommufd-broker_${version}+fs1_$arch.deb" ]; then
    say "cached: $out ($platform, tree ${tree:0:12})"
    echo "$out"
    exit 0
fi

make_chroot() {
    local tmp sources=() line pindir
    mkdir -p "$FS_CACHE/chroot"
    tmp=${chroot_tar%.tar}.partial.tar
    pindir=$work/pin
    mkdir -p "$pindir"
    platform_pin "$platform" > "$pindir/ifb-fullstack"
    while IFS= read -r line; do sources+=("$line"); done < <(platform_sources "$platform")
    say "[$(elapsed)] mmdebstrap: a $codename build chroot with $(echo "$deps" | wc -w) build dependencies (log $log)"
    nice -n 10 mmdebstrap --variant=buildd --components=main --include="$(echo $deps | tr ' ' ',')" \
        --setup-hook='mkdir -p "$1/etc/apt/preferences.d"' \
        --setup-hook="copy-in $pindir/ifb-fullstack /etc/apt/preferences.d" \
        "$codename" "$tmp" "${sources[@]}" >>"$log" 2>&1 &
    progress_wait $! "build chroot" "$log" || build_fail "mmdebstrap of the $codename build chroot"
    mv "$tmp" "$chroot_tar"
}

mkdir -p "$FS_CACHE/deb"
build_lock "$FS_CACHE/deb" "fullstack package"
t0=$(date +%s)
work=$out.partial
rm -rf "$work"
mkdir -p "$work/src" "$work/new/newer"
log=$work/new/build.log
: > "$log"
git -C "$REPO" archive --prefix="iommufd-broker-$version/" HEAD | tar -x -C "$work/src"

# dpkg_build ROOT|"" [nocheck]: dpkg-buildpackage in $work/src (host) or in the chroot ROOT
dpkg_build() {
    local root=$1 opts=${2:-}
    if [ -z "$root" ]; then
        (cd "$work/src/iommufd-broker-$version" && DEB_BUILD_OPTIONS="$opts" nice -n 10 dpkg-buildpackage -us -uc -b) >>"$log" 2>&1 &
    else
        unshare -m sh -c "mount -t proc proc '$root/proc' && mount --rbind /dev '$root/dev' &&
            mount -t tmpfs tmpfs '$root/tmp' &&
            chroot '$root' sh -c 'cd /build/iommufd-broker-$version && DEB_BUILD_OPTIONS=\"$opts\" nice -n 10 dpkg-buildpackage -us -uc -b'" >>"$log" 2>&1 &
    fi
    progress_wait $! "dpkg-buildpackage ($platform${opts:+, $opts})" "$log"
}

if [ "$platform" = deb12 ]; then
    command -v dpkg-buildpackage >/dev/null || die "dpkg-buildpackage missing: tools/install-deps package"
    missing=$(cd "$work/src/iommufd-broker-$version" && dpkg-checkbuilddeps 2>&1 | sed -n 's/.*Unmet build dependencies: //p')
    [ -z "$missing" ] || die "build dependencies missing: $missing (tools/install-deps package)"
    say "[$(elapsed)] dpkg-buildpackage on this host (Debian 12), tree ${tree:0:12}"
    dpkg_build "" || build_fail "dpkg-buildpackage"
    echo ok > "$work/new/check"
    built=$work/src
else
    [ -s "$chroot_tar" ] || make_chroot
    root=$work/root
    mkdir -p "$root"
    say "[$(elapsed)] unpacking the $codename build chroot"
    tar -xf "$chroot_tar" -C "$root"
    mkdir -p "$root/build"
    mv "$work/src/iommufd-broker-$version" "$root/build/"
    say "[$(elapsed)] dpkg-buildpackage in the $codename chroot (its dh_auto_test runs the unit suite), tree ${tree:0:12}"
    if dpkg_build "$root"; then
        echo ok > "$work/new/check"
    else
        fails=$(grep -aE '^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT)' "$log" | awk '{print $4}' | sort -u | tr '\n' ' ')
        why=$(grep -aE '^not ok ' "$log" | sort -u | head -n 3 | cut -c1-160 | tr '\n' ';')
        echo "the unit tests failed in $codename's dpkg-buildpackage (dh_auto_test): ${fails:-see build.log}${why:+- $why}" > "$work/new/check"
        say "the $codename build failed: $(cat "$work/new/check"); building again with DEB_BUILD_OPTIONS=nocheck so the tier can go on"
        dpkg_build "$root" nocheck || build_fail "dpkg-buildpackage (nocheck) in $codename"
    fi
    built=$root/build
fi
cp "$built/$deb" "$work/new/" || build_fail "no $deb after the build"
dpkg-deb -I "$work/new/$deb" >/dev/null

# The upgrade: the same package, its version bumped (dpkg-deb repack of the build just made)
say "[$(elapsed)] the upgrade package: $version -> $version+fs1"
rp=$work/repack
dpkg-deb -R "$work/new/$deb" "$rp"
sed -i "s/^Version: .*/Version: $version+fs1/" "$rp/DEBIAN/control"
dpkg-deb -Zxz -b "$rp" "$work/new/newer/iommufd-broker_${version}+fs1_$arch.deb" >>"$log"
cat > "$work/new/info" <<EOI
platform=$platform
tree=$tree
version=$version
chroot=${chroot_key:-host}
build_seconds=$(( $(date +%s) - t0 ))
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOI
build_publish "$work/new" "$out" "$work"
say "[$(elapsed)] done: $out ($(cat "$out/check"))"
echo "$out"
