/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* device.list: every device of every kind (device-kind.h) — the PCI devices the backend's sysfs
 * shows, with what their IOMMU can do (probed by a worker the first time: see device-pci.c), and
 * the test-only selftest devices when offered. */
#define G_LOG_DOMAIN "ifb-rpc"

#include "device-kind.h"
#include "errors.h"
#include "json.h"
#include "rpc.h"
#include "util.h"
#include "vm.h"

static json_object *
list_devices (IfbCore *core, gboolean *incomplete, GError **error)
{
  g_autoptr (json_object) arr = json_object_new_array ();
  json_object *o;

  if (!ifb_device_kinds_list (core, arr, incomplete, error))
    return NULL;
  o = json_object_new_object ();
  json_object_object_add (o, "devices", g_steal_pointer (&arr));
  return o;
}

static void
list_refreshed (gpointer data)
{
  IfbDeferred *d = data;
  g_autoptr (GError) error = NULL;
  gboolean incomplete = FALSE;   /* what the refresh could not bring stays so (hw_info_error) */
  json_object *o = list_devices (ifb_deferred_core (d), &incomplete, &error);

  if (o)
    ifb_deferred_return (d, o);
  else
    ifb_deferred_fail (d, error);
}

gboolean
ifb_rpc_device_list (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  gboolean incomplete = FALSE;
  json_object *o = list_devices (call->core, &incomplete, error);
  IfbDeferred *d;

  if (!o)
    return FALSE;
  if (!incomplete) {
    *ret = o;
    return TRUE;
  }
  /* what needs a worker first (probing unowned devices), then the answer when it is done */
  json_object_put (o);
  d = ifb_call_defer (call);
  if (!ifb_device_kinds_refresh (call->core, list_refreshed, d))
    list_refreshed (d);   /* nothing could be started: the entries say why (hw_info_error) */
  return TRUE;
}
