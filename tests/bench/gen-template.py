#!/usr/bin/env python3
"""Generate an emulated root template (the format of tests/fixtures/emulated, see its README)
with N devices for the scale benchmark: SR-IOV virtual functions of ConnectX-7 NICs
(15b3:101e), each bound to vfio-pci with its own VFIO cdev and its own IOMMU group, behind a
VT-d unit that can nest (the registers of the fixture's 0000:65:00.0). BDFs are realistic:
domain 0000, buses 0x17..0xfe, device 0..31, function 0..7.

usage: gen-template.py DIR N      (prints the BDFs, one per line, on stdout)
"""
import os
import sys

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "emulated")


def bdfs(n):
    out = []
    for bus in range(0x17, 0xff):
        for dev in range(32):
            for fn in range(8):
                out.append("0000:%02x:%02x.%d" % (bus, dev, fn))
                if len(out) == n:
                    return out
    raise SystemExit("gen-template: at most %d devices" % len(out))


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def main():
    root, n = sys.argv[1], int(sys.argv[2])
    with open(os.path.join(FIXTURE, "dev", "vfio", "devices", "vfio0")) as f:
        profile = f.read()   # VT-d, nesting + dirty tracking
    cap = [l for l in profile.splitlines() if l.startswith("cap=")][0]
    ecap = [l for l in profile.splitlines() if l.startswith("ecap=")][0]
    with open(os.path.join(FIXTURE, "dev", "iommu")) as f:
        iommu_marker = f.read()

    os.makedirs(os.path.join(root, "dev", "vfio", "devices"))
    write(os.path.join(root, "dev", "iommu"), iommu_marker)
    pci = os.path.join(root, "sys", "bus", "pci")
    os.makedirs(os.path.join(pci, "devices"))
    os.makedirs(os.path.join(pci, "drivers", "vfio-pci"))
    write(os.path.join(pci, "drivers", "vfio-pci", "bind"), "")
    groups = os.path.join(root, "sys", "kernel", "iommu_groups")
    os.makedirs(groups)
    for i, bdf in enumerate(bdfs(n)):
        group = 100 + i
        os.makedirs(os.path.join(groups, str(group)))
        write(os.path.join(groups, str(group), "type"), "DMA\n")
        d = os.path.join(pci, "devices", bdf)
        os.makedirs(os.path.join(d, "vfio-dev", "vfio%d" % i))
        write(os.path.join(d, "vendor"), "0x15b3\n")
        write(os.path.join(d, "device"), "0x101e\n")
        write(os.path.join(d, "vfio-dev", "vfio%d" % i, "dev"), "511:%d\n" % i)
        os.symlink("../../../../bus/pci/drivers/vfio-pci", os.path.join(d, "driver"))
        os.symlink("../../../../kernel/iommu_groups/%d" % group, os.path.join(d, "iommu_group"))
        write(os.path.join(root, "dev", "vfio", "devices", "vfio%d" % i),
              "ifb-emulated-device 1\n# emulated VFIO cdev of %s (ConnectX-7 VF behind VT-d)\n"
              "bdf=%s\nrdev=511:%d\niommu=intel-vtd\n%s\n%s\n" % (bdf, bdf, i, cap, ecap))
        print(bdf)


if __name__ == "__main__":
    main()
