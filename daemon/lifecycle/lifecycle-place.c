/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Placing a guest in the cgroup its VMM will run in once that cgroup is known. libvirt's own
 * iommufd (>= 12.2) needs the guest's iommufd before the domain starts — a client associates it
 * with the domain (iommufdctl libvirt-start) — while libvirt names the domain's cgroup only as it
 * starts it (the hook's prepare). The guest is created first with a provisional cgroup and placed
 * here then. Only a guest whose objects were not allocated in its cgroup may move: an unbound one
 * (the broker allocates nothing for it; its VMM allocates in its own cgroup) or a pending one.
 */
#define G_LOG_DOMAIN "ifb-lifecycle"

#include <string.h>

#include "cgroup.h"
#include "errors.h"
#include "lifecycle.h"
#include "log.h"

gboolean
ifb_lifecycle_place (IfbCore *core, IfbVm *vm, const char *cgroup, const IfbPeer *caller, GError **error)
{
  gboolean allocated = vm->ioas_id != 0;
  g_autofree char *old = NULL;

  for (guint i = 0; i < vm->devices->len && !allocated; i++)
    allocated = ((IfbVmDevice *) g_ptr_array_index (vm->devices, i))->state == IFB_VM_DEVICE_READY &&
                vm->options.handoff == IFB_HANDOFF_BOUND;
  if (allocated)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                        "Guest '%s' has objects the broker allocated in cgroup %s: it cannot move", vm->name,
                        vm->cgroup), FALSE;
  if (!ifb_cgroup_path_validate (cgroup, error) ||
      !ifb_peer_check_guest_cgroup (caller, cgroup, core->self_cgroup, FALSE, error))
    return FALSE;
  old = g_strdup (vm->cgroup);
  if (!ifb_registry_move_cgroup (core->registry, vm, cgroup, error))
    return FALSE;
  if (!ifb_core_persist (core, vm, error)) {
    ifb_registry_move_cgroup (core->registry, vm, old, NULL);   /* it was its own: no overlap */
    return FALSE;
  }
  ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Guest '%s' placed in cgroup %s (was %s)", vm->name, cgroup, old);
  return TRUE;
}
