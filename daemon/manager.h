/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbManager: the daemon's root object. It owns the configuration, the chosen uAPI backend and
 * the directories it works in, the registry of guests, the RPC server, and the link to the
 * service manager. RPC handlers receive it; the fields are read-only outside manager.c and
 * lifecycle.c.
 */
#pragma once

#include <stdbool.h>
#include <glib.h>
#include <json-c/json.h>

#include "cgroup.h"
#include "config.h"
#include "registry.h"
#include "uapi.h"
#include "worker.h"

typedef struct IfbServer IfbServer;
typedef struct IfbLibvirtWatch IfbLibvirtWatch;

typedef struct IfbManager {
  IfbConfig *config;
  const IfbUapiBackend *backend;
  char *backend_reason;         /* why this backend: "--backend emulated", "/dev/iommu is absent" */
  int dev_dirfd;                /* /dev, or the emulated root's dev/ */
  int sys_dirfd;                /* /sys, or the emulated root's sys/ */
  int runtime_dirfd;
  char *emulated_root;          /* path of the emulated root, NULL on the kernel backend */
  IfbCgroupRoot *cgroups;
  char *self_cgroup;            /* the daemon's own cgroup, never a guest's */
  bool selftest_available;      /* kernel offers IOMMUFD_TEST and config allows it */
  IfbRegistry *registry;
  GHashTable *hw_cache;         /* bdf -> IfbHwInfo* from probes of unowned devices */
  IfbServer *server;
  IfbLibvirtWatch *libvirt;
  GMainLoop *loop;
  gint64 started_usec;
  guint64 n_restored_vms;
} IfbManager;

IfbManager *ifb_manager_new (IfbConfig *config, GError **error);
IfbManager *ifb_manager_free (IfbManager *m);

/* Pick the backend, open directories, restore guests from state + fd store, start listening,
 * and tell the service manager READY=1. */
gboolean ifb_manager_start (IfbManager *m, GError **error);
/* Run until SIGTERM/SIGINT. */
void ifb_manager_run (IfbManager *m);

/* Persist vm's state (NULL: none changed) and refresh STATUS=; call after every change. */
gboolean ifb_manager_commit (IfbManager *m, IfbVm *vm, GError **error);
/* Forget a destroyed guest's state and refresh STATUS=. */
gboolean ifb_manager_commit_removal (IfbManager *m, const IfbVm *vm, GError **error);
/* Send a notification {"method":"event","params":{"event":type,...}} to subscribers. params taken. */
void ifb_manager_emit (IfbManager *m, const char *type, json_object *params);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbManager, ifb_manager_free)
