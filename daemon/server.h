/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbServer: the listening AF_UNIX socket and the set of connections, with the limits on how
 * many a peer may open.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

#include "connection.h"
#include "core.h"

typedef struct IfbServer IfbServer;

/* Listen on fd (socket-activated) or, when fd < 0, bind path ([broker] socket-mode). The VMM
 * socket likewise on vmm_fd or vmm_path (mode 0666), or none when both are unset. */
IfbServer *ifb_server_new (IfbCore *core, int listen_fd, const char *path, int vmm_fd, const char *vmm_path,
                           GError **error);
IfbServer *ifb_server_free (IfbServer *s);

/* Queue the notification {"jsonrpc":"2.0","method":"event","params":{...params,"event":type}}
 * to every subscribed connection (params taken). The open connections are counted in
 * core->gauges.connections. */
void ifb_server_broadcast_event (IfbServer *s, const char *type, json_object *params);
