/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbLibvirtWatch: follows libvirt's domain lifecycle events on the GLib main loop and destroys
 * guests whose domain is gone; reconciles at start-up and after libvirtd comes back.
 */
#pragma once

#include "core.h"

typedef struct IfbLibvirtWatch IfbLibvirtWatch;

/* While connected, core->gauges.libvirt_connected is TRUE. */
IfbLibvirtWatch *ifb_libvirt_watch_new (IfbCore *core, const char *uri);
IfbLibvirtWatch *ifb_libvirt_watch_free (IfbLibvirtWatch *w);
