/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * How the vm.* methods find their guest: 'vm' is a name and only a name, 'uuid' a UUID and only
 * a UUID (compared without regard to case), and with both the guest must have both. A name is
 * never tried as a UUID: names may look like UUIDs, so "a guest named like another's UUID"
 * would otherwise stand for that other guest (the libvirt hook destroyed the wrong one).
 */
#define G_LOG_DOMAIN "ifb-rpc"

#include "errors.h"
#include "lifecycle.h"
#include "rpc.h"

IfbVm *
ifb_rpc_lookup_vm (IfbCall *call, const char *name, const char *uuid, GError **error)
{
  IfbRegistry *r = call->core->registry;
  IfbVm *vm;

  if (!name && !uuid)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                        "Invalid params: give the guest's 'vm' (its name), 'uuid', or both"), NULL;
  if (uuid && !g_uuid_string_is_valid (uuid))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                        "Invalid params: member 'uuid' is not a UUID: '%s'", uuid), NULL;
  vm = name ? ifb_registry_lookup_name (r, name) : ifb_registry_lookup_uuid (r, uuid);
  if (vm && name && uuid && vm != ifb_registry_lookup_uuid (r, uuid))
    vm = NULL;
  if (!vm) {
    if (name && uuid)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_NO_SUCH_VM, "No guest named '%s' with UUID %s", name, uuid), NULL;
    if (name)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_NO_SUCH_VM, "No guest named '%s'", name), NULL;
    return g_set_error (error, IFB_ERROR, IFB_ERROR_NO_SUCH_VM, "No guest with UUID %s", uuid), NULL;
  }
  ifb_lifecycle_touch (call->core, vm);
  return vm;
}

gboolean
ifb_rpc_fds_refused (IfbCall *call, GError **error)
{
  const IfbPeer *p = call->peer;

  if (ifb_peer_can_read (p, call->core->config) || g_error_matches (*error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS))
    return FALSE;
  /* A peer without a role learns neither whether the guest exists nor where it runs; the
   * journal gets the real reason (the dispatcher logs it with the guest's IFB_VM=). */
  g_free (call->private_reason);
  call->private_reason = g_strdup ((*error)->message);
  g_clear_error (error);
  return g_set_error (error, IFB_ERROR, IFB_ERROR_PERMISSION_DENIED,
                      "Permission denied: vm.fds needs root, the admin group, or a peer inside the guest's cgroup "
                      "(peer uid %u pid %d)", (unsigned) p->uid, (int) p->pid), FALSE;
}
