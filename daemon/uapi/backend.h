/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The table of operations a backend gives (backend-kernel.c, emul.c). Inside the uAPI layer
 * only: callers above see IfbUapiBackend as an opaque type and go through uapi.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uapi-types.h"

struct IfbUapiBackend {
  const char *name;
  bool emulated;
  int (*open_iommufd) (int dev_dirfd, int *ret_fd);
  int (*open_device) (int dev_dirfd, const char *cdev_name, int *ret_fd);
  int (*ioctl) (int fd, unsigned long request, void *arg);
  int (*device_rdev) (int device_fd, uint64_t *ret_rdev);
  void (*device_close) (int device_fd);   /* NULL: close(2) */
  /* What only some backends can or need to do; NULL where a backend cannot (or need not). */
  int (*list_objects) (int iommufd, IfbUapiObject *objs, size_t max, size_t *ret_n);
  void (*batch_begin) (void);
  void (*batch_end) (void);
  void (*set_device_reset_ms) (unsigned ms);
  /* A write to a sysfs attribute (NULL: write(2) on it, as on a real sysfs). */
  int (*sysfs_write) (int sys_dirfd, const char *attr, const char *value);
};

/* "vfio" followed by 1..6 decimal digits, nothing else: the only cdev names a backend opens. */
bool ifb_uapi_cdev_name_valid (const char *cdev_name);
