/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The emulator's VFIO device commands: ioctls on an emulated device cdev fd.
 */
#pragma once

int emul_device_ioctl (int fd, unsigned long request, void *arg);
