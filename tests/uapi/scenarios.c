/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The scenario list (see scenarios.h for the line format).
 *
 * Each scenario gets a fresh context with one IOAS (none at all for the RLIMIT_MODE ones) and,
 * for device scenarios, the device under test bound to it (a vfio cdev opened from dev_dirfd,
 * or the IOMMUFD_TEST mock created with MOCK_DOMAIN on that IOAS, which is then already attached
 * to it). A scenario is a sequence of steps; the first step whose errno differs from the
 * expectation ends it and is reported.
 * Expectations are the kernel's (read from drivers/iommu/iommufd and the selftests), adjusted
 * only by what the device reports through GET_HW_INFO.
 */
#define G_LOG_DOMAIN "ifb-uapi"

#include <errno.h>
#include <glib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/capability.h>
#include <sys/syscall.h>

#include "errors.h"
#include "iommufd-defs.h"
#include "scenarios.h"

typedef struct {
  const IfbScenarioEnv *env;
  const char *cdev;             /* device under test, NULL for mock or none */
  bool mock;
  IfbHwInfo info;
  const IfbUapiBackend *b;
  int iommufd;
  int devfd;
  uint32_t ioas_id, dev_id, stdev_id;
  char failure[256];
  char skipped[128];
} Ctx;

/* NEEDS_EMPTY: a context holding no object at all (not even the IOAS the others get), for
 * RLIMIT_MODE, which the kernel only lets change while the context's object table is empty. */
enum { NEEDS_NONE, NEEDS_EMPTY, NEEDS_DEVICE, NEEDS_VFIO };

typedef struct {
  const char *name;
  int needs;
  int (*run) (Ctx *c);
} Scenario;

static const char *
err_name (int negerr, char *buf, size_t n)
{
  const char *s;

  if (negerr == 0)
    return "ok";
  s = ifb_errno_to_name (-negerr);
  if (s)
    return s;
  snprintf (buf, n, "errno%d", -negerr);
  return buf;
}

/* Record a mismatch; returns -1 so callers can `return expect (...)`. */
static int
expect (Ctx *c, const char *step, int want_errno, int got)
{
  char b1[32], b2[32];

  if (got == -want_errno)
    return 0;
  snprintf (c->failure, sizeof c->failure, "%s: got %s expected %s", step, err_name (got, b1, sizeof b1),
            err_name (-want_errno, b2, sizeof b2));
  return -1;
}

#define EXPECT(step, want, expr)                        \
  do {                                                  \
    if (expect (c, (step), (want), (expr)) < 0)         \
      return -1;                                        \
  } while (0)

static bool
have_cap_sys_resource (void)
{
  struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
  struct __user_cap_data_struct data[2] = { 0 };

  if (syscall (SYS_capget, &hdr, data) < 0)
    return false;
  return (data[CAP_SYS_RESOURCE / 32].effective >> (CAP_SYS_RESOURCE % 32)) & 1;
}

static int
raw (Ctx *c, unsigned long req, void *arg)
{
  return ifb_uapi_ioctl (c->b, c->iommufd, req, arg);
}

/* ---- context scenarios --------------------------------------------------------------- */

static int
sc_cmd_fail (Ctx *c)
{
  struct ifb_iommu_destroy cmd = { .size = sizeof cmd };

  EXPECT ("destroy-id-0", ENOENT, ifb_uapi_destroy (c->b, c->iommufd, 0));
  EXPECT ("unknown-ioctl", ENOTTY, raw (c, _IO (IFB_IOMMUFD_TYPE, IFB_IOMMUFD_CMD_BASE - 1), &cmd));
  return 0;
}

/* The selftest's TEST_LENGTH: short -> EINVAL, long with junk -> E2BIG, long with zeros == exact. */
static int
cmd_length (Ctx *c, unsigned long req, size_t ksize, size_t min)
{
  uint64_t buf[16];
  uint8_t *p = (uint8_t *) buf;
  uint32_t size;
  int r1, r2;

  g_assert (ksize + 1 <= sizeof buf);
  memset (buf, 0, sizeof buf);
  p[ksize] = 0xff;
  size = (uint32_t) min - 1;
  memcpy (p, &size, sizeof size);
  r1 = raw (c, req, p);
  if (r1 == -ENOTTY) {
    snprintf (c->skipped, sizeof c->skipped, "ENOTTY: ioctl not implemented by this kernel");
    return 0;
  }
  EXPECT ("size-below-minimum", EINVAL, r1);
  size = (uint32_t) ksize + 1;
  memcpy (p, &size, sizeof size);
  EXPECT ("nonzero-tail", E2BIG, raw (c, req, p));
  memset (buf, 0, sizeof buf);
  size = (uint32_t) ksize;
  memcpy (p, &size, sizeof size);
  r1 = raw (c, req, p);
  memset (buf, 0, sizeof buf);
  size = (uint32_t) ksize + 1;
  memcpy (p, &size, sizeof size);
  r2 = raw (c, req, p);
  EXPECT ("zero-tail-same-as-exact", -r1, r2);
  return 0;
}

#define CMD_LENGTH(fn, req, type, min) \
  static int fn (Ctx *c) { return cmd_length (c, req, sizeof (type), min); }

CMD_LENGTH (sc_len_destroy, IFB_IOMMU_DESTROY, struct ifb_iommu_destroy, IFB_IOMMU_DESTROY_MIN_SIZE)
CMD_LENGTH (sc_len_ioas_alloc, IFB_IOMMU_IOAS_ALLOC, struct ifb_iommu_ioas_alloc, IFB_IOMMU_IOAS_ALLOC_MIN_SIZE)
CMD_LENGTH (sc_len_ioas_map, IFB_IOMMU_IOAS_MAP, struct ifb_iommu_ioas_map, IFB_IOMMU_IOAS_MAP_MIN_SIZE)
CMD_LENGTH (sc_len_ioas_unmap, IFB_IOMMU_IOAS_UNMAP, struct ifb_iommu_ioas_unmap, IFB_IOMMU_IOAS_UNMAP_MIN_SIZE)
CMD_LENGTH (sc_len_option, IFB_IOMMU_OPTION, struct ifb_iommu_option, IFB_IOMMU_OPTION_MIN_SIZE)
CMD_LENGTH (sc_len_hwpt_alloc, IFB_IOMMU_HWPT_ALLOC, struct ifb_iommu_hwpt_alloc, IFB_IOMMU_HWPT_ALLOC_MIN_SIZE)
CMD_LENGTH (sc_len_get_hw_info, IFB_IOMMU_GET_HW_INFO, struct ifb_iommu_hw_info, IFB_IOMMU_GET_HW_INFO_MIN_SIZE)
CMD_LENGTH (sc_len_viommu_alloc, IFB_IOMMU_VIOMMU_ALLOC, struct ifb_iommu_viommu_alloc, IFB_IOMMU_VIOMMU_ALLOC_MIN_SIZE)
CMD_LENGTH (sc_len_vdevice_alloc, IFB_IOMMU_VDEVICE_ALLOC, struct ifb_iommu_vdevice_alloc, IFB_IOMMU_VDEVICE_ALLOC_MIN_SIZE)
CMD_LENGTH (sc_len_veventq_alloc, IFB_IOMMU_VEVENTQ_ALLOC, struct ifb_iommu_veventq_alloc, IFB_IOMMU_VEVENTQ_ALLOC_MIN_SIZE)

static int
option (Ctx *c, uint32_t id, uint16_t op, uint32_t obj, uint64_t val, uint64_t *ret_val)
{
  struct ifb_iommu_option cmd = { .size = sizeof cmd, .option_id = id, .op = op, .object_id = obj, .val64 = val };
  int r = raw (c, IFB_IOMMU_OPTION, &cmd);

  if (r == 0 && ret_val)
    *ret_val = cmd.val64;
  return r;
}

/* The selftest's global_options, on a context that holds no object yet. */
static int
sc_global_options (Ctx *c)
{
  struct ifb_iommu_option cmd = { .size = sizeof cmd, .op = IFB_IOMMU_OPTION_OP_GET, .__reserved = 1 };
  uint64_t v = 7;
  bool cap = have_cap_sys_resource ();

  EXPECT ("rlimit-get", 0, option (c, IFB_IOMMU_OPTION_RLIMIT_MODE, IFB_IOMMU_OPTION_OP_GET, 0, 1, &v));
  EXPECT ("rlimit-default-user", 0, v == 0 ? 0 : -EINVAL);
  EXPECT ("rlimit-object-id", EOPNOTSUPP, option (c, IFB_IOMMU_OPTION_RLIMIT_MODE, IFB_IOMMU_OPTION_OP_GET, 1, 0, NULL));
  EXPECT ("reserved", EOPNOTSUPP, raw (c, IFB_IOMMU_OPTION, &cmd));
  EXPECT ("unknown-option", EOPNOTSUPP, option (c, 99, IFB_IOMMU_OPTION_OP_GET, 0, 0, NULL));
  EXPECT ("rlimit-set-1", cap ? 0 : EPERM, option (c, IFB_IOMMU_OPTION_RLIMIT_MODE, IFB_IOMMU_OPTION_OP_SET, 0, 1, NULL));
  if (cap) {
    EXPECT ("rlimit-set-2", EINVAL, option (c, IFB_IOMMU_OPTION_RLIMIT_MODE, IFB_IOMMU_OPTION_OP_SET, 0, 2, NULL));
    EXPECT ("rlimit-get-1", 0, option (c, IFB_IOMMU_OPTION_RLIMIT_MODE, IFB_IOMMU_OPTION_OP_GET, 0, 0, &v));
    EXPECT ("rlimit-reads-1", 0, v == 1 ? 0 : -EINVAL);
    EXPECT ("rlimit-set-0", 0, option (c, IFB_IOMMU_OPTION_RLIMIT_MODE, IFB_IOMMU_OPTION_OP_SET, 0, 0, NULL));
  }
  EXPECT ("huge-pages-no-ioas", ENOENT, option (c, IFB_IOMMU_OPTION_HUGE_PAGES, IFB_IOMMU_OPTION_OP_GET, 0, 0, NULL));
  EXPECT ("huge-pages-set-no-ioas", ENOENT, option (c, IFB_IOMMU_OPTION_HUGE_PAGES, IFB_IOMMU_OPTION_OP_SET, 0, 0, NULL));
  return 0;
}

/* RLIMIT_MODE may only change while the context holds no object (iommufd_option_rlimit_mode():
 * capable(CAP_SYS_RESOURCE) first, then xa_empty() of the objects). The expectations follow our
 * own capability, so a run without CAP_SYS_RESOURCE (EPERM throughout) and one with it agree. */
static int
sc_rlimit_busy (Ctx *c)
{
  bool cap = have_cap_sys_resource ();
  uint32_t ioas;

  EXPECT ("ioas-alloc", 0, ifb_uapi_ioas_alloc (c->b, c->iommufd, &ioas));
  EXPECT ("set-with-objects", cap ? EBUSY : EPERM, ifb_uapi_set_rlimit_mode (c->b, c->iommufd, true));
  EXPECT ("destroy", 0, ifb_uapi_destroy (c->b, c->iommufd, ioas));
  EXPECT ("set-empty", cap ? 0 : EPERM, ifb_uapi_set_rlimit_mode (c->b, c->iommufd, true));
  return 0;
}

static int
sc_ioas_destroy (Ctx *c)
{
  struct ifb_iommu_ioas_alloc bad = { .size = sizeof bad, .flags = 1 };
  uint32_t ioas;

  EXPECT ("alloc-flags", EOPNOTSUPP, raw (c, IFB_IOMMU_IOAS_ALLOC, &bad));
  EXPECT ("alloc", 0, ifb_uapi_ioas_alloc (c->b, c->iommufd, &ioas));
  EXPECT ("destroy", 0, ifb_uapi_destroy (c->b, c->iommufd, ioas));
  EXPECT ("destroy-again", ENOENT, ifb_uapi_destroy (c->b, c->iommufd, ioas));
  return 0;
}

static int
map_cmd (Ctx *c, uint32_t ioas, uint32_t flags, void *va, uint64_t len, uint64_t *iova)
{
  struct ifb_iommu_ioas_map cmd = {
    .size = sizeof cmd, .flags = flags, .ioas_id = ioas, .user_va = (uintptr_t) va, .length = len, .iova = *iova,
  };
  int r = raw (c, IFB_IOMMU_IOAS_MAP, &cmd);

  if (r == 0)
    *iova = cmd.iova;
  return r;
}

static int
unmap_cmd (Ctx *c, uint32_t ioas, uint64_t iova, uint64_t len, uint64_t *ret_len)
{
  struct ifb_iommu_ioas_unmap cmd = { .size = sizeof cmd, .ioas_id = ioas, .iova = iova, .length = len };
  int r = raw (c, IFB_IOMMU_IOAS_UNMAP, &cmd);

  if (r == 0 && ret_len)
    *ret_len = cmd.length;
  return r;
}

static int
map_unmap_steps (Ctx *c, uint8_t *buf, size_t pg)
{
  const uint32_t rw = IFB_IOMMU_IOAS_MAP_READABLE | IFB_IOMMU_IOAS_MAP_WRITEABLE;
  const uint64_t base = UINT64_C (1) << 24;
  uint64_t iova = base, len = 0;

  EXPECT ("map-fixed", 0, map_cmd (c, c->ioas_id, rw | IFB_IOMMU_IOAS_MAP_FIXED_IOVA, buf, 2 * pg, &iova));
  iova = base + pg;
  EXPECT ("map-overlap", EEXIST, map_cmd (c, c->ioas_id, rw | IFB_IOMMU_IOAS_MAP_FIXED_IOVA, buf, 2 * pg, &iova));
  iova = base;
  EXPECT ("map-no-prot", EINVAL, map_cmd (c, c->ioas_id, IFB_IOMMU_IOAS_MAP_FIXED_IOVA, buf, pg, &iova));
  EXPECT ("map-unknown-flag", EOPNOTSUPP, map_cmd (c, c->ioas_id, rw | (1u << 20), buf, pg, &iova));
  EXPECT ("map-no-ioas", ENOENT, map_cmd (c, 0xfffff, rw, buf, pg, &iova));
  EXPECT ("unmap-split", ENOENT, unmap_cmd (c, c->ioas_id, base, pg, NULL));
  EXPECT ("unmap-exact", 0, unmap_cmd (c, c->ioas_id, base, 2 * pg, &len));
  EXPECT ("unmap-length", 0, len == 2 * pg ? 0 : -EINVAL);
  EXPECT ("unmap-again", ENOENT, unmap_cmd (c, c->ioas_id, base, 2 * pg, NULL));
  iova = 0;
  EXPECT ("map-auto-iova", 0, map_cmd (c, c->ioas_id, rw, buf, pg, &iova));
  EXPECT ("unmap-all", 0, unmap_cmd (c, c->ioas_id, 0, UINT64_MAX, &len));
  EXPECT ("unmap-all-length", 0, len == pg ? 0 : -EINVAL);
  EXPECT ("unmap-all-empty", 0, unmap_cmd (c, c->ioas_id, 0, UINT64_MAX, NULL));
  return 0;
}

static int
sc_map_unmap (Ctx *c)
{
  size_t pg = (size_t) sysconf (_SC_PAGESIZE);
  uint8_t *buf = mmap (NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  int r;

  if (buf == MAP_FAILED)
    return expect (c, "mmap", 0, -errno);
  memset (buf, 0x5a, 4 * pg);
  r = map_unmap_steps (c, buf, pg);
  munmap (buf, 4 * pg);
  return r;
}

/* ---- device scenarios ---------------------------------------------------------------- */

static int
sc_get_hw_info (Ctx *c)
{
  struct ifb_iommu_hw_info cmd = { .size = sizeof cmd, .dev_id = c->dev_id };
  IfbHwInfo info;

  EXPECT ("get", 0, ifb_uapi_get_hw_info (c->b, c->iommufd, c->dev_id, &info));
  EXPECT ("has-type", 0, info.type != IFB_IOMMU_TYPE_NONE ? 0 : -ENODATA);
  EXPECT ("no-data-buffer", 0, raw (c, IFB_IOMMU_GET_HW_INFO, &cmd));
  EXPECT ("data-len-reported", 0, cmd.data_len > 0 ? 0 : -ENODATA);
  cmd.flags = 1u << 31;
  EXPECT ("unknown-flag", EOPNOTSUPP, raw (c, IFB_IOMMU_GET_HW_INFO, &cmd));
  cmd.flags = 0;
  cmd.__reserved[0] = 1;
  EXPECT ("reserved", EOPNOTSUPP, raw (c, IFB_IOMMU_GET_HW_INFO, &cmd));
  EXPECT ("not-a-device", ENOENT, ifb_uapi_get_hw_info (c->b, c->iommufd, c->ioas_id, &info));
  return 0;
}

static int
hwpt_raw (Ctx *c, uint32_t flags, uint32_t dev, uint32_t pt, uint32_t dtype, void *data, uint32_t len,
          uint32_t *ret_id)
{
  struct ifb_iommu_hwpt_alloc cmd = {
    .size = sizeof cmd, .flags = flags, .dev_id = dev, .pt_id = pt,
    .data_type = dtype, .data_len = len, .data_uptr = (uintptr_t) data,
  };
  int r = raw (c, IFB_IOMMU_HWPT_ALLOC, &cmd);

  if (r == 0 && ret_id)
    *ret_id = cmd.out_hwpt_id;
  return r;
}

static int
sc_alloc_hwpt (Ctx *c)
{
  struct ifb_iommu_hwpt_alloc res = { .size = sizeof res, .dev_id = c->dev_id, .pt_id = c->ioas_id, .__reserved = 1 };
  uint32_t plain, hwpt, four = 4;

  EXPECT ("paging", 0, ifb_uapi_hwpt_alloc (c->b, c->iommufd, c->dev_id, c->ioas_id, 0, &plain));
  if (hwpt_raw (c, IFB_IOMMU_HWPT_ALLOC_NEST_PARENT, c->dev_id, c->ioas_id, 0, NULL, 0, &hwpt) == 0 ? !c->info.can_nest : c->info.can_nest)
    return expect (c, "nest-parent", c->info.can_nest ? 0 : EOPNOTSUPP, c->info.can_nest ? -EOPNOTSUPP : 0);
  if (c->info.can_nest)
    EXPECT ("destroy-nest-parent", 0, ifb_uapi_destroy (c->b, c->iommufd, hwpt));
  {
    int r = ifb_uapi_hwpt_alloc (c->b, c->iommufd, c->dev_id, c->ioas_id, IFB_HWPT_DIRTY_TRACKING, &hwpt);
    EXPECT ("dirty-tracking", c->info.dirty_tracking ? 0 : EOPNOTSUPP, r);
    if (r == 0)
      EXPECT ("destroy-dirty", 0, ifb_uapi_destroy (c->b, c->iommufd, hwpt));
  }
  EXPECT ("unknown-flag", EOPNOTSUPP, hwpt_raw (c, 1u << 31, c->dev_id, c->ioas_id, 0, NULL, 0, NULL));
  EXPECT ("nest-parent-with-fault", EOPNOTSUPP,
          hwpt_raw (c, IFB_IOMMU_HWPT_ALLOC_NEST_PARENT | IFB_IOMMU_HWPT_FAULT_ID_VALID, c->dev_id, c->ioas_id, 0, NULL, 0, NULL));
  EXPECT ("reserved", EOPNOTSUPP, raw (c, IFB_IOMMU_HWPT_ALLOC, &res));
  EXPECT ("data-none-with-len", EINVAL, hwpt_raw (c, 0, c->dev_id, c->ioas_id, IFB_IOMMU_HWPT_DATA_NONE, &four, 4, NULL));
  EXPECT ("dev-is-ioas", ENOENT, hwpt_raw (c, 0, c->ioas_id, c->ioas_id, 0, NULL, 0, NULL));
  EXPECT ("pt-is-device", EINVAL, hwpt_raw (c, 0, c->dev_id, c->dev_id, 0, NULL, 0, NULL));
  EXPECT ("pt-missing", EINVAL, hwpt_raw (c, 0, c->dev_id, 0xfffff, 0, NULL, 0, NULL));
  EXPECT ("destroy-paging", 0, ifb_uapi_destroy (c->b, c->iommufd, plain));
  return 0;
}

static int
sc_alloc_hwpt_nested (Ctx *c)
{
  uint64_t data[8] = { 0 };
  uint32_t plain, parent, child, dtype, dlen, viommu = 0;
  bool smmu = c->info.type == IFB_IOMMU_TYPE_ARM_SMMUV3;

  switch (c->info.type) {
  case IFB_IOMMU_TYPE_INTEL_VTD:
    dtype = IFB_IOMMU_HWPT_DATA_VTD_S1;
    dlen = sizeof (struct ifb_iommu_hwpt_vtd_s1);
    ((struct ifb_iommu_hwpt_vtd_s1 *) data)->addr_width = 48;
    break;
  case IFB_IOMMU_TYPE_ARM_SMMUV3:
    dtype = IFB_IOMMU_HWPT_DATA_ARM_SMMUV3;
    dlen = sizeof (struct ifb_iommu_hwpt_arm_smmuv3);
    data[0] = 1;
    break;
  default:
    dtype = IFB_IOMMU_HWPT_DATA_SELFTEST;
    dlen = sizeof (struct ifb_iommu_hwpt_selftest);
    ((struct ifb_iommu_hwpt_selftest *) data)->iotlb = IFB_IOMMU_TEST_IOTLB_DEFAULT;
    break;
  }

  EXPECT ("paging", 0, ifb_uapi_hwpt_alloc (c->b, c->iommufd, c->dev_id, c->ioas_id, 0, &plain));
  /* Arm SMMUv3 nests only through a vIOMMU: no nested domain straight on a HWPT. */
  EXPECT ("child-of-non-parent", smmu ? EOPNOTSUPP : EINVAL, hwpt_raw (c, 0, c->dev_id, plain, dtype, data, dlen, NULL));
  if (!c->info.can_nest) {
    EXPECT ("nest-parent", EOPNOTSUPP, ifb_uapi_hwpt_alloc (c->b, c->iommufd, c->dev_id, c->ioas_id, IFB_HWPT_NEST_PARENT, &parent));
    return 0;
  }
  EXPECT ("nest-parent", 0, ifb_uapi_hwpt_alloc (c->b, c->iommufd, c->dev_id, c->ioas_id, IFB_HWPT_NEST_PARENT, &parent));
  EXPECT ("data-none-with-len", EINVAL, hwpt_raw (c, 0, c->dev_id, parent, IFB_IOMMU_HWPT_DATA_NONE, data, dlen, NULL));
  if (smmu) {
    EXPECT ("child-of-hwpt", EOPNOTSUPP, hwpt_raw (c, 0, c->dev_id, parent, dtype, data, dlen, NULL));
    EXPECT ("viommu-on-plain", EINVAL, ifb_uapi_viommu_alloc (c->b, c->iommufd, c->dev_id, plain, IFB_VIOMMU_TYPE_ARM_SMMUV3, &viommu));
    EXPECT ("viommu", 0, ifb_uapi_viommu_alloc (c->b, c->iommufd, c->dev_id, parent, IFB_VIOMMU_TYPE_ARM_SMMUV3, &viommu));
  }
  /* VT-d and the mock test the data type themselves (EOPNOTSUPP); arm-smmu-v3 leaves it to
   * iommu_copy_struct_from_user(), which refuses a foreign type with EINVAL. */
  EXPECT ("unknown-data-type", smmu ? EINVAL : EOPNOTSUPP,
          hwpt_raw (c, 0, c->dev_id, smmu ? viommu : parent, 0xbad, data, dlen, NULL));
  EXPECT ("long-data", EINVAL, hwpt_raw (c, 0, c->dev_id, smmu ? viommu : parent, dtype, data, dlen + 8, NULL));
  EXPECT ("short-data", EINVAL, hwpt_raw (c, 0, c->dev_id, smmu ? viommu : parent, dtype, data, dlen - 1, NULL));
  EXPECT ("child-with-nest-parent-flag", EOPNOTSUPP,
          hwpt_raw (c, IFB_IOMMU_HWPT_ALLOC_NEST_PARENT, c->dev_id, smmu ? viommu : parent, dtype, data, dlen, NULL));
  EXPECT ("child", 0, ifb_uapi_hwpt_alloc_nested (c->b, c->iommufd, c->dev_id, smmu ? viommu : parent, &child));
  EXPECT ("child-of-child", EINVAL, hwpt_raw (c, 0, c->dev_id, child, dtype, data, dlen, NULL));
  EXPECT ("destroy-parent-busy", EBUSY, ifb_uapi_destroy (c->b, c->iommufd, parent));
  if (smmu)
    EXPECT ("destroy-viommu-busy", EBUSY, ifb_uapi_destroy (c->b, c->iommufd, viommu));
  EXPECT ("destroy-child", 0, ifb_uapi_destroy (c->b, c->iommufd, child));
  if (smmu)
    EXPECT ("destroy-viommu", 0, ifb_uapi_destroy (c->b, c->iommufd, viommu));
  EXPECT ("destroy-parent", 0, ifb_uapi_destroy (c->b, c->iommufd, parent));
  EXPECT ("destroy-paging", 0, ifb_uapi_destroy (c->b, c->iommufd, plain));
  return 0;
}

/* ---- what nests through a vIOMMU (the selftests' iommufd_viommu fixture) --------------- */

static int
viommu_raw (Ctx *c, uint32_t flags, uint32_t type, uint32_t dev, uint32_t hwpt, uint32_t *ret_id)
{
  struct ifb_iommu_viommu_alloc cmd = { .size = sizeof cmd, .flags = flags, .type = type, .dev_id = dev, .hwpt_id = hwpt };
  int r = raw (c, IFB_IOMMU_VIOMMU_ALLOC, &cmd);

  if (r == 0 && ret_id)
    *ret_id = cmd.out_viommu_id;
  return r;
}

static int
veventq_raw (Ctx *c, uint32_t flags, uint32_t viommu, uint32_t type, uint32_t depth, uint32_t *ret_id, int *ret_fd)
{
  struct ifb_iommu_veventq_alloc cmd = {
    .size = sizeof cmd, .flags = flags, .viommu_id = viommu, .type = type, .veventq_depth = depth,
  };
  int r = raw (c, IFB_IOMMU_VEVENTQ_ALLOC, &cmd);

  if (r == 0) {
    if (ret_id)
      *ret_id = cmd.out_veventq_id;
    if (ret_fd)
      *ret_fd = (int) cmd.out_veventq_fd;
    else
      close ((int) cmd.out_veventq_fd);
  }
  return r;
}

/*
 * The vIOMMU of this device's type on a fresh NEST_PARENT: *ret_viommu stays 0 when the device's
 * IOMMU has none (the expectations say so then) or the kernel lacks the ioctl (c->skipped).
 * Whether an Arm SMMUv3 offers one GET_HW_INFO cannot tell (the coherent root complex is the
 * firmware's to say; IDR3.FWB is in the registers): EOPNOTSUPP there is a skip naming why.
 */
static int
viommu_setup (Ctx *c, uint32_t *ret_parent, uint32_t *ret_viommu)
{
  IfbViommuType type = ifb_viommu_type_for_iommu (c->info.type);
  bool known = type != IFB_VIOMMU_TYPE_INVALID &&
               (c->info.type != IFB_IOMMU_TYPE_ARM_SMMUV3 || (c->info.raw.smmuv3.idr[3] & IFB_SMMU_IDR3_FWB));
  int r;

  *ret_parent = *ret_viommu = 0;
  r = viommu_raw (c, 0, IFB_IOMMU_VIOMMU_TYPE_DEFAULT, c->dev_id, 0, NULL);
  if (r == -ENOTTY) {
    snprintf (c->skipped, sizeof c->skipped, "ENOTTY: ioctl not implemented by this kernel");
    return 0;
  }
  EXPECT ("viommu-type-default", EOPNOTSUPP, r);
  if (!c->info.can_nest) {
    EXPECT ("viommu-no-nesting", EOPNOTSUPP,
            ifb_uapi_viommu_alloc (c->b, c->iommufd, c->dev_id, c->ioas_id, IFB_VIOMMU_TYPE_ARM_SMMUV3, ret_viommu));
    return 0;
  }
  EXPECT ("nest-parent", 0, ifb_uapi_hwpt_alloc (c->b, c->iommufd, c->dev_id, c->ioas_id, IFB_HWPT_NEST_PARENT, ret_parent));
  if (type == IFB_VIOMMU_TYPE_INVALID) {
    /* Intel VT-d: no vIOMMU object at all, of any type. */
    EXPECT ("viommu-none-on-this-iommu", EOPNOTSUPP,
            ifb_uapi_viommu_alloc (c->b, c->iommufd, c->dev_id, *ret_parent, IFB_VIOMMU_TYPE_ARM_SMMUV3, ret_viommu));
    return 0;
  }
  r = ifb_uapi_viommu_alloc (c->b, c->iommufd, c->dev_id, *ret_parent, type, ret_viommu);
  if (r == -EOPNOTSUPP && !known) {
    snprintf (c->skipped, sizeof c->skipped, "EOPNOTSUPP: no coherent root complex (CANWBS) and no S2FWB");
    *ret_viommu = 0;
    return 0;
  }
  EXPECT ("viommu", 0, r);
  return 0;
}

static int
viommu_teardown (Ctx *c, uint32_t parent, uint32_t viommu)
{
  if (viommu)
    EXPECT ("destroy-viommu", 0, ifb_uapi_destroy (c->b, c->iommufd, viommu));
  if (parent)
    EXPECT ("destroy-parent", 0, ifb_uapi_destroy (c->b, c->iommufd, parent));
  return 0;
}

/* IOMMU_VIOMMU_ALLOC: the command, the device, the type its IOMMU offers, then the HWPT, which
 * must be a NEST_PARENT; the parent is busy while the vIOMMU lives. */
static int
sc_viommu (Ctx *c)
{
  IfbViommuType type = ifb_viommu_type_for_iommu (c->info.type);
  uint32_t parent, viommu, plain;

  if (viommu_setup (c, &parent, &viommu) < 0)
    return -1;
  if (!viommu)
    return viommu_teardown (c, parent, 0);
  EXPECT ("flags", EOPNOTSUPP, viommu_raw (c, 1, IFB_IOMMU_VIOMMU_TYPE_ARM_SMMUV3, c->dev_id, parent, NULL));
  EXPECT ("dev-is-hwpt", ENOENT, ifb_uapi_viommu_alloc (c->b, c->iommufd, parent, parent, type, &plain));
  EXPECT ("hwpt-is-ioas", ENOENT, ifb_uapi_viommu_alloc (c->b, c->iommufd, c->dev_id, c->ioas_id, type, &plain));
  EXPECT ("paging", 0, ifb_uapi_hwpt_alloc (c->b, c->iommufd, c->dev_id, c->ioas_id, 0, &plain));
  EXPECT ("on-non-parent", EINVAL, ifb_uapi_viommu_alloc (c->b, c->iommufd, c->dev_id, plain, type, &viommu));
  EXPECT ("destroy-paging", 0, ifb_uapi_destroy (c->b, c->iommufd, plain));
  EXPECT ("destroy-parent-busy", EBUSY, ifb_uapi_destroy (c->b, c->iommufd, parent));
  return viommu_teardown (c, parent, viommu);
}

/* IOMMU_VDEVICE_ALLOC: one vDEVICE per device; the vIOMMU is busy while one lives, and its
 * virtual id is free again once it is destroyed. */
static int
sc_vdevice (Ctx *c)
{
  uint32_t parent, viommu, vdev, other;

  if (viommu_setup (c, &parent, &viommu) < 0)
    return -1;
  if (!viommu)
    return viommu_teardown (c, parent, 0);
  EXPECT ("no-viommu", ENOENT, ifb_uapi_vdevice_alloc (c->b, c->iommufd, parent, c->dev_id, 0x99, &vdev));
  EXPECT ("dev-is-viommu", ENOENT, ifb_uapi_vdevice_alloc (c->b, c->iommufd, viommu, viommu, 0x99, &vdev));
  EXPECT ("vdevice", 0, ifb_uapi_vdevice_alloc (c->b, c->iommufd, viommu, c->dev_id, 0x99, &vdev));
  EXPECT ("same-device-again", EEXIST, ifb_uapi_vdevice_alloc (c->b, c->iommufd, viommu, c->dev_id, 0x88, &other));
  EXPECT ("destroy-viommu-busy", EBUSY, ifb_uapi_destroy (c->b, c->iommufd, viommu));
  EXPECT ("destroy-parent-busy", EBUSY, ifb_uapi_destroy (c->b, c->iommufd, parent));
  EXPECT ("destroy-vdevice", 0, ifb_uapi_destroy (c->b, c->iommufd, vdev));
  EXPECT ("virt-id-free-again", 0, ifb_uapi_vdevice_alloc (c->b, c->iommufd, viommu, c->dev_id, 0x99, &vdev));
  EXPECT ("destroy-vdevice-again", 0, ifb_uapi_destroy (c->b, c->iommufd, vdev));
  return viommu_teardown (c, parent, viommu);
}

/* IOMMU_VEVENTQ_ALLOC: one per type per vIOMMU, which it keeps busy; an empty queue reads 0. */
static int
sc_veventq (Ctx *c)
{
  IfbViommuType type = ifb_viommu_type_for_iommu (c->info.type);
  uint32_t parent, viommu, q, q2;
  uint8_t buf[64];
  int fd = -1, fd2 = -1, r;

  if (viommu_setup (c, &parent, &viommu) < 0)
    return -1;
  if (!viommu)
    return viommu_teardown (c, parent, 0);
  r = veventq_raw (c, 0, viommu, IFB_IOMMU_VEVENTQ_TYPE_DEFAULT, 8, NULL, NULL);
  if (r == -ENOTTY) {
    snprintf (c->skipped, sizeof c->skipped, "ENOTTY: IOMMU_VEVENTQ_ALLOC not implemented by this kernel");
    return viommu_teardown (c, parent, viommu);
  }
  EXPECT ("type-default", EOPNOTSUPP, r);
  EXPECT ("depth-0", EINVAL, ifb_uapi_veventq_alloc (c->b, c->iommufd, viommu, type, 0, &q, &fd));
  EXPECT ("no-viommu", ENOENT, ifb_uapi_veventq_alloc (c->b, c->iommufd, parent, type, 8, &q, &fd));
  EXPECT ("veventq", 0, ifb_uapi_veventq_alloc (c->b, c->iommufd, viommu, type, 8, &q, &fd));
  r = expect (c, "same-type-again", EEXIST, ifb_uapi_veventq_alloc (c->b, c->iommufd, viommu, type, 8, &q2, &fd2));
  if (fd2 >= 0)
    close (fd2);
  if (r == 0)
    r = expect (c, "read-empty", 0, read (fd, buf, sizeof buf) == 0 ? 0 : -EIO);
  if (r == 0)
    r = expect (c, "destroy-viommu-busy", EBUSY, ifb_uapi_destroy (c->b, c->iommufd, viommu));
  close (fd);
  if (r < 0)
    return r;
  EXPECT ("destroy-veventq", 0, ifb_uapi_destroy (c->b, c->iommufd, q));
  return viommu_teardown (c, parent, viommu);
}

/* An IOAS cannot be destroyed while a HWPT or an attached device uses it. */
static int
sc_ioas_destroy_busy (Ctx *c)
{
  uint32_t hwpt;

  if (c->mock) {
    EXPECT ("mock-attached", EBUSY, ifb_uapi_destroy (c->b, c->iommufd, c->ioas_id));
    EXPECT ("destroy-mock", 0, ifb_uapi_destroy (c->b, c->iommufd, c->stdev_id));
    EXPECT ("destroy", 0, ifb_uapi_destroy (c->b, c->iommufd, c->ioas_id));
    return 0;
  }
  EXPECT ("hwpt", 0, ifb_uapi_hwpt_alloc (c->b, c->iommufd, c->dev_id, c->ioas_id, 0, &hwpt));
  EXPECT ("with-hwpt", EBUSY, ifb_uapi_destroy (c->b, c->iommufd, c->ioas_id));
  EXPECT ("destroy-hwpt", 0, ifb_uapi_destroy (c->b, c->iommufd, hwpt));
  EXPECT ("attach-ioas", 0, ifb_uapi_device_attach (c->b, c->devfd, c->ioas_id));
  EXPECT ("with-device", EBUSY, ifb_uapi_destroy (c->b, c->iommufd, c->ioas_id));
  EXPECT ("detach", 0, ifb_uapi_device_detach (c->b, c->devfd));
  EXPECT ("destroy", 0, ifb_uapi_destroy (c->b, c->iommufd, c->ioas_id));
  return 0;
}

static int
sc_device_destroy (Ctx *c)
{
  EXPECT ("bound-device", EBUSY, ifb_uapi_destroy (c->b, c->iommufd, c->dev_id));
  return 0;
}

/* A device binds once: neither the same open file nor another one may bind it again. */
static int
sc_bind_once (Ctx *c)
{
  uint32_t id;
  int fd2, r;

  EXPECT ("same-fd-again", EINVAL, ifb_uapi_device_bind (c->b, c->devfd, c->iommufd, &id));
  EXPECT ("open-second", 0, ifb_uapi_open_device (c->b, c->env->dev_dirfd, c->cdev, &fd2));
  r = ifb_uapi_device_bind (c->b, fd2, c->iommufd, &id);
  if (expect (c, "second-file", EINVAL, r) < 0)
    goto out;
  close (c->devfd);
  c->devfd = -1;
  r = expect (c, "after-close", 0, ifb_uapi_device_bind (c->b, fd2, c->iommufd, &id));
  if (r == 0)
    r = expect (c, "device-busy", EBUSY, ifb_uapi_destroy (c->b, c->iommufd, id));
out:
  close (fd2);
  return c->failure[0] ? -1 : 0;
}

static int
sc_attach_detach (Ctx *c)
{
  struct ifb_vfio_device_attach_iommufd_pt bad = { .argsz = sizeof bad - 4, .flags = 1u << 5 };
  uint32_t hwpt;

  EXPECT ("attach-missing", ENOENT, ifb_uapi_device_attach (c->b, c->devfd, 0xfffff));
  EXPECT ("attach-unknown-flag", EINVAL, ifb_uapi_ioctl (c->b, c->devfd, IFB_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &bad));
  bad.flags = 0;
  bad.argsz = 8;
  EXPECT ("attach-short", EINVAL, ifb_uapi_ioctl (c->b, c->devfd, IFB_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &bad));
  EXPECT ("hwpt", 0, ifb_uapi_hwpt_alloc (c->b, c->iommufd, c->dev_id, c->ioas_id, 0, &hwpt));
  EXPECT ("attach-hwpt", 0, ifb_uapi_device_attach (c->b, c->devfd, hwpt));
  EXPECT ("hwpt-busy", EBUSY, ifb_uapi_destroy (c->b, c->iommufd, hwpt));
  EXPECT ("replace-with-ioas", 0, ifb_uapi_device_attach (c->b, c->devfd, c->ioas_id));
  EXPECT ("destroy-hwpt", 0, ifb_uapi_destroy (c->b, c->iommufd, hwpt));
  EXPECT ("detach", 0, ifb_uapi_device_detach (c->b, c->devfd));
  EXPECT ("detach-again", 0, ifb_uapi_device_detach (c->b, c->devfd));
  return 0;
}

/* Closing the device fd unbinds it, releasing what it was attached to. */
static int
sc_unbind_on_close (Ctx *c)
{
  IfbHwInfo info;
  uint32_t hwpt;

  EXPECT ("hwpt", 0, ifb_uapi_hwpt_alloc (c->b, c->iommufd, c->dev_id, c->ioas_id, 0, &hwpt));
  EXPECT ("attach", 0, ifb_uapi_device_attach (c->b, c->devfd, hwpt));
  EXPECT ("hwpt-busy", EBUSY, ifb_uapi_destroy (c->b, c->iommufd, hwpt));
  close (c->devfd);
  c->devfd = -1;
  EXPECT ("device-gone", ENOENT, ifb_uapi_get_hw_info (c->b, c->iommufd, c->dev_id, &info));
  EXPECT ("destroy-hwpt", 0, ifb_uapi_destroy (c->b, c->iommufd, hwpt));
  EXPECT ("destroy-ioas", 0, ifb_uapi_destroy (c->b, c->iommufd, c->ioas_id));
  return 0;
}

static const Scenario scenarios[] = {
  { "cmd_fail", NEEDS_NONE, sc_cmd_fail },
  { "cmd_length.destroy", NEEDS_NONE, sc_len_destroy },
  { "cmd_length.ioas_alloc", NEEDS_NONE, sc_len_ioas_alloc },
  { "cmd_length.ioas_map", NEEDS_NONE, sc_len_ioas_map },
  { "cmd_length.ioas_unmap", NEEDS_NONE, sc_len_ioas_unmap },
  { "cmd_length.option", NEEDS_NONE, sc_len_option },
  { "cmd_length.hwpt_alloc", NEEDS_NONE, sc_len_hwpt_alloc },
  { "cmd_length.get_hw_info", NEEDS_NONE, sc_len_get_hw_info },
  { "cmd_length.viommu_alloc", NEEDS_NONE, sc_len_viommu_alloc },
  { "cmd_length.vdevice_alloc", NEEDS_NONE, sc_len_vdevice_alloc },
  { "cmd_length.veventq_alloc", NEEDS_NONE, sc_len_veventq_alloc },
  { "global_options", NEEDS_EMPTY, sc_global_options },
  { "rlimit_mode_busy", NEEDS_EMPTY, sc_rlimit_busy },
  { "ioas_destroy", NEEDS_NONE, sc_ioas_destroy },
  { "map_unmap", NEEDS_NONE, sc_map_unmap },
  { "get_hw_info", NEEDS_DEVICE, sc_get_hw_info },
  { "alloc_hwpt", NEEDS_DEVICE, sc_alloc_hwpt },
  { "alloc_hwpt_nested", NEEDS_DEVICE, sc_alloc_hwpt_nested },
  { "viommu", NEEDS_DEVICE, sc_viommu },
  { "vdevice_alloc", NEEDS_DEVICE, sc_vdevice },
  { "veventq_alloc", NEEDS_DEVICE, sc_veventq },
  { "ioas_destroy_busy", NEEDS_DEVICE, sc_ioas_destroy_busy },
  { "device_destroy", NEEDS_DEVICE, sc_device_destroy },
  { "bind_once", NEEDS_VFIO, sc_bind_once },
  { "attach_detach", NEEDS_VFIO, sc_attach_detach },
  { "unbind_on_close", NEEDS_VFIO, sc_unbind_on_close },
};

/* ---- runner -------------------------------------------------------------------------- */

static void
ctx_teardown (Ctx *c)
{
  if (c->devfd >= 0)
    close (c->devfd);
  if (c->iommufd >= 0)
    close (c->iommufd);
  c->devfd = c->iommufd = -1;
}

static int
ctx_setup (Ctx *c, int needs)
{
  int r;

  c->devfd = c->iommufd = -1;
  c->failure[0] = c->skipped[0] = '\0';
  r = ifb_uapi_open_iommufd (c->b, c->env->dev_dirfd, &c->iommufd);
  if (r < 0)
    return expect (c, "setup-open-iommufd", 0, r);
  if (needs == NEEDS_EMPTY)
    return 0;
  r = ifb_uapi_ioas_alloc (c->b, c->iommufd, &c->ioas_id);
  if (r < 0)
    return expect (c, "setup-ioas", 0, r);
  if (needs == NEEDS_NONE)
    return 0;
  if (c->mock) {
    r = ifb_uapi_mock_domain (c->b, c->iommufd, c->ioas_id, &c->stdev_id, NULL, &c->dev_id);
    return expect (c, "setup-mock-domain", 0, r);
  }
  r = ifb_uapi_open_device (c->b, c->env->dev_dirfd, c->cdev, &c->devfd);
  if (r < 0)
    return expect (c, "setup-open-device", 0, r);
  r = ifb_uapi_device_bind (c->b, c->devfd, c->iommufd, &c->dev_id);
  return expect (c, "setup-bind", 0, r);
}

static bool
selected (const IfbScenarioEnv *env, const char *name)
{
  return !env->only || strncmp (name, env->only, strlen (env->only)) == 0;
}

static unsigned
run_one (const IfbScenarioEnv *env, Ctx *proto, const Scenario *s, const char *label, FILE *out)
{
  Ctx c = *proto;
  bool failed;

  if (ctx_setup (&c, s->needs) == 0)
    s->run (&c);
  ctx_teardown (&c);
  failed = c.failure[0] != '\0';
  if (failed)
    fprintf (out, "scenario %s%s: %s\n", s->name, label, c.failure);
  else if (c.skipped[0])
    fprintf (out, "scenario %s%s: skipped (%s)\n", s->name, label, c.skipped);
  else
    fprintf (out, "scenario %s%s: ok\n", s->name, label);
  fflush (out);
  return failed;
}

/* What the device under test reports, to parameterise expectations and name its lines. */
static int
probe_device (Ctx *c, char *label, size_t n)
{
  int r;

  if (ctx_setup (c, NEEDS_DEVICE) < 0) {
    ctx_teardown (c);
    return -1;
  }
  r = ifb_uapi_get_hw_info (c->b, c->iommufd, c->dev_id, &c->info);
  ctx_teardown (c);
  if (expect (c, "probe-get-hw-info", 0, r) < 0)
    return -1;
  snprintf (label, n, "@%s%s", ifb_iommu_type_to_string (c->info.type), c->info.can_nest ? "+nest" : "");
  return 0;
}

unsigned
ifb_scenarios_run (const IfbScenarioEnv *env, FILE *out)
{
  unsigned failed = 0;
  Ctx base = { .env = env, .b = env->backend, .devfd = -1, .iommufd = -1 };
  size_t n_dut = env->n_cdevs + (env->mock ? 1 : 0);

  for (size_t i = 0; i < G_N_ELEMENTS (scenarios); i++)
    if ((scenarios[i].needs == NEEDS_NONE || scenarios[i].needs == NEEDS_EMPTY) && selected (env, scenarios[i].name))
      failed += run_one (env, &base, &scenarios[i], "", out);

  for (size_t d = 0; d < n_dut; d++) {
    Ctx dut = base;
    char label[64];

    dut.mock = d == env->n_cdevs;
    dut.cdev = dut.mock ? NULL : env->cdevs[d];
    if (probe_device (&dut, label, sizeof label) < 0) {
      fprintf (out, "scenario probe@%s: %s\n", dut.mock ? "mock" : dut.cdev, dut.failure);
      failed++;
      continue;
    }
    for (size_t i = 0; i < G_N_ELEMENTS (scenarios); i++) {
      const Scenario *s = &scenarios[i];
      if (s->needs == NEEDS_NONE || s->needs == NEEDS_EMPTY || !selected (env, s->name))
        continue;
      if (s->needs == NEEDS_VFIO && dut.mock)
        continue;
      failed += run_one (env, &dut, s, label, out);
    }
  }
  return failed;
}
