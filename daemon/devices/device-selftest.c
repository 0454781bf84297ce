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
 *  - made by the guest's worker like any device (worker.c), told it is the mock (prepare()): MOCK_DOMAIN on the guest's IOAS
 *    stands for BIND (it creates the device bound and attached to an automatic HWPT), then
 *    GET_HW_INFO and HWPT_ALLOC as usual, and MOCK_DOMAIN_REPLACE stands for ATTACH (moving
 *    the mock onto the broker's HWPT; the automatic one goes away);
 *  - it has no fd: it lives inside the guest's context. It holds a duplicate of the context fd,
 *    which vm.fds hands out and the fd store keeps like a device fd;
 *  - released by destroying its selftest object (which detaches and unbinds it), then the HWPT.
 *    The object id is kept in the device (kind_object_id), in memory only: after a daemon
 *    restart a restored guest keeps its selftest device, but releasing it leaves the mock in
 *    the context until the guest goes.
 */
#define G_LOG_DOMAIN "ifb-device"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "device-kind-private.h"
#include "errors.h"
#include "log.h"
#include "util.h"

#define N_DEVICES 4
#define PREFIX "selftest:"

/* What the kernel offers, found once at start-up (ifb_device_kinds_probe()). */
static gboolean offered;
static char unavailable_reason[160] = "the daemon has not probed for it";

static gboolean
selftest_claims (const char *name)
{
  return g_str_has_prefix (name, PREFIX);
}

/* "selftest:N" -> N, or -1 when malformed. */
static int
selftest_index (const char *name)
{
  const char *p = name + strlen (PREFIX);

  if (p[0] < '0' || p[0] >= '0' + N_DEVICES || p[1] != '\0')
    return -1;
  return p[0] - '0';
}

static gboolean
selftest_saved_valid (const char *name, const char *cdev)
{
  return selftest_index (name) >= 0 && strcmp (cdev, "selftest") == 0;
}

static void
selftest_probe (IfbCore *core)
{
  int r = ifb_uapi_selftest_probe (core->backend, core->dev_dirfd);

  offered = r > 0 && core->config->allow_selftest;
  g_strlcpy (unavailable_reason,
             r < 0 ? "/dev/iommu could not be opened to probe for IOMMU_TEST_CMD" :
             r == 0 ? "the backend has no IOMMUFD_TEST mock device (IOMMU_TEST_CMD answers ENOTTY)" :
             !offered ? "the kernel offers IOMMUFD_TEST but the config forbids it ([kernel] allow-selftest=false)" : "",
             sizeof unavailable_reason);
  if (offered)
    g_message ("Selftest devices %s0..%d offered: the kernel has IOMMUFD_TEST and [kernel] allow-selftest=true "
               "(a test kernel; never on a production host)", PREFIX, N_DEVICES - 1);
  else if (r > 0)
    g_message ("Selftest devices not offered: %s", unavailable_reason);
  else
    g_debug ("Selftest devices not offered: %s", unavailable_reason);
}

static gboolean
selftest_offered (void)
{
  return offered;
}

static gboolean
selftest_check (IfbCore *core, const char *name, char **ret_cdev, GError **error)
{
  if (selftest_index (name) < 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_NO_SUCH_DEVICE, "No selftest device '%s' (there are %s0 .. %s%d)",
                        name, PREFIX, PREFIX, N_DEVICES - 1), FALSE;
  if (!offered)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_UNAVAILABLE, "Device %s refused: %s", name, unavailable_reason), FALSE;
  *ret_cdev = g_strdup ("selftest");
  return TRUE;
}

/* It lives inside the guest's context and has no fd of its own: it holds a duplicate of the
 * context fd (what vm.fds hands out and the fd store keeps). */
static gboolean
selftest_open (IfbCore *core, IfbVm *vm, IfbVmDevice *d, int *ret_fd, GError **error)
{
  int fd = fcntl (vm->iommufd, F_DUPFD_CLOEXEC, 3);

  if (fd < 0)
    return ifb_error_set_errno (error, IFB_ERROR_KERNEL, -errno, "Device %s: opening it", d->bdf);
  *ret_fd = fd;
  return TRUE;
}

static void
selftest_prepare (const IfbVmDevice *d, IfbWorkerDevice *wd)
{
  wd->mock = true;
}

static void
selftest_adopt (IfbVmDevice *d, const IfbWorkerDevice *wd)
{
  d->kind_object_id = wd->mock_id;
}

/* The mock goes first (which detaches and unbinds it; there is no device fd to detach), then
 * its HWPT: both here, the release worker only closes the duplicate context fd. */
static void
selftest_release (IfbCore *core, IfbVm *vm, IfbVmDevice *d)
{
  int r;

  if (d->kind_object_id && vm->iommufd >= 0) {
    r = ifb_uapi_destroy (core->backend, vm->iommufd, d->kind_object_id);
    if (r < 0)
      ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, d->bdf, "selftest object %u not destroyed (%s): it goes with the context",
                  d->kind_object_id, g_strerror (-r));
  }
  d->kind_object_id = 0;
  if (d->hwpt_id && vm->iommufd >= 0) {
    r = ifb_uapi_destroy (core->backend, vm->iommufd, d->hwpt_id);
    if (r < 0)
      ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, d->bdf, "HWPT %u not destroyed (%s): it goes with the context",
                  d->hwpt_id, g_strerror (-r));
  }
  d->hwpt_id = 0;
}

static gboolean
selftest_list (IfbCore *core, json_object *arr, gboolean *incomplete, GError **error)
{
  /* What the mock reports through GET_HW_INFO (uapi.c): its type, and it can nest. */
  static const IfbHwInfo mock_hw = { .type = IFB_IOMMU_TYPE_SELFTEST, .can_nest = true };

  for (int i = 0; offered && i < N_DEVICES; i++) {
    g_autofree char *name = g_strdup_printf (PREFIX "%d", i);
    IfbVm *owner = ifb_registry_device_owner (core->registry, name);
    IfbVmDevice *vd = owner ? ifb_vm_find_device (owner, name) : NULL;
    json_object *dj = ifb_device_kind_entry_new (name, NULL, NULL, -1, FALSE, owner, NULL);

    json_object_object_add (dj, "kind", json_object_new_string ("selftest"));
    ifb_device_kind_add_hw (dj, vd && vd->state == IFB_VM_DEVICE_READY ? &vd->hw : &mock_hw);
    json_object_array_add (arr, dj);
  }
  return TRUE;
}

const IfbDeviceKind ifb_device_kind_selftest = {
  .name = "selftest",
  .has_cdev = FALSE,
  .claims = selftest_claims,
  .saved_valid = selftest_saved_valid,
  .probe = selftest_probe,
  .offered = selftest_offered,
  .check = selftest_check,
  .open = selftest_open,
  .prepare = selftest_prepare,
  .adopt = selftest_adopt,
  .release = selftest_release,
  .list = selftest_list,
};
