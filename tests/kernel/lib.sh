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

# ---- cached builds (build-kernel.sh, build-qemu.sh) -------------------------------------------
# A build of cache entry $CACHE/KEY: build_lock; build_start KEY (its clock $t0, its work tree
# $work with the log $log, the tree $new it assembles); build_run for the long step (a progress
# line every $EVERY seconds); build_finish KEY OUT, which writes $new/info and renames $new to
# OUT in one step (build_publish). build_fail reports a failure and leaves no entry: OUT is only
# ever a whole build. tests/kernel/test-build-lib.sh runs this cold path with a tiny fake build.

# build_lock DIR WHAT [NAME]: one build at a time per cache directory and lock name (fd 9 holds
# DIR/NAME, default .build.lock; build-kernel.sh gives each kernel series its own).
build_lock() {
    local lock=$1/${3:-.build.lock}
    exec 9>"$lock"
    if ! flock -n 9; then
        say "another $2 build holds $lock; waiting for it"
        flock 9
    fi
}

elapsed() { fmt_secs $(( $(date +%s) - t0 )); }

# build_start KEY: with the lock held, a fresh work tree $work = $CACHE/KEY.partial (log: $log)
# and a fresh $new = $CACHE/KEY.new for what build_finish publishes; the clock $t0 starts.
build_start() {
    t0=$(date +%s)
    work=$CACHE/$1.partial
    new=$CACHE/$1.new
    log=$work/build.log
    rm -rf "$work" "$new"
    mkdir -p "$work" "$new"
}

# build_fail MESSAGE: what failed after how long, with the end of $log; exits 1. The half-made
# $new goes (no entry is published); $work stays, with the whole log.
build_fail() {
    say "FAILED after $(elapsed): $*"
    if [ -f "$log" ]; then
        say "last 40 lines of $log:"
        tail -n 40 "$log" | sed 's/^/    /' >&2
    fi
    [ -z "${new:-}" ] || rm -rf "$new"
    exit 1
}

# build_run PROGRESS CMD...: CMD in the background, its output appended to $log; every $EVERY
# seconds the line the function PROGRESS prints. The EXIT trap kills CMD meanwhile and then
# runs $BUILD_CLEANUP (a command, may be empty). Returns CMD's exit status.
build_run() {
    local progress=$1 pid rc=0
    shift
    "$@" >>"$log" 2>&1 &
    pid=$!
    trap "kill $pid 2>/dev/null || true; ${BUILD_CLEANUP:-}" EXIT INT TERM
    while kill -0 "$pid" 2>/dev/null; do
        for _ in $(seq "$EVERY"); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
        kill -0 "$pid" 2>/dev/null || break
        say "[$(elapsed)] compiling: $("$progress")"
    done
    wait "$pid" || rc=$?
    if [ -n "${BUILD_CLEANUP:-}" ]; then trap "$BUILD_CLEANUP" EXIT; else trap - EXIT INT TERM; fi
    return $rc
}

# build_publish NEW OUT WORK: the finished build NEW replaces OUT in one rename; WORK goes.
build_publish() {
    rm -rf "$2"
    mv -T "$1" "$2"
    cd /
    rm -rf "$3"
}

# build_finish KEY OUT [NAME=VALUE]...: $new gets the build log and its info file (key, the
# given lines, build_seconds, jobs, built), then replaces OUT (build_publish).
build_finish() {
    local key=$1 out=$2
    shift 2
    cp "$log" "$new/build.log"
    {
        echo "key=$key"
        [ $# -eq 0 ] || printf '%s\n' "$@"
        echo "build_seconds=$(( $(date +%s) - t0 ))"
        echo "jobs=$JOBS"
        echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    } > "$new/info"
    build_publish "$new" "$out" "$work"
}

# ---- the machine's Debian mirror (sid-source.sh, build-broker-arm64.sh) ------------------------
# bookworm_mirror_uri: the URI the machine's apt sources use for bookworm, reused for private
# apt configurations (sid's kernel source, the arm64 sysroot); the machine's sources stay as
# they are.
bookworm_mirror_uri() {
    local uri
    uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == "bookworm") {print u; exit}}' \
          /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$uri" ] || die "no bookworm mirror configured whose URI could be reused"
    echo "$uri"
}
