# Sourced by the heavy suites' entry points (kernel, libvirtd, package): plain `meson test` skips
# them (exit 77, meson's SKIP, with the reason) unless the build was configured with
# -Dheavy_tests=true (tools/check does) or the caller exports IFB_HEAVY_TESTS=1.
#   heavy_gate NAME WHAT [root]
heavy_gate() {
    if [ "${IFB_HEAVY_TESTS_OPTION:-false}" != true ] && [ "${IFB_HEAVY_TESTS:-0}" != 1 ]; then
        echo "SKIP: the $1 suite $2; it is opt-in: configure with -Dheavy_tests=true (./tools/check does) or export IFB_HEAVY_TESTS=1"
        exit 77
    fi
    if [ "${3:-}" = root ] && [ "$(id -u)" != 0 ]; then
        echo "SKIP: the $1 suite $2 and needs root: run meson test as root"
        exit 77
    fi
}
