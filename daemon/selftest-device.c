/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * The kernel's IOMMUFD_TEST build has a mock device (IOMMU_TEST_CMD, IOMMU_TEST_OP_MOCK_DOMAIN)
 * whose mock IOMMU implements NEST_PARENT and nested stage-1 domains: the only nesting IOMMU a
 * QEMU/TCG guest can offer. This module turns it into a device kind the broker hands to guests,
 * so tests/kernel proves the NEST_PARENT path on a real kernel. It is a test-only kind:
 *
 *  - offered only when the kernel backend answers IOMMU_TEST_CMD (probed once at start-up) AND
 *    the config says [kernel] allow-selftest=true; vm.attach otherwise refuses it naming which of
 *    the two is missing;
 *  - named "selftest:N", N in 0..IFB_SELFTEST_N_DEVICES-1, a pool of names, each owned by at
 *    most one guest like a PCI address (the registry keys ownership by name);
 *  - made by the guest's worker like any device (worker.c): MOCK_DOMAIN on the guest's IOAS
 *    stands for BIND (it creates the device bound and attached to an automatic HWPT), then
 *    GET_HW_INFO and HWPT_ALLOC as usual, and MOCK_DOMAIN_REPLACE stands for ATTACH (moving
 *    the mock onto the broker's HWPT; the automatic one goes away);
 *  - it has no fd: it lives inside the guest's context. It holds a duplicate of the context fd,
 *    which vm.fds hands out and the fd store keeps like a device fd;
 *  - released by destroying its selftest object (which detaches and unbinds it), then the HWPT.
 *    The object id is only kept in memory: after a daemon restart a restored guest keeps its
 *    selftest device, but releasing it leaves the mock in the context until the guest goes.
 */
#define G_LOG_DOMAIN "ifb-selftest"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "selftest-device.h"
#include "util.h"

/* Module state: one manager per process. */
static const char *unavailable_reason = "the daemon has not probed for it";
static uint32_t stdev_ids[IFB_SELFTEST_N_DEVICES];

gboolean
ifb_selftest_device_name_is (const char *name)
{
  return name && g_str_has_prefix (name, IFB_SELFTEST_PREFIX);
}

/* "selftest:N" -> N, or -1 when malformed. */
static int
selftest_index (const char *name)
{
  const char *p = name + strlen (IFB_SELFTEST_PREFIX);

  if (p[0] < '0' || p[0] >= '0' + IFB_SELFTEST_N_DEVICES || p[1] != '\0')
    return -1;
  return p[0] - '0';
}

void
ifb_selftest_device_probe (IfbManager *m)
{
  int r = ifb_uapi_selftest_probe (m->backend, m->dev_dirfd);

  m->selftest_available = false;
  if (ifb_uapi_backend_is_emulated (m->backend))
    unavailable_reason = "the emulated backend has no IOMMUFD_TEST mock device";
  else if (r < 0)
    unavailable_reason = "/dev/iommu could not be opened to probe for IOMMU_TEST_CMD";
  else if (r == 0)
    unavailable_reason = "the kernel lacks IOMMUFD_TEST (IOMMU_TEST_CMD answers ENOTTY)";
  else if (!m->config->allow_selftest)
    unavailable_reason = "the kernel offers IOMMUFD_TEST but the config forbids it ([kernel] allow-selftest=false)";
  else {
    unavailable_reason = NULL;
    m->selftest_available = true;
  }
  if (m->selftest_available)
    g_message ("Selftest devices %s0..%d offered: the kernel has IOMMUFD_TEST and [kernel] allow-selftest=true "
               "(a test kernel; never on a production host)", IFB_SELFTEST_PREFIX, IFB_SELFTEST_N_DEVICES - 1);
  else if (r > 0)
    g_message ("Selftest devices not offered: %s", unavailable_reason);
  else
    g_debug ("Selftest devices not offered: %s", unavailable_reason);
}

gboolean
ifb_selftest_device_check (IfbManager *m, IfbVm *vm, const char *name, char **ret_cdev, GError **error)
{
  IfbVm *owner;

  if (selftest_index (name) < 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_NO_SUCH_DEVICE, "No selftest device '%s' (there are %s0 .. %s%d)",
                        name, IFB_SELFTEST_PREFIX, IFB_SELFTEST_PREFIX, IFB_SELFTEST_N_DEVICES - 1), FALSE;
  if (!m->selftest_available)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_UNAVAILABLE, "Device %s refused: %s", name, unavailable_reason), FALSE;
  owner = ifb_registry_device_owner (m->registry, name);
  if (owner == vm)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_BUSY, "Device %s is attached to guest '%s' already", name, vm->name), FALSE;
  if (owner)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_BUSY, "Device %s belongs to guest '%s'", name, owner->name), FALSE;
  *ret_cdev = g_strdup ("selftest");
  return TRUE;
}

int
ifb_selftest_device_open (IfbVm *vm, int *ret_fd)
{
  int fd = fcntl (vm->iommufd, F_DUPFD_CLOEXEC, 3);

  if (fd < 0)
    return -errno;
  *ret_fd = fd;
  return 0;
}

void
ifb_selftest_device_adopt (const IfbVmDevice *d, const IfbWorkerDevice *wd)
{
  int i = ifb_selftest_device_name_is (d->bdf) ? selftest_index (d->bdf) : -1;

  if (i >= 0)
    stdev_ids[i] = wd->stdev_id;
}

void
ifb_selftest_device_release (IfbManager *m, IfbVm *vm, IfbVmDevice *d)
{
  int i = selftest_index (d->bdf);
  int r;

  if (i >= 0 && stdev_ids[i] && vm->iommufd >= 0) {
    r = ifb_uapi_destroy (m->backend, vm->iommufd, stdev_ids[i]);
    if (r < 0)
      ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, d->bdf, "selftest object %u not destroyed (%s): it goes with the context",
                  stdev_ids[i], g_strerror (-r));
  }
  if (i >= 0)
    stdev_ids[i] = 0;
  if (d->hwpt_id && vm->iommufd >= 0) {
    r = ifb_uapi_destroy (m->backend, vm->iommufd, d->hwpt_id);
    if (r < 0)
      ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, d->bdf, "HWPT %u not destroyed (%s): it goes with the context",
                  d->hwpt_id, g_strerror (-r));
  }
  d->hwpt_id = 0;
}

void
ifb_selftest_device_list (IfbManager *m, json_object *arr)
{
  /* What the mock reports through GET_HW_INFO (uapi.c): its type, and it can nest. */
  static const IfbHwInfo mock_hw = { .type = IFB_IOMMU_TYPE_SELFTEST, .can_nest = true };

  if (!m->selftest_available)
    return;
  for (int i = 0; i < IFB_SELFTEST_N_DEVICES; i++) {
    g_autofree char *name = g_strdup_printf (IFB_SELFTEST_PREFIX "%d", i);
    IfbVm *owner = ifb_registry_device_owner (m->registry, name);
    IfbVmDevice *vd = owner ? ifb_vm_find_device (owner, name) : NULL;
    const IfbHwInfo *hw = vd && vd->state == IFB_VM_DEVICE_READY ? &vd->hw : &mock_hw;
    json_object *dj = json_object_new_object ();

    json_object_object_add (dj, "device", json_object_new_string (name));
    json_object_object_add (dj, "kind", json_object_new_string ("selftest"));
    json_object_object_add (dj, "driver", NULL);
    json_object_object_add (dj, "cdev", NULL);
    json_object_object_add (dj, "iommu_group", NULL);
    json_object_object_add (dj, "vfio", json_object_new_boolean (FALSE));
    json_object_object_add (dj, "owner", owner ? json_object_new_string (owner->name) : NULL);
    json_object_object_add (dj, "iommu", json_object_new_string (ifb_iommu_type_to_string (hw->type)));
    json_object_object_add (dj, "nest_parent_capable", json_object_new_boolean (hw->can_nest));
    json_object_object_add (dj, "hw_info", ifb_hw_info_to_json (hw));
    json_object_array_add (arr, dj);
  }
}
