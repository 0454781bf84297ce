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
  guint32 class_code;
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
guint32 ifb_pci_device_get_class (const IfbPciDevice *dev) { return dev->class_code; }

gboolean
ifb_pci_device_is_bridge (const IfbPciDevice *dev)
{
  return (dev->class_code >> 16) == 0x06;
}

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

static guint32
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
  return (guint32) g_ascii_strtoull (buf, NULL, 16);
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
  dev->vendor = (guint16) read_hex_attr (devfd, "vendor", &err);
  dev->device = (guint16) read_hex_attr (devfd, "device", &err);
  dev->class_code = read_hex_attr (devfd, "class", &err);
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

/* A small file's text (at most 64 KiB), NULL when it cannot be read. */
static char *
read_small_file (int dirfd, const char *name)
{
  ifb_autofd int fd = openat (dirfd, name, O_RDONLY | O_CLOEXEC);
  GString *s;
  char buf[4096];
  ssize_t n;

  if (fd < 0)
    return NULL;
  s = g_string_new (NULL);
  while (s->len < 65536 && (n = read (fd, buf, sizeof buf)) > 0)
    g_string_append_len (s, buf, n);
  return g_string_free (s, FALSE);
}

static gint
compare_str (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

GPtrArray *
ifb_pci_group_devices (int sys_dirfd, int group, GError **error)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *path = g_strdup_printf ("kernel/iommu_groups/%d/devices", group);
  int fd = openat (sys_dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct dirent *de;
  DIR *d;

  if (fd < 0 || !(d = fdopendir (fd))) {
    int r = -errno;
    ifb_close (fd);
    ifb_error_set_errno (error, IFB_ERROR_FAILED, r, "Listing IOMMU group %d", group);
    return NULL;
  }
  while ((de = readdir (d)))
    if (ifb_pci_bdf_is_valid (de->d_name))
      g_ptr_array_add (names, g_strdup (de->d_name));
  closedir (d);
  g_ptr_array_sort (names, compare_str);
  return g_steal_pointer (&names);
}

/* The host's routing tables: PID 1's (proc/1/net/FILE), since the daemon may have a network
 * namespace of its own (the unit's PrivateNetwork=, whose /proc/net shows only its loopback, and
 * ProcSubset=pid, which hides /proc/net); proc/net/FILE where PID 1's cannot be read. */
static char *
read_host_net (int sys_dirfd, const char *file)
{
  g_autofree char *pid1 = g_strdup_printf ("../proc/1/net/%s", file);
  g_autofree char *self = g_strdup_printf ("../proc/net/%s", file);
  char *text = read_small_file (sys_dirfd, pid1);

  return text ? text : read_small_file (sys_dirfd, self);
}

/* A line of the host's net/route or net/if_inet6 says ifname carries an address. */
static gboolean
netdev_has_address (int sys_dirfd, const char *ifname)
{
  g_autofree char *route = NULL, *inet6 = NULL;
  g_auto (GStrv) lines = NULL;

  route = read_host_net (sys_dirfd, "route");
  lines = g_strsplit (route ? route : "", "\n", -1);
  for (char **l = lines; *l; l++) {
    g_auto (GStrv) f = g_strsplit_set (*l, " \t", 2);
    if (f[0] && strcmp (f[0], ifname) == 0)
      return TRUE;   /* a route through it: it has an IPv4 address (or a gateway) */
  }
  g_strfreev (g_steal_pointer (&lines));
  inet6 = read_host_net (sys_dirfd, "if_inet6");
  lines = g_strsplit (inet6 ? inet6 : "", "\n", -1);
  for (char **l = lines; *l; l++) {
    /* address index prefix-length scope flags name; scope 00 is global */
    g_auto (GStrv) f = g_strsplit_set (g_strstrip (*l), " \t", -1);
    g_autoptr (GPtrArray) w = g_ptr_array_new ();
    for (char **x = f; *x; x++)
      if (**x)
        g_ptr_array_add (w, *x);
    if (w->len == 6 && strcmp (g_ptr_array_index (w, 5), ifname) == 0 && strcmp (g_ptr_array_index (w, 3), "00") == 0)
      return TRUE;
  }
  return FALSE;
}

char *
ifb_pci_device_route_out (int sys_dirfd, const char *bdf)
{
  g_autofree char *path = NULL;
  struct dirent *de;
  char *found = NULL;
  gboolean seen = FALSE;
  DIR *d;
  int fd;

  if (!ifb_pci_bdf_is_valid (bdf))
    return NULL;
  path = g_strdup_printf ("bus/pci/devices/%s/net", bdf);
  fd = openat (sys_dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || !(d = fdopendir (fd))) {
    ifb_close (fd);
    return NULL;
  }
  while (!found && (de = readdir (d))) {
    g_autofree char *operstate = NULL;
    if (de->d_name[0] == '.')
      continue;
    seen = TRUE;
    operstate = read_small_file (dirfd (d), (g_free (path), path = g_strdup_printf ("%s/operstate", de->d_name)));
    if (operstate && strcmp (g_strstrip (operstate), "up") == 0 && netdev_has_address (sys_dirfd, de->d_name))
      found = g_strdup_printf ("the network interface '%s', up with an address,", de->d_name);
  }
  closedir (d);
  /* net/ without an entry: the kernel removes the directory with its last interface, so its
   * interfaces live in another network namespace than the one sysfs was mounted in (systemd mounts
   * a fresh sysfs for a unit with PrivateNetwork=). Unseen is not safe: treat it as the way out. */
  if (!found && !seen)
    found = g_strdup ("a network interface in another network namespace than the broker's (its state cannot be "
                      "read here),");
  return found;
}
