#!/bin/sh
# The README's libvirt examples, the one source of truth: the wrapper path's domain XML and
# emulator wrapper, the broker's configuration, and libvirt >= 12.2's native domain XML.
#   readme-example.sh extract README.md OUTDIR   write OUTDIR/NAME for each NAME below
#   readme-example.sh check SOURCE_DIR           fail unless contrib/libvirt/ holds the same files
# A block is the fenced code block right after a line "<!-- example: contrib/libvirt/NAME -->".
set -eu
NAMES="web1.xml qemu-system-x86_64 broker.conf web2-native.xml"
block() {   # block README NAME: the body of the fenced block after NAME's marker
    awk -v m="<!-- example: contrib/libvirt/$2 -->" '
        $0 == m {found = 1; next}
        found == 1 && /^```/ {found = 2; next}
        found == 2 && /^```$/ {exit}
        found == 2 {print}' "$1"
}
case "${1:-}" in
    extract)
        [ $# -eq 3 ] || { echo "usage: $0 extract README.md OUTDIR" >&2; exit 2; }
        mkdir -p "$3"
        for n in $NAMES; do
            block "$2" $n > "$3/$n"
            [ -s "$3/$n" ] || { echo "readme-example: no block after <!-- example: contrib/libvirt/$n --> in $2" >&2; exit 1; }
        done
        chmod 0755 "$3/qemu-system-x86_64"
        ;;
    check)
        [ $# -eq 2 ] || { echo "usage: $0 check SOURCE_DIR" >&2; exit 2; }
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT
        "$0" extract "$2/README.md" "$tmp"
        rc=0
        for n in $NAMES; do
            if cmp -s "$tmp/$n" "$2/contrib/libvirt/$n"; then
                echo "ok   contrib/libvirt/$n is the README's"
            else
                echo "FAIL contrib/libvirt/$n differs from README.md's block:"; diff -u "$2/contrib/libvirt/$n" "$tmp/$n" || true; rc=1
            fi
        done
        exit $rc
        ;;
    *) echo "usage: $0 extract README.md OUTDIR | check SOURCE_DIR" >&2; exit 2 ;;
esac
