/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copying the emulated root template into a runtime directory.
 *
 * Each daemon (and each parallel test daemon) gets its own copy, because the device files in it
 * carry live state: the bind lock and bind record of the emulator (see emul.c). The copy is
 * built under a temporary name and renamed into place, so a crash mid-copy never leaves a
 * half-populated root that a later start would take for a complete one. Regular files, dirs and
 * symlinks (sysfs' driver and iommu_group links) are copied; anything else is refused.
 *
 * The copy is also a small sysfs: ifb_emul_root_sysfs_write() does on writes to driver_override,
 * a driver's bind/unbind and drivers_probe what the kernel does (bottom of this file). A device
 * dir may name its VFIO cdev in ifb-emulated-cdev ("vfioN"); while the device is on no vfio-pci,
 * that cdev's file waits in dev/vfio/ifb-unbound/ and its vfio-dev/ is absent, as on a host. A
 * driver dir may list the "vendor:device" ids it claims in ifb-emulated-ids (its id table).
 */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emul-root.h"

static int
copy_file (int sfd, const char *name, int dfd, mode_t mode)
{
  char buf[8192];
  ssize_t n;
  int in, out, r = 0;

  in = openat (sfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0)
    return -errno;
  out = openat (dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, (mode & 0777) | 0600);
  if (out < 0) {
    r = -errno;
    close (in);
    return r;
  }
  while ((n = read (in, buf, sizeof buf)) > 0) {
    if (write (out, buf, (size_t) n) != n) {
      r = -EIO;
      break;
    }
  }
  if (n < 0)
    r = -errno;
  close (in);
  if (close (out) < 0 && r == 0)
    r = -errno;
  return r;
}

static int
copy_tree (int sfd, int dfd)
{
  struct dirent *de;
  DIR *d;
  int r = 0, dup_fd;

  dup_fd = dup (sfd);
  if (dup_fd < 0)
    return -errno;
  d = fdopendir (dup_fd);
  if (!d) {
    r = -errno;
    close (dup_fd);
    return r;
  }
  while (r == 0 && (de = readdir (d))) {
    struct stat st;

    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
      continue;
    if (fstatat (sfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      r = -errno;
      break;
    }
    if (S_ISDIR (st.st_mode)) {
      int s2, d2;
      if (mkdirat (dfd, de->d_name, 0755) < 0) {
        r = -errno;
        break;
      }
      s2 = openat (sfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      d2 = openat (dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      if (s2 < 0 || d2 < 0)
        r = -errno;
      else
        r = copy_tree (s2, d2);
      if (s2 >= 0)
        close (s2);
      if (d2 >= 0)
        close (d2);
    } else if (S_ISLNK (st.st_mode)) {
      char target[PATH_MAX];
      ssize_t n = readlinkat (sfd, de->d_name, target, sizeof target - 1);
      if (n < 0) {
        r = -errno;
        break;
      }
      target[n] = '\0';
      if (symlinkat (target, dfd, de->d_name) < 0)
        r = -errno;
    } else if (S_ISREG (st.st_mode)) {
      r = copy_file (sfd, de->d_name, dfd, st.st_mode);
    } else {
      r = -EINVAL;
    }
  }
  closedir (d);
  return r;
}

static void
remove_tree (int dfd, const char *name)
{
  struct dirent *de;
  DIR *d;
  int fd;

  if (unlinkat (dfd, name, 0) == 0 || errno == ENOENT)
    return;
  fd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return;
  d = fdopendir (fd);
  if (!d) {
    close (fd);
    return;
  }
  while ((de = readdir (d)))
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      remove_tree (dirfd (d), de->d_name);
  closedir (d);
  unlinkat (dfd, name, AT_REMOVEDIR);
}

int
ifb_emul_root_prepare_with (int runtime_dirfd, const char *name, IfbEmulRootFill fill, void *data, int *ret_rootfd)
{
  char tmp[NAME_MAX + 1];
  int dfd, rootfd, r;

  if (!name || !*name || strchr (name, '/') || strcmp (name, ".") == 0 || strcmp (name, "..") == 0 ||
      strlen (name) > NAME_MAX - 24)
    return -EINVAL;

  rootfd = openat (runtime_dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (rootfd >= 0) {
    *ret_rootfd = rootfd;
    return 0;
  }
  if (errno != ENOENT)
    return -errno;

  /* Filled under a temporary name and renamed: a root is whole or absent. */
  snprintf (tmp, sizeof tmp, ".%s.tmp-%d", name, (int) getpid ());
  remove_tree (runtime_dirfd, tmp);
  if (mkdirat (runtime_dirfd, tmp, 0755) < 0)
    return -errno;
  dfd = openat (runtime_dirfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  r = dfd < 0 ? -errno : fill (dfd, data);
  if (dfd >= 0)
    close (dfd);
  if (r == 0 && renameat (runtime_dirfd, tmp, runtime_dirfd, name) < 0)
    r = (errno == EEXIST || errno == ENOTEMPTY) ? 0 : -errno;   /* lost a race: use theirs */
  remove_tree (runtime_dirfd, tmp);
  if (r < 0)
    return r;

  rootfd = openat (runtime_dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (rootfd < 0)
    return -errno;
  *ret_rootfd = rootfd;
  return 0;
}

static int
fill_from_template (int dfd, void *data)
{
  return copy_tree (*(int *) data, dfd);
}

int
ifb_emul_root_prepare (const char *template_dir, int runtime_dirfd, const char *name, int *ret_rootfd)
{
  int sfd = open (template_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int r;

  if (sfd < 0)
    return -errno;
  r = ifb_emul_root_prepare_with (runtime_dirfd, name, fill_from_template, &sfd, ret_rootfd);
  close (sfd);
  return r;
}

/* ---- the emulated sysfs: what the kernel does on writes that move a device between drivers ---- */

#define EMUL_DEVICES "bus/pci/devices/"
#define EMUL_DRIVERS "bus/pci/drivers/"
#define EMUL_BDF_LEN 12              /* "0000:65:00.0" */

/* A name that is one path component, not "." or "..". */
static bool
emul_component_ok (const char *s, size_t n)
{
  if (n == 0 || n > 64 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
    return false;
  return memchr (s, '/', n) == NULL && memchr (s, '\0', n) == NULL;
}

/* Up to size-1 bytes of a small file, without its trailing newline; its length or -errno. */
static int
emul_read_small (int dirfd, const char *name, char *buf, size_t size)
{
  int fd = openat (dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  ssize_t n;

  if (fd < 0)
    return -errno;
  n = read (fd, buf, size - 1);
  close (fd);
  if (n < 0)
    return -errno;
  while (n > 0 && buf[n - 1] == '\n')
    n--;
  buf[n] = '\0';
  return (int) n;
}

static int
emul_write_small (int dirfd, const char *name, const char *text)
{
  int fd = openat (dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  size_t len = strlen (text);
  int r = 0;

  if (fd < 0)
    return -errno;
  if (write (fd, text, len) != (ssize_t) len)
    r = -EIO;
  close (fd);
  return r;
}

/* The driver a device is bound to (its driver link's last component); -ENOENT when none. */
static int
emul_device_driver (int devfd, char *buf, size_t size)
{
  char target[PATH_MAX];
  ssize_t n = readlinkat (devfd, "driver", target, sizeof target - 1);
  const char *base;

  if (n < 0)
    return -errno;
  target[n] = '\0';
  base = strrchr (target, '/') ? strrchr (target, '/') + 1 : target;
  if (strlen (base) >= size)
    return -ENAMETOOLONG;
  strcpy (buf, base);
  return 0;
}

/* The device's VFIO cdev ("vfioN") and N, from ifb-emulated-cdev; -ENODEV when it has none. */
static int
emul_device_cdev (int devfd, char *name, size_t size, unsigned *ret_minor)
{
  unsigned minor = 0;
  int n = emul_read_small (devfd, "ifb-emulated-cdev", name, size);

  if (n < 0)
    return n == -ENOENT ? -ENODEV : n;
  if (n < 5 || n > 10 || strncmp (name, "vfio", 4) != 0)
    return -ENODEV;
  for (const char *p = name + 4; *p; p++) {
    if (*p < '0' || *p > '9')
      return -ENODEV;
    minor = minor * 10 + (unsigned) (*p - '0');
  }
  *ret_minor = minor;
  return 0;
}

static int
emul_open_vfio_dir (int sys_dirfd)
{
  int fd = openat (sys_dirfd, "../dev/vfio", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

/* vfio-pci's probe: the cdev node appears under dev/, vfio-dev/vfioN/dev under the device. */
static int
emul_cdev_up (int sys_dirfd, int devfd)
{
  char name[16], from[48], to[48], text[32];
  unsigned minor;
  int vfio, r;

  if ((r = emul_device_cdev (devfd, name, sizeof name, &minor)) < 0)
    return r;
  if ((vfio = emul_open_vfio_dir (sys_dirfd)) < 0)
    return vfio;
  snprintf (from, sizeof from, "ifb-unbound/%s", name);
  snprintf (to, sizeof to, "devices/%s", name);
  r = renameat (vfio, from, vfio, to) < 0 && errno != ENOENT ? -errno : 0;
  if (r == 0 && faccessat (vfio, to, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
    r = -ENODEV;   /* no profile for its cdev: vfio-pci cannot take it */
  close (vfio);
  if (r < 0)
    return r;
  snprintf (from, sizeof from, "vfio-dev/%s", name);
  snprintf (to, sizeof to, "vfio-dev/%s/dev", name);
  snprintf (text, sizeof text, "511:%u\n", minor);
  if ((mkdirat (devfd, "vfio-dev", 0755) < 0 && errno != EEXIST) || (mkdirat (devfd, from, 0755) < 0 && errno != EEXIST))
    return -errno;
  return emul_write_small (devfd, to, text);
}

/* vfio-pci's remove: the reverse. */
static void
emul_cdev_down (int sys_dirfd, int devfd)
{
  char name[16], from[48], to[48];
  unsigned minor;
  int vfio;

  if (emul_device_cdev (devfd, name, sizeof name, &minor) < 0)
    return;
  snprintf (from, sizeof from, "vfio-dev/%s/dev", name);
  unlinkat (devfd, from, 0);
  snprintf (from, sizeof from, "vfio-dev/%s", name);
  unlinkat (devfd, from, AT_REMOVEDIR);
  unlinkat (devfd, "vfio-dev", AT_REMOVEDIR);
  if ((vfio = emul_open_vfio_dir (sys_dirfd)) < 0)
    return;
  mkdirat (vfio, "ifb-unbound", 0755);
  snprintf (from, sizeof from, "devices/%s", name);
  snprintf (to, sizeof to, "ifb-unbound/%s", name);
  renameat (vfio, from, vfio, to);
  close (vfio);
}

static int
emul_bind (int sys_dirfd, int devfd, const char *driver)
{
  char path[128];
  int r;

  snprintf (path, sizeof path, EMUL_DRIVERS "%s", driver);
  if (faccessat (sys_dirfd, path, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
    return -ENODEV;   /* no such driver here */
  if (strcmp (driver, "vfio-pci") == 0 && (r = emul_cdev_up (sys_dirfd, devfd)) < 0)
    return r;
  snprintf (path, sizeof path, "../../../../" EMUL_DRIVERS "%s", driver);
  return symlinkat (path, devfd, "driver") < 0 ? -errno : 0;
}

static int
emul_unbind (int sys_dirfd, int devfd)
{
  char driver[64];

  if (emul_device_driver (devfd, driver, sizeof driver) < 0)
    return -ENODEV;
  if (strcmp (driver, "vfio-pci") == 0)
    emul_cdev_down (sys_dirfd, devfd);
  return unlinkat (devfd, "driver", 0) < 0 ? -errno : 0;
}

/* The driver whose id table (ifb-emulated-ids) lists the device's vendor:device; -ENODEV: none.
 * vfio-pci lists none: it takes a device only by driver_override, as on a host. */
static int
emul_match_driver (int sys_dirfd, int devfd, char *buf, size_t size)
{
  char vendor[16], device[16], id[40], ids[1024];
  struct dirent *de;
  DIR *d;
  int fd, r = -ENODEV;

  if (emul_read_small (devfd, "vendor", vendor, sizeof vendor) != 6 || emul_read_small (devfd, "device", device, sizeof device) != 6)
    return -ENODEV;
  snprintf (id, sizeof id, "%s:%s", vendor + 2, device + 2);   /* "0x8086" -> "8086" */
  fd = openat (sys_dirfd, EMUL_DRIVERS, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || !(d = fdopendir (fd))) {
    if (fd >= 0)
      close (fd);
    return -ENODEV;
  }
  while (r < 0 && (de = readdir (d))) {
    char path[128];
    size_t idlen = strlen (id);

    if (de->d_name[0] == '.' || strlen (de->d_name) >= size)
      continue;
    snprintf (path, sizeof path, "%s/ifb-emulated-ids", de->d_name);
    if (emul_read_small (dirfd (d), path, ids, sizeof ids) <= 0)
      continue;
    for (const char *p = ids; *p;) {
      const char *end = strchr (p, '\n') ? strchr (p, '\n') : p + strlen (p);
      if ((size_t) (end - p) == idlen && strncmp (p, id, idlen) == 0) {
        strcpy (buf, de->d_name);
        r = 0;
        break;
      }
      p = *end ? end + 1 : end;
    }
  }
  closedir (d);
  return r;
}

/* drivers_probe: an unbound device goes to its driver_override, else to the driver whose ids
 * match; a bound one stays. */
static int
emul_probe (int sys_dirfd, int devfd)
{
  char driver[64];
  int n;

  if (emul_device_driver (devfd, driver, sizeof driver) == 0)
    return 0;
  n = emul_read_small (devfd, "driver_override", driver, sizeof driver);
  if (n > 0 && strcmp (driver, "(null)") != 0) {
    int r = emul_bind (sys_dirfd, devfd, driver);
    return r == -ENODEV ? 0 : r;   /* an override naming no driver here leaves it unbound */
  }
  if (emul_match_driver (sys_dirfd, devfd, driver, sizeof driver) < 0)
    return 0;
  return emul_bind (sys_dirfd, devfd, driver);
}

static int
emul_open_device_dir (int sys_dirfd, const char *bdf, size_t n)
{
  char path[64];
  int fd;

  if (n != EMUL_BDF_LEN || !emul_component_ok (bdf, n))
    return -ENODEV;
  snprintf (path, sizeof path, EMUL_DEVICES "%.*s", (int) n, bdf);
  fd = openat (sys_dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  return fd < 0 ? -ENODEV : fd;
}

int
ifb_emul_root_sysfs_write (int sys_dirfd, const char *attr, const char *value)
{
  char v[64];
  size_t vlen = strlen (value);
  const char *rest;
  int devfd, r;

  while (vlen > 0 && value[vlen - 1] == '\n')
    vlen--;
  if (vlen >= sizeof v)
    return -EINVAL;
  memcpy (v, value, vlen);
  v[vlen] = '\0';

  if (strcmp (attr, "bus/pci/drivers_probe") == 0) {
    if ((devfd = emul_open_device_dir (sys_dirfd, v, vlen)) < 0)
      return devfd;
    r = emul_probe (sys_dirfd, devfd);
  } else if (strncmp (attr, EMUL_DEVICES, strlen (EMUL_DEVICES)) == 0) {
    rest = attr + strlen (EMUL_DEVICES);
    if ((devfd = emul_open_device_dir (sys_dirfd, rest, strnlen (rest, EMUL_BDF_LEN))) < 0)
      return -ENOENT;
    rest += EMUL_BDF_LEN;
    if (strcmp (rest, "/driver_override") == 0) {
      char text[66];
      snprintf (text, sizeof text, "%s\n", vlen ? v : "(null)");
      r = emul_write_small (devfd, "driver_override", text);
    } else if (strcmp (rest, "/driver/unbind") == 0) {
      char driver[64];
      r = emul_device_driver (devfd, driver, sizeof driver) < 0 ? -ENOENT   /* no driver/ to write into */
        : strncmp (attr + strlen (EMUL_DEVICES), v, EMUL_BDF_LEN) != 0 || vlen != EMUL_BDF_LEN ? -ENODEV
        : emul_unbind (sys_dirfd, devfd);
    } else {
      r = -EOPNOTSUPP;
    }
  } else if (strncmp (attr, EMUL_DRIVERS, strlen (EMUL_DRIVERS)) == 0) {
    const char *slash;
    char driver[64], bound[64];
    rest = attr + strlen (EMUL_DRIVERS);
    slash = strchr (rest, '/');
    if (!slash || !emul_component_ok (rest, (size_t) (slash - rest)) || (size_t) (slash - rest) >= sizeof driver)
      return -ENOENT;
    memcpy (driver, rest, (size_t) (slash - rest));
    driver[slash - rest] = '\0';
    if ((devfd = emul_open_device_dir (sys_dirfd, v, vlen)) < 0)
      return devfd;
    if (strcmp (slash, "/bind") == 0)
      r = emul_device_driver (devfd, bound, sizeof bound) == 0 ? -EBUSY : emul_bind (sys_dirfd, devfd, driver);
    else if (strcmp (slash, "/unbind") == 0)
      r = emul_device_driver (devfd, bound, sizeof bound) < 0 || strcmp (bound, driver) != 0 ? -ENODEV
        : emul_unbind (sys_dirfd, devfd);
    else
      r = -EOPNOTSUPP;
  } else {
    return -EOPNOTSUPP;
  }
  close (devfd);
  return r;
}
