/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel backend: real /dev/iommu and /dev/vfio/devices/vfioN, reached through a directory
 * fd standing for /dev so tests and containers can point it elsewhere; ioctl(2) as is.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend-kernel.h"
#include "backend.h"

static int
kernel_open_iommufd (int dev_dirfd, int *ret_fd)
{
  int fd = openat (dev_dirfd, "iommu", O_RDWR | O_CLOEXEC | O_NOCTTY);

  if (fd < 0)
    return -errno;
  *ret_fd = fd;
  return 0;
}

static int
kernel_open_device (int dev_dirfd, const char *cdev_name, int *ret_fd)
{
  char path[64] = "vfio/devices/";
  int fd;

  if (!ifb_uapi_cdev_name_valid (cdev_name))
    return -EINVAL;
  strcat (path, cdev_name);
  fd = openat (dev_dirfd, path, O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  *ret_fd = fd;
  return 0;
}

static int
kernel_ioctl (int fd, unsigned long request, void *arg)
{
  if (ioctl (fd, request, arg) < 0)
    return -errno;
  return 0;
}

/* A VFIO cdev is a character device; its number is what sysfs vfio-dev/vfioN/dev names. */
static int
kernel_device_rdev (int device_fd, uint64_t *ret_rdev)
{
  struct stat st;

  if (fstat (device_fd, &st) < 0)
    return -errno;
  if (!S_ISCHR (st.st_mode))
    return -ENODEV;
  *ret_rdev = (uint64_t) st.st_rdev;
  return 0;
}

static const IfbUapiBackend kernel_backend = {
  .name = "kernel",
  .emulated = false,
  .open_iommufd = kernel_open_iommufd,
  .open_device = kernel_open_device,
  .ioctl = kernel_ioctl,
  .device_rdev = kernel_device_rdev,
};

const IfbUapiBackend *
ifb_uapi_backend_kernel (void)
{
  return &kernel_backend;
}
