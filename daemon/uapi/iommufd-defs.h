/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The project's own copy of the IOMMUFD / VFIO-cdev uAPI it speaks.
 *
 * This is the ONLY file in the tree that spells ioctl numbers and uAPI struct layouts. Debian
 * 12 ships 6.1 kernel headers, which lack HWPT_ALLOC, GET_HW_INFO, VIOMMU and the VFIO cdev
 * ioctls entirely, so every definition here carries an ifb_ / IFB_ prefix and can never clash
 * with <linux/iommufd.h> or <linux/vfio.h>.
 *
 * Every struct is checked twice at compile time:
 *   - against the published layout (include/uapi/linux/iommufd.h, vfio.h and the selftest's
 *     drivers/iommu/iommufd/iommufd_test.h as of Linux 6.12 .. 6.17): sizes, offsets of the key
 *     fields, and the numeric value of every ioctl request;
 *   - against the system header, when it is new enough to define the same thing.
 *
 * The layouts are the "current" ones; the kernel accepts any size between the first version
 * (IFB_*_MIN_SIZE, offsetofend of the last field of version 1) and its own, so using the
 * current size against an older kernel only requires the tail to be zero.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

typedef uint64_t ifb_aligned_u64 __attribute__ ((aligned (8)));

#define ifb_offsetofend(type, member) (offsetof (type, member) + sizeof (((type *) 0)->member))

/* ---- IOMMUFD (/dev/iommu) ------------------------------------------------------------ */

#define IFB_IOMMUFD_TYPE ';'

enum {
  IFB_IOMMUFD_CMD_BASE = 0x80,
  IFB_IOMMUFD_CMD_DESTROY = 0x80,
  IFB_IOMMUFD_CMD_IOAS_ALLOC = 0x81,
  IFB_IOMMUFD_CMD_IOAS_MAP = 0x85,
  IFB_IOMMUFD_CMD_IOAS_UNMAP = 0x86,
  IFB_IOMMUFD_CMD_OPTION = 0x87,
  IFB_IOMMUFD_CMD_HWPT_ALLOC = 0x89,
  IFB_IOMMUFD_CMD_GET_HW_INFO = 0x8a,
  IFB_IOMMUFD_CMD_VIOMMU_ALLOC = 0x90,
  IFB_IOMMUFD_CMD_VDEVICE_ALLOC = 0x91,
  IFB_IOMMUFD_CMD_VEVENTQ_ALLOC = 0x93,
  IFB_IOMMUFD_CMD_TEST = 0x80 + 32,     /* IOMMUFD_TEST builds only */
};

struct ifb_iommu_destroy {
  uint32_t size;
  uint32_t id;
};
#define IFB_IOMMU_DESTROY _IO (IFB_IOMMUFD_TYPE, IFB_IOMMUFD_CMD_DESTROY)
#define IFB_IOMMU_DESTROY_MIN_SIZE ifb_offsetofend (struct ifb_iommu_destroy, id)

struct ifb_iommu_ioas_alloc {
  uint32_t size;
  uint32_t flags;
  uint32_t out_ioas_id;
};
#define IFB_IOMMU_IOAS_ALLOC _IO (IFB_IOMMUFD_TYPE, IFB_IOMMUFD_CMD_IOAS_ALLOC)
#define IFB_IOMMU_IOAS_ALLOC_MIN_SIZE ifb_offsetofend (struct ifb_iommu_ioas_alloc, out_ioas_id)

enum {
  IFB_IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0,
  IFB_IOMMU_IOAS_MAP_WRITEABLE = 1 << 1,
  IFB_IOMMU_IOAS_MAP_READABLE = 1 << 2,
};

struct ifb_iommu_ioas_map {
  uint32_t size;
  uint32_t flags;
  uint32_t ioas_id;
  uint32_t __reserved;
  ifb_aligned_u64 user_va;
  ifb_aligned_u64 length;
  ifb_aligned_u64 iova;
};
#define IFB_IOMMU_IOAS_MAP _IO (IFB_IOMMUFD_TYPE, IFB_IOMMUFD_CMD_IOAS_MAP)
#define IFB_IOMMU_IOAS_MAP_MIN_SIZE ifb_offsetofend (struct ifb_iommu_ioas_map, iova)

struct ifb_iommu_ioas_unmap {
  uint32_t size;
  uint32_t ioas_id;
  ifb_aligned_u64 iova;
  ifb_aligned_u64 length;
};
#define IFB_IOMMU_IOAS_UNMAP _IO (IFB_IOMMUFD_TYPE, IFB_IOMMUFD_CMD_IOAS_UNMAP)
#define IFB_IOMMU_IOAS_UNMAP_MIN_SIZE ifb_offsetofend (struct ifb_iommu_ioas_unmap, length)

enum {
  IFB_IOMMU_OPTION_RLIMIT_MODE = 0,
  IFB_IOMMU_OPTION_HUGE_PAGES = 1,
};
enum {
  IFB_IOMMU_OPTION_OP_SET = 0,
  IFB_IOMMU_OPTION_OP_GET = 1,
};

struct ifb_iommu_option {
  uint32_t size;
  uint32_t option_id;
  uint16_t op;
  uint16_t __reserved;
  uint32_t object_id;
  ifb_aligned_u64 val64;
};
#define IFB_IOMMU_OPTION _IO (IFB_IOMMUFD_TYPE, IFB_IOMMUFD_CMD_OPTION)
#define IFB_IOMMU_OPTION_MIN_SIZE ifb_offsetofend (struct ifb_iommu_option, val64)

enum {
  IFB_IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0,
  IFB_IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1,
  IFB_IOMMU_HWPT_FAULT_ID_VALID = 1 << 2,
  IFB_IOMMU_HWPT_ALLOC_PASID = 1 << 3,
};

enum {
  IFB_IOMMU_HWPT_DATA_NONE = 0,
  IFB_IOMMU_HWPT_DATA_VTD_S1 = 1,
  IFB_IOMMU_HWPT_DATA_ARM_SMMUV3 = 2,
  IFB_IOMMU_HWPT_DATA_SELFTEST = 0xdead,        /* IOMMUFD_TEST builds only */
};

enum {
  IFB_IOMMU_VTD_S1_SRE = 1 << 0,
  IFB_IOMMU_VTD_S1_EAFE = 1 << 1,
  IFB_IOMMU_VTD_S1_WPE = 1 << 2,
};

struct ifb_iommu_hwpt_vtd_s1 {
  ifb_aligned_u64 flags;
  ifb_aligned_u64 pgtbl_addr;
  uint32_t addr_width;
  uint32_t __reserved;
};

struct ifb_iommu_hwpt_arm_smmuv3 {
  ifb_aligned_u64 ste[2];       /* little-endian */
};

struct ifb_iommu_hwpt_selftest {
  uint32_t iotlb;
};
#define IFB_IOMMU_TEST_IOTLB_DEFAULT 0xbadbeef

struct ifb_iommu_hwpt_alloc {
  uint32_t size;
  uint32_t flags;
  uint32_t dev_id;
  uint32_t pt_id;
  uint32_t out_hwpt_id;
  uint32_t __reserved;
  uint32_t data_type;
  uint32_t data_len;
  ifb_aligned_u64 data_uptr;
  uint32_t fault_id;            /* 6.11 */
  uint32_t __reserved2;
};
#define IFB_IOMMU_HWPT_ALLOC _IO (IFB_IOMMUFD_TYPE, IFB_IOMMUFD_CMD_HWPT_ALLOC)
#define IFB_IOMMU_HWPT_ALLOC_MIN_SIZE ifb_offsetofend (struct ifb_iommu_hwpt_alloc, __reserved)

enum {
  IFB_IOMMU_HW_INFO_TYPE_NONE = 0,
  IFB_IOMMU_HW_INFO_TYPE_INTEL_VTD = 1,
  IFB_IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2,
};
#define IFB_IOMMU_HW_INFO_TYPE_SELFTEST 0xfeedbeefu   /* IOMMUFD_TEST builds only */
#define IFB_IOMMU_HW_INFO_SELFTEST_REGVAL 0xdeadbeefu /* its test_reg */

enum {
  IFB_IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0,
};

struct ifb_iommu_hw_info_vtd {
  uint32_t flags;
  uint32_t __reserved;
  ifb_aligned_u64 cap_reg;
  ifb_aligned_u64 ecap_reg;
};

struct ifb_iommu_hw_info_arm_smmuv3 {
  uint32_t flags;
  uint32_t __reserved;
  uint32_t idr[6];
  uint32_t iidr;
  uint32_t aidr;
};

struct ifb_iommu_test_hw_info {
  uint32_t flags;
  uint32_t test_reg;
};

/*
 * Up to 6.13 the word after data_uptr was out_data_type + a u32 __reserved; 6.14 split the
 * reserved word into out_max_pasid_log2 + 3 reserved bytes, 6.17 made the type bidirectional.
 * The layout (and the minimum size) never changed.
 */
struct ifb_iommu_hw_info {
  uint32_t size;
  uint32_t flags;
  uint32_t dev_id;
  uint32_t data_len;
  ifb_aligned_u64 data_uptr;
  uint32_t out_data_type;
  uint8_t out_max_pasid_log2;
  uint8_t __reserved[3];
  ifb_aligned_u64 out_capabilities;
};
#define IFB_IOMMU_GET_HW_INFO _IO (IFB_IOMMUFD_TYPE, IFB_IOMMUFD_CMD_GET_HW_INFO)
#define IFB_IOMMU_GET_HW_INFO_MIN_SIZE ifb_offsetofend (struct ifb_iommu_hw_info, __reserved)

enum {
  IFB_IOMMU_VIOMMU_TYPE_DEFAULT = 0,
  IFB_IOMMU_VIOMMU_TYPE_ARM_SMMUV3 = 1,
  IFB_IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV = 2,     /* 6.17 */
};
#define IFB_IOMMU_VIOMMU_TYPE_SELFTEST 0xdeadbeefu    /* IOMMUFD_TEST builds only (6.13) */

struct ifb_iommu_viommu_alloc {
  uint32_t size;
  uint32_t flags;
  uint32_t type;
  uint32_t dev_id;
  uint32_t hwpt_id;
  uint32_t out_viommu_id;
  uint32_t data_len;            /* 6.16 */
  uint32_t __reserved;
  ifb_aligned_u64 data_uptr;
};
#define IFB_IOMMU_VIOMMU_ALLOC _IO (IFB_IOMMUFD_TYPE, IFB_IOMMUFD_CMD_VIOMMU_ALLOC)
#define IFB_IOMMU_VIOMMU_ALLOC_MIN_SIZE ifb_offsetofend (struct ifb_iommu_viommu_alloc, out_viommu_id)

struct ifb_iommu_vdevice_alloc {
  uint32_t size;
  uint32_t viommu_id;
  uint32_t dev_id;
  uint32_t out_vdevice_id;
  ifb_aligned_u64 virt_id;
};
#define IFB_IOMMU_VDEVICE_ALLOC _IO (IFB_IOMMUFD_TYPE, IFB_IOMMUFD_CMD_VDEVICE_ALLOC)
#define IFB_IOMMU_VDEVICE_ALLOC_MIN_SIZE ifb_offsetofend (struct ifb_iommu_vdevice_alloc, virt_id)

/* vEVENTQ (6.14): one per type per vIOMMU; its fd reads a header before each event's record. */
enum {
  IFB_IOMMU_VEVENTQ_TYPE_DEFAULT = 0,
  IFB_IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 = 1,
  IFB_IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV = 2,    /* 6.17 */
};
#define IFB_IOMMU_VEVENTQ_TYPE_SELFTEST 0xbeefbeefu   /* IOMMUFD_TEST builds only */

enum {
  IFB_IOMMU_VEVENTQ_FLAG_LOST_EVENTS = 1u << 0,
};

struct ifb_iommufd_vevent_header {
  uint32_t flags;
  uint32_t sequence;
};

struct ifb_iommu_veventq_alloc {
  uint32_t size;
  uint32_t flags;
  uint32_t viommu_id;
  uint32_t type;
  uint32_t veventq_depth;
  uint32_t out_veventq_id;
  uint32_t out_veventq_fd;
  uint32_t __reserved;
};
#define IFB_IOMMU_VEVENTQ_ALLOC _IO (IFB_IOMMUFD_TYPE, IFB_IOMMUFD_CMD_VEVENTQ_ALLOC)
#define IFB_IOMMU_VEVENTQ_ALLOC_MIN_SIZE ifb_offsetofend (struct ifb_iommu_veventq_alloc, out_veventq_fd)

/* IOMMU_TEST_CMD (CONFIG_IOMMUFD_TEST): only the mock-domain subset the kernel tier needs. */
enum {
  IFB_IOMMU_TEST_OP_MOCK_DOMAIN = 2,
  IFB_IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE = 10,
};

struct ifb_iommu_test_cmd {
  uint32_t size;
  uint32_t op;
  uint32_t id;
  uint32_t __reserved;
  union {
    struct {
      uint32_t out_stdev_id;
      uint32_t out_hwpt_id;
      uint32_t out_idev_id;
    } mock_domain;
    struct {
      uint32_t pt_id;           /* in: the HWPT/IOAS to attach to; out: what it got attached to */
    } mock_domain_replace;
    /* The largest union member upstream ("dirty"): six 64-bit-aligned words. */
    ifb_aligned_u64 __union_size[6];
  };
  uint32_t last;
};
#define IFB_IOMMU_TEST_CMD _IO (IFB_IOMMUFD_TYPE, IFB_IOMMUFD_CMD_TEST)

/* ---- VFIO device cdev (/dev/vfio/devices/vfioN) -------------------------------------- */

#define IFB_VFIO_TYPE ';'
#define IFB_VFIO_BASE 100

struct ifb_vfio_device_bind_iommufd {
  uint32_t argsz;
  uint32_t flags;
  int32_t iommufd;
  uint32_t out_devid;
};
#define IFB_VFIO_DEVICE_BIND_IOMMUFD _IO (IFB_VFIO_TYPE, IFB_VFIO_BASE + 18)
#define IFB_VFIO_DEVICE_BIND_MIN_SIZE ifb_offsetofend (struct ifb_vfio_device_bind_iommufd, out_devid)

enum {
  IFB_VFIO_DEVICE_ATTACH_PASID = 1 << 0,
};

struct ifb_vfio_device_attach_iommufd_pt {
  uint32_t argsz;
  uint32_t flags;
  uint32_t pt_id;
  uint32_t pasid;               /* 6.13, with VFIO_DEVICE_ATTACH_PASID */
};
#define IFB_VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO (IFB_VFIO_TYPE, IFB_VFIO_BASE + 19)
#define IFB_VFIO_DEVICE_ATTACH_MIN_SIZE ifb_offsetofend (struct ifb_vfio_device_attach_iommufd_pt, pt_id)

enum {
  IFB_VFIO_DEVICE_DETACH_PASID = 1 << 0,
};

struct ifb_vfio_device_detach_iommufd_pt {
  uint32_t argsz;
  uint32_t flags;
  uint32_t pasid;               /* 6.13, with VFIO_DEVICE_DETACH_PASID */
};
#define IFB_VFIO_DEVICE_DETACH_IOMMUFD_PT _IO (IFB_VFIO_TYPE, IFB_VFIO_BASE + 20)
#define IFB_VFIO_DEVICE_DETACH_MIN_SIZE ifb_offsetofend (struct ifb_vfio_device_detach_iommufd_pt, flags)

/* ---- hardware register bits the layer interprets ------------------------------------- */

/* Intel VT-d extended capability register (VT-d spec 11.4.3; the kernel's ecap_*() macros). */
#define IFB_VTD_ECAP_NEST   (UINT64_C (1) << 26)
#define IFB_VTD_ECAP_SMTS   (UINT64_C (1) << 43)
#define IFB_VTD_ECAP_SLADS  (UINT64_C (1) << 45)
#define IFB_VTD_ECAP_SMPWC  (UINT64_C (1) << 48)
/* Arm SMMUv3 IDR0 (SMMUv3 spec 6.3.1). */
#define IFB_SMMU_IDR0_S2P        (1u << 0)
#define IFB_SMMU_IDR0_S1P        (1u << 1)
#define IFB_SMMU_IDR0_HTTU_SHIFT 6
#define IFB_SMMU_IDR0_HTTU_MASK  (3u << 6)
#define IFB_SMMU_IDR0_HTTU_AD    2u
/* Arm SMMUv3 IDR3 (SMMUv3 spec 6.3.4): stage-2 forced write-back (the kernel's ARM_SMMU_FEAT_S2FWB). */
#define IFB_SMMU_IDR3_FWB        (1u << 8)

/* ---- checks against the published uAPI ----------------------------------------------- */

#define IFB_ASSERT_SIZE(s, n) _Static_assert (sizeof (struct s) == (n), #s " size")
#define IFB_ASSERT_OFF(s, f, n) _Static_assert (offsetof (struct s, f) == (n), #s "." #f " offset")
#define IFB_ASSERT_REQ(r, n) _Static_assert ((r) == (n), #r " value")

IFB_ASSERT_SIZE (ifb_iommu_destroy, 8);
IFB_ASSERT_OFF (ifb_iommu_destroy, id, 4);
IFB_ASSERT_SIZE (ifb_iommu_ioas_alloc, 12);
IFB_ASSERT_OFF (ifb_iommu_ioas_alloc, out_ioas_id, 8);
IFB_ASSERT_SIZE (ifb_iommu_ioas_map, 40);
IFB_ASSERT_OFF (ifb_iommu_ioas_map, __reserved, 12);
IFB_ASSERT_OFF (ifb_iommu_ioas_map, user_va, 16);
IFB_ASSERT_OFF (ifb_iommu_ioas_map, length, 24);
IFB_ASSERT_OFF (ifb_iommu_ioas_map, iova, 32);
IFB_ASSERT_SIZE (ifb_iommu_ioas_unmap, 24);
IFB_ASSERT_OFF (ifb_iommu_ioas_unmap, iova, 8);
IFB_ASSERT_OFF (ifb_iommu_ioas_unmap, length, 16);
IFB_ASSERT_SIZE (ifb_iommu_option, 24);
IFB_ASSERT_OFF (ifb_iommu_option, op, 8);
IFB_ASSERT_OFF (ifb_iommu_option, __reserved, 10);
IFB_ASSERT_OFF (ifb_iommu_option, object_id, 12);
IFB_ASSERT_OFF (ifb_iommu_option, val64, 16);
IFB_ASSERT_SIZE (ifb_iommu_hwpt_vtd_s1, 24);
IFB_ASSERT_OFF (ifb_iommu_hwpt_vtd_s1, addr_width, 16);
IFB_ASSERT_SIZE (ifb_iommu_hwpt_arm_smmuv3, 16);
IFB_ASSERT_SIZE (ifb_iommu_hwpt_selftest, 4);
IFB_ASSERT_SIZE (ifb_iommu_hwpt_alloc, 48);
IFB_ASSERT_OFF (ifb_iommu_hwpt_alloc, fault_id, 40);
IFB_ASSERT_OFF (ifb_iommu_hwpt_alloc, pt_id, 12);
IFB_ASSERT_OFF (ifb_iommu_hwpt_alloc, out_hwpt_id, 16);
IFB_ASSERT_OFF (ifb_iommu_hwpt_alloc, __reserved, 20);
IFB_ASSERT_OFF (ifb_iommu_hwpt_alloc, data_type, 24);
IFB_ASSERT_OFF (ifb_iommu_hwpt_alloc, data_uptr, 32);
_Static_assert (IFB_IOMMU_HWPT_ALLOC_MIN_SIZE == 24, "hwpt_alloc v1 size");
IFB_ASSERT_SIZE (ifb_iommu_hw_info_vtd, 24);
IFB_ASSERT_OFF (ifb_iommu_hw_info_vtd, cap_reg, 8);
IFB_ASSERT_OFF (ifb_iommu_hw_info_vtd, ecap_reg, 16);
IFB_ASSERT_SIZE (ifb_iommu_hw_info_arm_smmuv3, 40);
IFB_ASSERT_OFF (ifb_iommu_hw_info_arm_smmuv3, idr, 8);
IFB_ASSERT_OFF (ifb_iommu_hw_info_arm_smmuv3, iidr, 32);
IFB_ASSERT_SIZE (ifb_iommu_test_hw_info, 8);
IFB_ASSERT_SIZE (ifb_iommu_hw_info, 40);
IFB_ASSERT_OFF (ifb_iommu_hw_info, data_uptr, 16);
IFB_ASSERT_OFF (ifb_iommu_hw_info, out_data_type, 24);
IFB_ASSERT_OFF (ifb_iommu_hw_info, out_max_pasid_log2, 28);
IFB_ASSERT_OFF (ifb_iommu_hw_info, out_capabilities, 32);
_Static_assert (IFB_IOMMU_GET_HW_INFO_MIN_SIZE == 32, "hw_info v1 size");
IFB_ASSERT_SIZE (ifb_iommu_viommu_alloc, 40);
IFB_ASSERT_OFF (ifb_iommu_viommu_alloc, hwpt_id, 16);
IFB_ASSERT_OFF (ifb_iommu_viommu_alloc, out_viommu_id, 20);
IFB_ASSERT_OFF (ifb_iommu_viommu_alloc, data_uptr, 32);
IFB_ASSERT_SIZE (ifb_iommu_vdevice_alloc, 24);
IFB_ASSERT_OFF (ifb_iommu_vdevice_alloc, out_vdevice_id, 12);
IFB_ASSERT_OFF (ifb_iommu_vdevice_alloc, virt_id, 16);
IFB_ASSERT_SIZE (ifb_iommu_veventq_alloc, 32);
IFB_ASSERT_OFF (ifb_iommu_veventq_alloc, veventq_depth, 16);
IFB_ASSERT_OFF (ifb_iommu_veventq_alloc, out_veventq_fd, 24);
IFB_ASSERT_SIZE (ifb_iommufd_vevent_header, 8);
IFB_ASSERT_SIZE (ifb_iommu_test_cmd, 72);
IFB_ASSERT_OFF (ifb_iommu_test_cmd, mock_domain.out_stdev_id, 16);
IFB_ASSERT_OFF (ifb_iommu_test_cmd, mock_domain.out_idev_id, 24);
IFB_ASSERT_OFF (ifb_iommu_test_cmd, mock_domain_replace.pt_id, 16);
IFB_ASSERT_OFF (ifb_iommu_test_cmd, last, 64);
IFB_ASSERT_SIZE (ifb_vfio_device_bind_iommufd, 16);
IFB_ASSERT_OFF (ifb_vfio_device_bind_iommufd, iommufd, 8);
IFB_ASSERT_OFF (ifb_vfio_device_bind_iommufd, out_devid, 12);
IFB_ASSERT_SIZE (ifb_vfio_device_attach_iommufd_pt, 16);
IFB_ASSERT_OFF (ifb_vfio_device_attach_iommufd_pt, pt_id, 8);
IFB_ASSERT_SIZE (ifb_vfio_device_detach_iommufd_pt, 12);

/* _IO(';', nr) == (';' << 8) | nr: no size or direction bits in either family. */
IFB_ASSERT_REQ (IFB_IOMMU_DESTROY, 0x3b80);
IFB_ASSERT_REQ (IFB_IOMMU_IOAS_ALLOC, 0x3b81);
IFB_ASSERT_REQ (IFB_IOMMU_IOAS_MAP, 0x3b85);
IFB_ASSERT_REQ (IFB_IOMMU_IOAS_UNMAP, 0x3b86);
IFB_ASSERT_REQ (IFB_IOMMU_OPTION, 0x3b87);
IFB_ASSERT_REQ (IFB_IOMMU_HWPT_ALLOC, 0x3b89);
IFB_ASSERT_REQ (IFB_IOMMU_GET_HW_INFO, 0x3b8a);
IFB_ASSERT_REQ (IFB_IOMMU_VIOMMU_ALLOC, 0x3b90);
IFB_ASSERT_REQ (IFB_IOMMU_VDEVICE_ALLOC, 0x3b91);
IFB_ASSERT_REQ (IFB_IOMMU_VEVENTQ_ALLOC, 0x3b93);
IFB_ASSERT_REQ (IFB_IOMMU_TEST_CMD, 0x3ba0);
IFB_ASSERT_REQ (IFB_VFIO_DEVICE_BIND_IOMMUFD, 0x3b76);
IFB_ASSERT_REQ (IFB_VFIO_DEVICE_ATTACH_IOMMUFD_PT, 0x3b77);
IFB_ASSERT_REQ (IFB_VFIO_DEVICE_DETACH_IOMMUFD_PT, 0x3b78);

/* ---- checks against the system headers, when they know the same things ---------------- */

#if defined(__has_include)
# if __has_include(<linux/iommufd.h>)
#  include <linux/iommufd.h>
#  define IFB_HAVE_SYS_IOMMUFD_H 1
# endif
# if __has_include(<linux/vfio.h>)
#  include <linux/vfio.h>
# endif
#endif

#ifdef IFB_HAVE_SYS_IOMMUFD_H
IFB_ASSERT_REQ (IFB_IOMMU_DESTROY, IOMMU_DESTROY);
IFB_ASSERT_REQ (IFB_IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOC);
IFB_ASSERT_REQ (IFB_IOMMU_IOAS_MAP, IOMMU_IOAS_MAP);
IFB_ASSERT_REQ (IFB_IOMMU_IOAS_UNMAP, IOMMU_IOAS_UNMAP);
IFB_ASSERT_REQ (IFB_IOMMU_OPTION, IOMMU_OPTION);
_Static_assert (sizeof (struct iommu_destroy) == sizeof (struct ifb_iommu_destroy), "destroy");
_Static_assert (sizeof (struct iommu_ioas_alloc) == sizeof (struct ifb_iommu_ioas_alloc), "ioas_alloc");
_Static_assert (sizeof (struct iommu_ioas_map) == sizeof (struct ifb_iommu_ioas_map), "ioas_map");
_Static_assert (sizeof (struct iommu_ioas_unmap) == sizeof (struct ifb_iommu_ioas_unmap), "ioas_unmap");
_Static_assert (sizeof (struct iommu_option) == sizeof (struct ifb_iommu_option), "option");
_Static_assert (IOMMU_OPTION_RLIMIT_MODE == IFB_IOMMU_OPTION_RLIMIT_MODE, "rlimit mode");
_Static_assert (IOMMU_IOAS_MAP_FIXED_IOVA == IFB_IOMMU_IOAS_MAP_FIXED_IOVA, "fixed iova");
# ifdef IOMMU_HWPT_ALLOC_NEST_PARENT
IFB_ASSERT_REQ (IFB_IOMMU_HWPT_ALLOC, IOMMU_HWPT_ALLOC);
IFB_ASSERT_REQ (IFB_IOMMU_GET_HW_INFO, IOMMU_GET_HW_INFO);
_Static_assert (IOMMU_HWPT_ALLOC_NEST_PARENT == IFB_IOMMU_HWPT_ALLOC_NEST_PARENT, "nest parent");
_Static_assert (IOMMU_HWPT_DATA_VTD_S1 == IFB_IOMMU_HWPT_DATA_VTD_S1, "vtd s1");
_Static_assert (IOMMU_HW_INFO_TYPE_INTEL_VTD == IFB_IOMMU_HW_INFO_TYPE_INTEL_VTD, "hw info vtd");
_Static_assert (sizeof (struct iommu_hw_info) == sizeof (struct ifb_iommu_hw_info), "hw_info");
_Static_assert (offsetof (struct iommu_hw_info, out_capabilities)
                == offsetof (struct ifb_iommu_hw_info, out_capabilities), "hw_info caps");
_Static_assert (sizeof (struct iommu_hw_info_vtd) == sizeof (struct ifb_iommu_hw_info_vtd), "vtd info");
_Static_assert (sizeof (struct iommu_hwpt_vtd_s1) == sizeof (struct ifb_iommu_hwpt_vtd_s1), "vtd s1");
# endif
# ifdef IOMMU_HWPT_ALLOC_DIRTY_TRACKING
_Static_assert (IOMMU_HWPT_ALLOC_DIRTY_TRACKING == IFB_IOMMU_HWPT_ALLOC_DIRTY_TRACKING, "dirty");
_Static_assert (IOMMU_HW_CAP_DIRTY_TRACKING == IFB_IOMMU_HW_CAP_DIRTY_TRACKING, "cap dirty");
# endif
# ifdef IOMMU_HWPT_FAULT_ID_VALID
_Static_assert (sizeof (struct iommu_hwpt_alloc) == sizeof (struct ifb_iommu_hwpt_alloc), "hwpt_alloc");
_Static_assert (offsetof (struct iommu_hwpt_alloc, fault_id)
                == offsetof (struct ifb_iommu_hwpt_alloc, fault_id), "hwpt_alloc fault_id");
# endif
# ifdef IOMMU_VIOMMU_ALLOC
IFB_ASSERT_REQ (IFB_IOMMU_VIOMMU_ALLOC, IOMMU_VIOMMU_ALLOC);
IFB_ASSERT_REQ (IFB_IOMMU_VDEVICE_ALLOC, IOMMU_VDEVICE_ALLOC);
_Static_assert (sizeof (struct iommu_vdevice_alloc) == sizeof (struct ifb_iommu_vdevice_alloc), "vdevice");
_Static_assert (offsetof (struct iommu_viommu_alloc, out_viommu_id)
                == offsetof (struct ifb_iommu_viommu_alloc, out_viommu_id), "viommu");
_Static_assert (sizeof (struct iommu_hw_info_arm_smmuv3) == sizeof (struct ifb_iommu_hw_info_arm_smmuv3), "smmu");
# endif
# ifdef IOMMU_VEVENTQ_ALLOC
IFB_ASSERT_REQ (IFB_IOMMU_VEVENTQ_ALLOC, IOMMU_VEVENTQ_ALLOC);
_Static_assert (sizeof (struct iommu_veventq_alloc) == sizeof (struct ifb_iommu_veventq_alloc), "veventq");
_Static_assert (sizeof (struct iommufd_vevent_header) == sizeof (struct ifb_iommufd_vevent_header), "vevent header");
# endif
#endif

#ifdef VFIO_DEVICE_BIND_IOMMUFD
IFB_ASSERT_REQ (IFB_VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_BIND_IOMMUFD);
IFB_ASSERT_REQ (IFB_VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_ATTACH_IOMMUFD_PT);
IFB_ASSERT_REQ (IFB_VFIO_DEVICE_DETACH_IOMMUFD_PT, VFIO_DEVICE_DETACH_IOMMUFD_PT);
_Static_assert (offsetof (struct vfio_device_bind_iommufd, out_devid)
                == offsetof (struct ifb_vfio_device_bind_iommufd, out_devid), "bind");
_Static_assert (offsetof (struct vfio_device_attach_iommufd_pt, pt_id)
                == offsetof (struct ifb_vfio_device_attach_iommufd_pt, pt_id), "attach");
#endif
