/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbRegistry: every guest by name and UUID, and which guest owns which device.
 */
#pragma once

#include <glib.h>

#include "vm.h"

typedef struct IfbRegistry IfbRegistry;

IfbRegistry *ifb_registry_new (guint max_vms);
IfbRegistry *ifb_registry_free (IfbRegistry *r);

/* Look a guest up by name or UUID; NULL when unknown. */
IfbVm *ifb_registry_lookup (IfbRegistry *r, const char *name_or_uuid);
/* By name only, or by UUID only (any case): what the RPC methods use, so a name can never
 * stand for another guest's UUID. NULL when unknown. */
IfbVm *ifb_registry_lookup_name (IfbRegistry *r, const char *name);
IfbVm *ifb_registry_lookup_uuid (IfbRegistry *r, const char *uuid);
/* Same as ifb_registry_lookup(), as an error naming the guest. */
IfbVm *ifb_registry_get (IfbRegistry *r, const char *name_or_uuid, GError **error);
/* The lowest slot no guest holds (names its fds in the fd store, see vm.h). */
guint ifb_registry_free_slot (IfbRegistry *r);
/* The guest (other than except) whose cgroup is cgroup, lies inside it or contains it: a VMM is
 * authorized by its cgroup, so one guest's process could take the other's fds. NULL if none. */
IfbVm *ifb_registry_cgroup_overlap (IfbRegistry *r, const char *cgroup, const IfbVm *except);
/* Add vm (taken on success only): refuses a duplicate name, UUID or slot, a cgroup that overlaps
 * another guest's, or beyond max_vms. */
gboolean ifb_registry_add (IfbRegistry *r, IfbVm *vm, GError **error);
/* Remove vm and release its devices; returns it, owned by the caller. */
IfbVm *ifb_registry_remove (IfbRegistry *r, IfbVm *vm);

/* Give vm (registered) another cgroup, refused when it overlaps another guest's. */
gboolean ifb_registry_move_cgroup (IfbRegistry *r, IfbVm *vm, const char *cgroup, GError **error);

/* The guest owning device bdf, or NULL. */
IfbVm *ifb_registry_device_owner (IfbRegistry *r, const char *bdf);
void ifb_registry_claim_device (IfbRegistry *r, const char *bdf, IfbVm *vm);
void ifb_registry_release_device (IfbRegistry *r, const char *bdf);

/* All guests, sorted by name (borrowed pointers). */
GPtrArray *ifb_registry_list (IfbRegistry *r);
guint ifb_registry_n_vms (IfbRegistry *r);
guint ifb_registry_n_devices (IfbRegistry *r);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbRegistry, ifb_registry_free)
