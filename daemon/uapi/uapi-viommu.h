/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What nests on a NEST_PARENT HWPT through a vIOMMU (Linux 6.13+): the vIOMMU (IOMMU_VIOMMU_ALLOC)
 * on that HWPT, a vDEVICE per device with the id the guest knows it by (IOMMU_VDEVICE_ALLOC:
 * on Arm SMMUv3 the virtual StreamID), and vEVENTQs (IOMMU_VEVENTQ_ALLOC, 6.14) whose fd reads
 * the events the IOMMU reports for the guest. Destroyed in the reverse order: the kernel refuses
 * (EBUSY) a HWPT a vIOMMU uses and a vIOMMU with vDEVICEs, vEVENTQs or nested HWPTs on it.
 * Same contract as uapi.h.
 */
#pragma once

#include <stdint.h>

#include "uapi-types.h"

const char *ifb_viommu_type_to_string (IfbViommuType t);   /* "arm-smmuv3", "tegra241-cmdqv", "selftest" */
IfbViommuType ifb_viommu_type_from_string (const char *s);
/* The vIOMMU type an IOMMU of this kind can offer (whether this one does, only the allocation
 * tells: Arm SMMUv3 also needs a coherent root complex or S2FWB); INVALID when none at all
 * (Intel VT-d has no vIOMMU object). */
IfbViommuType ifb_viommu_type_for_iommu (IfbIommuType t);

int ifb_uapi_viommu_alloc (const IfbUapiBackend *b, int iommufd, uint32_t dev_id, uint32_t hwpt_id,
                           IfbViommuType type, uint32_t *ret_viommu_id);
int ifb_uapi_vdevice_alloc (const IfbUapiBackend *b, int iommufd, uint32_t viommu_id, uint32_t dev_id,
                            uint64_t virt_id, uint32_t *ret_vdevice_id);
/* A vEVENTQ of the vIOMMU type's own event type, holding up to depth events; *ret_fd is
 * close-on-exec and reads as the kernel's vEVENTQ file does. */
int ifb_uapi_veventq_alloc (const IfbUapiBackend *b, int iommufd, uint32_t viommu_id, IfbViommuType type,
                            uint32_t depth, uint32_t *ret_veventq_id, int *ret_fd);
