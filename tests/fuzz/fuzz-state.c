/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: one guest's state file as restore reads it (strict JSON, the version, the
 * guest and its devices, then every field's check: names, UUID, cgroup paths, device addresses,
 * cdevs, indexes, ids). ifb_state_parse() is what ifb_state_load() runs on each file.
 */
#include <stdint.h>
#include <string.h>

#include "errors.h"
#include "state.h"
#include "util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

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
  return 0;
}
