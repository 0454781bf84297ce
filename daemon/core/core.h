/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbCore: what the guest core works with — the configuration, the uAPI backend and the
 * directories the host is seen through, the cgroup2 hierarchy, the registry of guests — and the
 * hooks its owner (manager.c) gives it to persist a guest, forget one and announce an event.
 * The core calls the hooks and knows nothing of what stands behind them (the state directory,
 * the service manager, the subscribers of the RPC socket).
 *
 * Layers, from the wire down (README "Layout"): transport (server, connection, reply) ->
 * dispatch -> handlers (rpc-*) -> core (lifecycle*, holders, vm, registry, device kinds,
 * worker) -> uAPI backends. A layer includes the ones below it, never one above; what a lower
 * layer must tell an upper one goes through a callback the upper one gave it.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

#include "cgroup.h"
#include "config.h"
#include "registry.h"
#include "uapi.h"

typedef struct {
  /* Write vm's state (vm NULL: none changed) and refresh what the service manager shows. */
  gboolean (*persist) (IfbVm *vm, GError **error, gpointer data);
  /* Forget a destroyed guest's state. */
  gboolean (*forget) (const IfbVm *vm, GError **error, gpointer data);
  /* Announce an event of type with params (taken) to whoever listens. */
  void (*emit) (const char *type, json_object *params, gpointer data);
  gpointer data;
} IfbCoreHooks;

/* Figures the layers above keep current for broker.info and the metrics. */
typedef struct {
  guint connections;            /* open client connections (server.c) */
  gboolean libvirt_connected;   /* the libvirt watch is connected (libvirt-watch.c) */
  guint64 restored_vms;         /* guests restored at start-up (lifecycle-restore.c) */
} IfbCoreGauges;

typedef struct IfbCore {
  IfbConfig *config;            /* owned */
  const IfbUapiBackend *backend;
  char *backend_reason;         /* why this backend: "configured: backend=emulated", "auto: ..." */
  int dev_dirfd;                /* /dev, or the emulated root's dev/ */
  int sys_dirfd;                /* /sys, or the emulated root's sys/ */
  int runtime_dirfd;
  char *emulated_root;          /* path of the emulated root, NULL on the kernel backend */
  guint device_reset_ms;        /* what a device reset costs, where the backend models it (workers) */
  IfbCgroupRoot *cgroups;       /* NULL without a cgroup2 hierarchy */
  char *self_cgroup;            /* the daemon's own cgroup, never a guest's */
  IfbRegistry *registry;
  GHashTable *hw_cache;         /* device name -> IfbHwInfo* from probes of unowned devices */
  GHashTable *hw_errors;        /* device name -> why its last probe failed (char*) */
  gint64 started_usec;
  IfbCoreGauges gauges;
  /* After a restart, the fds of no guest are being closed by release workers; tidying the
   * restored contexts waits for them (lifecycle-restore.c). */
  gboolean restore_releasing;
  IfbCoreHooks hooks;
} IfbCore;

/* config taken. */
IfbCore *ifb_core_new (IfbConfig *config);
IfbCore *ifb_core_free (IfbCore *core);

/* The hooks; each is a no-op (persist: success) when its owner set none. */
gboolean ifb_core_persist (IfbCore *core, IfbVm *vm, GError **error);
gboolean ifb_core_forget (IfbCore *core, const IfbVm *vm, GError **error);
void ifb_core_emit (IfbCore *core, const char *type, json_object *params);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbCore, ifb_core_free)
