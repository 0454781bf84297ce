/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PCI device discovery.
 *
 * Reads, relative to a sysfs root fd (openat/readlinkat only, no absolute paths):
 *   bus/pci/devices/<BDF>/vendor, device      "0x15b3\n"
 *   bus/pci/devices/<BDF>/driver              symlink, basename = driver name (absent: unbound)
 *   bus/pci/devices/<BDF>/iommu_group         symlink, basename = group number (absent: none)
 *   bus/pci/devices/<BDF>/vfio-dev/vfioN      the VFIO cdev name (only while bound to vfio-pci)
 * so the same code serves the real /sys (where <BDF> is itself a symlink into devices/) and the
 * emulated fixture. The BDF given to lookup is validated before it reaches any path.
 */
#define G_LOG_DOMAIN "ifb-pci"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <stdio.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "errors.h"
#include "util.h"
#include "pci-device.h"

struct _IfbPciDevice {
  char *bdf;
  char *driver;
  char *vfio_cdev;
  guint64 vfio_rdev;
  int iommu_group;
  guint16 vendor;
  guint16 device;
};

IfbPciDevice *
ifb_pci_device_free (IfbPciDevice *dev)
{
  if (!dev)
    return NULL;
  g_free (dev->bdf);
  g_free (dev->driver);
  g_free (dev->vfio_cdev);
  g_free (dev);
  return NULL;
}

const char *ifb_pci_device_get_bdf (const IfbPciDevice *dev) { return dev->bdf; }
const char *ifb_pci_device_get_driver (const IfbPciDevice *dev) { return dev->driver; }
const char *ifb_pci_device_get_vfio_cdev (const IfbPciDevice *dev) { return dev->vfio_cdev; }
guint64 ifb_pci_device_get_vfio_rdev (const IfbPciDevice *dev) { return dev->vfio_rdev; }
int ifb_pci_device_get_iommu_group (const IfbPciDevice *dev) { return dev->iommu_group; }
guint16 ifb_pci_device_get_vendor (const IfbPciDevice *dev) { return dev->vendor; }
guint16 ifb_pci_device_get_device (const IfbPciDevice *dev) { return dev->device; }

gboolean
ifb_pci_device_is_vfio (const IfbPciDevice *dev)
{
  return g_strcmp0 (dev->driver, "vfio-pci") == 0 && dev->vfio_cdev != NULL;
}

gboolean
ifb_pci_bdf_is_valid (const char *bdf)
{
  /* domain:bus:slot.func = 4:2:2.1 hex digits; slot <= 0x1f, func <= 7 */
  static const char pattern[] = "xxxx:xx:xx.x";

  if (!bdf || strlen (bdf) != sizeof pattern - 1)
    return FALSE;
  for (size_t i = 0; pattern[i]; i++) {
    if (pattern[i] == 'x') {
      if (!g_ascii_isxdigit (bdf[i]) || g_ascii_isupper (bdf[i]))
        return FALSE;
    } else if (bdf[i] != pattern[i]) {
      return FALSE;
    }
  }
  return g_ascii_xdigit_value (bdf[8]) <= 1 && bdf[11] <= '7';
}

/* Whether an open failed because the daemon or the host ran out of fds (or memory): then a
 * missing attribute says nothing about the device, and the read as a whole fails. */
static void
note_exhaustion (int *ret_err)
{
  if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
    *ret_err = -errno;
}

/* Basename of a symlink's target, NULL if there is no such link. */
static char *
read_link_basename (int dirfd, const char *name)
{
  char buf[PATH_MAX];
  ssize_t n = readlinkat (dirfd, name, buf, sizeof buf - 1);

  if (n <= 0)
    return NULL;
  buf[n] = '\0';
  return g_path_get_basename (buf);
}

static guint16
read_hex_attr (int dirfd, const char *name, int *ret_err)
{
  char buf[32];
  ifb_autofd int fd = openat (dirfd, name, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  if (fd < 0) {
    note_exhaustion (ret_err);
    return 0;
  }
  n = read (fd, buf, sizeof buf - 1);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  return (guint16) g_ascii_strtoull (buf, NULL, 16);
}

static char *
find_vfio_cdev (int devfd, int *ret_err)
{
  ifb_autofd int fd = openat (devfd, "vfio-dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct dirent *de;
  char *found = NULL;
  DIR *d;

  if (fd < 0) {
    note_exhaustion (ret_err);
    return NULL;
  }
  d = fdopendir (fd);
  if (!d) {
    note_exhaustion (ret_err);
    return NULL;
  }
  fd = -1;                      /* owned by d now */
  while ((de = readdir (d)))
    if (g_str_has_prefix (de->d_name, "vfio") && de->d_name[4] && strspn (de->d_name + 4, "0123456789") == strlen (de->d_name + 4)) {
      found = g_strdup (de->d_name);
      break;
    }
  closedir (d);
  return found;
}

/* vfio-dev/<cdev>/dev: "MAJ:MIN\n" -> makedev(), 0 when absent or malformed. */
static guint64
read_cdev_rdev (int devfd, const char *cdev, int *ret_err)
{
  g_autofree char *rel = g_strdup_printf ("vfio-dev/%s/dev", cdev);
  ifb_autofd int fd = openat (devfd, rel, O_RDONLY | O_CLOEXEC);
  char buf[32];
  unsigned maj, min;
  ssize_t n;

  if (fd < 0)
    note_exhaustion (ret_err);
  if (fd < 0 || (n = read (fd, buf, sizeof buf - 1)) <= 0)
    return 0;
  buf[n] = '\0';
  if (sscanf (buf, "%u:%u", &maj, &min) != 2)
    return 0;
  return (guint64) makedev (maj, min);
}

static int
pci_device_read (int devices_dirfd, const char *bdf, IfbPciDevice **ret)
{
  g_autoptr (IfbPciDevice) dev = g_new0 (IfbPciDevice, 1);
  g_autofree char *group = NULL;
  ifb_autofd int devfd = openat (devices_dirfd, bdf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int err = 0;

  if (devfd < 0)
    return -errno;
  dev->bdf = g_strdup (bdf);
  dev->driver = read_link_basename (devfd, "driver");
  group = read_link_basename (devfd, "iommu_group");
  dev->iommu_group = -1;
  if (group) {
    guint64 v;
    if (g_ascii_string_to_unsigned (group, 10, 0, G_MAXINT, &v, NULL))
      dev->iommu_group = (int) v;
  }
  dev->vfio_cdev = find_vfio_cdev (devfd, &err);
  if (dev->vfio_cdev)
    dev->vfio_rdev = read_cdev_rdev (devfd, dev->vfio_cdev, &err);
  dev->vendor = read_hex_attr (devfd, "vendor", &err);
  dev->device = read_hex_attr (devfd, "device", &err);
  if (err < 0)
    return err;
  *ret = g_steal_pointer (&dev);
  return 0;
}

static void
pci_device_destroy (gpointer p)
{
  ifb_pci_device_free (p);
}

static gint
compare_bdf (gconstpointer a, gconstpointer b)
{
  const IfbPciDevice *da = *(IfbPciDevice *const *) a, *db = *(IfbPciDevice *const *) b;
  return strcmp (da->bdf, db->bdf);
}

GPtrArray *
ifb_pci_device_scan (int sys_dirfd, GError **error)
{
  g_autoptr (GPtrArray) devs = g_ptr_array_new_with_free_func (pci_device_destroy);
  ifb_autofd int fd = openat (sys_dirfd, "bus/pci/devices", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int scan_fd;
  struct dirent *de;
  DIR *d;

  if (fd < 0) {
    ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Opening bus/pci/devices");
    return NULL;
  }
  scan_fd = dup (fd);
  d = scan_fd >= 0 ? fdopendir (scan_fd) : NULL;
  if (!d) {
    int r = -errno;
    ifb_close (scan_fd);
    ifb_error_set_errno (error, IFB_ERROR_FAILED, r, "Listing bus/pci/devices");
    return NULL;
  }
  while ((de = readdir (d))) {
    IfbPciDevice *dev = NULL;
    int r;

    if (!ifb_pci_bdf_is_valid (de->d_name))
      continue;
    r = pci_device_read (fd, de->d_name, &dev);
    if (r == -EMFILE || r == -ENFILE || r == -ENOMEM) {   /* a partial list would hide devices */
      closedir (d);
      ifb_error_set_errno (error, IFB_ERROR_FAILED, r, "Reading PCI device '%s'", de->d_name);
      return NULL;
    }
    if (r < 0) {
      g_debug ("Skipping PCI device '%s': %s", de->d_name, g_strerror (-r));
      continue;
    }
    g_ptr_array_add (devs, dev);
  }
  closedir (d);
  g_ptr_array_sort (devs, compare_bdf);
  return g_steal_pointer (&devs);
}

gboolean
ifb_pci_device_lookup (int sys_dirfd, const char *bdf, IfbPciDevice **ret, GError **error)
{
  ifb_autofd int fd = -1;
  IfbPciDevice *dev = NULL;
  int r;

  if (!ifb_pci_bdf_is_valid (bdf)) {
    g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "Invalid PCI address '%s'", bdf ? bdf : "(null)");
    return FALSE;
  }
  fd = openat (sys_dirfd, "bus/pci/devices", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Opening bus/pci/devices");
  r = pci_device_read (fd, bdf, &dev);
  if (r == -ENOENT) {
    g_set_error (error, IFB_ERROR, IFB_ERROR_NO_SUCH_DEVICE, "No PCI device '%s'", bdf);
    return FALSE;
  }
  if (r < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, r, "Reading PCI device '%s'", bdf);
  *ret = dev;
  return TRUE;
}
