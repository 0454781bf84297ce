/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The emulated host root: a private copy of a template tree (laid out as tests/fixtures/emulated,
 * which is also built into the daemon: daemon/emul-builtin.h) holding sys/ for device discovery
 * and dev/ for the emulated /dev/iommu and device cdevs.
 */
#pragma once

/*
 * Make runtime_dirfd/name a copy of template_dir unless it already exists (the copy persists
 * across daemon restarts so device fds kept in the fd store keep pointing at the same files),
 * and return an O_PATH-free directory fd of it. name is a single path component.
 * Returns 0 or -errno; *ret_rootfd untouched on failure.
 */
int ifb_emul_root_prepare (const char *template_dir, int runtime_dirfd, const char *name, int *ret_rootfd);

/* The same with any way of filling the root: fill writes it into the fresh directory dfd
 * (0 or -errno); what a failed fill left is removed. */
typedef int (*IfbEmulRootFill) (int dfd, void *data);
int ifb_emul_root_prepare_with (int runtime_dirfd, const char *name, IfbEmulRootFill fill, void *data, int *ret_rootfd);

/* The emulated sysfs' answer to a write of value to attr (relative to the root's sys/): binding
 * and unbinding drivers, driver_override and drivers_probe as the kernel does them, the VFIO cdev
 * appearing under dev/ and vfio-dev/ while a device is on vfio-pci. 0 or -errno. */
int ifb_emul_root_sysfs_write (int sys_dirfd, const char *attr, const char *value);
