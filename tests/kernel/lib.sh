# Shared helpers for tests/kernel/*.sh (sourced, not executed).

KDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$KDIR/../.." && pwd)

# Log to stderr with the calling script's name: stdout of build-kernel.sh is its result.
say() { printf '[%s] %s\n' "${IFB_TAG:-kernel}" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# Seconds -> "4m05s".
fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# Install the kernel-suite prerequisites through tools/install-deps (idempotent, ~0.1 s when
# everything is there; it also adds bookworm-backports for QEMU 10 when missing).
ensure_deps() {
    local need=0
    qemu-system-x86_64 --version 2>/dev/null | grep -q 'version 10\.' || need=1
    [ -f /usr/src/linux-source-6.12.tar.xz ] || need=1
    [ -x /bin/busybox ] || need=1
    for t in gcc make bc bison flex cpio rsync xz gzip ldd flock; do
        command -v "$t" >/dev/null 2>&1 || need=1
    done
    for p in libelf-dev libssl-dev; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need=1
    done
    [ $need = 1 ] || return 0
    [ "$(id -u)" = 0 ] || die "prerequisites missing and not root: run 'sudo tools/install-deps kernel'"
    say "installing prerequisites: tools/install-deps kernel"
    "$REPO/tools/install-deps" kernel || die "tools/install-deps kernel failed"
}
