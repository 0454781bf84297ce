/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inside the uAPI layer: the backend operations table and the helpers both backends and the
 * typed wrappers share. Not installed, not included outside daemon/uapi.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "uapi.h"

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
};

/* "vfio" followed by 1..6 decimal digits, nothing else. */
bool ifb_uapi_cdev_name_valid (const char *cdev_name);

/* What the raw registers say; the one interpretation shared by the typed layer and the emulator. */
bool ifb_uapi_vtd_can_nest (uint64_t ecap);
bool ifb_uapi_vtd_dirty (uint64_t ecap);
bool ifb_uapi_smmuv3_can_nest (const uint32_t idr[6]);
bool ifb_uapi_smmuv3_dirty (const uint32_t idr[6]);

/* The emulator, emul*.c (emul.c says which file holds what). */
int ifb_emul_open_iommufd (int dev_dirfd, int *ret_fd);
int ifb_emul_open_device (int dev_dirfd, const char *cdev_name, int *ret_fd);
int ifb_emul_ioctl (int fd, unsigned long request, void *arg);
int ifb_emul_device_rdev (int device_fd, uint64_t *ret_rdev);
void ifb_emul_device_close (int device_fd);
/* 1 for an emulated context fd, 2 for an emulated device fd, 0 otherwise. */
int ifb_emul_fd_kind (int fd);

/* Tests only: take the context lock and return without releasing it, to play a worker that
 * dies mid-change (the robust mutex must recover). */
int ifb_emul_debug_lock (int fd);
