/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The kinds device-kind.c lists; for device-*.c only. */
#pragma once

#include "device-kind.h"

extern const IfbDeviceKind ifb_device_kind_pci;
extern const IfbDeviceKind ifb_device_kind_selftest;

/* device-pci-managed.c, for device-pci.c */
extern const IfbDeviceKindManaged ifb_device_pci_managed;
/* Not on its way between host drivers (taking, giving back, waiting to): FALSE with why. */
gboolean ifb_pci_managed_check_free (const char *name, GError **error);
/* Moved by a worker right now: fn (data) once it is done, and TRUE; FALSE: not moving. */
gboolean ifb_pci_managed_when_free (const char *name, void (*fn) (gpointer data), gpointer data);
