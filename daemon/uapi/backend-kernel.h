/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel backend: ioctl(2) on real /dev/iommu and /dev/vfio/devices/vfioN fds.
 */
#pragma once

#include "uapi-types.h"

const IfbUapiBackend *ifb_uapi_backend_kernel (void);
