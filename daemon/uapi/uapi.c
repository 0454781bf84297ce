/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The backend-independent top of the uAPI layer: choosing a backend, and typed operations that
 * fill the kernel's structs and go through one backend's ioctl entry. No ioctl number or struct
 * layout is defined here (iommufd-defs.h is); the register reading is hw-info.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "iommufd-defs.h"
#include "uapi.h"

/* ---- backends ------------------------------------------------------------------------ */

const IfbUapiBackend *
ifb_uapi_backend_for_fd (int fd)
{
  return ifb_emul_fd_kind (fd) ? ifb_uapi_backend_emulated () : ifb_uapi_backend_kernel ();
}

const IfbUapiBackend *
ifb_uapi_backend_by_name (const char *name)
{
  if (strcmp (name, ifb_uapi_backend_emulated ()->name) == 0)
    return ifb_uapi_backend_emulated ();
  if (strcmp (name, ifb_uapi_backend_kernel ()->name) == 0)
    return ifb_uapi_backend_kernel ();
  return NULL;
}

int
ifb_uapi_list_objects (const IfbUapiBackend *b, int iommufd, IfbUapiObject *objs, size_t max, size_t *ret_n)
{
  return b->list_objects ? b->list_objects (iommufd, objs, max, ret_n) : -EOPNOTSUPP;
}

void
ifb_uapi_batch_begin (const IfbUapiBackend *b)
{
  if (b->batch_begin)
    b->batch_begin ();
}

void
ifb_uapi_batch_end (const IfbUapiBackend *b)
{
  if (b->batch_end)
    b->batch_end ();
}

void
ifb_uapi_set_device_reset_ms (const IfbUapiBackend *b, unsigned ms)
{
  if (b->set_device_reset_ms)
    b->set_device_reset_ms (ms);
}

const char *
ifb_uapi_backend_name (const IfbUapiBackend *b)
{
  return b->name;
}

bool
ifb_uapi_backend_is_emulated (const IfbUapiBackend *b)
{
  return b->emulated;
}

int
ifb_uapi_open_iommufd (const IfbUapiBackend *b, int dev_dirfd, int *ret_fd)
{
  return b->open_iommufd (dev_dirfd, ret_fd);
}

int
ifb_uapi_open_device (const IfbUapiBackend *b, int dev_dirfd, const char *cdev_name, int *ret_fd)
{
  return b->open_device (dev_dirfd, cdev_name, ret_fd);
}

int
ifb_uapi_sysfs_write (const IfbUapiBackend *b, int sys_dirfd, const char *attr, const char *value)
{
  size_t len = strlen (value);
  ssize_t n;
  int fd, r = 0;

  if (b->sysfs_write)
    return b->sysfs_write (sys_dirfd, attr, value);
  fd = openat (sys_dirfd, attr, O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  /* One write: sysfs takes an attribute's value from a single write(2). */
  n = write (fd, value, len);
  if (n < 0)
    r = -errno;
  else if ((size_t) n != len)
    r = -EIO;
  close (fd);
  return r;
}

void
ifb_uapi_device_close (const IfbUapiBackend *b, int device_fd)
{
  if (b->device_close)
    b->device_close (device_fd);
  else
    close (device_fd);
}

int
ifb_uapi_device_rdev (const IfbUapiBackend *b, int device_fd, uint64_t *ret_rdev)
{
  return b->device_rdev (device_fd, ret_rdev);
}

int
ifb_uapi_ioctl (const IfbUapiBackend *b, int fd, unsigned long request, void *arg)
{
  return b->ioctl (fd, request, arg);
}

/* ---- typed operations ---------------------------------------------------------------- */

int
ifb_uapi_ioas_alloc (const IfbUapiBackend *b, int iommufd, uint32_t *ret_ioas_id)
{
  struct ifb_iommu_ioas_alloc cmd = { .size = sizeof cmd };
  int r = ifb_uapi_ioctl (b, iommufd, IFB_IOMMU_IOAS_ALLOC, &cmd);

  if (r < 0)
    return r;
  *ret_ioas_id = cmd.out_ioas_id;
  return 0;
}

int
ifb_uapi_destroy (const IfbUapiBackend *b, int iommufd, uint32_t id)
{
  struct ifb_iommu_destroy cmd = { .size = sizeof cmd, .id = id };

  return ifb_uapi_ioctl (b, iommufd, IFB_IOMMU_DESTROY, &cmd);
}

int
ifb_uapi_set_rlimit_mode (const IfbUapiBackend *b, int iommufd, bool per_process)
{
  struct ifb_iommu_option cmd = {
    .size = sizeof cmd,
    .option_id = IFB_IOMMU_OPTION_RLIMIT_MODE,
    .op = IFB_IOMMU_OPTION_OP_SET,
    .val64 = per_process,
  };

  return ifb_uapi_ioctl (b, iommufd, IFB_IOMMU_OPTION, &cmd);
}

int
ifb_uapi_get_rlimit_mode (const IfbUapiBackend *b, int iommufd, bool *ret_per_process)
{
  struct ifb_iommu_option cmd = {
    .size = sizeof cmd,
    .option_id = IFB_IOMMU_OPTION_RLIMIT_MODE,
    .op = IFB_IOMMU_OPTION_OP_GET,
  };
  int r = ifb_uapi_ioctl (b, iommufd, IFB_IOMMU_OPTION, &cmd);

  if (r < 0)
    return r;
  *ret_per_process = cmd.val64 != 0;
  return 0;
}

int
ifb_uapi_device_bind (const IfbUapiBackend *b, int device_fd, int iommufd, uint32_t *ret_dev_id)
{
  struct ifb_vfio_device_bind_iommufd cmd = { .argsz = sizeof cmd, .iommufd = iommufd };
  int r = ifb_uapi_ioctl (b, device_fd, IFB_VFIO_DEVICE_BIND_IOMMUFD, &cmd);

  if (r < 0)
    return r;
  *ret_dev_id = cmd.out_devid;
  return 0;
}

int
ifb_uapi_device_attach (const IfbUapiBackend *b, int device_fd, uint32_t pt_id)
{
  /* argsz covers the v1 struct only: the pasid word is not ours to send. */
  struct ifb_vfio_device_attach_iommufd_pt cmd = { .argsz = IFB_VFIO_DEVICE_ATTACH_MIN_SIZE, .pt_id = pt_id };

  return ifb_uapi_ioctl (b, device_fd, IFB_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &cmd);
}

int
ifb_uapi_device_detach (const IfbUapiBackend *b, int device_fd)
{
  struct ifb_vfio_device_detach_iommufd_pt cmd = { .argsz = IFB_VFIO_DEVICE_DETACH_MIN_SIZE };

  return ifb_uapi_ioctl (b, device_fd, IFB_VFIO_DEVICE_DETACH_IOMMUFD_PT, &cmd);
}

int
ifb_uapi_get_hw_info (const IfbUapiBackend *b, int iommufd, uint32_t dev_id, IfbHwInfo *ret_info)
{
  union {
    struct ifb_iommu_hw_info_vtd vtd;
    struct ifb_iommu_hw_info_arm_smmuv3 smmu;
    struct ifb_iommu_test_hw_info test;
    uint8_t raw[64];
  } data;
  struct ifb_iommu_hw_info cmd = {
    .size = sizeof cmd,
    .dev_id = dev_id,
    .data_len = sizeof data,
    .data_uptr = (uintptr_t) &data,
  };
  IfbHwInfo info = { 0 };
  int r;

  memset (&data, 0, sizeof data);
  r = ifb_uapi_ioctl (b, iommufd, IFB_IOMMU_GET_HW_INFO, &cmd);
  if (r < 0)
    return r;
  info.capabilities = cmd.out_capabilities;
  info.dirty_tracking = (cmd.out_capabilities & IFB_IOMMU_HW_CAP_DIRTY_TRACKING) != 0;
  switch (cmd.out_data_type) {
  case IFB_IOMMU_HW_INFO_TYPE_INTEL_VTD:
    info.type = IFB_IOMMU_TYPE_INTEL_VTD;
    info.raw.vtd.cap_reg = data.vtd.cap_reg;
    info.raw.vtd.ecap_reg = data.vtd.ecap_reg;
    info.can_nest = ifb_uapi_vtd_can_nest (data.vtd.ecap_reg);
    break;
  case IFB_IOMMU_HW_INFO_TYPE_ARM_SMMUV3:
    info.type = IFB_IOMMU_TYPE_ARM_SMMUV3;
    memcpy (info.raw.smmuv3.idr, data.smmu.idr, sizeof info.raw.smmuv3.idr);
    info.raw.smmuv3.iidr = data.smmu.iidr;
    info.raw.smmuv3.aidr = data.smmu.aidr;
    info.can_nest = ifb_uapi_smmuv3_can_nest (data.smmu.idr);
    break;
  case IFB_IOMMU_HW_INFO_TYPE_SELFTEST:
    /* The mock driver implements NEST_PARENT and nested domains. */
    info.type = IFB_IOMMU_TYPE_SELFTEST;
    info.can_nest = true;
    break;
  default:
    info.type = IFB_IOMMU_TYPE_NONE;
    break;
  }
  *ret_info = info;
  return 0;
}

int
ifb_uapi_hwpt_alloc (const IfbUapiBackend *b, int iommufd, uint32_t dev_id, uint32_t pt_id, uint32_t flags,
                     uint32_t *ret_hwpt_id)
{
  struct ifb_iommu_hwpt_alloc cmd = { .size = sizeof cmd, .dev_id = dev_id, .pt_id = pt_id };
  int r;

  if (flags & ~(uint32_t) (IFB_HWPT_NEST_PARENT | IFB_HWPT_DIRTY_TRACKING))
    return -EINVAL;
  if (flags & IFB_HWPT_NEST_PARENT)
    cmd.flags |= IFB_IOMMU_HWPT_ALLOC_NEST_PARENT;
  if (flags & IFB_HWPT_DIRTY_TRACKING)
    cmd.flags |= IFB_IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
  r = ifb_uapi_ioctl (b, iommufd, IFB_IOMMU_HWPT_ALLOC, &cmd);
  if (r < 0)
    return r;
  *ret_hwpt_id = cmd.out_hwpt_id;
  return 0;
}

/*
 * The stage-1 data is a placeholder a VMM would replace with the guest's table: an empty VT-d
 * stage-1 (4-level, 48 bits), an SMMUv3 STE in abort configuration (pt_id must then be a
 * vIOMMU), or the selftest's default IOTLB tag.
 */
int
ifb_uapi_hwpt_alloc_nested (const IfbUapiBackend *b, int iommufd, uint32_t dev_id, uint32_t parent_id,
                            uint32_t *ret_hwpt_id)
{
  union {
    struct ifb_iommu_hwpt_vtd_s1 vtd;
    struct ifb_iommu_hwpt_arm_smmuv3 smmu;
    struct ifb_iommu_hwpt_selftest test;
  } data;
  struct ifb_iommu_hwpt_alloc cmd = {
    .size = sizeof cmd,
    .dev_id = dev_id,
    .pt_id = parent_id,
    .data_uptr = (uintptr_t) &data,
  };
  IfbHwInfo info;
  int r;

  r = ifb_uapi_get_hw_info (b, iommufd, dev_id, &info);
  if (r < 0)
    return r;
  memset (&data, 0, sizeof data);
  switch (info.type) {
  case IFB_IOMMU_TYPE_INTEL_VTD:
    data.vtd.addr_width = 48;
    cmd.data_type = IFB_IOMMU_HWPT_DATA_VTD_S1;
    cmd.data_len = sizeof data.vtd;
    break;
  case IFB_IOMMU_TYPE_ARM_SMMUV3:
    data.smmu.ste[0] = 1;       /* V=1, Config=abort */
    cmd.data_type = IFB_IOMMU_HWPT_DATA_ARM_SMMUV3;
    cmd.data_len = sizeof data.smmu;
    break;
  case IFB_IOMMU_TYPE_SELFTEST:
    data.test.iotlb = IFB_IOMMU_TEST_IOTLB_DEFAULT;
    cmd.data_type = IFB_IOMMU_HWPT_DATA_SELFTEST;
    cmd.data_len = sizeof data.test;
    break;
  default:
    return -EOPNOTSUPP;
  }
  r = ifb_uapi_ioctl (b, iommufd, IFB_IOMMU_HWPT_ALLOC, &cmd);
  if (r < 0)
    return r;
  *ret_hwpt_id = cmd.out_hwpt_id;
  return 0;
}

int
ifb_uapi_ioas_map (const IfbUapiBackend *b, int iommufd, uint32_t ioas_id, void *va, uint64_t length,
                   uint64_t *iova_inout, bool fixed_iova)
{
  struct ifb_iommu_ioas_map cmd = {
    .size = sizeof cmd,
    .flags = IFB_IOMMU_IOAS_MAP_READABLE | IFB_IOMMU_IOAS_MAP_WRITEABLE |
             (fixed_iova ? IFB_IOMMU_IOAS_MAP_FIXED_IOVA : 0),
    .ioas_id = ioas_id,
    .user_va = (uintptr_t) va,
    .length = length,
    .iova = fixed_iova ? *iova_inout : 0,
  };
  int r = ifb_uapi_ioctl (b, iommufd, IFB_IOMMU_IOAS_MAP, &cmd);

  if (r < 0)
    return r;
  *iova_inout = cmd.iova;
  return 0;
}

int
ifb_uapi_ioas_unmap (const IfbUapiBackend *b, int iommufd, uint32_t ioas_id, uint64_t iova, uint64_t length)
{
  struct ifb_iommu_ioas_unmap cmd = { .size = sizeof cmd, .ioas_id = ioas_id, .iova = iova, .length = length };

  return ifb_uapi_ioctl (b, iommufd, IFB_IOMMU_IOAS_UNMAP, &cmd);
}

int
ifb_uapi_mock_domain (const IfbUapiBackend *b, int iommufd, uint32_t ioas_id, uint32_t *ret_stdev_id,
                               uint32_t *ret_hwpt_id, uint32_t *ret_dev_id)
{
  struct ifb_iommu_test_cmd cmd = { .size = sizeof cmd, .op = IFB_IOMMU_TEST_OP_MOCK_DOMAIN, .id = ioas_id };
  int r = ifb_uapi_ioctl (b, iommufd, IFB_IOMMU_TEST_CMD, &cmd);

  if (r < 0)
    return r;
  if (ret_stdev_id)
    *ret_stdev_id = cmd.mock_domain.out_stdev_id;
  if (ret_hwpt_id)
    *ret_hwpt_id = cmd.mock_domain.out_hwpt_id;
  if (ret_dev_id)
    *ret_dev_id = cmd.mock_domain.out_idev_id;
  return 0;
}

int
ifb_uapi_mock_domain_replace (const IfbUapiBackend *b, int iommufd, uint32_t stdev_id, uint32_t pt_id)
{
  struct ifb_iommu_test_cmd cmd = {
    .size = sizeof cmd,
    .op = IFB_IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
    .id = stdev_id,
    .mock_domain_replace.pt_id = pt_id,
  };

  return ifb_uapi_ioctl (b, iommufd, IFB_IOMMU_TEST_CMD, &cmd);
}

int
ifb_uapi_selftest_probe (const IfbUapiBackend *b, int dev_dirfd)
{
  /* IOAS id 0 never exists: MOCK_DOMAIN then fails before creating anything. */
  struct ifb_iommu_test_cmd cmd = { .size = sizeof cmd, .op = IFB_IOMMU_TEST_OP_MOCK_DOMAIN, .id = 0 };
  int fd, r;

  if (b->emulated)
    return 0;
  r = ifb_uapi_open_iommufd (b, dev_dirfd, &fd);
  if (r < 0)
    return r;
  r = ifb_uapi_ioctl (b, fd, IFB_IOMMU_TEST_CMD, &cmd);
  close (fd);
  return r == -ENOTTY ? 0 : 1;
}
