/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What an IOMMU is: type names, and what its raw registers say. Async-signal-safe, no GLib.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "uapi-types.h"

const char *ifb_iommu_type_to_string (IfbIommuType t);   /* "intel-vtd", "arm-smmuv3", ... */
IfbIommuType ifb_iommu_type_from_string (const char *s);

/* Intel VT-d: intel-iommu's nested_supported() and ssads_supported() on the ECAP register. */
bool ifb_uapi_vtd_can_nest (uint64_t ecap);
bool ifb_uapi_vtd_dirty (uint64_t ecap);
/* Arm SMMUv3: both stages (ARM_SMMU_FEAT_NESTING); hardware access/dirty updates (FEAT_HD). */
bool ifb_uapi_smmuv3_can_nest (const uint32_t idr[6]);
bool ifb_uapi_smmuv3_dirty (const uint32_t idr[6]);
