#!/bin/sh
# mmdebstrap customize hook of mkrootfs.sh: makes the root file system ($1) boot straight to the
# test. The guest script and the packages come on a second disk (/dev/vdb, label ifbtest,
# mounted on /ifb); ifb-fullstack.service runs /ifb/guest.sh with its output on the serial
# console and powers the machine off when it ends.
set -eu
root=$1
echo ifb-fullstack > "$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 ifb-fullstack\n' > "$root/etc/hosts"
cat > "$root/etc/fstab" <<'EOT'
/dev/vda  /     ext4  rw,noatime  0 0
/dev/vdb  /ifb  ext4  rw,noatime,x-systemd.device-timeout=60s  0 0
EOT
mkdir -p "$root/ifb"
chroot "$root" passwd -d root >/dev/null
# One fixed machine id: no first-boot questions on the console (systemd-firstboot), the same
# journal directory on every boot.
echo 6966622d66756c6c737461636b000001 > "$root/etc/machine-id"
# Nothing that is not under test runs: no logins on the console, no timers, no time sync,
# and libvirt's default NAT network (a bridge, dnsmasq) is not started.
for u in systemd-firstboot.service serial-getty@ttyS0.service getty@tty1.service systemd-timesyncd.service apt-daily.timer \
         apt-daily-upgrade.timer man-db.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
         dpkg-db-backup.timer logrotate.timer systemd-tmpfiles-clean.timer; do
    ln -sf /dev/null "$root/etc/systemd/system/$u"
done
rm -f "$root/etc/libvirt/qemu/networks/autostart/default.xml"
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nForwardToConsole=no\n' > "$root/etc/systemd/journald.conf.d/ifb-fullstack.conf"
cat > "$root/etc/systemd/system/ifb-fullstack.service" <<'EOT'
[Unit]
Description=iommufd-broker full-stack tier: the guest script of the test disk
After=multi-user.target
RequiresMountsFor=/ifb
ConditionPathExists=/ifb/guest.sh

[Service]
Type=oneshot
ExecStart=/bin/bash /ifb/guest.sh
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TimeoutStartSec=infinity
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Install]
WantedBy=multi-user.target
EOT
ln -sf /etc/systemd/system/ifb-fullstack.service "$root/etc/systemd/system/multi-user.target.wants/ifb-fullstack.service"
