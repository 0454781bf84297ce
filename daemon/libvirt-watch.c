/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Placeholder until the libvirt event watcher lands (issue: libvirt integration). It refuses
 * loudly rather than pretending to watch. */
#define G_LOG_DOMAIN "ifb-libvirt"

#include "libvirt-watch.h"

struct IfbLibvirtWatch {
  int unused;
};

IfbLibvirtWatch *
ifb_libvirt_watch_new (IfbManager *m, const char *uri)
{
  g_warning ("libvirt event watching (%s) is not built into this version, ignoring", uri);
  return NULL;
}

IfbLibvirtWatch *
ifb_libvirt_watch_free (IfbLibvirtWatch *w)
{
  g_free (w);
  return NULL;
}

gboolean
ifb_libvirt_watch_is_connected (IfbLibvirtWatch *w)
{
  return FALSE;
}
