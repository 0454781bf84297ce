/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define G_LOG_DOMAIN "ifb-device"

#include <string.h>

#include "device-kind-private.h"

/* pci last: it takes every name the others do not claim. */
static const IfbDeviceKind *const kinds[] = { &ifb_device_kind_selftest, &ifb_device_kind_pci };

const IfbDeviceKind *
ifb_device_kind_of (const char *name)
{
  for (guint i = 0; i + 1 < G_N_ELEMENTS (kinds); i++)
    if (name && kinds[i]->claims (name))
      return kinds[i];
  return &ifb_device_kind_pci;
}

const IfbDeviceKind *
ifb_device_kind_by_name (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (kinds); i++)
    if (strcmp (kinds[i]->name, name) == 0)
      return kinds[i];
  return NULL;
}

gboolean
ifb_device_kind_offered (const IfbDeviceKind *kind)
{
  return kind && kind->offered ();
}

gboolean
ifb_device_kind_when_free (IfbCore *core, const char *name, void (*fn) (gpointer data), gpointer data)
{
  const IfbDeviceKind *kind = ifb_device_kind_of (name);
  return kind->when_free && kind->when_free (core, name, fn, data);
}

void
ifb_device_kinds_probe (IfbCore *core)
{
  for (guint i = 0; i < G_N_ELEMENTS (kinds); i++)
    if (kinds[i]->probe)
      kinds[i]->probe (core);
}

typedef struct {
  guint pending;
  void (*done) (gpointer data);
  gpointer data;
} Refresh;

static void
on_refreshed (gpointer data)
{
  Refresh *r = data;
  if (--r->pending > 0)
    return;
  r->done (r->data);
  g_free (r);
}

gboolean
ifb_device_kinds_refresh (IfbCore *core, void (*done) (gpointer data), gpointer data)
{
  Refresh *r = g_new0 (Refresh, 1);

  r->done = done;
  r->data = data;
  r->pending = 1;   /* this function's own, so done runs once all have answered */
  for (guint i = 0; i < G_N_ELEMENTS (kinds); i++)
    if (kinds[i]->refresh && kinds[i]->refresh (core, on_refreshed, r))
      r->pending++;
  if (r->pending == 1) {
    g_free (r);
    return FALSE;
  }
  r->pending--;   /* cannot reach 0 here: a kind's refresh calls done from the main loop */
  return TRUE;
}

gboolean
ifb_device_kinds_list (IfbCore *core, json_object *arr, gboolean *incomplete, GError **error)
{
  /* PCI devices first, as device.list always gave them */
  for (guint i = G_N_ELEMENTS (kinds); i-- > 0;)
    if (!kinds[i]->list (core, arr, incomplete, error))
      return FALSE;
  return TRUE;
}

json_object *
ifb_device_kind_entry_new (const char *name, const char *driver, const char *cdev, int iommu_group, gboolean vfio,
                           const IfbVm *owner, json_object *managed)
{
  json_object *dj = json_object_new_object ();

  json_object_object_add (dj, "device", json_object_new_string (name));
  json_object_object_add (dj, "driver", driver ? json_object_new_string (driver) : NULL);
  json_object_object_add (dj, "cdev", cdev ? json_object_new_string (cdev) : NULL);
  json_object_object_add (dj, "iommu_group", iommu_group >= 0 ? json_object_new_int (iommu_group) : NULL);
  json_object_object_add (dj, "vfio", json_object_new_boolean (vfio));
  json_object_object_add (dj, "owner", owner ? json_object_new_string (owner->name) : NULL);
  json_object_object_add (dj, "managed", managed);
  return dj;
}

void
ifb_device_kind_add_hw (json_object *dj, const IfbHwInfo *hw)
{
  json_object_object_add (dj, "iommu", hw ? json_object_new_string (ifb_iommu_type_to_string (hw->type)) : NULL);
  json_object_object_add (dj, "nest_parent_capable", hw ? json_object_new_boolean (hw->can_nest) : NULL);
  /* the vIOMMU type its IOMMU can offer (vm.create's option viommu); whether it does, an Arm
   * SMMUv3's firmware decides (coherent root complex): the allocation says */
  json_object_object_add (dj, "viommu_type", hw && hw->can_nest && ifb_viommu_type_for_iommu (hw->type) >= 0
                                             ? json_object_new_string (ifb_viommu_type_to_string (ifb_viommu_type_for_iommu (hw->type)))
                                             : NULL);
  json_object_object_add (dj, "hw_info", hw ? ifb_hw_info_to_json (hw) : NULL);
}

void
ifb_device_kinds_managed_restore (IfbCore *core)
{
  for (guint i = 0; i < G_N_ELEMENTS (kinds); i++)
    if (kinds[i]->managed)
      kinds[i]->managed->restore (core);
}
