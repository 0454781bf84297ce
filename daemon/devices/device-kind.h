/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Device kinds: what differs between the devices a guest can be given, behind one table of
 * operations, so the guest core (lifecycle*, vm*, worker*) never asks which kind a device is.
 * Two kinds exist:
 *   - pci (device-pci.c): a PCI device bound to vfio-pci with a VFIO device cdev, named by its
 *     address "DDDD:BB:DD.F" — what production hosts have;
 *   - selftest (device-selftest.c): the kernel's IOMMUFD_TEST mock device, named "selftest:N",
 *     test kernels only.
 * A name belongs to the kind whose claims() says so; pci takes every name no other kind claims,
 * so its checks say what is wrong with a name that is no device at all.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

#include "core.h"
#include "vm.h"
#include "worker.h"

/* How a kind's asynchronous step ended (error NULL: done), from the main loop. */
typedef void (*IfbDeviceKindDone) (IfbCore *core, const GError *error, gpointer data);

/* Managed devices: taken from their host driver for a guest and given back to it after. */
typedef struct {
  /* May name be taken for vm, with the request's other managed devices (with)? Offered by the
   * operator, no bridge, a viable IOMMU group, not the host's way out. *ret_driver: the driver to
   * give it back to ("": none; the VMs' own when it is there already: it stays). */
  gboolean (*check) (IfbCore *core, IfbVm *vm, const char *name, const char *const *with, guint n_with,
                     char **ret_driver, GError **error);
  /* Take names from drivers (check's answers) and wait for their cdevs, in a worker; done runs
   * once, from the main loop or before this returns when nothing needs moving. On failure every
   * device is given back before done. */
  void (*take) (IfbCore *core, const char *const *names, const char *const *drivers, guint n,
                IfbDeviceKindDone done, gpointer data);
  /* Give name back to driver (check's answer), from a worker; retried until it is back. */
  void (*give_back) (IfbCore *core, const char *name, const char *driver);
  /* The driver the host shows it on now ("": none), NULL when it cannot be read. */
  char *(*driver) (IfbCore *core, const char *name);
  /* After a restart, the guests restored: give back what no guest holds any more. */
  void (*restore) (IfbCore *core);
} IfbDeviceKindManaged;

typedef struct {
  const char *name;             /* "pci", "selftest": device.list's "kind" */
  /* It has a cdev of its own to hand a VMM (the unbound hand-off needs one). */
  gboolean has_cdev;
  /* The name is this kind's (well-formed or not). */
  gboolean (*claims) (const char *name);
  /* A saved device of this kind (state.c): name and cdev well-formed. */
  gboolean (*saved_valid) (const char *name, const char *cdev);
  /* At start-up: find out whether the kind is offered here, and log why not. */
  void (*probe) (IfbCore *core);
  gboolean (*offered) (void);
  /* vm.attach's checks of a device of this kind, all but ownership: it exists, is offered and
   * usable; *ret_cdev gets the node that opens it. */
  gboolean (*check) (IfbCore *core, const char *name, char **ret_cdev, GError **error);
  /* Open d's fd for vm, checking the node is that device (d->cdev follows a new name). */
  gboolean (*open) (IfbCore *core, IfbVm *vm, IfbVmDevice *d, int *ret_fd, GError **error);
  /* Say how the worker binds and attaches it (NULL: bind device_fd, attach the HWPT). */
  void (*prepare) (const IfbVmDevice *d, IfbWorkerDevice *wd);
  /* After the worker made it: keep what the kind needs from it (NULL: nothing). */
  void (*adopt) (IfbVmDevice *d, const IfbWorkerDevice *wd);
  /* Before it is given up: undo what the release worker cannot (NULL: nothing); may clear
   * d->hwpt_id when it destroyed the HWPT itself. */
  void (*release) (IfbCore *core, IfbVm *vm, IfbVmDevice *d);
  /* When list() said it was incomplete: bring what it shows up to date where that takes a worker
   * (probing the IOMMU of unowned devices binds them, which resets them). TRUE when done (data)
   * will be called from the main loop; FALSE when nothing was to do (done is not called). */
  gboolean (*refresh) (IfbCore *core, void (*done) (gpointer data), gpointer data);
  /* Held by the kind's own work right now (a probe binds unowned devices)? Then fn (data) is
   * queued to run from the main loop once it is free, and TRUE returned; FALSE: free now. NULL:
   * the kind never holds a device itself. */
  gboolean (*when_free) (IfbCore *core, const char *name, void (*fn) (gpointer data), gpointer data);
  /* device.list: append an entry per device of the kind; *incomplete set TRUE when some entry
   * lacks what refresh() would bring (left alone otherwise). */
  gboolean (*list) (IfbCore *core, json_object *arr, gboolean *incomplete, GError **error);
  /* NULL: the kind has no host driver to take its devices from. */
  const IfbDeviceKindManaged *managed;
} IfbDeviceKind;

/* The kind a device name belongs to; never NULL. */
const IfbDeviceKind *ifb_device_kind_of (const char *name);
/* The kind called name, or NULL. */
const IfbDeviceKind *ifb_device_kind_by_name (const char *name);
gboolean ifb_device_kind_offered (const IfbDeviceKind *kind);   /* NULL-safe */
/* The kind's when_free() for device name (FALSE where the kind has none). */
gboolean ifb_device_kind_when_free (IfbCore *core, const char *name, void (*fn) (gpointer data), gpointer data);

/* Every kind's managed restore (after a restart). */
void ifb_device_kinds_managed_restore (IfbCore *core);

/* Every kind, in table order. */
void ifb_device_kinds_probe (IfbCore *core);
/* Every kind's refresh; TRUE when done will be called (once, from the main loop, when all are). */
gboolean ifb_device_kinds_refresh (IfbCore *core, void (*done) (gpointer data), gpointer data);
gboolean ifb_device_kinds_list (IfbCore *core, json_object *arr, gboolean *incomplete, GError **error);

/* A new device.list entry with the fields every kind gives: device, driver, cdev, iommu_group
 * (< 0: none), vfio, owner (NULL: none) and managed (the managed-device ledger's {state, driver},
 * NULL for a device not in it; taken). */
json_object *ifb_device_kind_entry_new (const char *name, const char *driver, const char *cdev, int iommu_group,
                                        gboolean vfio, const IfbVm *owner, json_object *managed);

/* A hardware description with the fields device.list and vm.show give (ifb_hw_info_to_json()
 * and the summary), appended to the entry dj. */
void ifb_device_kind_add_hw (json_object *dj, const IfbHwInfo *hw);
