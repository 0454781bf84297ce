/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The life of a guest: create, attach, detach, destroy, realize (allocate what was deferred until
 * the guest's cgroup existed), and restore after a restart. Every operation either completes or
 * leaves nothing behind — no object, fd, fd-store entry or device ownership.
 */
#pragma once

#include <glib.h>

#include "manager.h"
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
typedef void (*IfbLifecycleDone) (IfbManager *m, IfbVm *vm, const GError *error, gpointer data);

/* One operation per guest at a time: while a worker runs for it the guest is busy, and what
 * must wait (a parked request, a reclaim) is queued to run when it is idle again. */
gboolean ifb_lifecycle_is_busy (IfbVm *vm);
void ifb_lifecycle_when_idle (IfbVm *vm, void (*fn) (gpointer data), gpointer data);

void ifb_lifecycle_create (IfbManager *m, const IfbVmCreateArgs *args, IfbLifecycleDone done, gpointer data);
/* The guest must be idle. */
void ifb_lifecycle_attach (IfbManager *m, IfbVm *vm, const char *const *bdfs, guint n, IfbLifecycleDone done,
                           gpointer data);
/* Allocate what is still pending: the context (and IOAS), and reserved devices. Idle guest. */
void ifb_lifecycle_realize (IfbManager *m, IfbVm *vm, IfbLifecycleDone done, gpointer data);
/* Idle guest. The device is another guest's to take once done has run (its release worker
 * closed it). */
void ifb_lifecycle_detach (IfbManager *m, IfbVm *vm, const char *bdf, IfbLifecycleDone done, gpointer data);
/* Destroy in kernel order (HWPTs, then the IOAS), close every fd, free the devices (done may be
 * NULL). The guest must be idle; it is gone when done runs. */
void ifb_lifecycle_destroy (IfbManager *m, IfbVm *vm, IfbLifecycleDone done, gpointer data);
/* The same once the guest is idle (now if it is). */
void ifb_lifecycle_destroy_when_idle (IfbManager *m, IfbVm *vm);

/* The last process holding vm's fds exited: replace its context (freeing all the VMM allocated
 * and pinned in it) and, under the bound hand-off, make the broker's objects again; once the
 * guest is idle. */
void ifb_lifecycle_reclaim (IfbManager *m, IfbVm *vm);
/* Open device d's cdev as sysfs names it now (d->cdev follows a new name), checking the node is
 * that device: its number must be the one sysfs vfio-dev/vfioN/dev gives. */
gboolean ifb_lifecycle_open_device (IfbManager *m, IfbVmDevice *d, int *ret_fd, GError **error);

/* A guest by name or UUID, tidied first if a restart left that to do (see restore). */
IfbVm *ifb_lifecycle_get (IfbManager *m, const char *name_or_uuid, GError **error);
/* What ifb_lifecycle_get() does to the guest it finds, for a guest looked up otherwise. */
void ifb_lifecycle_touch (IfbManager *m, IfbVm *vm);
/* Tidy the restored guests from the main loop, a few per iteration, after READY=1. */
void ifb_lifecycle_tidy_in_background (IfbManager *m);

/* Re-associate saved guests (taken) with fds handed back by the service manager (taken).
 * Unmatched fds are logged and closed; guests whose context is gone are dropped and logged. */
void ifb_lifecycle_restore (IfbManager *m, GPtrArray *saved_vms, int *fds, char **names, guint n_fds);
