/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: one guest's state file as restore reads it (strict JSON, the version, the
 * guest and its devices, then every field's check: names, UUID, cgroup paths, device addresses,
 * cdevs, indexes, ids). ifb_state_parse() is what ifb_state_load() runs on each file.
 *
 * An input of several lines is also read as several state files, admitted oldest first as
 * ifb_state_load() does (IfbStateSet): the guests kept never share a name, slot or device, and no
 * kept guest's cgroup is equal to, inside or above another's.
 */
#include <stdint.h>
#include <string.h>

#include "cgroup.h"
#include "errors.h"
#include "state.h"
#include "util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define MAX_FILES 16

static void
several_files (const char *data, size_t size)
{
  g_autoptr (GPtrArray) kept = g_ptr_array_new_with_free_func ((GDestroyNotify) ifb_vm_free);
  g_autoptr (IfbStateSet) set = ifb_state_set_new (8);
  const char *p = data, *end = data + size;

  for (guint n = 0; p < end && n < MAX_FILES; n++) {
    const char *nl = memchr (p, '\n', (size_t) (end - p));
    size_t len = nl ? (size_t) (nl - p) : (size_t) (end - p);
    IfbVm *vm = ifb_state_parse (p, len, NULL, NULL);
    g_autofree char *why = NULL;

    p += len + 1;
    if (!vm)
      continue;
    if ((why = ifb_state_set_add (set, vm))) {
      ifb_vm_free (vm);
      continue;
    }
    g_ptr_array_add (kept, vm);
  }
  g_assert_cmpuint (kept->len, <=, 8);
  for (guint i = 0; i < kept->len; i++)
    for (guint j = 0; j < kept->len; j++) {
      IfbVm *a = g_ptr_array_index (kept, i), *b = g_ptr_array_index (kept, j);
      if (i == j)
        continue;
      g_assert_cmpstr (a->name, !=, b->name);
      g_assert_cmpuint (a->slot, !=, b->slot);
      g_assert_false (ifb_cgroup_is_within (a->cgroup, b->cgroup));
      for (guint k = 0; k < a->devices->len; k++)
        for (guint l = 0; l < b->devices->len; l++)
          g_assert_cmpstr (((IfbVmDevice *) g_ptr_array_index (a->devices, k))->bdf, !=,
                           ((IfbVmDevice *) g_ptr_array_index (b->devices, l))->bdf);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (IfbVm) vm = ifb_state_parse ((const char *) data, size, NULL, &error);

  /* Exactly one of a guest and an error; a guest passes the checks restore relies on. */
  g_assert_true ((vm == NULL) != (error == NULL));
  if (vm) {
    g_assert_true (ifb_vm_name_validate (vm->name, NULL));
    g_assert_true (g_uuid_string_is_valid (vm->uuid));
    g_assert_true (vm->cgroup && strcmp (vm->cgroup, "/") != 0);
    g_assert_cmpuint (vm->slot, <, IFB_VM_MAX_SLOTS);
    g_assert_cmpuint (vm->devices->len, <=, IFB_VM_MAX_DEVICE_INDEX);
    for (guint i = 0; i < vm->devices->len; i++) {
      IfbVmDevice *d = g_ptr_array_index (vm->devices, i);
      g_assert_cmpuint (d->index, <, IFB_VM_MAX_DEVICE_INDEX);
      g_assert_cmpint (d->fd, ==, -1);
      g_assert_true (d->state == IFB_VM_DEVICE_RESERVED || d->state == IFB_VM_DEVICE_READY);
    }
    /* a guest that parses is written back as it was read */
    {
      g_autoptr (json_object) o = ifb_vm_to_json (vm, TRUE);
      g_autoptr (IfbVm) again = ifb_vm_from_json (o, NULL);
      g_assert_nonnull (again);
      g_assert_cmpstr (again->name, ==, vm->name);
      g_assert_cmpuint (again->devices->len, ==, vm->devices->len);
    }
  }
  if (size > 0 && memchr (data, '\n', size))
    several_files ((const char *) data, size);
  return 0;
}
