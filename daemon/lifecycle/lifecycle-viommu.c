/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A guest's vIOMMU (vm.create's option viommu, bound hand-off): what the allocation worker is
 * asked for, what its results become, and how its refusals read.
 *
 * The guest has one vIOMMU, made by the worker of its first device, on that device's
 * NEST_PARENT HWPT (a vIOMMU hangs off a stage-2 parent; it then keeps that HWPT busy), and every
 * device gets a vDEVICE in it, with the virtual id the caller gave (vm.attach's virt_id: on Arm
 * SMMUv3 the guest-side StreamID). Teardown is the reverse, as the kernel requires: vDEVICEs,
 * then the vIOMMU, then the HWPTs. A new context (a reclaim, a restart that lost it) starts
 * without one, and its first batch makes it again.
 *
 * Where asked (option veventq_depth), the worker that makes the vIOMMU also makes its vEVENTQ,
 * whose fd is the VMM's way to read the events the IOMMU reports for the guest. That fd is born
 * in the worker: it comes back over a socket pair (SCM_RIGHTS), goes to the fd store as
 * "e<slot>" and to the VMM with vm.fds. The kernel keeps a vEVENTQ busy while any copy of its fd
 * is open, so it goes first and only once the VMM has closed its copy (its exit, the reclaim).
 */
#define G_LOG_DOMAIN "ifb-lifecycle"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "errors.h"
#include "lifecycle-private.h"
#include "notify.h"
#include "util.h"
#include "worker.h"

void
ifb_lifecycle_viommu_prepare (IfbVm *vm, IfbVmDevice **devs, guint n, IfbWorkerBatch *b)
{
  if (vm->options.viommu == IFB_VIOMMU_TYPE_INVALID)
    return;
  b->viommu_type = vm->options.viommu;
  b->viommu_id = vm->iommufd >= 0 ? vm->viommu_id : 0;
  if (!b->viommu_id && vm->options.veventq_depth) {
    int sv[2];
    if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
      b->reply_daemon_fd = sv[0];
      b->reply_fd = sv[1];
    }
    b->veventq_depth = vm->options.veventq_depth;   /* without the socket the worker refuses (EBADF) */
  }
  for (guint i = 0; i < n; i++) {
    b->devices[i].want_vdev = devs[i]->has_virt_id;
    b->devices[i].virt_id = devs[i]->virt_id;
  }
}

/* The vEVENTQ fd the worker sent (it has exited: the message waits in the socket). */
static int
receive_veventq (const IfbWorkerBatch *b, int *ret_fd)
{
  char byte, cbuf[CMSG_SPACE (sizeof (int))];
  struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  struct cmsghdr *cm;

  if (b->reply_daemon_fd < 0)
    return -EBADF;
  if (recvmsg (b->reply_daemon_fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) < 0)
    return -errno;
  cm = CMSG_FIRSTHDR (&msg);
  if ((msg.msg_flags & MSG_CTRUNC) || !cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
      cm->cmsg_len != CMSG_LEN (sizeof (int)))
    return -EPROTO;
  memcpy (ret_fd, CMSG_DATA (cm), sizeof (int));
  return 0;
}

gboolean
ifb_lifecycle_viommu_apply (IfbVm *vm, IfbVmDevice **devs, guint n, const IfbWorkerBatch *b, GError **error)
{
  int r;

  if (b->viommu_type == IFB_VIOMMU_TYPE_INVALID)
    return TRUE;
  if (b->viommu_new) {
    vm->viommu_id = b->viommu_id;
    vm->viommu_hwpt_id = b->viommu_hwpt_id;
    g_free (vm->viommu_cgroup);
    vm->viommu_cgroup = g_strdup (b->cgroup);
    vm->veventq_id = b->veventq_id;
  }
  for (guint i = 0; i < n; i++)
    devs[i]->vdev_id = b->devices[i].vdev_id;
  if (b->viommu_new && b->veventq_id) {
    g_autofree char *name = ifb_vm_fdname_veventq (vm);
    if ((r = receive_veventq (b, &vm->veventq_fd)) < 0)
      return ifb_error_set_errno (error, IFB_ERROR_WORKER_FAILED, r, "Guest '%s': the worker's vEVENTQ fd", vm->name);
    if ((r = ifb_notify_fdstore_add (name, vm->veventq_fd)) < 0) {
      vm->veventq_fd = ifb_close (vm->veventq_fd);
      return ifb_error_set_errno (error, IFB_ERROR_FAILED, r, "Guest '%s': storing its vEVENTQ fd in the fd store",
                                  vm->name);
    }
  }
  return TRUE;
}

/* ifb_error_set_errno (), then TRUE: "this refusal is named" (it returns FALSE itself). */
#define refuse(...) (ifb_error_set_errno (__VA_ARGS__), TRUE)

gboolean
ifb_lifecycle_viommu_error (IfbVm *vm, const IfbWorkerBatch *b, const IfbWorkerDevice *wd, const IfbVmDevice *d,
                            GError **error)
{
  const char *type = ifb_viommu_type_to_string (b->viommu_type);
  const char *iommu = ifb_iommu_type_to_string (wd->info.type);

  if (wd->failed_step == IFB_WORKER_STEP_VIOMMU_ALLOC) {
    if (wd->err == -ENOTTY)
      return refuse (error, IFB_ERROR_UNAVAILABLE, wd->err,
                                  "Device %s: this kernel has no vIOMMU (IOMMU_VIOMMU_ALLOC arrived in Linux 6.13)", d->bdf);
    if (wd->err != -EOPNOTSUPP)
      return refuse (error, IFB_ERROR_KERNEL, wd->err, "Device %s: allocating the guest's vIOMMU "
                                  "(IOMMU_VIOMMU_ALLOC, type %s) failed", d->bdf, type);
    if (!(wd->hwpt_flags & IFB_HWPT_NEST_PARENT) || !wd->info.can_nest)
      return refuse (error, IFB_ERROR_NEST_UNSUPPORTED, wd->err, "Device %s: its IOMMU (%s) cannot nest, "
                                  "so there is no NEST_PARENT for the guest's vIOMMU to sit on", d->bdf, iommu);
    if (ifb_viommu_type_for_iommu (wd->info.type) != b->viommu_type)
      return refuse (error, IFB_ERROR_NEST_UNSUPPORTED, wd->err, "Device %s: its IOMMU (%s) offers no "
                                  "vIOMMU of type '%s'", d->bdf, iommu, type);
    if (wd->info.type == IFB_IOMMU_TYPE_ARM_SMMUV3)
      return refuse (error, IFB_ERROR_NEST_UNSUPPORTED, wd->err, "Device %s: its SMMUv3 refused a vIOMMU: "
                                  "its root complex is not coherent (IORT CANWBS) and it has no S2FWB, so the guest "
                                  "could bypass the cache", d->bdf);
    return refuse (error, IFB_ERROR_NEST_UNSUPPORTED, wd->err, "Device %s: its IOMMU (%s) refused a "
                                "vIOMMU of type '%s'", d->bdf, iommu, type);
  }
  if (wd->failed_step == IFB_WORKER_STEP_VEVENTQ_ALLOC)
    return refuse (error, wd->err == -ENOTTY ? IFB_ERROR_UNAVAILABLE : IFB_ERROR_KERNEL, wd->err,
                                "Device %s: allocating the vIOMMU's vEVENTQ (IOMMU_VEVENTQ_ALLOC, depth %u%s) failed",
                                d->bdf, b->veventq_depth, wd->err == -ENOTTY ? "; it arrived in Linux 6.14" : "");
  if (wd->failed_step == IFB_WORKER_STEP_VDEVICE_ALLOC) {
    if (wd->err == -EEXIST)
      return refuse (error, IFB_ERROR_INVALID_ARGUMENT, wd->err, "Device %s: virtual id %" G_GUINT64_FORMAT
                                  " is already used in guest '%s''s vIOMMU", d->bdf, d->virt_id, vm->name);
    if (wd->err == -EINVAL)
      return refuse (error, IFB_ERROR_INVALID_ARGUMENT, wd->err, "Device %s: it is not behind the "
                                  "physical IOMMU that guest '%s''s vIOMMU belongs to", d->bdf, vm->name);
    if (wd->err == -ENOMEM || wd->err == -ENOSPC)
      return refuse (error, IFB_ERROR_LIMIT_EXCEEDED, wd->err, "Device %s: no room for another vDEVICE "
                                  "in guest '%s''s context", d->bdf, vm->name);
    return refuse (error, IFB_ERROR_KERNEL, wd->err, "Device %s: allocating its vDEVICE "
                                "(IOMMU_VDEVICE_ALLOC) failed", d->bdf);
  }
  return FALSE;
}

void
ifb_lifecycle_viommu_release (IfbVm *vm)
{
  if (vm->veventq_fd >= 0) {
    g_autofree char *name = ifb_vm_fdname_veventq (vm);
    ifb_notify_fdstore_remove (name);
    vm->veventq_fd = ifb_close (vm->veventq_fd);
  }
  if (vm->veventq_id && vm->viommu_id) {
    vm->releasing_veventq = vm->veventq_id;
    vm->veventq_id = 0;
  }
  if (vm->viommu_id) {
    vm->releasing_viommu = vm->viommu_id;
    vm->viommu_id = 0;
    vm->viommu_hwpt_id = 0;
    g_clear_pointer (&vm->viommu_cgroup, g_free);
  }
}

gboolean
ifb_lifecycle_viommu_check_attach (IfbVm *vm, const char *bdf, gboolean has_virt_id, guint64 virt_id, GError **error)
{
  if (vm->options.viommu == IFB_VIOMMU_TYPE_INVALID) {
    if (has_virt_id)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS, "Invalid params: guest '%s' has no vIOMMU "
                          "(vm.create option viommu), so 'virt_id' means nothing", vm->name), FALSE;
    return TRUE;
  }
  if (!has_virt_id)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS, "Invalid params: guest '%s' has a vIOMMU: give "
                        "the device's virtual id ('virt_id') and attach its devices one at a time", vm->name), FALSE;
  for (guint i = 0; i < vm->devices->len; i++) {
    const IfbVmDevice *o = g_ptr_array_index (vm->devices, i);
    if (o->has_virt_id && o->virt_id == virt_id)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "Virtual id %" G_GUINT64_FORMAT " is already "
                          "used in guest '%s''s vIOMMU (device %s)", virt_id, vm->name, o->bdf), FALSE;
  }
  return TRUE;
}

gboolean
ifb_lifecycle_viommu_check_detach (IfbVm *vm, IfbVmDevice *d, GError **error)
{
  if (!vm->viommu_id || d->hwpt_id != vm->viommu_hwpt_id)
    return TRUE;
  for (guint i = 0; i < vm->devices->len; i++) {
    const IfbVmDevice *o = g_ptr_array_index (vm->devices, i);
    if (o != d && o->vdev_id)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_BUSY, "Device %s: guest '%s''s vIOMMU sits on its "
                          "NEST_PARENT HWPT and device %s still has a vDEVICE in it; detach the others first",
                          d->bdf, vm->name, o->bdf), FALSE;
  }
  ifb_lifecycle_viommu_release (vm);   /* the last device: the vIOMMU goes with it */
  return TRUE;
}
