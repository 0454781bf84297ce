/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The typed operations for what nests on a NEST_PARENT through a vIOMMU (uapi-viommu.h says what
 * each object is): the vIOMMU types the broker names, which IOMMU offers which, and the three
 * allocations, through the backend's table as uapi.c's are. Like uapi.c: no malloc, no GLib.
 */
#include <errno.h>
#include <string.h>

#include "backend.h"
#include "iommufd-defs.h"
#include "uapi-viommu.h"

static const struct {
  const char *name;
  uint32_t viommu;              /* IOMMU_VIOMMU_ALLOC's type */
  uint32_t veventq;             /* its vEVENTQ's type */
  IfbIommuType iommu;           /* the IOMMU whose driver may offer it */
} viommu_types[_IFB_VIOMMU_TYPE_MAX] = {
  [IFB_VIOMMU_TYPE_ARM_SMMUV3] = { "arm-smmuv3", IFB_IOMMU_VIOMMU_TYPE_ARM_SMMUV3,
                                   IFB_IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, IFB_IOMMU_TYPE_ARM_SMMUV3 },
  /* NVIDIA's command-queue extension of an SMMUv3; GET_HW_INFO reports the SMMU below it. */
  [IFB_VIOMMU_TYPE_TEGRA241_CMDQV] = { "tegra241-cmdqv", IFB_IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV,
                                       IFB_IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV, IFB_IOMMU_TYPE_INVALID },
  [IFB_VIOMMU_TYPE_SELFTEST] = { "selftest", IFB_IOMMU_VIOMMU_TYPE_SELFTEST,
                                 IFB_IOMMU_VEVENTQ_TYPE_SELFTEST, IFB_IOMMU_TYPE_SELFTEST },
};

const char *
ifb_viommu_type_to_string (IfbViommuType t)
{
  if (t < 0 || t >= _IFB_VIOMMU_TYPE_MAX)
    return NULL;
  return viommu_types[t].name;
}

IfbViommuType
ifb_viommu_type_from_string (const char *s)
{
  if (!s)
    return IFB_VIOMMU_TYPE_INVALID;
  for (int i = 0; i < _IFB_VIOMMU_TYPE_MAX; i++)
    if (strcmp (s, viommu_types[i].name) == 0)
      return (IfbViommuType) i;
  return IFB_VIOMMU_TYPE_INVALID;
}

IfbViommuType
ifb_viommu_type_for_iommu (IfbIommuType t)
{
  for (int i = 0; i < _IFB_VIOMMU_TYPE_MAX; i++)
    if (viommu_types[i].iommu == t && t != IFB_IOMMU_TYPE_INVALID)
      return (IfbViommuType) i;
  return IFB_VIOMMU_TYPE_INVALID;
}

int
ifb_uapi_viommu_alloc (const IfbUapiBackend *b, int iommufd, uint32_t dev_id, uint32_t hwpt_id,
                       IfbViommuType type, uint32_t *ret_viommu_id)
{
  struct ifb_iommu_viommu_alloc cmd = { .size = sizeof cmd, .dev_id = dev_id, .hwpt_id = hwpt_id };
  int r;

  if (type < 0 || type >= _IFB_VIOMMU_TYPE_MAX)
    return -EINVAL;
  cmd.type = viommu_types[type].viommu;
  r = b->ioctl (iommufd, IFB_IOMMU_VIOMMU_ALLOC, &cmd);
  if (r < 0)
    return r;
  *ret_viommu_id = cmd.out_viommu_id;
  return 0;
}

int
ifb_uapi_vdevice_alloc (const IfbUapiBackend *b, int iommufd, uint32_t viommu_id, uint32_t dev_id,
                        uint64_t virt_id, uint32_t *ret_vdevice_id)
{
  struct ifb_iommu_vdevice_alloc cmd = {
    .size = sizeof cmd, .viommu_id = viommu_id, .dev_id = dev_id, .virt_id = virt_id,
  };
  int r = b->ioctl (iommufd, IFB_IOMMU_VDEVICE_ALLOC, &cmd);

  if (r < 0)
    return r;
  *ret_vdevice_id = cmd.out_vdevice_id;
  return 0;
}

int
ifb_uapi_veventq_alloc (const IfbUapiBackend *b, int iommufd, uint32_t viommu_id, IfbViommuType type,
                        uint32_t depth, uint32_t *ret_veventq_id, int *ret_fd)
{
  struct ifb_iommu_veventq_alloc cmd = { .size = sizeof cmd, .viommu_id = viommu_id, .veventq_depth = depth };
  int r;

  if (type < 0 || type >= _IFB_VIOMMU_TYPE_MAX)
    return -EINVAL;
  cmd.type = viommu_types[type].veventq;
  r = b->ioctl (iommufd, IFB_IOMMU_VEVENTQ_ALLOC, &cmd);
  if (r < 0)
    return r;
  *ret_veventq_id = cmd.out_veventq_id;
  *ret_fd = (int) cmd.out_veventq_fd;
  return 0;
}
