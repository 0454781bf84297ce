/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inside the guest lifecycle: the machinery of lifecycle-work.c (one operation per guest at a
 * time, workers, releases) that the operations in lifecycle.c are built from. Not for other
 * modules.
 */
#pragma once

#include "lifecycle.h"
#include "worker.h"

/* End an operation: release what it gave up (a release worker), call done, run what waited. */
void ifb_lifecycle_op_done (IfbCore *core, IfbVm *vm, const GError *error, IfbLifecycleDone done, gpointer data);
/* fn (m, vm) now, or once the guest is idle (if it still exists then). */
void ifb_lifecycle_when_idle_do (IfbCore *core, IfbVm *vm, void (*fn) (IfbCore *core, IfbVm *vm));

/* Give a device up (its fd store entry now; detach, HWPT and close by the operation's release
 * worker); it is reserved again. */
void ifb_lifecycle_release_device (IfbCore *core, IfbVm *vm, IfbVmDevice *d, gboolean in_store);
/* Give the guest's context up (its IOAS destroyed and the fd closed by the release worker). */
void ifb_lifecycle_release_context (IfbCore *core, IfbVm *vm, gboolean in_store);

/* Allocate the context (if none yet) and devs in one worker in the guest's cgroup (or, unbound,
 * just open the context), then done — from the main loop, or at once when no worker is needed. On
 * failure nothing of the call remains. The guest is busy meanwhile. */
typedef void (*IfbLifecycleBatchDone) (IfbCore *core, IfbVm *vm, const GError *error, gpointer data);
void ifb_lifecycle_run_batch (IfbCore *core, IfbVm *vm, IfbVmDevice **devs, guint n, IfbLifecycleBatchDone done,
                              gpointer data);

/* The guest's vIOMMU (lifecycle-viommu.c): the worker's part of a batch, its results, its
 * refusals by name (TRUE when it set error), giving the vIOMMU up (destroyed by the operation's
 * release worker, after the vDEVICEs and before the HWPTs), and what attach and detach check. */
void ifb_lifecycle_viommu_prepare (IfbVm *vm, IfbVmDevice **devs, guint n, IfbWorkerBatch *b);
gboolean ifb_lifecycle_viommu_apply (IfbVm *vm, IfbVmDevice **devs, guint n, const IfbWorkerBatch *b, GError **error);
gboolean ifb_lifecycle_viommu_error (IfbVm *vm, const IfbWorkerBatch *b, const IfbWorkerDevice *wd,
                                     const IfbVmDevice *d, GError **error);
void ifb_lifecycle_viommu_release (IfbVm *vm);
/* A device joining: its virt_id given exactly when the guest has a vIOMMU, and not yet taken. */
gboolean ifb_lifecycle_viommu_check_attach (IfbVm *vm, const char *bdf, gboolean has_virt_id, guint64 virt_id,
                                            GError **error);
/* A device leaving: refused while the vIOMMU sits on its HWPT and others have vDEVICEs; the
 * last one takes the vIOMMU along. */
gboolean ifb_lifecycle_viommu_check_detach (IfbVm *vm, IfbVmDevice *d, GError **error);

/* Close fds that belong to no guest (contexts and device fds, arrays of int, taken) in release
 * workers after the fd-store barrier, then done (from the main loop). */
void ifb_lifecycle_release_fds (IfbCore *core, GArray *contexts, GArray *devices,
                                void (*done) (IfbCore *core, gpointer data), gpointer data);

/* Attach devices that are on the VMs' driver now; host_drivers (NULL: none is managed) says
 * where each managed one came from. */
void ifb_lifecycle_attach_checked (IfbCore *core, IfbVm *vm, const char *const *bdfs, guint n, gint64 virt_id,
                                   const char *const *host_drivers, IfbLifecycleDone done, gpointer data);
/* A managed device left its guest: back to host_driver (lifecycle-managed.c). */
void ifb_lifecycle_give_back (IfbCore *core, const char *bdf, const char *host_driver);
/* After a restart, the guests restored and their fds settled: give back what no guest holds,
 * and take out of its guest a managed device the host shows on another driver. */
void ifb_lifecycle_managed_restore (IfbCore *core);
