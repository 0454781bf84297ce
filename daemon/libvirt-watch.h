/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbLibvirtWatch: follows libvirt's domain lifecycle events on the GLib main loop and destroys
 * guests whose domain is gone; reconciles at start-up and after libvirtd comes back.
 */
#pragma once

#include "manager.h"

IfbLibvirtWatch *ifb_libvirt_watch_new (IfbManager *m, const char *uri);
IfbLibvirtWatch *ifb_libvirt_watch_free (IfbLibvirtWatch *w);
/* Whether the watch is connected right now (for broker.info). */
gboolean ifb_libvirt_watch_is_connected (IfbLibvirtWatch *w);
