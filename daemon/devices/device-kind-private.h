/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The kinds device-kind.c lists; for device-*.c only. */
#pragma once

#include "device-kind.h"

extern const IfbDeviceKind ifb_device_kind_pci;
extern const IfbDeviceKind ifb_device_kind_selftest;
