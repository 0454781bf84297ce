/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The emulator's IOMMUFD commands: ioctls on an emulated /dev/iommu context fd.
 */
#pragma once

int emul_iommufd_ioctl (int fd, unsigned long request, void *arg);
