/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The JSON-RPC 2.0 dispatcher: request validation, batches, notifications, access control on
 * every call, and the only place where a GError becomes a JSON-RPC error object.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

#include "connection.h"
#include "fdlist.h"
#include "manager.h"
#include "peer.h"

/* What a method handler gets. */
typedef struct {
  IfbManager *manager;
  IfbConnection *connection;    /* NULL in unit tests */
  const IfbPeer *peer;
  const char *method;
  IfbFdList *in_fds;            /* fds that came with the request (NULL if none); steal what you keep */
  IfbFdList *out_fds;           /* fds to send with the reply line; append and put the index in the result */
} IfbCall;

typedef gboolean (*IfbMethodFunc) (IfbCall *call, json_object *params, json_object **ret_result, GError **error);

typedef struct {
  const char *name;
  IfbAccess access;
  gboolean takes_fds;
  IfbMethodFunc func;
  gboolean expensive;           /* a large reply or a walk of every guest or device: budgeted per uid */
} IfbMethod;

/* The one method table (rpc-methods.c), terminated by { NULL }. */
extern const IfbMethod ifb_methods[];
const IfbMethod *ifb_method_lookup (const char *name);

/*
 * Handle one protocol line. *ret_reply is the reply to send (NULL for none: notifications), and
 * *ret_fds the fds to send with it. in_fds is taken.
 */
void ifb_dispatch_line (IfbManager *m, IfbConnection *conn, const IfbPeer *peer,
                        const char *line, size_t len, IfbFdList *in_fds,
                        json_object **ret_reply, IfbFdList **ret_fds);
