#!/bin/sh
# meson test --suite json-c (opt-in: tests/heavy-gate.sh): the strict-JSON and dispatch unit
# tests (test-json, test-dispatch) built and run against Debian 13's json-c 0.18 as well as the
# system's 0.16, since the broker's strictness must not depend on json-c's (0.18's strict mode
# refuses every non-ASCII string).
#
# Debian 13's libjson-c5 binary needs glibc 2.38 and Debian 12 has 2.36, so the source package is
# fetched instead, through a private apt configuration (trixie's deb-src from the mirror already
# configured for this machine; the machine's own sources are never touched), built with cmake and
# installed into the cache, /var/cache/iommufd-broker/json-c-0.18/ (kept between runs). A second
# meson build directory of this tree then takes that json-c through PKG_CONFIG_PATH, and the two
# tests run with it on LD_LIBRARY_PATH, each checked to have loaded it. When the source cannot
# be fetched (no network, no mirror), the suite reports SKIP with the reason.
#   tests/json-c/run.sh SOURCE_DIR BUILD_DIR
set -eu
src=$(cd "$1" && pwd)
build=$2
. "$src/tests/heavy-gate.sh"
heavy_gate json-c "fetches and builds json-c 0.18 (Debian 13)" root

cache=${IFB_JSONC_CACHE:-/var/cache/iommufd-broker/json-c-0.18}
prefix=$cache/prefix
skip() { echo "SKIP: $*"; exit 77; }
step() { echo "==> $*"; }

if [ ! -f "$prefix/lib/pkgconfig/json-c.pc" ]; then
    command -v cmake >/dev/null && command -v dpkg-source >/dev/null ||
        skip "cmake and dpkg-dev are needed (tools/install-deps test installs them)"
    uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || skip "no Debian mirror configured in /etc/apt/sources.list.d/debian.sources to fetch trixie's json-c from"
    apt=$cache/apt
    mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial" "$cache/src"
    cat > "$apt/sources.list.d/trixie-src.sources" <<SOURCES
Types: deb-src
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    # Everything apt reads or writes here is the cache's: the lists, its package cache, sources.
    set -- -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$apt/sources.list.d" \
           -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache" -o APT::Sandbox::User=root
    step "apt-get update (trixie deb-src, private configuration)"
    apt-get "$@" -q update >"$cache/apt.log" 2>&1 || skip "apt-get update of trixie's sources failed: $(tail -1 "$cache/apt.log")"
    step "apt-get source --download-only json-c (trixie)"
    # The orig tarball is the source; the Debian packaging is not needed to build the library.
    (cd "$cache/src" && apt-get "$@" -q source --download-only json-c >>"$cache/apt.log" 2>&1) || true
    orig=$(ls "$cache/src"/json-c_0.18*.orig.tar.* 2>/dev/null | head -1)
    [ -n "$orig" ] || skip "could not fetch trixie's json-c 0.18 source: $(tail -1 "$cache/apt.log")"
    step "building json-c from $(basename "$orig")"
    rm -rf "$cache/tree" "$cache/cmake"
    mkdir -p "$cache/tree"
    tar -xf "$orig" -C "$cache/tree" --strip-components=1
    cmake -S "$cache/tree" -B "$cache/cmake" -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
          -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_STATIC_LIBS=OFF -DBUILD_TESTING=OFF -DBUILD_APPS=OFF \
          >"$cache/cmake.log" 2>&1 || { tail -20 "$cache/cmake.log"; exit 1; }
    nice make -C "$cache/cmake" -j"$(nproc)" install >>"$cache/cmake.log" 2>&1 || { tail -20 "$cache/cmake.log"; exit 1; }
fi
version=$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --modversion json-c)
[ "${version%%.*}.$(echo "$version" | cut -d. -f2)" = 0.18 ] || { echo "FAIL: the cached json-c is $version, not 0.18"; exit 1; }
echo "ok   json-c $version in $prefix"

# A build directory of this tree against that json-c, next to the main one.
b18=$build/json-c-0.18
if [ ! -f "$b18/build.ninja" ]; then
    step "meson setup against json-c $version"
    PKG_CONFIG_PATH=$prefix/lib/pkgconfig meson setup "$b18" "$src" -Dman=disabled >"$cache/meson.log" 2>&1 ||
        { tail -20 "$cache/meson.log"; exit 1; }
fi
step "building test-json and test-dispatch"
nice ninja -C "$b18" tests/test-json tests/test-dispatch >"$cache/ninja.log" 2>&1 || { tail -30 "$cache/ninja.log"; exit 1; }

fail=0
for t in test-json test-dispatch; do
    exe=$b18/tests/$t
    lib=$(LD_LIBRARY_PATH=$prefix/lib ldd "$exe" | awk '/libjson-c/ { print $3 }')
    case $lib in
        "$prefix"/lib/*) ;;
        *) echo "FAIL: $t loads json-c from '$lib', not the 0.18 in $prefix"; fail=1; continue ;;
    esac
    if LD_LIBRARY_PATH=$prefix/lib "$exe" --tap >"$cache/$t.log" 2>&1; then
        echo "ok   $t against json-c $version ($(grep -c '^ok ' "$cache/$t.log") tests)"
    else
        echo "FAIL $t against json-c $version:"; grep -v '^ok ' "$cache/$t.log" | tail -20; fail=1
    fi
done
exit $fail
