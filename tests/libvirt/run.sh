#!/bin/sh
# meson test --suite libvirt: the broker under a real libvirtd 9.0 + QEMU (TCG). Installs what it
# needs (tools/install-deps libvirt), then runs tests/libvirt/test-libvirtd.py in a private mount
# namespace where libvirt's directories are fresh tmpfs mounts (see libvirtenv.py).
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${IFB_BUILD_DIR:-$src/build}}
. "$src/tests/heavy-gate.sh"
heavy_gate libvirtd "runs a real libvirtd and QEMU (and installs them)" root
[ $# -gt 0 ] && shift   # the rest names tests to run (all by default)
"$src/tools/install-deps" libvirt
exec unshare -m --propagation private env IFB_LIBVIRT_NS=1 IFB_BUILD_DIR="$build" IFB_SOURCE_DIR="$src" \
    PYTHONDONTWRITEBYTECODE=1 python3 "$src/tests/libvirt/test-libvirtd.py" "$@"
