#!/usr/bin/env bash
# Fetch a source package's .deb from Debian sid through a PRIVATE apt configuration and print
# the path of what it ships under /usr/src (the kernel tarball).
#
#   tests/kernel/sid-source.sh linux-source-7.2   -> .../linux-source-7.2_<ver>/linux-source-7.2.tar.xz
#
# Theory of operation: the machine's own apt sources are never touched (sid must not become an
# install candidate for anything). A sources list naming only sid, on the mirror URI the machine
# already uses for bookworm, lives under $CACHE/apt with apt's state and archive dirs beside it;
# `apt-get update` and `apt-get download` run with Dir::Etc::*, Dir::State and Dir::Cache
# pointing there. The .deb is unpacked with dpkg-deb (no dpkg database involved) into
# $CACHE/<package>_<version>/, published by one rename; a second call with the same sid version
# returns at once. The package index is refreshed at most once a day (IFB_SID_REFRESH=1 forces),
# so a cached tarball is used without any network access.
#
# Env: IFB_SID_CACHE (default /var/cache/iommufd-broker/sid).
set -euo pipefail
IFB_TAG=sid-source
. "$(dirname "$0")/lib.sh"

pkg=${1:?usage: $0 PACKAGE (e.g. linux-source-7.2)}
CACHE=${IFB_SID_CACHE:-/var/cache/iommufd-broker/sid}
apt_dir=$CACHE/apt

# The newest entry already unpacked, if any: no network needed for it.
latest_cached() {
    local d
    d=$(ls -d "$CACHE/${pkg}_"*/ 2>/dev/null | grep -v '\.new/$' | sort -V | tail -n 1 || true)
    [ -n "$d" ] && ls "$d"usr/src/*.tar.xz 2>/dev/null | head -n 1
}

if [ "${IFB_SID_REFRESH:-0}" != 1 ] && tb=$(latest_cached) && [ -n "$tb" ] &&
   [ -z "$(find "$apt_dir/state/lists" -maxdepth 0 -mmin +1440 2>/dev/null)" ]; then
    say "cached: $tb"
    echo "$tb"
    exit 0
fi

mkdir -p "$apt_dir/etc/preferences.d" "$apt_dir/etc/sources.list.d" "$apt_dir/state/lists/partial" \
         "$apt_dir/cache/archives/partial" "$apt_dir/debs"
build_lock "$CACHE" "sid download"
printf 'Types: deb\nURIs: %s\nSuites: sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$(bookworm_mirror_uri)" > "$apt_dir/etc/sources.list.d/sid.sources"
: > "$apt_dir/etc/sources.list"
touch "$apt_dir/state/status"
apt_private=(-o Dir::Etc::SourceList="$apt_dir/etc/sources.list"
             -o Dir::Etc::SourceParts="$apt_dir/etc/sources.list.d"
             -o Dir::Etc::Preferences=/dev/null
             -o Dir::Etc::PreferencesParts="$apt_dir/etc/preferences.d"
             -o Dir::State="$apt_dir/state" -o Dir::State::status="$apt_dir/state/status"
             -o Dir::Cache="$apt_dir/cache"
             -o APT::Architecture="$(dpkg --print-architecture)"
             -o Acquire::Languages=none -o APT::Get::List-Cleanup=true)

t0=$(date +%s)
say "apt-get update (private sid list on $(bookworm_mirror_uri))"
if ! apt-get "${apt_private[@]}" update -qq >"$apt_dir/update.log" 2>&1; then
    tail -n 20 "$apt_dir/update.log" >&2
    tb=$(latest_cached || true)
    [ -n "$tb" ] || die "apt-get update for sid failed (log: $apt_dir/update.log)"
    say "sid index unreachable; using the cached $tb"
    echo "$tb"
    exit 0
fi
ver=$(apt-cache "${apt_private[@]}" show --no-all-versions "$pkg" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
[ -n "$ver" ] || die "$pkg is not in sid's index"
out=$CACHE/${pkg}_$ver
if ls "$out"/usr/src/*.tar.xz >/dev/null 2>&1; then
    say "cached: $pkg $ver"
    ls "$out"/usr/src/*.tar.xz | head -n 1
    exit 0
fi
say "[$(elapsed)] downloading $pkg $ver"
(cd "$apt_dir/debs" && apt-get "${apt_private[@]}" download -qq "$pkg=$ver") >"$apt_dir/download.log" 2>&1 ||
    { tail -n 20 "$apt_dir/download.log" >&2; die "apt-get download $pkg=$ver failed"; }
deb=$(ls "$apt_dir/debs/${pkg}_"*.deb | head -n 1)
rm -rf "$out.new"
mkdir -p "$out.new"
dpkg-deb -x "$deb" "$out.new" || die "unpacking $deb failed"
rm -rf "$out"
mv -T "$out.new" "$out"
rm -f "$deb"
say "[$(elapsed)] $pkg $ver unpacked under $out"
ls "$out"/usr/src/*.tar.xz | head -n 1
