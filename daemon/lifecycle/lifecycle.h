/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The life of a guest: create, attach, detach, destroy, realize (allocate what was deferred until
 * the guest's cgroup existed), and restore after a restart. Every operation either completes or
 * leaves nothing behind — no object, fd, fd-store entry or device ownership.
 */
#pragma once

#include <glib.h>

#include "core.h"
#include "peer.h"
#include "vm.h"

typedef struct {
  const char *name;
  const char *uuid;             /* NULL: generate */
  const char *cgroup;           /* guest cgroup path, or NULL when pid/pidfd is given */
  pid_t pid;                    /* 0: none */
  int pidfd;                    /* -1: none (a pidfd passed by the caller) */
  IfbVmOptions options;
  int rlimit_per_process;       /* -1: the configured default */
  const IfbPeer *caller;        /* NULL: none to keep out of the guest's cgroup */
  gboolean allow_caller_cgroup; /* root says: a cgroup containing it is meant */
} IfbVmCreateArgs;

/*
 * How an operation ended: error NULL on success; vm NULL when a create failed. Called exactly
 * once — from the main loop when a worker ran, or before the operation returns when none was
 * needed. The guest takes its next request once this returns.
 */
typedef void (*IfbLifecycleDone) (IfbCore *core, IfbVm *vm, const GError *error, gpointer data);

void ifb_lifecycle_create (IfbCore *core, const IfbVmCreateArgs *args, IfbLifecycleDone done, gpointer data);
/* The guest must be idle. virt_id (< 0: none) is the one device's virtual id in the guest's
 * vIOMMU: required when the guest has one (then one device per call), refused otherwise.
 * managed: take the devices from their host drivers first, and give them back when they leave
 * the guest (lifecycle-managed.c). */
void ifb_lifecycle_attach (IfbCore *core, IfbVm *vm, const char *const *bdfs, guint n, gint64 virt_id, gboolean managed,
                           IfbLifecycleDone done, gpointer data);
/* Allocate what is still pending: the context (and IOAS), and reserved devices. Idle guest. */
void ifb_lifecycle_realize (IfbCore *core, IfbVm *vm, IfbLifecycleDone done, gpointer data);
/* Idle guest. The device is another guest's to take once done has run (its release worker
 * closed it). */
void ifb_lifecycle_detach (IfbCore *core, IfbVm *vm, const char *bdf, IfbLifecycleDone done, gpointer data);
/* Destroy in kernel order (HWPTs, then the IOAS), close every fd, free the devices (done may be
 * NULL). The guest must be idle; it is gone when done runs. */
void ifb_lifecycle_destroy (IfbCore *core, IfbVm *vm, IfbLifecycleDone done, gpointer data);
/* The same once the guest is idle (now if it is). */
void ifb_lifecycle_destroy_when_idle (IfbCore *core, IfbVm *vm);

/* The last process holding vm's fds exited: replace its context (freeing all the VMM allocated
 * and pinned in it) and, under the bound hand-off, make the broker's objects again; once the
 * guest is idle. */
void ifb_lifecycle_reclaim (IfbCore *core, IfbVm *vm);
/* Open device d of vm as its kind does (device-kind.h), checking the node is that device. */
gboolean ifb_lifecycle_open_device (IfbCore *core, IfbVm *vm, IfbVmDevice *d, int *ret_fd, GError **error);

/* Move a guest none of whose objects the broker allocated (unbound, or pending) to cgroup, which
 * passes vm.create's checks for caller; persisted (lifecycle-place.c). */
gboolean ifb_lifecycle_place (IfbCore *core, IfbVm *vm, const char *cgroup, const IfbPeer *caller, GError **error);

/* A guest by name or UUID, tidied first if a restart left that to do (see restore). */
IfbVm *ifb_lifecycle_get (IfbCore *core, const char *name_or_uuid, GError **error);
/* What ifb_lifecycle_get() does to the guest it finds, for a guest looked up otherwise. */
void ifb_lifecycle_touch (IfbCore *core, IfbVm *vm);
/* Tidy the restored guests from the main loop, a few per iteration, after READY=1. */
void ifb_lifecycle_tidy_in_background (IfbCore *core);

/* Re-associate saved guests (taken) with fds handed back by the service manager (taken).
 * Unmatched fds are logged and closed; guests whose context is gone are dropped and logged. */
void ifb_lifecycle_restore (IfbCore *core, GPtrArray *saved_vms, int *fds, char **names, guint n_fds);
