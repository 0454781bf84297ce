/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Talking to the service manager: readiness, status, watchdog, and the fd store that keeps every
 * guest's fds across a crash or restart. All functions are no-ops without NOTIFY_SOCKET.
 */
#pragma once

#include <stdbool.h>
#include <glib.h>

bool ifb_notify_enabled (void);
void ifb_notify_ready (const char *status);
void ifb_notify_status (const char *status);
void ifb_notify_stopping (void);
/* Arms a GLib timer sending WATCHDOG=1 at half the manager's interval, if it asked for one. */
void ifb_notify_watchdog_start (void);

/* FDSTORE=1 + FDNAME=name + FDPOLL=0. -errno on failure (0 when there is no service manager). */
int ifb_notify_fdstore_add (const char *name, int fd);
/* FDSTOREREMOVE=1 + FDNAME=name. */
int ifb_notify_fdstore_remove (const char *name);
/* Ask the service manager for a barrier without waiting: *ret_fd reports EOF (readable) once it
 * has processed every message sent before. -ENOTCONN without a service manager. */
int ifb_notify_barrier_start (int *ret_fd);
/* Whether name is acceptable as FDNAME (no ':', printable, at most 255 bytes). */
bool ifb_notify_fdname_valid (const char *name);
