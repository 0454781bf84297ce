/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What an IOMMU is: the type names, and the reading of its raw registers (can it be a nesting
 * parent? track dirty pages?) as the kernel's drivers read them. The typed layer (uapi.c) and
 * the emulator (emul-device.c) both rely on this one interpretation.
 */
#include <string.h>

#include "hw-info.h"
#include "iommufd-defs.h"

static const char *const iommu_type_names[_IFB_IOMMU_TYPE_MAX] = {
  [IFB_IOMMU_TYPE_NONE] = "none",
  [IFB_IOMMU_TYPE_INTEL_VTD] = "intel-vtd",
  [IFB_IOMMU_TYPE_ARM_SMMUV3] = "arm-smmuv3",
  [IFB_IOMMU_TYPE_SELFTEST] = "selftest",
};

const char *
ifb_iommu_type_to_string (IfbIommuType t)
{
  if (t < 0 || t >= _IFB_IOMMU_TYPE_MAX)
    return NULL;
  return iommu_type_names[t];
}

IfbIommuType
ifb_iommu_type_from_string (const char *s)
{
  if (!s)
    return IFB_IOMMU_TYPE_INVALID;
  for (int i = 0; i < _IFB_IOMMU_TYPE_MAX; i++)
    if (strcmp (s, iommu_type_names[i]) == 0)
      return (IfbIommuType) i;
  return IFB_IOMMU_TYPE_INVALID;
}

/* intel-iommu's nested_supported(): scalable mode and ECAP.NEST. */
bool
ifb_uapi_vtd_can_nest (uint64_t ecap)
{
  return (ecap & IFB_VTD_ECAP_NEST) && (ecap & IFB_VTD_ECAP_SMTS);
}

/* intel-iommu's ssads_supported(): scalable mode, second-stage A/D bits, page-walk coherency. */
bool
ifb_uapi_vtd_dirty (uint64_t ecap)
{
  return (ecap & IFB_VTD_ECAP_SMTS) && (ecap & IFB_VTD_ECAP_SLADS) && (ecap & IFB_VTD_ECAP_SMPWC);
}

/* arm-smmu-v3's ARM_SMMU_FEAT_NESTING: both stages implemented. */
bool
ifb_uapi_smmuv3_can_nest (const uint32_t idr[6])
{
  return (idr[0] & IFB_SMMU_IDR0_S1P) && (idr[0] & IFB_SMMU_IDR0_S2P);
}

/* arm-smmu-v3's ARM_SMMU_FEAT_HD: hardware access and dirty flag updates. */
bool
ifb_uapi_smmuv3_dirty (const uint32_t idr[6])
{
  return ((idr[0] & IFB_SMMU_IDR0_HTTU_MASK) >> IFB_SMMU_IDR0_HTTU_SHIFT) == IFB_SMMU_IDR0_HTTU_AD;
}
