/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* device.list: every device of every kind (device-kind.h) — the PCI devices the backend's sysfs
 * shows, with what their IOMMU can do, and the test-only selftest devices when offered. */
#define G_LOG_DOMAIN "ifb-rpc"

#include "device-kind.h"
#include "errors.h"
#include "json.h"
#include "rpc.h"
#include "util.h"
#include "vm.h"

gboolean
ifb_rpc_device_list (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  g_autoptr (json_object) arr = json_object_new_array ();
  json_object *o;

  if (!ifb_device_kinds_list (call->core, arr, error))
    return FALSE;
  o = json_object_new_object ();
  json_object_object_add (o, "devices", g_steal_pointer (&arr));
  *ret = o;
  return TRUE;
}
