/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define G_LOG_DOMAIN "ifb-registry"

#include <string.h>

#include "errors.h"
#include "registry.h"

struct IfbRegistry {
  guint max_vms;
  GHashTable *by_name;          /* name -> IfbVm* (owned) */
  GHashTable *by_uuid;          /* uuid -> IfbVm* */
  GHashTable *owners;           /* bdf (owned string) -> IfbVm* */
  GHashTable *slots;            /* slot -> IfbVm* */
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
  return r;
}

IfbRegistry *
ifb_registry_free (IfbRegistry *r)
{
  if (!r)
    return NULL;
  g_hash_table_unref (r->owners);
  g_hash_table_unref (r->slots);
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

gboolean
ifb_registry_add (IfbRegistry *r, IfbVm *vm, GError **error)
{
  if (g_hash_table_contains (r->by_name, vm->name))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_VM_EXISTS, "A guest named '%s' exists already", vm->name), FALSE;
  if (g_hash_table_contains (r->by_uuid, vm->uuid))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_VM_EXISTS, "A guest with UUID %s exists already", vm->uuid), FALSE;
  if (g_hash_table_size (r->by_name) >= r->max_vms)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED,
                        "Limit reached: at most %u guests ([limits] max-vms)", r->max_vms), FALSE;
  if (vm->slot >= IFB_VM_MAX_SLOTS || g_hash_table_contains (r->slots, GUINT_TO_POINTER (vm->slot)))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_VM_EXISTS, "Slot %u of guest '%s' is taken", vm->slot, vm->name), FALSE;
  g_hash_table_insert (r->slots, GUINT_TO_POINTER (vm->slot), vm);
  g_hash_table_insert (r->by_name, vm->name, vm);
  g_hash_table_insert (r->by_uuid, vm->uuid, vm);
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
  g_hash_table_remove (r->slots, GUINT_TO_POINTER (vm->slot));
  r->free_hint = MIN (r->free_hint, vm->slot);
  g_hash_table_steal (r->by_name, vm->name);
  return vm;
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
