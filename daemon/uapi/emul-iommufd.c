/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The emulator's IOMMUFD commands: the ioctls on an emulated /dev/iommu context fd, each
 * validated as the kernel's iommufd does and run on the context's object table.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "emul-context.h"
#include "emul-copy.h"
#include "emul-device.h"
#include "emul-iommufd.h"
#include "iommufd-defs.h"

/* ---- small async-signal-safe helpers ------------------------------------------------- */

static int
emul_has_cap_sys_resource (void)
{
  struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct data[2] = { 0 };

  if (syscall (SYS_capget, &hdr, data) < 0)
    return 0;
  return (data[CAP_SYS_RESOURCE / 32].effective >> (CAP_SYS_RESOURCE % 32)) & 1;
}

/* ---- IOMMUFD commands ---------------------------------------------------------------- */

static int
emul_destroy (EmulTable *t, struct ifb_iommu_destroy *cmd)
{
  EmulObject *o = emul_get (t, cmd->id, 0);

  if (!o)
    return -ENOENT;
  /* The VFIO binding holds a device object until its fd is closed. */
  if (o->type == IFB_UAPI_OBJ_DEVICE || emul_users (t, cmd->id) > 0)
    return -EBUSY;
  emul_free (t, o);
  return 0;
}

static int
emul_ioas_alloc (EmulTable *t, struct ifb_iommu_ioas_alloc *cmd)
{
  EmulObject *o;

  if (cmd->flags)
    return -EOPNOTSUPP;
  o = emul_alloc (t, 0, 0);
  if (!o)
    return -ENOMEM;
  cmd->out_ioas_id = emul_id (t, o);
  emul_publish (o, IFB_UAPI_OBJ_IOAS);
  return 0;
}

static bool
emul_overlaps (EmulTable *t, uint32_t ioas, uint64_t iova, uint64_t last, size_t *ret_idx)
{
  for (size_t i = 0; i < IFB_EMUL_MAX_MAPS; i++) {
    EmulMap *m = &t->maps[i];
    if (m->ioas_id == ioas && iova <= m->iova + m->length - 1 && m->iova <= last) {
      if (ret_idx)
        *ret_idx = i;
      return true;
    }
  }
  return false;
}

static int
emul_ioas_map (EmulTable *t, struct ifb_iommu_ioas_map *cmd)
{
  const uint32_t valid = IFB_IOMMU_IOAS_MAP_FIXED_IOVA | IFB_IOMMU_IOAS_MAP_WRITEABLE |
                         IFB_IOMMU_IOAS_MAP_READABLE;
  EmulMap *slot = NULL;
  uint64_t iova, last;
  size_t hit;

  if ((cmd->flags & ~valid) || cmd->__reserved)
    return -EOPNOTSUPP;
  if (cmd->iova >= UINT64_MAX || cmd->length >= UINT64_MAX)
    return -EOVERFLOW;
  if (!(cmd->flags & (IFB_IOMMU_IOAS_MAP_WRITEABLE | IFB_IOMMU_IOAS_MAP_READABLE)))
    return -EINVAL;
  if (!emul_get (t, cmd->ioas_id, IFB_UAPI_OBJ_IOAS))
    return -ENOENT;
  if (!cmd->length)
    return -EINVAL;
  if (!cmd->user_va)
    return -EFAULT;

  if (cmd->flags & IFB_IOMMU_IOAS_MAP_FIXED_IOVA) {
    iova = cmd->iova;
    if (__builtin_add_overflow (iova, cmd->length - 1, &last))
      return -EOVERFLOW;
    if (emul_overlaps (t, cmd->ioas_id, iova, last, NULL))
      return -EEXIST;
  } else {
    /* Keep the page offset of the user address, as iopt_alloc_iova() does. */
    iova = (UINT64_C (1) << 20) + (cmd->user_va & (IFB_EMUL_PAGE - 1));
    for (;;) {
      if (__builtin_add_overflow (iova, cmd->length - 1, &last))
        return -ENOSPC;
      if (!emul_overlaps (t, cmd->ioas_id, iova, last, &hit))
        break;
      iova = ((t->maps[hit].iova + t->maps[hit].length + IFB_EMUL_PAGE - 1) & ~(uint64_t) (IFB_EMUL_PAGE - 1)) +
             (cmd->user_va & (IFB_EMUL_PAGE - 1));
    }
  }
  for (size_t i = 0; i < IFB_EMUL_MAX_MAPS && !slot; i++)
    if (!t->maps[i].ioas_id)
      slot = &t->maps[i];
  if (!slot)
    return -ENOMEM;
  slot->flags = cmd->flags;
  slot->iova = iova;
  slot->length = cmd->length;
  __atomic_store_n (&slot->ioas_id, cmd->ioas_id, __ATOMIC_RELEASE);
  cmd->iova = iova;
  return 0;
}

static int
emul_ioas_unmap (EmulTable *t, struct ifb_iommu_ioas_unmap *cmd)
{
  uint64_t unmapped = 0, last;
  bool all = cmd->iova == 0 && cmd->length == UINT64_MAX;

  if (!emul_get (t, cmd->ioas_id, IFB_UAPI_OBJ_IOAS))
    return -ENOENT;
  if (!all) {
    if (cmd->iova >= UINT64_MAX || cmd->length >= UINT64_MAX)
      return -EOVERFLOW;
    if (!cmd->length)
      return -EINVAL;
    if (__builtin_add_overflow (cmd->iova, cmd->length - 1, &last))
      return -EOVERFLOW;
    /* Areas may not be split: any area crossing the range's edges is ENOENT. */
    for (size_t i = 0; i < IFB_EMUL_MAX_MAPS; i++) {
      EmulMap *m = &t->maps[i];
      if (m->ioas_id == cmd->ioas_id && cmd->iova <= m->iova + m->length - 1 && m->iova <= last &&
          (m->iova < cmd->iova || m->iova + m->length - 1 > last))
        return -ENOENT;
    }
  } else {
    last = UINT64_MAX;
  }
  for (size_t i = 0; i < IFB_EMUL_MAX_MAPS; i++) {
    EmulMap *m = &t->maps[i];
    if (m->ioas_id == cmd->ioas_id && m->iova >= cmd->iova && m->iova + m->length - 1 <= last) {
      unmapped += m->length;
      m->ioas_id = 0;
    }
  }
  if (!all && !unmapped)
    return -ENOENT;
  cmd->length = unmapped;
  return 0;
}

static int
emul_object_count (EmulTable *t)
{
  int n = 0;
  for (size_t i = 0; i < IFB_EMUL_MAX_OBJECTS; i++)
    n += t->objects[i].type != 0;
  return n;
}

static int
emul_option (EmulTable *t, struct ifb_iommu_option *cmd)
{
  EmulObject *ioas;

  if (cmd->__reserved)
    return -EOPNOTSUPP;
  switch (cmd->option_id) {
  case IFB_IOMMU_OPTION_RLIMIT_MODE:
    if (cmd->object_id)
      return -EOPNOTSUPP;
    if (cmd->op == IFB_IOMMU_OPTION_OP_GET) {
      cmd->val64 = t->rlimit_mode;
      return 0;
    }
    if (cmd->op != IFB_IOMMU_OPTION_OP_SET)
      return -EOPNOTSUPP;
    if (!emul_has_cap_sys_resource ())
      return -EPERM;
    if (emul_object_count (t) > 0)
      return -EBUSY;
    if (cmd->val64 > 1)
      return -EINVAL;
    t->rlimit_mode = (uint32_t) cmd->val64;
    return 0;
  case IFB_IOMMU_OPTION_HUGE_PAGES:
    ioas = emul_get (t, cmd->object_id, IFB_UAPI_OBJ_IOAS);
    if (!ioas)
      return -ENOENT;
    if (cmd->op == IFB_IOMMU_OPTION_OP_GET) {
      cmd->val64 = !(ioas->flags & 1);
      return 0;
    }
    if (cmd->op != IFB_IOMMU_OPTION_OP_SET)
      return -EOPNOTSUPP;
    if (cmd->val64 > 1)
      return -EINVAL;
    ioas->flags = cmd->val64 ? 0 : 1;
    return 0;
  default:
    return -EOPNOTSUPP;
  }
}

/*
 * Reads driver data the way the drivers' iommu_copy_struct_from_user() does (Linux 6.12 and
 * 7.2, include/linux/iommu.h, __iommu_copy_struct_from_user()): a data type other than the
 * driver's is EINVAL, as is a length below the struct's first version or above the struct
 * the driver knows (before any copy_struct_from_user() tail check); then the copy (EFAULT).
 * A driver that tests the type itself first (VT-d, the selftest mock: EOPNOTSUPP) does so
 * before calling this.
 */
static int
emul_copy_user_data (void *dst, size_t dsize, size_t min, uint32_t type, const struct ifb_iommu_hwpt_alloc *cmd)
{
  const void *src = (const void *) (uintptr_t) cmd->data_uptr;

  if (cmd->data_type != type)
    return -EINVAL;
  if (cmd->data_len < min || cmd->data_len > dsize)
    return -EINVAL;
  if (!src)
    return -EFAULT;
  memset (dst, 0, dsize);
  memcpy (dst, src, cmd->data_len);
  return 0;
}

/* The selftest mock's stage-1 data, the same whether its nested HWPT hangs off a NEST_PARENT
 * or a vIOMMU (selftest.c's __mock_domain_alloc_nested(): its own type test first). */
static int
selftest_nested_data (const struct ifb_iommu_hwpt_alloc *cmd)
{
  struct ifb_iommu_hwpt_selftest st;

  if (cmd->data_type != IFB_IOMMU_HWPT_DATA_SELFTEST)
    return -EOPNOTSUPP;
  return emul_copy_user_data (&st, sizeof st, sizeof st, IFB_IOMMU_HWPT_DATA_SELFTEST, cmd);
}

static int
emul_hwpt_alloc (EmulTable *t, struct ifb_iommu_hwpt_alloc *cmd)
{
  const uint32_t paging_flags = IFB_IOMMU_HWPT_ALLOC_NEST_PARENT | IFB_IOMMU_HWPT_ALLOC_DIRTY_TRACKING |
                                IFB_IOMMU_HWPT_FAULT_ID_VALID | IFB_IOMMU_HWPT_ALLOC_PASID;
  const uint32_t nested_flags = IFB_IOMMU_HWPT_FAULT_ID_VALID | IFB_IOMMU_HWPT_ALLOC_PASID;
  EmulObject *pt, *o;
  EmulDevice *dev;
  uint32_t type;
  int r;

  if (cmd->__reserved)
    return -EOPNOTSUPP;
  if ((cmd->data_type == IFB_IOMMU_HWPT_DATA_NONE && cmd->data_len) ||
      (cmd->data_type != IFB_IOMMU_HWPT_DATA_NONE && !cmd->data_len))
    return -EINVAL;
  if (!emul_get (t, cmd->dev_id, IFB_UAPI_OBJ_DEVICE) || !(dev = emul_device_of (t, cmd->dev_id)))
    return -ENOENT;
  pt = emul_get (t, cmd->pt_id, 0);
  if (!pt)
    return -EINVAL;

  if (pt->type == IFB_UAPI_OBJ_IOAS) {
    if (cmd->flags & ~paging_flags)
      return -EOPNOTSUPP;
    if ((cmd->flags & IFB_IOMMU_HWPT_ALLOC_DIRTY_TRACKING) && !emul_dev_dirty (dev))
      return -EOPNOTSUPP;
    if ((cmd->flags & IFB_IOMMU_HWPT_FAULT_ID_VALID) && (cmd->flags & IFB_IOMMU_HWPT_ALLOC_NEST_PARENT))
      return -EOPNOTSUPP;
    /* The drivers: no user data on a paging domain, NEST_PARENT only where the IOMMU nests. */
    if (cmd->data_len)
      return -EOPNOTSUPP;
    if ((cmd->flags & IFB_IOMMU_HWPT_ALLOC_NEST_PARENT) && !emul_dev_can_nest (dev))
      return -EOPNOTSUPP;
    type = IFB_UAPI_OBJ_HWPT_PAGING;
  } else if (pt->type == IFB_UAPI_OBJ_HWPT_PAGING) {
    /* Arm SMMUv3 nests only through a vIOMMU: its driver has no domain_alloc_nested. */
    if ((cmd->flags & ~nested_flags) || !cmd->data_len || dev->iommu_type == IFB_IOMMU_TYPE_ARM_SMMUV3)
      return -EOPNOTSUPP;
    if ((pt->aux & EMUL_HWPT_AUTO) || !(pt->flags & IFB_IOMMU_HWPT_ALLOC_NEST_PARENT) ||
        pt->iommu_type != dev->iommu_type)
      return -EINVAL;
    if (dev->iommu_type == IFB_IOMMU_TYPE_SELFTEST) {
      r = selftest_nested_data (cmd);
      if (r < 0)
        return r;
    } else if (cmd->data_type != IFB_IOMMU_HWPT_DATA_VTD_S1) {
      return -EOPNOTSUPP;
    } else {
      struct ifb_iommu_hwpt_vtd_s1 s1;
      r = emul_copy_user_data (&s1, sizeof s1, sizeof s1, IFB_IOMMU_HWPT_DATA_VTD_S1, cmd);
      if (r < 0)
        return r;
      if (s1.flags & ~(uint64_t) (IFB_IOMMU_VTD_S1_SRE | IFB_IOMMU_VTD_S1_EAFE | IFB_IOMMU_VTD_S1_WPE))
        return -EINVAL;
    }
    type = IFB_UAPI_OBJ_HWPT_NESTED;
  } else if (pt->type == IFB_UAPI_OBJ_VIOMMU) {
    if (pt->iommu_type != dev->iommu_type)
      return -EINVAL;
    if ((cmd->flags & ~nested_flags) || !cmd->data_len)
      return -EOPNOTSUPP;
    if (dev->iommu_type == IFB_IOMMU_TYPE_SELFTEST) {
      r = selftest_nested_data (cmd);
      if (r < 0)
        return r;
    } else {
      /* arm-smmu-v3-iommufd.c, arm_vsmmu_alloc_domain_nested() (7.2): any flag left once the
       * core took FAULT_ID_VALID off is EOPNOTSUPP; it has no type test of its own, so a
       * foreign data type is the copy's EINVAL. */
      struct ifb_iommu_hwpt_arm_smmuv3 ste;
      if (cmd->flags & ~IFB_IOMMU_HWPT_FAULT_ID_VALID)
        return -EOPNOTSUPP;
      r = emul_copy_user_data (&ste, sizeof ste, sizeof ste, IFB_IOMMU_HWPT_DATA_ARM_SMMUV3, cmd);
      if (r < 0)
        return r;
    }
    type = IFB_UAPI_OBJ_HWPT_NESTED;
  } else {
    return -EINVAL;
  }
  /* Fault queues are not modelled: no fault id can exist. */
  if (cmd->flags & IFB_IOMMU_HWPT_FAULT_ID_VALID)
    return -ENOENT;

  o = emul_alloc (t, cmd->dev_id, dev->iommu_type);
  if (!o)
    return -ENOMEM;
  o->flags = cmd->flags;
  o->parent_id = cmd->pt_id;
  cmd->out_hwpt_id = emul_id (t, o);
  emul_publish (o, type);
  return 0;
}

static int
emul_get_hw_info (EmulTable *t, struct ifb_iommu_hw_info *cmd)
{
  union {
    struct ifb_iommu_hw_info_vtd vtd;
    struct ifb_iommu_hw_info_arm_smmuv3 smmu;
    struct ifb_iommu_test_hw_info test;
  } data;
  uint32_t len, copy;
  EmulDevice *dev;
  uint8_t *uptr = (uint8_t *) (uintptr_t) cmd->data_uptr;

  /* 6.12 semantics: no flags at all (6.17's IOMMU_HW_INFO_FLAG_INPUT_TYPE is not modelled). */
  if (cmd->flags || cmd->__reserved[0] || cmd->__reserved[1] || cmd->__reserved[2])
    return -EOPNOTSUPP;
  if (!emul_get (t, cmd->dev_id, IFB_UAPI_OBJ_DEVICE) || !(dev = emul_device_of (t, cmd->dev_id)))
    return -ENOENT;
  memset (&data, 0, sizeof data);
  if (dev->iommu_type == IFB_IOMMU_TYPE_INTEL_VTD) {
    data.vtd.cap_reg = dev->cap_reg;
    data.vtd.ecap_reg = dev->ecap_reg;
    len = sizeof data.vtd;
    cmd->out_data_type = IFB_IOMMU_HW_INFO_TYPE_INTEL_VTD;
  } else if (dev->iommu_type == IFB_IOMMU_TYPE_SELFTEST) {
    data.test.test_reg = IFB_IOMMU_HW_INFO_SELFTEST_REGVAL;
    len = sizeof data.test;
    cmd->out_data_type = IFB_IOMMU_HW_INFO_TYPE_SELFTEST;
  } else {
    memcpy (data.smmu.idr, dev->idr, sizeof data.smmu.idr);
    data.smmu.iidr = dev->iidr;
    data.smmu.aidr = dev->aidr;
    len = sizeof data.smmu;
    cmd->out_data_type = IFB_IOMMU_HW_INFO_TYPE_ARM_SMMUV3;
  }
  copy = cmd->data_len < len ? cmd->data_len : len;
  if (cmd->data_len && !uptr)
    return -EFAULT;
  if (copy)
    memcpy (uptr, &data, copy);
  if (cmd->data_len > copy)
    memset (uptr + copy, 0, cmd->data_len - copy);
  cmd->data_len = len;
  cmd->out_max_pasid_log2 = 0;
  cmd->out_capabilities = emul_dev_dirty (dev) ? IFB_IOMMU_HW_CAP_DIRTY_TRACKING : 0;
  return 0;
}

/* IOMMU_VIOMMU_ALLOC, in the kernel's order of checks: the command, the device, whether its
 * driver offers this type (emul_dev_viommu_type()), then the HWPT, which must be a NEST_PARENT.
 * A selftest-typed vIOMMU's data is optional and only echoed by the mock: not modelled. */
static int
emul_viommu_alloc (EmulTable *t, struct ifb_iommu_viommu_alloc *cmd)
{
  EmulObject *hwpt, *o;
  EmulDevice *dev;

  if (cmd->flags || cmd->type == IFB_IOMMU_VIOMMU_TYPE_DEFAULT)
    return -EOPNOTSUPP;
  if (!emul_get (t, cmd->dev_id, IFB_UAPI_OBJ_DEVICE) || !(dev = emul_device_of (t, cmd->dev_id)))
    return -ENOENT;
  if (!emul_dev_viommu_type (dev, cmd->type))
    return -EOPNOTSUPP;
  hwpt = emul_get (t, cmd->hwpt_id, IFB_UAPI_OBJ_HWPT_PAGING);
  if (!hwpt)
    return -ENOENT;
  if (!(hwpt->flags & IFB_IOMMU_HWPT_ALLOC_NEST_PARENT))
    return -EINVAL;
  o = emul_alloc (t, cmd->dev_id, dev->iommu_type);
  if (!o)
    return -ENOMEM;
  o->parent_id = cmd->hwpt_id;
  o->aux = cmd->type;
  cmd->out_viommu_id = emul_id (t, o);
  emul_publish (o, IFB_UAPI_OBJ_VIOMMU);
  return 0;
}

static uint64_t
emul_virt_id (const EmulObject *vdev)
{
  return (uint64_t) vdev->flags << 32 | vdev->aux;
}

/* IOMMU_VDEVICE_ALLOC: the vIOMMU, the device (behind the same IOMMU as the vIOMMU's), at most
 * one vDEVICE per device (in any vIOMMU), and a virtual id once per vIOMMU (its xarray). A
 * 64-bit kernel takes any virt_id (it indexes an xarray by unsigned long). */
static int
emul_vdevice_alloc (EmulTable *t, struct ifb_iommu_vdevice_alloc *cmd)
{
  EmulObject *viommu, *dev, *o;

  viommu = emul_get (t, cmd->viommu_id, IFB_UAPI_OBJ_VIOMMU);
  if (!viommu)
    return -ENOENT;
  dev = emul_get (t, cmd->dev_id, IFB_UAPI_OBJ_DEVICE);
  if (!dev || !emul_device_of (t, cmd->dev_id))
    return -ENOENT;
  if (viommu->iommu_type != emul_device_of (t, cmd->dev_id)->iommu_type)
    return -EINVAL;
  for (size_t i = 0; i < IFB_EMUL_MAX_OBJECTS; i++) {
    const EmulObject *v = &t->objects[i];
    if (v->type != IFB_UAPI_OBJ_VDEVICE)
      continue;
    if (v->dev_id == cmd->dev_id)
      return -EEXIST;
    if (v->parent_id == cmd->viommu_id && emul_virt_id (v) == cmd->virt_id)
      return -EEXIST;
  }
  o = emul_alloc (t, cmd->dev_id, viommu->iommu_type);
  if (!o)
    return -ENOMEM;
  o->parent_id = cmd->viommu_id;
  o->aux = (uint32_t) cmd->virt_id;
  o->flags = (uint32_t) (cmd->virt_id >> 32);
  cmd->out_vdevice_id = emul_id (t, o);
  emul_publish (o, IFB_UAPI_OBJ_VDEVICE);
  return 0;
}

/*
 * IOMMU_VEVENTQ_ALLOC: one vEVENTQ per type per vIOMMU. The kernel's vEVENTQ is an anonymous
 * file; its read() hands out, for each queued event, a struct iommufd_vevent_header then the
 * event's record, and returns 0 when the queue is empty (it never blocks). The emulated IOMMU
 * raises no events, so its queue is always empty, and a pipe whose write end is closed reads
 * exactly so: read() returns 0, pread() fails with ESPIPE (the kernel's file is not seekable).
 * Two differences, documented rather than modelled: poll() reports POLLHUP where the kernel
 * reports nothing, and the emulator cannot see the fd's last close, so destroying a vEVENTQ
 * whose fd is still open succeeds (the kernel's open file holds a user: EBUSY). The fd is made
 * after the object, as the kernel's is, and only a published object gets one.
 */
static int
emul_veventq_alloc (EmulTable *t, struct ifb_iommu_veventq_alloc *cmd)
{
  EmulObject *viommu, *o;
  int p[2];

  if (cmd->flags || cmd->__reserved || cmd->type == IFB_IOMMU_VEVENTQ_TYPE_DEFAULT)
    return -EOPNOTSUPP;
  if (!cmd->veventq_depth)
    return -EINVAL;
  viommu = emul_get (t, cmd->viommu_id, IFB_UAPI_OBJ_VIOMMU);
  if (!viommu)
    return -ENOENT;
  for (size_t i = 0; i < IFB_EMUL_MAX_OBJECTS; i++)
    if (t->objects[i].type == IFB_UAPI_OBJ_VEVENTQ && t->objects[i].parent_id == cmd->viommu_id &&
        t->objects[i].aux == cmd->type)
      return -EEXIST;
  o = emul_alloc (t, viommu->dev_id, viommu->iommu_type);
  if (!o)
    return -ENOMEM;
  if (pipe2 (p, O_CLOEXEC) < 0)
    return -errno;
  close (p[1]);
  o->parent_id = cmd->viommu_id;
  o->aux = cmd->type;
  o->flags = cmd->veventq_depth;
  cmd->out_veventq_id = emul_id (t, o);
  cmd->out_veventq_fd = (uint32_t) p[0];
  emul_publish (o, IFB_UAPI_OBJ_VEVENTQ);
  return 0;
}

#define EMUL_CMD(fn, type, min)                                                   \
  do {                                                                            \
    type cmd;                                                                     \
    uint32_t usize;                                                               \
    r = emul_copy_in (&cmd, sizeof cmd, (min), arg, &usize);                      \
    if (r < 0)                                                                    \
      break;                                                                      \
    r = emul_lock (fd, &t);                                                       \
    if (r < 0)                                                                    \
      break;                                                                      \
    emul_reap (t);                                                                \
    r = fn (t, &cmd);                                                             \
    emul_unlock (t);                                                              \
    if (r == 0)                                                                   \
      emul_copy_out (arg, &cmd, sizeof cmd, usize);                               \
  } while (0)

int
emul_iommufd_ioctl (int fd, unsigned long request, void *arg)
{
  EmulTable *t;
  int r;

  switch (request) {
  case IFB_IOMMU_DESTROY:
    EMUL_CMD (emul_destroy, struct ifb_iommu_destroy, IFB_IOMMU_DESTROY_MIN_SIZE);
    return r;
  case IFB_IOMMU_IOAS_ALLOC:
    EMUL_CMD (emul_ioas_alloc, struct ifb_iommu_ioas_alloc, IFB_IOMMU_IOAS_ALLOC_MIN_SIZE);
    return r;
  case IFB_IOMMU_IOAS_MAP:
    EMUL_CMD (emul_ioas_map, struct ifb_iommu_ioas_map, IFB_IOMMU_IOAS_MAP_MIN_SIZE);
    return r;
  case IFB_IOMMU_IOAS_UNMAP:
    EMUL_CMD (emul_ioas_unmap, struct ifb_iommu_ioas_unmap, IFB_IOMMU_IOAS_UNMAP_MIN_SIZE);
    return r;
  case IFB_IOMMU_OPTION: {
    /* Only val64 is written back, as iommufd_option() does. */
    struct ifb_iommu_option cmd;
    uint32_t usize;
    r = emul_copy_in (&cmd, sizeof cmd, IFB_IOMMU_OPTION_MIN_SIZE, arg, &usize);
    if (r < 0)
      return r;
    r = emul_lock (fd, &t);
    if (r < 0)
      return r;
    emul_reap (t);
    r = emul_option (t, &cmd);
    emul_unlock (t);
    if (r == 0)
      memcpy ((uint8_t *) arg + offsetof (struct ifb_iommu_option, val64), &cmd.val64, sizeof cmd.val64);
    return r;
  }
  case IFB_IOMMU_HWPT_ALLOC:
    EMUL_CMD (emul_hwpt_alloc, struct ifb_iommu_hwpt_alloc, IFB_IOMMU_HWPT_ALLOC_MIN_SIZE);
    return r;
  case IFB_IOMMU_GET_HW_INFO:
    EMUL_CMD (emul_get_hw_info, struct ifb_iommu_hw_info, IFB_IOMMU_GET_HW_INFO_MIN_SIZE);
    return r;
  case IFB_IOMMU_VIOMMU_ALLOC:
    EMUL_CMD (emul_viommu_alloc, struct ifb_iommu_viommu_alloc, IFB_IOMMU_VIOMMU_ALLOC_MIN_SIZE);
    return r;
  case IFB_IOMMU_VDEVICE_ALLOC:
    EMUL_CMD (emul_vdevice_alloc, struct ifb_iommu_vdevice_alloc, IFB_IOMMU_VDEVICE_ALLOC_MIN_SIZE);
    return r;
  case IFB_IOMMU_VEVENTQ_ALLOC:
    EMUL_CMD (emul_veventq_alloc, struct ifb_iommu_veventq_alloc, IFB_IOMMU_VEVENTQ_ALLOC_MIN_SIZE);
    return r;
  default:
    return -ENOTTY;
  }
}
