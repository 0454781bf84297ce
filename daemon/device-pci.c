/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PCI device kind: a device bound to vfio-pci with a VFIO device cdev (vfio-dev/vfioN in
 * sysfs, /dev/vfio/devices/vfioN), found through the backend's sysfs (pci-device.c). Opening it
 * checks the node under /dev is the device sysfs names (its device number), so a renamed or
 * rebound cdev is never taken for another device. device.list probes the IOMMU of devices no
 * guest owns by binding each to a scratch context once (cached for the daemon's life: the IOMMU
 * behind a device does not change while it runs).
 */
#define G_LOG_DOMAIN "ifb-device"

#include <string.h>
#include <sys/sysmacros.h>

#include "device-kind-private.h"
#include "errors.h"
#include "fault.h"
#include "pci-device.h"
#include "util.h"

static gboolean
pci_claims (const char *name)
{
  return TRUE;
}

static gboolean
pci_saved_valid (const char *name, const char *cdev)
{
  if (!ifb_pci_bdf_is_valid (name) || !g_str_has_prefix (cdev, "vfio") || !cdev[4] || strlen (cdev) > 14)
    return FALSE;
  for (const char *p = cdev + 4; *p; p++)
    if (!g_ascii_isdigit (*p))
      return FALSE;
  return TRUE;
}

static gboolean
pci_offered (void)
{
  return TRUE;
}

/* The device as sysfs shows it now: on vfio-pci, with a VFIO device cdev. */
static gboolean
lookup_vfio_device (IfbCore *core, const char *bdf, IfbPciDevice **ret_dev, GError **error)
{
  g_autoptr (IfbPciDevice) dev = NULL;
  const char *driver;

  if (!ifb_pci_device_lookup (core->sys_dirfd, bdf, &dev, error))
    return FALSE;
  driver = ifb_pci_device_get_driver (dev);
  if (g_strcmp0 (driver, "vfio-pci") != 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_NOT_VFIO,
                        "Device %s is %s%s%s, not to vfio-pci", bdf,
                        driver ? "bound to '" : "not bound to any driver", driver ? driver : "", driver ? "'" : ""), FALSE;
  if (!ifb_pci_device_get_vfio_cdev (dev))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_NOT_VFIO,
                        "Device %s has no VFIO device cdev (no vfio-dev/vfioN: kernel without VFIO_DEVICE_CDEV?)", bdf), FALSE;
  *ret_dev = g_steal_pointer (&dev);
  return TRUE;
}

static gboolean
pci_check (IfbCore *core, const char *name, char **ret_cdev, GError **error)
{
  g_autoptr (IfbPciDevice) dev = NULL;

  if (!lookup_vfio_device (core, name, &dev, error))
    return FALSE;
  *ret_cdev = g_strdup (ifb_pci_device_get_vfio_cdev (dev));
  return TRUE;
}

static gboolean
pci_open (IfbCore *core, IfbVm *vm, IfbVmDevice *d, int *ret_fd, GError **error)
{
  g_autoptr (IfbPciDevice) dev = NULL;
  ifb_autofd int fd = -1;
  guint64 want, got = 0;
  int r;

  if (!lookup_vfio_device (core, d->bdf, &dev, error))
    return FALSE;
  if (g_strcmp0 (d->cdev, ifb_pci_device_get_vfio_cdev (dev)) != 0) {
    g_free (d->cdev);           /* rebound to vfio-pci since attach: it has a new cdev */
    d->cdev = g_strdup (ifb_pci_device_get_vfio_cdev (dev));
  }
  if ((r = ifb_fault_check ("open-device")) < 0 ||
      (r = ifb_uapi_open_device (core->backend, core->dev_dirfd, d->cdev, &fd)) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_KERNEL, r, "Device %s: opening its cdev %s", d->bdf, d->cdev);
  want = ifb_pci_device_get_vfio_rdev (dev);
  r = ifb_uapi_device_rdev (core->backend, fd, &got);
  if (r < 0 || want == 0 || got != want)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_NOT_VFIO,
                        "Device %s: /dev/vfio/devices/%s is %s%u:%u, but sysfs says its cdev is %u:%u; refusing it",
                        d->bdf, d->cdev, r < 0 ? "no device cdev, " : "device ", r < 0 ? 0 : major (got),
                        r < 0 ? 0 : minor (got), major (want), minor (want)), FALSE;
  *ret_fd = ifb_steal_fd (&fd);
  return TRUE;
}

/* Hardware info of a device no guest owns: bind it to a scratch context, ask GET_HW_INFO, close
 * (which unbinds). */
static const IfbHwInfo *
probe_hw_info (IfbCore *core, const char *bdf, const char *cdev, char **ret_error)
{
  IfbHwInfo *info = g_hash_table_lookup (core->hw_cache, bdf);
  ifb_autofd int ctx = -1, dev = -1;
  IfbHwInfo tmp;
  uint32_t dev_id;
  int r;

  if (info)
    return info;
  if ((r = ifb_uapi_open_iommufd (core->backend, core->dev_dirfd, &ctx)) < 0 ||
      (r = ifb_uapi_open_device (core->backend, core->dev_dirfd, cdev, &dev)) < 0 ||
      (r = ifb_uapi_device_bind (core->backend, dev, ctx, &dev_id)) < 0 ||
      (r = ifb_uapi_get_hw_info (core->backend, ctx, dev_id, &tmp)) < 0) {
    *ret_error = g_strdup_printf ("probe failed: %s", g_strerror (-r));
    return NULL;
  }
  info = g_memdup2 (&tmp, sizeof (tmp));
  g_hash_table_insert (core->hw_cache, g_strdup (bdf), info);
  return info;
}

static gboolean
pci_list (IfbCore *core, json_object *arr, GError **error)
{
  g_autoptr (GPtrArray) devs = ifb_pci_device_scan (core->sys_dirfd, error);

  if (!devs)
    return FALSE;
  for (guint i = 0; i < devs->len; i++) {
    IfbPciDevice *d = g_ptr_array_index (devs, i);
    const char *bdf = ifb_pci_device_get_bdf (d);
    const char *driver = ifb_pci_device_get_driver (d);
    const char *cdev = ifb_pci_device_get_vfio_cdev (d);
    IfbVm *owner = ifb_registry_device_owner (core->registry, bdf);
    IfbVmDevice *vd = owner ? ifb_vm_find_device (owner, bdf) : NULL;
    const IfbHwInfo *hw = NULL;
    g_autofree char *probe_error = NULL;
    json_object *dj = json_object_new_object ();
    char id[8];

    json_object_object_add (dj, "device", json_object_new_string (bdf));
    json_object_object_add (dj, "driver", driver ? json_object_new_string (driver) : NULL);
    json_object_object_add (dj, "cdev", cdev ? json_object_new_string (cdev) : NULL);
    json_object_object_add (dj, "iommu_group", ifb_pci_device_get_iommu_group (d) >= 0
                                                  ? json_object_new_int (ifb_pci_device_get_iommu_group (d)) : NULL);
    g_snprintf (id, sizeof (id), "%04x", ifb_pci_device_get_vendor (d));
    json_object_object_add (dj, "vendor", json_object_new_string (id));
    g_snprintf (id, sizeof (id), "%04x", ifb_pci_device_get_device (d));
    json_object_object_add (dj, "device_id", json_object_new_string (id));
    json_object_object_add (dj, "vfio", json_object_new_boolean (ifb_pci_device_is_vfio (d)));
    json_object_object_add (dj, "owner", owner ? json_object_new_string (owner->name) : NULL);

    if (vd && vd->state == IFB_VM_DEVICE_READY)
      hw = &vd->hw;
    else if (!owner && ifb_pci_device_is_vfio (d))
      hw = probe_hw_info (core, bdf, cdev, &probe_error);
    else if (owner)
      hw = g_hash_table_lookup (core->hw_cache, bdf);
    ifb_device_kind_add_hw (dj, hw);
    if (probe_error)
      json_object_object_add (dj, "hw_info_error", json_object_new_string (probe_error));
    json_object_array_add (arr, dj);
  }
  return TRUE;
}

const IfbDeviceKind ifb_device_kind_pci = {
  .name = "pci",
  .has_cdev = TRUE,
  .claims = pci_claims,
  .saved_valid = pci_saved_valid,
  .offered = pci_offered,
  .check = pci_check,
  .open = pci_open,
  .list = pci_list,
};
