/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define G_LOG_DOMAIN "ifb-registry"

#include <string.h>

#include "cgroup.h"
#include "errors.h"
#include "registry.h"

struct IfbRegistry {
  guint max_vms;
  GHashTable *by_name;          /* name -> IfbVm* (owned) */
  GHashTable *by_uuid;          /* uuid -> IfbVm* */
  GHashTable *owners;           /* bdf (owned string) -> IfbVm* */
  GHashTable *slots;            /* slot -> IfbVm* */
  GHashTable *cgroups;          /* cgroup -> IfbVm* */
  GHashTable *above;            /* proper ancestor of a guest's cgroup (owned) -> guests below it */
  guint free_hint;              /* no slot below this is free */
};

IfbRegistry *
ifb_registry_new (guint max_vms)
{
  IfbRegistry *r = g_new0 (IfbRegistry, 1);
  r->max_vms = max_vms;
  r->by_name = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) ifb_vm_free);
  r->by_uuid = g_hash_table_new (g_str_hash, g_str_equal);
  r->owners = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  r->slots = g_hash_table_new (g_direct_hash, g_direct_equal);
  r->cgroups = g_hash_table_new (g_str_hash, g_str_equal);
  r->above = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return r;
}

IfbRegistry *
ifb_registry_free (IfbRegistry *r)
{
  if (!r)
    return NULL;
  g_hash_table_unref (r->owners);
  g_hash_table_unref (r->slots);
  g_hash_table_unref (r->cgroups);
  g_hash_table_unref (r->above);
  g_hash_table_unref (r->by_uuid);
  g_hash_table_unref (r->by_name);
  g_free (r);
  return NULL;
}

IfbVm *
ifb_registry_lookup (IfbRegistry *r, const char *key)
{
  IfbVm *vm;
  if (!key)
    return NULL;
  vm = g_hash_table_lookup (r->by_name, key);
  return vm ? vm : g_hash_table_lookup (r->by_uuid, key);
}

IfbVm *
ifb_registry_lookup_name (IfbRegistry *r, const char *name)
{
  return name ? g_hash_table_lookup (r->by_name, name) : NULL;
}

IfbVm *
ifb_registry_lookup_uuid (IfbRegistry *r, const char *uuid)
{
  g_autofree char *lower = uuid ? g_ascii_strdown (uuid, -1) : NULL;
  return lower ? g_hash_table_lookup (r->by_uuid, lower) : NULL;
}

IfbVm *
ifb_registry_get (IfbRegistry *r, const char *key, GError **error)
{
  IfbVm *vm = ifb_registry_lookup (r, key);
  if (!vm)
    g_set_error (error, IFB_ERROR, IFB_ERROR_NO_SUCH_VM, "No guest named '%s'", key ? key : "");
  return vm;
}

guint
ifb_registry_free_slot (IfbRegistry *r)
{
  while (g_hash_table_contains (r->slots, GUINT_TO_POINTER (r->free_hint)))
    r->free_hint++;
  return r->free_hint;
}

/* Count vm's cgroup in (delta 1) or out of (-1) every proper ancestor's tally. */
static void
count_above (IfbRegistry *r, const char *cgroup, int delta)
{
  for (const char *p = strrchr (cgroup, '/'); p && p > cgroup; p = g_strrstr_len (cgroup, p - cgroup, "/")) {
    g_autofree char *anc = g_strndup (cgroup, (gsize) (p - cgroup));
    guint n = GPOINTER_TO_UINT (g_hash_table_lookup (r->above, anc));
    if (delta > 0)
      g_hash_table_replace (r->above, g_steal_pointer (&anc), GUINT_TO_POINTER (n + 1));
    else if (n <= 1)
      g_hash_table_remove (r->above, anc);
    else
      g_hash_table_replace (r->above, g_steal_pointer (&anc), GUINT_TO_POINTER (n - 1));
  }
}

IfbVm *
ifb_registry_cgroup_overlap (IfbRegistry *r, const char *cgroup, const IfbVm *except)
{
  g_autofree char *p = NULL;
  IfbVm *vm;
  char *slash;

  if (!cgroup)
    return NULL;
  /* equal, or inside another guest's: the path and its ancestors, O(depth) */
  if ((vm = g_hash_table_lookup (r->cgroups, cgroup)) && vm != except)
    return vm;
  p = g_strdup (cgroup);
  while ((slash = strrchr (p, '/')) && slash > p) {
    *slash = '\0';
    if ((vm = g_hash_table_lookup (r->cgroups, p)) && vm != except)
      return vm;
  }
  /* containing another guest's: the tally says so; which one, only a walk (on a refusal only) */
  if (g_hash_table_contains (r->above, cgroup)) {
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init (&it, r->by_name);
    while (g_hash_table_iter_next (&it, NULL, &v))
      if (v != except && ifb_cgroup_is_within (((IfbVm *) v)->cgroup, cgroup))
        return v;
  }
  return NULL;
}

gboolean
ifb_registry_add (IfbRegistry *r, IfbVm *vm, GError **error)
{
  IfbVm *other;

  if (g_hash_table_contains (r->by_name, vm->name))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_VM_EXISTS, "A guest named '%s' exists already", vm->name), FALSE;
  if (g_hash_table_contains (r->by_uuid, vm->uuid))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_VM_EXISTS, "A guest with UUID %s exists already", vm->uuid), FALSE;
  if (g_hash_table_size (r->by_name) >= r->max_vms)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED,
                        "Limit reached: at most %u guests ([limits] max-vms)", r->max_vms), FALSE;
  if (vm->slot >= IFB_VM_MAX_SLOTS || g_hash_table_contains (r->slots, GUINT_TO_POINTER (vm->slot)))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_VM_EXISTS, "Slot %u of guest '%s' is taken", vm->slot, vm->name), FALSE;
  if ((other = ifb_registry_cgroup_overlap (r, vm->cgroup, vm)))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID, "Cgroup %s of guest '%s' overlaps guest '%s''s cgroup %s",
                        vm->cgroup, vm->name, other->name, other->cgroup), FALSE;
  g_hash_table_insert (r->slots, GUINT_TO_POINTER (vm->slot), vm);
  g_hash_table_insert (r->by_name, vm->name, vm);
  g_hash_table_insert (r->by_uuid, vm->uuid, vm);
  if (vm->cgroup) {
    g_hash_table_insert (r->cgroups, vm->cgroup, vm);
    count_above (r, vm->cgroup, 1);
  }
  for (guint i = 0; i < vm->devices->len; i++)
    ifb_registry_claim_device (r, ((IfbVmDevice *) g_ptr_array_index (vm->devices, i))->bdf, vm);
  return TRUE;
}

IfbVm *
ifb_registry_remove (IfbRegistry *r, IfbVm *vm)
{
  for (guint i = 0; i < vm->devices->len; i++)
    ifb_registry_release_device (r, ((IfbVmDevice *) g_ptr_array_index (vm->devices, i))->bdf);
  g_hash_table_remove (r->by_uuid, vm->uuid);
  if (vm->cgroup && g_hash_table_lookup (r->cgroups, vm->cgroup) == vm) {
    g_hash_table_remove (r->cgroups, vm->cgroup);
    count_above (r, vm->cgroup, -1);
  }
  g_hash_table_remove (r->slots, GUINT_TO_POINTER (vm->slot));
  r->free_hint = MIN (r->free_hint, vm->slot);
  g_hash_table_steal (r->by_name, vm->name);
  return vm;
}

gboolean
ifb_registry_move_cgroup (IfbRegistry *r, IfbVm *vm, const char *cgroup, GError **error)
{
  IfbVm *other = ifb_registry_cgroup_overlap (r, cgroup, vm);

  if (other)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID,
                        "Cgroup %s overlaps guest '%s''s cgroup %s (equal, inside or containing it): a process of one "
                        "guest could take the other's fds", cgroup, other->name, other->cgroup), FALSE;
  if (vm->cgroup && g_hash_table_lookup (r->cgroups, vm->cgroup) == vm) {
    g_hash_table_remove (r->cgroups, vm->cgroup);
    count_above (r, vm->cgroup, -1);
  }
  g_free (vm->cgroup);
  vm->cgroup = g_strdup (cgroup);
  g_hash_table_insert (r->cgroups, vm->cgroup, vm);
  count_above (r, vm->cgroup, 1);
  return TRUE;
}

IfbVm *
ifb_registry_device_owner (IfbRegistry *r, const char *bdf)
{
  return g_hash_table_lookup (r->owners, bdf);
}

void
ifb_registry_claim_device (IfbRegistry *r, const char *bdf, IfbVm *vm)
{
  g_hash_table_replace (r->owners, g_strdup (bdf), vm);
}

void
ifb_registry_release_device (IfbRegistry *r, const char *bdf)
{
  g_hash_table_remove (r->owners, bdf);
}

static int
cmp_name (gconstpointer a, gconstpointer b)
{
  const IfbVm *x = *(IfbVm *const *) a, *y = *(IfbVm *const *) b;
  return strcmp (x->name, y->name);
}

GPtrArray *
ifb_registry_list (IfbRegistry *r)
{
  GPtrArray *a = g_ptr_array_sized_new (g_hash_table_size (r->by_name));
  GHashTableIter it;
  gpointer v;

  g_hash_table_iter_init (&it, r->by_name);
  while (g_hash_table_iter_next (&it, NULL, &v))
    g_ptr_array_add (a, v);
  g_ptr_array_sort (a, cmp_name);
  return a;
}

guint
ifb_registry_n_vms (IfbRegistry *r)
{
  return g_hash_table_size (r->by_name);
}

guint
ifb_registry_n_devices (IfbRegistry *r)
{
  return g_hash_table_size (r->owners);
}
