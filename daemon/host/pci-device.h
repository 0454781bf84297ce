/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PCI device discovery through a sysfs root directory fd: the real /sys, or the emulated root's
 * sys/. One code path for both.
 */
#pragma once

#include <glib.h>

typedef struct _IfbPciDevice IfbPciDevice;

IfbPciDevice *ifb_pci_device_free (IfbPciDevice *dev);     /* NULL-safe; returns NULL */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbPciDevice, ifb_pci_device_free)

const char *ifb_pci_device_get_bdf (const IfbPciDevice *dev);         /* "0000:65:00.0" */
const char *ifb_pci_device_get_driver (const IfbPciDevice *dev);      /* "vfio-pci", or NULL when unbound */
const char *ifb_pci_device_get_vfio_cdev (const IfbPciDevice *dev);   /* "vfio0", or NULL */
/* The cdev's device number as sysfs vfio-dev/vfioN/dev says (makedev), 0 when unknown. */
guint64 ifb_pci_device_get_vfio_rdev (const IfbPciDevice *dev);
int ifb_pci_device_get_iommu_group (const IfbPciDevice *dev);         /* group number, or -1 */
guint16 ifb_pci_device_get_vendor (const IfbPciDevice *dev);
guint16 ifb_pci_device_get_device (const IfbPciDevice *dev);
guint32 ifb_pci_device_get_class (const IfbPciDevice *dev);           /* 0x020000; 0 when unknown */
/* A bridge (class 0x06): never an endpoint a guest takes, and no obstacle in its IOMMU group. */
gboolean ifb_pci_device_is_bridge (const IfbPciDevice *dev);
/* Bound to vfio-pci with a vfio-dev/vfioN cdev: what vm.attach requires. */
gboolean ifb_pci_device_is_vfio (const IfbPciDevice *dev);

/* Strict "DDDD:BB:DD.F" (lower-case hex, as sysfs names them); rejects anything path-like. */
gboolean ifb_pci_bdf_is_valid (const char *bdf);

/* All devices under bus/pci/devices, sorted by BDF; a GPtrArray of IfbPciDevice (owns them). */
GPtrArray *ifb_pci_device_scan (int sys_dirfd, GError **error);
/* One device; IFB_ERROR_INVALID_ARGUMENT for a malformed BDF, IFB_ERROR_NO_SUCH_DEVICE if absent. */
gboolean ifb_pci_device_lookup (int sys_dirfd, const char *bdf, IfbPciDevice **ret, GError **error);

/* The addresses of the devices in IOMMU group (kernel/iommu_groups/N/devices), sorted; NULL with
 * error when the group cannot be read. */
GPtrArray *ifb_pci_group_devices (int sys_dirfd, int group, GError **error);

/* What makes the device the host's possible way out — its network interface that is up and
 * carries an address, or an interface this process cannot see (net/ empty: another network
 * namespace) — as a phrase for a message, or NULL. Interfaces are its net/<ifname>/ with operstate
 * "up"; addresses are those the host's routing tables show: an IPv4 route through it (route) or a
 * global IPv6 address on it (if_inet6), read from proc/1/net/ (PID 1's namespace), else proc/net/,
 * proc/ being the sysfs root's sibling (../proc: /proc on a host, the emulated root's proc/). */
char *ifb_pci_device_route_out (int sys_dirfd, const char *bdf);
