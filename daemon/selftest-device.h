/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A test-only device kind: the kernel's IOMMUFD_TEST mock device, named "selftest:0" ..
 * "selftest:3" wherever a PCI address is accepted (device.list, vm.attach, vm.detach). It exists
 * so the broker's NEST_PARENT path can be proven on a kernel whose only nesting-capable IOMMU is
 * the selftest's mock (QEMU's vIOMMUs cannot nest). Offered only when the kernel answers
 * IOMMU_TEST_CMD and the config says [kernel] allow-selftest=true: never on a production host.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

#include "manager.h"
#include "vm.h"
#include "worker.h"

#define IFB_SELFTEST_N_DEVICES 4
#define IFB_SELFTEST_PREFIX "selftest:"

/* Does this device name mean the selftest kind ("selftest:" prefix, well-formed or not)? */
gboolean ifb_selftest_device_name_is (const char *name);

/* At start-up: probe the kernel (IOMMU_TEST_CMD on a scratch context), combine with the config,
 * set m->selftest_available and log the outcome. */
void ifb_selftest_device_probe (IfbManager *m);

/* vm.attach's checks for a selftest name: well-formed, the kind offered (else IFB_ERROR_UNAVAILABLE
 * saying why), not owned. *ret_cdev gets the placeholder "selftest" (it has no cdev). */
gboolean ifb_selftest_device_check (IfbManager *m, IfbVm *vm, const char *name, char **ret_cdev, GError **error);

/* Its fd: a selftest device lives inside the guest's context and has no fd of its own, so it
 * holds a duplicate of the context fd (what vm.fds hands out and the fd store keeps). 0/-errno. */
int ifb_selftest_device_open (IfbVm *vm, int *ret_fd);

/* After a worker made it: remember the mock's selftest object id (to destroy it on release). */
void ifb_selftest_device_adopt (const IfbVmDevice *d, const IfbWorkerDevice *wd);

/* Undo: destroy the mock (which detaches and unbinds it), then its HWPT. */
void ifb_selftest_device_release (IfbManager *m, IfbVm *vm, IfbVmDevice *d);

/* device.list: append one entry per selftest device when the kind is offered. */
void ifb_selftest_device_list (IfbManager *m, json_object *arr);
