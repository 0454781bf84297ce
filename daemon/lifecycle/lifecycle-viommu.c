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
 */
#define G_LOG_DOMAIN "ifb-lifecycle"

#include <errno.h>

#include "errors.h"
#include "lifecycle-private.h"
#include "worker.h"

void
ifb_lifecycle_viommu_prepare (IfbVm *vm, IfbVmDevice **devs, guint n, IfbWorkerBatch *b)
{
  if (vm->options.viommu == IFB_VIOMMU_TYPE_INVALID)
    return;
  b->viommu_type = vm->options.viommu;
  b->viommu_id = vm->iommufd >= 0 ? vm->viommu_id : 0;
  for (guint i = 0; i < n; i++) {
    b->devices[i].want_vdev = devs[i]->has_virt_id;
    b->devices[i].virt_id = devs[i]->virt_id;
  }
}

void
ifb_lifecycle_viommu_apply (IfbVm *vm, IfbVmDevice **devs, guint n, const IfbWorkerBatch *b)
{
  if (b->viommu_type == IFB_VIOMMU_TYPE_INVALID)
    return;
  if (b->viommu_new) {
    vm->viommu_id = b->viommu_id;
    vm->viommu_hwpt_id = b->viommu_hwpt_id;
    g_free (vm->viommu_cgroup);
    vm->viommu_cgroup = g_strdup (b->cgroup);
  }
  for (guint i = 0; i < n; i++)
    devs[i]->vdev_id = b->devices[i].vdev_id;
}

gboolean
ifb_lifecycle_viommu_error (IfbVm *vm, const IfbWorkerBatch *b, const IfbWorkerDevice *wd, const IfbVmDevice *d,
                            GError **error)
{
  const char *type = ifb_viommu_type_to_string (b->viommu_type);
  const char *iommu = ifb_iommu_type_to_string (wd->info.type);

  if (wd->failed_step == IFB_WORKER_STEP_VIOMMU_ALLOC) {
    if (wd->err == -ENOTTY)
      return ifb_error_set_errno (error, IFB_ERROR_UNAVAILABLE, wd->err,
                                  "Device %s: this kernel has no vIOMMU (IOMMU_VIOMMU_ALLOC arrived in Linux 6.13)", d->bdf);
    if (wd->err != -EOPNOTSUPP)
      return ifb_error_set_errno (error, IFB_ERROR_KERNEL, wd->err, "Device %s: allocating the guest's vIOMMU "
                                  "(IOMMU_VIOMMU_ALLOC, type %s) failed", d->bdf, type);
    if (!(wd->hwpt_flags & IFB_HWPT_NEST_PARENT) || !wd->info.can_nest)
      return ifb_error_set_errno (error, IFB_ERROR_NEST_UNSUPPORTED, wd->err, "Device %s: its IOMMU (%s) cannot nest, "
                                  "so there is no NEST_PARENT for the guest's vIOMMU to sit on", d->bdf, iommu);
    if (ifb_viommu_type_for_iommu (wd->info.type) != b->viommu_type)
      return ifb_error_set_errno (error, IFB_ERROR_NEST_UNSUPPORTED, wd->err, "Device %s: its IOMMU (%s) offers no "
                                  "vIOMMU of type '%s'", d->bdf, iommu, type);
    if (wd->info.type == IFB_IOMMU_TYPE_ARM_SMMUV3)
      return ifb_error_set_errno (error, IFB_ERROR_NEST_UNSUPPORTED, wd->err, "Device %s: its SMMUv3 refused a vIOMMU: "
                                  "its root complex is not coherent (IORT CANWBS) and it has no S2FWB, so the guest "
                                  "could bypass the cache", d->bdf);
    return ifb_error_set_errno (error, IFB_ERROR_NEST_UNSUPPORTED, wd->err, "Device %s: its IOMMU (%s) refused a "
                                "vIOMMU of type '%s'", d->bdf, iommu, type);
  }
  if (wd->failed_step == IFB_WORKER_STEP_VDEVICE_ALLOC) {
    if (wd->err == -EEXIST)
      return ifb_error_set_errno (error, IFB_ERROR_INVALID_ARGUMENT, wd->err, "Device %s: virtual id %" G_GUINT64_FORMAT
                                  " is already used in guest '%s''s vIOMMU", d->bdf, d->virt_id, vm->name);
    if (wd->err == -EINVAL)
      return ifb_error_set_errno (error, IFB_ERROR_INVALID_ARGUMENT, wd->err, "Device %s: it is not behind the "
                                  "physical IOMMU that guest '%s''s vIOMMU belongs to", d->bdf, vm->name);
    if (wd->err == -ENOMEM || wd->err == -ENOSPC)
      return ifb_error_set_errno (error, IFB_ERROR_LIMIT_EXCEEDED, wd->err, "Device %s: no room for another vDEVICE "
                                  "in guest '%s''s context", d->bdf, vm->name);
    return ifb_error_set_errno (error, IFB_ERROR_KERNEL, wd->err, "Device %s: allocating its vDEVICE "
                                "(IOMMU_VDEVICE_ALLOC) failed", d->bdf);
  }
  return FALSE;
}

void
ifb_lifecycle_viommu_release (IfbVm *vm)
{
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
