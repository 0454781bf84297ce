/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The uAPI layer's value types: what an IOMMU is and what its registers say (IfbHwInfo), HWPT
 * flags, and a context's objects as a backend that can list them reports them. No functions:
 * every file of the layer, both backends included, may include this.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct IfbUapiBackend IfbUapiBackend;

typedef enum {
  IFB_IOMMU_TYPE_NONE,
  IFB_IOMMU_TYPE_INTEL_VTD,
  IFB_IOMMU_TYPE_ARM_SMMUV3,
  IFB_IOMMU_TYPE_SELFTEST,      /* the kernel's IOMMUFD_TEST mock, kernel tier only */
  _IFB_IOMMU_TYPE_MAX,
  IFB_IOMMU_TYPE_INVALID = -1,
} IfbIommuType;

typedef enum {
  IFB_HWPT_NEST_PARENT    = 1 << 0,
  IFB_HWPT_DIRTY_TRACKING = 1 << 1,
} IfbHwptFlags;

typedef struct {
  IfbIommuType type;
  bool can_nest;                /* the IOMMU can be a NEST_PARENT (derived from the raw data) */
  bool dirty_tracking;          /* IOMMU_HW_CAP_DIRTY_TRACKING */
  uint64_t capabilities;        /* raw out_capabilities */
  union {
    struct { uint64_t cap_reg, ecap_reg; } vtd;
    struct { uint32_t idr[6], iidr, aidr; } smmuv3;
  } raw;
} IfbHwInfo;

/* A context's objects, where the backend can list them (the emulated one: for the audit trail,
 * tidying after a crash, and tests). */
typedef enum {
  IFB_UAPI_OBJ_IOAS = 1,
  IFB_UAPI_OBJ_DEVICE,
  IFB_UAPI_OBJ_HWPT_PAGING,
  IFB_UAPI_OBJ_HWPT_NESTED,
  IFB_UAPI_OBJ_VIOMMU,
  IFB_UAPI_OBJ_VDEVICE,
  IFB_UAPI_OBJ_VEVENTQ,
} IfbUapiObjType;

typedef struct {
  uint32_t id;
  IfbUapiObjType type;
  uint32_t flags;               /* HWPT alloc flags as given */
  uint32_t parent_id;           /* IOAS, parent HWPT or vIOMMU, a vIOMMU's HWPT, a vDEVICE's or
                                 * vEVENTQ's vIOMMU; 0 when none */
  uint32_t dev_id;              /* the device it was allocated for (a vDEVICE's device); 0 when none */
  uint64_t virt_id;             /* vDEVICE: its virtual id */
  int32_t creator_pid;
  char cgroup[256];             /* cgroup2 path of the allocating process, "/..."; "" when unknown or longer */
} IfbUapiObject;

/* The vIOMMU types the broker names (uapi-viommu.h). */
typedef enum {
  IFB_VIOMMU_TYPE_ARM_SMMUV3,
  IFB_VIOMMU_TYPE_TEGRA241_CMDQV,
  IFB_VIOMMU_TYPE_SELFTEST,     /* the IOMMUFD_TEST mock's */
  _IFB_VIOMMU_TYPE_MAX,
  IFB_VIOMMU_TYPE_INVALID = -1,
} IfbViommuType;
