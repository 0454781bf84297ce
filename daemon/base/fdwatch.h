/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fd watches on one epoll instance, dispatched from a single GSource on the default main context.
 * A drop-in for g_unix_fd_add()/g_source_remove() where there are thousands of fds: GLib's own
 * loop polls and checks every source on every iteration (O(connections) per wake-up; with 2000
 * idle clients the median broker.info latency went from 0.3 to 1.7 ms), epoll only reports the
 * ready ones. Level-triggered, so a watch behaves exactly like a GUnixFDSource.
 */
#pragma once

#include <glib-unix.h>

/* Which round of ready watches is being served: one per wake-up of the loop, each watch called at
 * most once in it. What "per loop turn" means for budgets shared between watches. */
guint64 ifb_fd_watch_turn (void);

/* Make the default main context block in epoll_wait() on the watches (one syscall per wake-up).
 * Call before any other GSource is attached; without it everything works, with one poll() more. */
void ifb_fd_watch_init (void);
/* Did ifb_fd_watch_init() find GLib's wake-up fd (so the loop can block in epoll_wait())? */
gboolean ifb_fd_watch_is_direct (void);
/* Watch fd for cond (G_IO_IN/G_IO_OUT; HUP and ERR are always reported). The callback returns
 * G_SOURCE_REMOVE to end the watch. Returns an id > 0, or 0 when epoll refused the fd. */
guint ifb_fd_watch_add (int fd, GIOCondition cond, GUnixFDSourceFunc func, gpointer data);
/* Change what a watch waits for (one epoll_ctl). */
void ifb_fd_watch_update (guint id, GIOCondition cond);
/* End a watch (also from inside any watch's callback). id 0 is ignored. Always before closing
 * its fd — also when the callback will return G_SOURCE_REMOVE: epoll forgets fds by number, and
 * a callback that closes its fd may see the number reused (a new watch) before it returns. */
void ifb_fd_watch_remove (guint id);
