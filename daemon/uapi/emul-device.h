/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The emulator's device files: a cdev's profile, its bind lock and record (see "Devices" in
 * emul.c), and the backend operations on a device fd.
 */
#pragma once

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "emul-layout.h"

const char *emul_proc_fd_path (int fd, char *buf);
int emul_read_profile (int fd, EmulProfile *p);
void emul_device_reset_delay (void);
bool emul_is_device_fd (int fd);
void emul_lock_init (struct flock *fl, short type);
int emul_lock_held_path (const char *path, EmulBindRecord *ret_rec, struct stat *ret_st);
int emul_device_bind_state (int fd);
bool emul_dev_can_nest (const EmulDevice *d);
bool emul_dev_dirty (const EmulDevice *d);
/* Does the driver behind d offer a vIOMMU of this IOMMU_VIOMMU_ALLOC type? */
bool emul_dev_viommu_type (const EmulDevice *d, uint32_t type);

/* The backend operations on device cdevs (emul.c's table). */
int emul_open_device (int dev_dirfd, const char *cdev_name, int *ret_fd);
int emul_device_rdev (int device_fd, uint64_t *ret_rdev);
void emul_device_close (int device_fd);
/* Every bind and last close of a device sleeps ms in the calling process (a modelled reset). */
void emul_set_reset_ms (unsigned ms);
