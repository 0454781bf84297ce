# Shared helpers for tests/fullstack/*.sh (sourced, not executed). Builds on tests/kernel/lib.sh
# (say, die, fmt_secs, build_lock, build_run, build_fail, build_publish, ensure_deps).

FDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$FDIR/../kernel/lib.sh"
IFB_TAG=${IFB_TAG:-fullstack}
FS_CACHE=${IFB_FULLSTACK_CACHE:-/var/cache/iommufd-broker/fullstack}
EVERY=${IFB_PROGRESS_SECS:-30}

# ---- platforms --------------------------------------------------------------------------------
# deb12: Debian 12 with QEMU 10 from bookworm-backports (systemd 252, libvirt 9.0)
# deb13: Debian 13 with trixie-backports at priority 500 (systemd 257, libvirt 12.9, QEMU 11.1)
PLATFORMS="deb12 deb13"

# mirror_uri SUITE: the URI apt is configured with for SUITE's archive (main or security); never
# a host name typed here. The security archive is found through bookworm-security.
mirror_uri() {
    local want=$1 file=/etc/apt/sources.list.d/debian.sources uri=""
    [ -f "$file" ] && uri=$(awk -v s="$want" '/^URIs:/ {u=$2} /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == s) {print u; exit}}' "$file")
    [ -n "$uri" ] || uri=$(awk -v s="$want" '$1=="deb" && $3==s {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$uri" ] || die "no apt source configured for $want: the tier reuses the configured mirror"
    echo "$uri"
}

platform_codename() { case "$1" in deb12) echo bookworm ;; deb13) echo trixie ;; *) die "unknown platform '$1' (deb12, deb13)" ;; esac; }

# platform_sources PLATFORM: mmdebstrap's mirror arguments, one per line
platform_sources() {
    local c main sec
    c=$(platform_codename "$1")
    main=$(mirror_uri bookworm)
    sec=$(mirror_uri bookworm-security)
    echo "deb $main $c main"
    echo "deb $main $c-updates main"
    echo "deb $sec $c-security main"
    echo "deb $main $c-backports main"
}

# platform_pin PLATFORM: the apt preferences the root file system gets (setup hook)
platform_pin() {
    case "$1" in
        deb12) printf 'Package: qemu-system-x86 qemu-system-common qemu-system-data seabios\nPin: release n=bookworm-backports\nPin-Priority: 990\n' ;;
        deb13) printf 'Package: *\nPin: release n=trixie-backports\nPin-Priority: 500\n' ;;
    esac
}

# ---- small things --------------------------------------------------------------------------
now() { date +%s; }
# progress_wait PID WHAT LOG: wait for PID, a line every $EVERY s with the last line of LOG
progress_wait() {
    local pid=$1 what=$2 logf=$3 t=$(date +%s) rc=0
    while kill -0 "$pid" 2>/dev/null; do
        for _ in $(seq "$EVERY"); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -0 "$pid" 2>/dev/null || break
        say "[$(fmt_secs $(( $(date +%s) - t )))] $what: $(tail -n 1 "$logf" 2>/dev/null | cut -c1-120)"
    done
    wait "$pid" || rc=$?
    return $rc
}
