/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbManager: the daemon put together. It makes the core (core.h) and gives it its hooks, starts
 * what stands around it — the RPC server, the libvirt watch, the metrics text file — and runs the
 * main loop. main.c and tests that need a whole daemon use it; nothing else includes this file.
 */
#pragma once

#include <glib.h>

#include "core.h"

typedef struct IfbServer IfbServer;
typedef struct IfbLibvirtWatch IfbLibvirtWatch;

typedef struct IfbManager {
  IfbCore *core;
  IfbServer *server;
  IfbLibvirtWatch *libvirt;
  GMainLoop *loop;
} IfbManager;

/* config taken. */
IfbManager *ifb_manager_new (IfbConfig *config, GError **error);
IfbManager *ifb_manager_free (IfbManager *m);

/* Pick the backend, open directories, restore guests from state + fd store, start listening,
 * and tell the service manager READY=1. */
gboolean ifb_manager_start (IfbManager *m, GError **error);
/* Run until SIGTERM/SIGINT. */
void ifb_manager_run (IfbManager *m);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbManager, ifb_manager_free)
