#!/bin/sh
# meson test --suite package (opt-in: tests/heavy-gate.sh): build the Debian package from a clean
# export of HEAD (git archive, so only what is committed) with dpkg-buildpackage -us -uc -b, and
# check it: the files it must hold, how its maintainer scripts enable the units, lintian without
# errors or warnings (debian/*.lintian-overrides explain the overridden ones), and the packaged
# programs, man pages and completion working from the unpacked .deb.
#   tests/package/test-package.sh [SOURCE_DIR]
set -eu
src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
. "$src/tests/heavy-gate.sh"
heavy_gate package "builds the Debian package (about 2 minutes on 2 cores)"

for tool in git dpkg-buildpackage dh lintian dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool is missing: tools/install-deps package"; exit 77; }
done
git -C "$src" rev-parse --verify -q HEAD >/dev/null || { echo "SKIP: $src is not a git checkout with a HEAD to export"; exit 77; }
missing=$(cd "$src" && dpkg-checkbuilddeps 2>&1 | sed -n 's/.*Unmet build dependencies: //p')
[ -z "$missing" ] || { echo "SKIP: build dependencies missing: $missing (tools/install-deps package)"; exit 77; }

version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

echo "==> git archive HEAD ($(git -C "$src" rev-parse --short HEAD)) into $tmp"
git -C "$src" archive --prefix="iommufd-broker-$version/" HEAD | tar -x -C "$tmp"
echo "==> dpkg-buildpackage -us -uc -b"
if ! (cd "$tmp/iommufd-broker-$version" && dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
    tail -50 "$tmp/build.log"
    echo "FAIL: dpkg-buildpackage"
    exit 1
fi
deb=$tmp/iommufd-broker_${version}_$(dpkg --print-architecture).deb
[ -f "$deb" ] || { echo "FAIL: no $deb"; ls "$tmp"; exit 1; }

echo "==> contents of $(basename "$deb")"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' > "$tmp/files"
for f in /usr/libexec/iommufd-brokerd /usr/libexec/iommufd-broker-worker /usr/bin/iommufdctl \
         /lib/systemd/system/iommufd-broker.service /lib/systemd/system/iommufd-broker.socket \
         /lib/systemd/system/iommufd-broker-vmm.socket \
         /usr/lib/sysusers.d/iommufd-broker.conf /usr/lib/tmpfiles.d/iommufd-broker.conf \
         /usr/libexec/iommufd-broker-hook /usr/libexec/iommufd-broker-hook-xml /etc/libvirt/hooks/qemu.d/iommufd-broker-hook \
         /usr/share/man/man1/iommufdctl.1.gz /usr/share/man/man8/iommufd-brokerd.8.gz \
         /usr/share/man/man5/iommufd-broker.conf.5.gz /usr/share/bash-completion/completions/iommufdctl \
         /usr/share/doc/iommufd-broker/broker.conf.example; do
    grep -qx "$f" "$tmp/files" && echo "ok   $f" || bad "the package lacks $f"
done
dpkg-deb -c "$deb" | grep -q '^l.* \./etc/libvirt/hooks/qemu.d/iommufd-broker-hook -> /usr/libexec/iommufd-broker-hook$' ||
    bad "the hook in qemu.d is not a symlink to /usr/libexec/iommufd-broker-hook"
if grep -q '^/etc/.*' "$tmp/files" && dpkg-deb -c "$deb" | grep '^-.* \./etc/' | grep -q .; then
    bad "regular files in /etc: $(dpkg-deb -c "$deb" | grep '^-.* \./etc/')"
fi

echo "==> maintainer scripts"
dpkg-deb -e "$deb" "$tmp/control"
grep -q "deb-systemd-helper enable 'iommufd-broker.socket'" "$tmp/control/postinst" && echo "ok   postinst enables the socket" ||
    bad "postinst does not enable iommufd-broker.socket"
grep -q "deb-systemd-invoke \$_dh_action 'iommufd-broker.socket'" "$tmp/control/postinst" && echo "ok   postinst starts the socket" ||
    bad "postinst does not start iommufd-broker.socket"
# libvirt's QEMU user reaches the broker through the VMM socket, whenever libvirt was installed
grep -q "deb-systemd-helper enable 'iommufd-broker-vmm.socket'" "$tmp/control/postinst" &&
    echo "ok   postinst enables the VMM socket" || bad "postinst does not enable iommufd-broker-vmm.socket"
grep -q "deb-systemd-invoke \$_dh_action 'iommufd-broker-vmm.socket'" "$tmp/control/postinst" &&
    echo "ok   postinst starts the VMM socket" || bad "postinst does not start iommufd-broker-vmm.socket"
grep -q "deb-systemd-helper enable 'iommufd-broker.service'" "$tmp/control/postinst" &&
    ! grep -q "deb-systemd-helper debian-installed 'iommufd-broker.service'" "$tmp/control/postinst" &&
    bad "postinst enables the service itself (the socket starts it)"
sysusers_line=$(grep -n 'systemd-sysusers iommufd-broker.conf' "$tmp/control/postinst" | cut -d: -f1)
socket_line=$(grep -n "deb-systemd-invoke .*iommufd-broker.socket" "$tmp/control/postinst" | head -1 | cut -d: -f1)
[ -n "$sysusers_line" ] && [ "$sysusers_line" -lt "$socket_line" ] && echo "ok   the group exists before the socket starts" ||
    bad "postinst does not create the socket's group (systemd-sysusers) before starting the socket"
grep -q 'systemd-tmpfiles .*--create iommufd-broker.conf' "$tmp/control/postinst" && echo "ok   postinst applies tmpfiles.d" ||
    bad "postinst does not apply the tmpfiles.d entry"

echo "==> lintian"
lintian --fail-on none "$tmp"/iommufd-broker_"${version}"_*.changes > "$tmp/lintian" 2>&1 || true
cat "$tmp/lintian"
errors=$(grep -c '^E:' "$tmp/lintian" || true)
warnings=$(grep -c '^W:' "$tmp/lintian" || true)
echo "lintian: $errors errors, $warnings warnings"
[ "$errors" = 0 ] || bad "lintian reports $errors errors"
[ "$warnings" = 0 ] || bad "lintian reports $warnings warnings not explained in debian/*.lintian-overrides"

echo "==> the unpacked package works"
dpkg-deb -x "$deb" "$tmp/root"
out=$("$tmp/root/usr/bin/iommufdctl" --version) && [ "$out" = "iommufdctl $(echo "$version" | sed 's/-.*//')" ] &&
    echo "ok   $out" || bad "iommufdctl --version said '$out'"
"$tmp/root/usr/libexec/iommufd-brokerd" --help | grep -q 'Configuration file (default /etc/iommufd-broker/broker.conf)' &&
    echo "ok   the daemon's config default is /etc/iommufd-broker/broker.conf" || bad "the packaged daemon's config default"
if command -v man >/dev/null; then
    for page in man1/iommufdctl.1.gz man8/iommufd-brokerd.8.gz man5/iommufd-broker.conf.5.gz; do
        MANWIDTH=80 man -l "$tmp/root/usr/share/man/$page" 2>&1 | grep -q '^NAME' && echo "ok   man -l $page" || bad "man -l $page"
    done
fi
bash --norc -c ". '$tmp/root/usr/share/bash-completion/completions/iommufdctl'; COMP_WORDS=(iommufdctl vm a);
    COMP_CWORD=2; COMP_LINE='iommufdctl vm a'; COMP_POINT=\${#COMP_LINE}; _iommufdctl iommufdctl a vm; echo \"\${COMPREPLY[*]}\"" |
    grep -qx attach && echo "ok   the packaged completion offers attach for 'iommufdctl vm a'" || bad "the packaged completion"

[ $fail = 0 ] && echo "package: all checks passed" || echo "package: FAILED"
exit $fail
