/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inside the emulated IOMMUFD (the theory of operation is at the top of emul.c): the layout of
 * a context memfd (EmulTable) and of a device file's bind record and profile. Types only.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uapi-types.h"

#define IFB_EMUL_MAGIC UINT64_C (0x314c554d45424649)    /* "IFBEMUL1" */
#define IFB_EMUL_BIND_MAGIC UINT64_C (0x31444e4942424649) /* "IFBBIND1" */
#define IFB_EMUL_VERSION 1
#define IFB_EMUL_MEMFD_NAME "ifb-emulated-iommufd"
#define IFB_EMUL_MAX_OBJECTS 1024
#define IFB_EMUL_MAX_DEVICES 64
#define IFB_EMUL_MAX_MAPS 1024
#define IFB_EMUL_PATH_MAX 512
#define IFB_EMUL_PROFILE_MAX 4096
#define IFB_EMUL_BIND_OFFSET 8192
#define IFB_EMUL_PAGE 4096u

enum { EMUL_HWPT_AUTO = 1 << 0 };               /* EmulObject.aux for HWPTs */
/* EmulDevice.features: what firmware, not a register, says about the device's IOMMU. */
enum { EMUL_DEV_CANWBS = 1 << 0 };              /* profile canwbs=1: IORT's coherent root complex */

typedef struct {
  uint32_t type;                /* 0 = free slot, else IfbUapiObjType; written last */
  uint32_t flags;               /* HWPT alloc flags; IOAS: 1 = huge pages disabled */
  uint32_t parent_id;           /* IOAS / parent HWPT / vIOMMU / HWPT (of a vIOMMU) */
  uint32_t dev_id;              /* device it was allocated for */
  uint32_t aux;                 /* HWPT: EMUL_HWPT_AUTO; VIOMMU, VEVENTQ: type; VDEVICE: virt_id's low
                                 * 32 bits (flags holds the high ones: the layout stays version 1) */
  uint32_t iommu_type;          /* IfbIommuType of that device: a domain's "owner" */
  int32_t creator_pid;
  char cgroup[256];
} EmulObject;

typedef struct {
  uint32_t obj_id;              /* 0 = free slot */
  uint32_t pt_id;               /* attached HWPT, 0 = none */
  uint64_t st_dev, st_ino;
  uint32_t iommu_type;
  uint32_t features;            /* EMUL_DEV_* */
  uint64_t cap_reg, ecap_reg;
  uint32_t idr[6], iidr, aidr;
  char path[IFB_EMUL_PATH_MAX];
} EmulDevice;

typedef struct {
  uint32_t ioas_id;             /* 0 = free slot */
  uint32_t flags;
  uint64_t iova, length;
} EmulMap;

typedef struct {
  uint64_t magic;
  uint32_t version;
  uint32_t table_size;
  uint8_t uuid[16];
  pthread_mutex_t mutex;
  uint32_t rlimit_mode;
  uint32_t pad;
  EmulObject objects[IFB_EMUL_MAX_OBJECTS];
  EmulDevice devices[IFB_EMUL_MAX_DEVICES];
  EmulMap maps[IFB_EMUL_MAX_MAPS];
} EmulTable;

typedef struct {
  uint64_t magic;
  uint8_t ctx_uuid[16];
  uint32_t dev_id;
  uint32_t pad;
} EmulBindRecord;

typedef struct {
  uint32_t iommu_type;
  uint64_t cap_reg, ecap_reg;
  uint32_t idr[6], iidr, aidr;
  uint32_t rdev_major, rdev_minor;   /* rdev=MAJ:MIN, the cdev's device number (0:0 when absent) */
  bool has_rdev;
  bool canwbs;                  /* canwbs=1 */
} EmulProfile;

#define TABLE_SIZE (((sizeof (EmulTable)) + IFB_EMUL_PAGE - 1) & ~(size_t) (IFB_EMUL_PAGE - 1))
