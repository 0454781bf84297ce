/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbServer: the listening AF_UNIX socket and the set of connections, with the limits on how
 * many a peer may open.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

#include "manager.h"

typedef struct IfbConnection IfbConnection;

/* Listen on fd (socket-activated) or, when fd < 0, bind path (mode 0660). */
IfbServer *ifb_server_new (IfbManager *m, int listen_fd, const char *path, GError **error);
IfbServer *ifb_server_free (IfbServer *s);

guint ifb_server_n_connections (IfbServer *s);
/* Queue a notification line to every subscribed connection. */
void ifb_server_broadcast (IfbServer *s, json_object *notification);

/* Count delta more (or fewer) fds held in transit for peers; FALSE when over the budget. */
gboolean ifb_server_hold_fds (IfbServer *s, int delta);
guint ifb_server_fd_budget (IfbServer *s);

/* Called by connections. */
void ifb_server_connection_closed (IfbServer *s, IfbConnection *c);
