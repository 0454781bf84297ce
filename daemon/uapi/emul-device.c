/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The emulator's device files: the profile at the start of an emulated device cdev, the OFD bind
 * lock and bind record (see "Devices" in emul.c), and opening a device.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "emul-device.h"
#include "hw-info.h"
#include "iommufd-defs.h"

/* ---- small async-signal-safe helpers ------------------------------------------------- */

static char *
emul_utoa (unsigned v, char *end)
{
  *--end = '\0';
  do {
    *--end = (char) ('0' + v % 10);
    v /= 10;
  } while (v);
  return end;
}

/* "/proc/self/fd/<fd>" into buf (>= 32 bytes). */
const char *
emul_proc_fd_path (int fd, char *buf)
{
  char num[16];
  const char *n = emul_utoa ((unsigned) fd, num + sizeof num);
  strcpy (buf, "/proc/self/fd/");
  strcat (buf, n);
  return buf;
}

static uint64_t
emul_parse_u64 (const char *s)
{
  uint64_t v = 0;
  int base = 10;

  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s += 2;
  }
  for (; *s; s++) {
    int d;
    if (*s >= '0' && *s <= '9')
      d = *s - '0';
    else if (base == 16 && *s >= 'a' && *s <= 'f')
      d = *s - 'a' + 10;
    else if (base == 16 && *s >= 'A' && *s <= 'F')
      d = *s - 'A' + 10;
    else
      break;
    v = v * (uint64_t) base + (uint64_t) d;
  }
  return v;
}

/* ---- device files -------------------------------------------------------------------- */

#define IFB_EMUL_PROFILE_HEADER "ifb-emulated-device 1\n"

int
emul_read_profile (int fd, EmulProfile *p)
{
  char buf[IFB_EMUL_PROFILE_MAX];
  ssize_t n;

  n = pread (fd, buf, sizeof buf - 1, 0);
  if (n < 0)
    return -errno;
  buf[n] = '\0';
  if (strncmp (buf, IFB_EMUL_PROFILE_HEADER, strlen (IFB_EMUL_PROFILE_HEADER)) != 0)
    return -ENODEV;
  memset (p, 0, sizeof *p);
  for (char *line = buf; line && *line;) {
    char *nl = strchr (line, '\n');
    char *eq;
    if (nl)
      *nl = '\0';
    eq = strchr (line, '=');
    if (eq && line[0] != '#') {
      const char *k = line, *v = eq + 1;
      *eq = '\0';
      if (strcmp (k, "iommu") == 0)
        p->iommu_type = (uint32_t) ifb_iommu_type_from_string (v);
      else if (strcmp (k, "cap") == 0)
        p->cap_reg = emul_parse_u64 (v);
      else if (strcmp (k, "ecap") == 0)
        p->ecap_reg = emul_parse_u64 (v);
      else if (strncmp (k, "idr", 3) == 0 && k[3] >= '0' && k[3] <= '5' && !k[4])
        p->idr[k[3] - '0'] = (uint32_t) emul_parse_u64 (v);
      else if (strcmp (k, "iidr") == 0)
        p->iidr = (uint32_t) emul_parse_u64 (v);
      else if (strcmp (k, "aidr") == 0)
        p->aidr = (uint32_t) emul_parse_u64 (v);
      else if (strcmp (k, "canwbs") == 0)
        p->canwbs = emul_parse_u64 (v) != 0;
      else if (strcmp (k, "rdev") == 0 && strchr (v, ':')) {
        p->rdev_major = (uint32_t) emul_parse_u64 (v);
        p->rdev_minor = (uint32_t) emul_parse_u64 (strchr (v, ':') + 1);
        p->has_rdev = true;
      }
    }
    line = nl ? nl + 1 : NULL;
  }
  /* iommu=selftest: a cdev whose IOMMU behaves as the kernel's IOMMUFD_TEST mock driver does,
   * so the emulator can answer the scenarios the kernel tier runs on the mock */
  if (p->iommu_type != IFB_IOMMU_TYPE_INTEL_VTD && p->iommu_type != IFB_IOMMU_TYPE_ARM_SMMUV3 &&
      p->iommu_type != IFB_IOMMU_TYPE_SELFTEST)
    return -ENODEV;
  return 0;
}

static unsigned reset_ms;

void
emul_set_reset_ms (unsigned ms)
{
  reset_ms = ms;
}

/* What vfio-pci's reset costs the process binding or releasing a device. */
void
emul_device_reset_delay (void)
{
  struct timespec ts = { .tv_sec = reset_ms / 1000, .tv_nsec = (long) (reset_ms % 1000) * 1000000L };
  if (reset_ms)
    while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
      ;
}

/* Closing a device fd that holds the bind (no other open file shares it): the kernel releases
 * the device then, and vfio-pci resets it in the closing process. */
void
emul_device_close (int device_fd)
{
  if (emul_is_device_fd (device_fd) && emul_device_bind_state (device_fd) == 1)
    emul_device_reset_delay ();
  close (device_fd);
}

/* What fstat's st_rdev is on a real cdev: the profile's rdev=MAJ:MIN. */
int
emul_device_rdev (int device_fd, uint64_t *ret_rdev)
{
  EmulProfile p;
  int r;

  if (!emul_is_device_fd (device_fd))
    return -ENODEV;
  if ((r = emul_read_profile (device_fd, &p)) < 0)
    return r;
  if (!p.has_rdev)
    return -ENODEV;
  *ret_rdev = (uint64_t) makedev (p.rdev_major, p.rdev_minor);
  return 0;
}

bool
emul_is_device_fd (int fd)
{
  char buf[sizeof IFB_EMUL_PROFILE_HEADER];
  struct stat st;
  ssize_t n;

  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
    return false;
  n = pread (fd, buf, sizeof buf - 1, 0);
  return n == (ssize_t) (sizeof buf - 1) && memcmp (buf, IFB_EMUL_PROFILE_HEADER, sizeof buf - 1) == 0;
}

void
emul_lock_init (struct flock *fl, short type)
{
  memset (fl, 0, sizeof *fl);
  fl->l_type = type;
  fl->l_whence = SEEK_SET;
  fl->l_start = IFB_EMUL_BIND_OFFSET;
  fl->l_len = sizeof (EmulBindRecord);
}

/* Is the bind lock of the device file held by anybody? Checked through a fresh open file. */
int
emul_lock_held_path (const char *path, EmulBindRecord *ret_rec, struct stat *ret_st)
{
  struct flock fl;
  int fd, r = 0;

  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  if (ret_st && fstat (fd, ret_st) < 0)
    r = -errno;
  if (r == 0 && ret_rec && pread (fd, ret_rec, sizeof *ret_rec, IFB_EMUL_BIND_OFFSET) != sizeof *ret_rec)
    memset (ret_rec, 0, sizeof *ret_rec);
  emul_lock_init (&fl, F_WRLCK);
  if (r == 0 && fcntl (fd, F_OFD_GETLK, &fl) < 0)
    r = -errno;
  if (r == 0)
    r = fl.l_type != F_UNLCK;
  close (fd);
  return r;
}

/* 1 = this open file holds the bind, 0 = nobody does, 2 = another open file does. */
int
emul_device_bind_state (int fd)
{
  char path[32];
  struct flock fl;
  int held;

  emul_lock_init (&fl, F_WRLCK);
  if (fcntl (fd, F_OFD_GETLK, &fl) < 0)
    return -errno;
  if (fl.l_type != F_UNLCK)
    return 2;
  held = emul_lock_held_path (emul_proc_fd_path (fd, path), NULL, NULL);
  if (held < 0)
    return held;
  return held ? 1 : 0;
}

int
emul_open_device (int dev_dirfd, const char *cdev_name, int *ret_fd)
{
  char path[64];
  int fd;

  if (!ifb_uapi_cdev_name_valid (cdev_name))
    return -EINVAL;
  strcpy (path, "vfio/devices/");
  strcat (path, cdev_name);
  fd = openat (dev_dirfd, path, O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  if (!emul_is_device_fd (fd)) {
    close (fd);
    return -ENODEV;
  }
  *ret_fd = fd;
  return 0;
}

/* What a bound device's profile registers allow, read as the typed layer reads them. */
bool
emul_dev_can_nest (const EmulDevice *d)
{
  if (d->iommu_type == IFB_IOMMU_TYPE_SELFTEST)   /* the mock nests, on a HWPT and through a vIOMMU */
    return true;
  if (d->iommu_type == IFB_IOMMU_TYPE_INTEL_VTD)
    return ifb_uapi_vtd_can_nest (d->ecap_reg);
  return ifb_uapi_smmuv3_can_nest (d->idr);
}

/*
 * Does the driver behind d offer a vIOMMU of this IOMMU_VIOMMU_ALLOC type (its get_viommu_size)?
 * Intel VT-d has no vIOMMU object at all (it nests HWPT on HWPT). arm-smmu-v3 offers
 * ARM_SMMUV3 when it can nest (S1P and S2P) and the guest cannot bypass the cache: the root
 * complex is coherent (IORT's CANWBS, which only firmware says: the profile key canwbs=1) or
 * the SMMU forces write-back at stage 2 (IDR3.FWB). TEGRA241_CMDQV needs NVIDIA's extension,
 * which no emulated SMMU has. The selftest mock offers its own type only.
 */
bool
emul_dev_viommu_type (const EmulDevice *d, uint32_t type)
{
  if (d->iommu_type == IFB_IOMMU_TYPE_SELFTEST)
    return type == IFB_IOMMU_VIOMMU_TYPE_SELFTEST;
  if (d->iommu_type != IFB_IOMMU_TYPE_ARM_SMMUV3 || type != IFB_IOMMU_VIOMMU_TYPE_ARM_SMMUV3)
    return false;
  if (!ifb_uapi_smmuv3_can_nest (d->idr))
    return false;
  return (d->features & EMUL_DEV_CANWBS) || (d->idr[3] & IFB_SMMU_IDR3_FWB);
}

bool
emul_dev_dirty (const EmulDevice *d)
{
  if (d->iommu_type == IFB_IOMMU_TYPE_SELFTEST)   /* the mock tracks dirty pages (no NO_DIRTY flag) */
    return true;
  if (d->iommu_type == IFB_IOMMU_TYPE_INTEL_VTD)
    return ifb_uapi_vtd_dirty (d->ecap_reg);
  return ifb_uapi_smmuv3_dirty (d->idr);
}
