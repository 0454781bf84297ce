/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* device.list: every PCI device the backend's sysfs shows, with what the IOMMU can do, and the
 * test-only selftest devices when offered (selftest-device.h). */
#define G_LOG_DOMAIN "ifb-rpc"

#include "errors.h"
#include "json.h"
#include "pci-device.h"
#include "rpc.h"
#include "selftest-device.h"
#include "util.h"
#include "vm.h"

/*
 * Hardware info of a device no guest owns: bind it to a scratch context, ask GET_HW_INFO, close
 * (which unbinds). Cached: the IOMMU of a device does not change while we run.
 */
static const IfbHwInfo *
probe_hw_info (IfbManager *m, const char *bdf, const char *cdev, char **ret_error)
{
  IfbHwInfo *info = g_hash_table_lookup (m->hw_cache, bdf);
  ifb_autofd int ctx = -1, dev = -1;
  IfbHwInfo tmp;
  uint32_t dev_id;
  int r;

  if (info)
    return info;
  if ((r = ifb_uapi_open_iommufd (m->backend, m->dev_dirfd, &ctx)) < 0 ||
      (r = ifb_uapi_open_device (m->backend, m->dev_dirfd, cdev, &dev)) < 0 ||
      (r = ifb_uapi_device_bind (m->backend, dev, ctx, &dev_id)) < 0 ||
      (r = ifb_uapi_get_hw_info (m->backend, ctx, dev_id, &tmp)) < 0) {
    *ret_error = g_strdup_printf ("probe failed: %s", g_strerror (-r));
    return NULL;
  }
  info = g_memdup2 (&tmp, sizeof (tmp));
  g_hash_table_insert (m->hw_cache, g_strdup (bdf), info);
  return info;
}

gboolean
ifb_rpc_device_list (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  IfbManager *m = call->manager;
  g_autoptr (GPtrArray) devs = NULL;
  json_object *arr, *o;

  devs = ifb_pci_device_scan (m->sys_dirfd, error);
  if (!devs)
    return FALSE;

  arr = json_object_new_array ();
  for (guint i = 0; i < devs->len; i++) {
    IfbPciDevice *d = g_ptr_array_index (devs, i);
    const char *bdf = ifb_pci_device_get_bdf (d);
    const char *driver = ifb_pci_device_get_driver (d);
    const char *cdev = ifb_pci_device_get_vfio_cdev (d);
    IfbVm *owner = ifb_registry_device_owner (m->registry, bdf);
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
      hw = probe_hw_info (m, bdf, cdev, &probe_error);
    else if (owner)
      hw = g_hash_table_lookup (m->hw_cache, bdf);
    json_object_object_add (dj, "iommu", hw ? json_object_new_string (ifb_iommu_type_to_string (hw->type)) : NULL);
    json_object_object_add (dj, "nest_parent_capable", hw ? json_object_new_boolean (hw->can_nest) : NULL);
    json_object_object_add (dj, "hw_info", hw ? ifb_hw_info_to_json (hw) : NULL);
    if (probe_error)
      json_object_object_add (dj, "hw_info_error", json_object_new_string (probe_error));
    json_object_array_add (arr, dj);
  }
  ifb_selftest_device_list (m, arr);   /* "selftest:N" when offered (test kernels only) */
  o = json_object_new_object ();
  json_object_object_add (o, "devices", arr);
  *ret = o;
  return TRUE;
}
