#!/usr/bin/env python3
"""Make the IORT override of the smmuv3-iort boot from the IORT QEMU gave the smmuv3 boot.

    tests/kernel/iort-override.py BOOT_LOG OUT_DIR

BOOT_LOG holds the guest's dump of /sys/firmware/acpi/tables/IORT as `IFB-IORT <hex>` lines
(guest-smmuv3.sh). The copy written to OUT_DIR/kernel/firmware/acpi/IORT.aml differs in three
places: every PCI root complex node's memory access flags gain CANWBS (bit 2: the root complex
is coherent, so the guest's stage 1 cannot bypass the cache and arm-smmu-v3 offers a vIOMMU),
the OEM revision is one higher (Linux only takes an override with a higher revision) and the
checksum is fixed. Linux (ACPI_TABLE_UPGRADE) reads it from an uncompressed cpio at the start
of the initrd whose member names begin with exactly `kernel/firmware/acpi/`; run-arm64.sh packs
OUT_DIR that way. Prints what it changed.

Layout (ACPI IORT, revision E.x): a 36-byte table header (length at 4, checksum at 9, OEM
revision at 24), then the node count at 36 and the offset of the first node at 40. A node starts
type (1 byte), length (2); root complex nodes are type 2 with the memory access properties at
node offset 16: cache coherency (4), allocation hints (1), reserved (2), memory access flags (1).
"""
import os
import re
import struct
import sys

CANWBS = 0x4
RC_NODE = 2


def main():
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    log, out = sys.argv[1], sys.argv[2]
    hexdata = "".join(m.group(1) for m in (re.search(r"IFB-IORT ([0-9a-f]+)\s*$", line)
                                           for line in open(log, errors="replace")) if m)
    t = bytearray(bytes.fromhex(hexdata))
    if len(t) < 48 or t[0:4] != b"IORT":
        print("iort-override: no IORT dump (IFB-IORT lines) in %s" % log, file=sys.stderr)
        return 1
    length = struct.unpack_from("<I", t, 4)[0]
    if length != len(t):
        print("iort-override: the dump has %d bytes, the header says %d" % (len(t), length), file=sys.stderr)
        return 1
    nodes, off = struct.unpack_from("<II", t, 36)
    changed = []
    for _ in range(nodes):
        ntype, nlen = t[off], struct.unpack_from("<H", t, off + 1)[0]
        if ntype == RC_NODE:
            old = t[off + 23]
            t[off + 23] = old | CANWBS
            changed.append("root complex node at %d: memory access flags 0x%x -> 0x%x" % (off, old, t[off + 23]))
        off += nlen
    if not changed:
        print("iort-override: no root complex node in QEMU's IORT", file=sys.stderr)
        return 1
    rev = struct.unpack_from("<I", t, 24)[0]
    struct.pack_into("<I", t, 24, rev + 1)
    t[9] = 0
    t[9] = (-sum(t)) & 0xFF
    path = os.path.join(out, "kernel", "firmware", "acpi")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "IORT.aml"), "wb") as f:
        f.write(t)
    print("IORT override (%d bytes, OEM revision %d -> %d, checksum 0x%02x): %s"
          % (len(t), rev, rev + 1, t[9], "; ".join(changed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
