/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * A line is one JSON text: a request object or a batch array. Each request is validated as the
 * JSON-RPC 2.0 spec says — "jsonrpc" exactly "2.0", "method" a string, "id" (if present) a
 * string, number or null and echoed back exactly, "params" (if present) structured — and any
 * other member is refused. A request without "id" is a notification: it runs, but nothing is
 * sent back, neither result nor error, and a batch of only notifications produces no line at
 * all. An invalid request is answered with -32600 and the id when one could be read, else null.
 *
 * Access is checked on every call from the peer's credentials (peer.c). fds that arrive with a
 * line are offered to the method only if it takes fds and the line is a single request; anything
 * left is closed when the call returns. Replies that carry fds share one list per line and
 * refer to them by index.
 */
#define G_LOG_DOMAIN "ifb-dispatch"

#include <string.h>

#include "dispatch.h"
#include "errors.h"
#include "util.h"
#include "json.h"
#include "jsonrpc.h"
#include "metrics.h"

const IfbMethod *
ifb_method_lookup (const char *name)
{
  for (const IfbMethod *m = ifb_methods; m->name; m++)
    if (strcmp (m->name, name) == 0)
      return m;
  return NULL;
}

static gboolean
id_is_valid (json_object *id)
{
  /* json-c represents null as NULL; presence is checked by the caller */
  return !id || json_object_is_type (id, json_type_string) || json_object_is_type (id, json_type_int) ||
         json_object_is_type (id, json_type_double);
}

static json_object *
error_reply (json_object *id, IfbError code, const char *msg)
{
  g_autoptr (GError) e = g_error_new_literal (IFB_ERROR, code, msg);
  return ifb_jsonrpc_error_new (id, e);
}

/* Returns the reply, or NULL for a notification. */
static json_object *
handle_one (IfbManager *m, IfbConnection *conn, const IfbPeer *peer, json_object *req,
            IfbFdList *in_fds, IfbFdList *out_fds)
{
  json_object *id = NULL, *method_obj = NULL, *params = NULL, *version = NULL;
  gboolean has_id = FALSE;
  const IfbMethod *method;
  const char *name;
  g_autoptr (GError) error = NULL;
  json_object *result = NULL;
  IfbCall call;
  gint64 start;
  gboolean ok;

  if (!json_object_is_type (req, json_type_object))
    return error_reply (NULL, IFB_ERROR_INVALID_REQUEST, "Invalid Request: a request must be an object");

  has_id = json_object_object_get_ex (req, "id", &id);
  if (has_id && !id_is_valid (id))
    return error_reply (NULL, IFB_ERROR_INVALID_REQUEST, "Invalid Request: 'id' must be a string, a number or null");

  json_object_object_foreach (req, key, val) {
    (void) val;
    if (strcmp (key, "jsonrpc") && strcmp (key, "method") && strcmp (key, "params") && strcmp (key, "id")) {
      g_autofree char *msg = g_strdup_printf ("Invalid Request: unknown member '%s'", key);
      return error_reply (id, IFB_ERROR_INVALID_REQUEST, msg);
    }
  }
  if (!json_object_object_get_ex (req, "jsonrpc", &version) || !version ||
      !json_object_is_type (version, json_type_string) || strcmp (json_object_get_string (version), "2.0") != 0)
    return error_reply (id, IFB_ERROR_INVALID_REQUEST, "Invalid Request: 'jsonrpc' must be \"2.0\"");
  if (!json_object_object_get_ex (req, "method", &method_obj) || !method_obj ||
      !json_object_is_type (method_obj, json_type_string))
    return error_reply (id, IFB_ERROR_INVALID_REQUEST, "Invalid Request: 'method' must be a string");
  if (json_object_object_get_ex (req, "params", &params) &&
      !(params && (json_object_is_type (params, json_type_object) || json_object_is_type (params, json_type_array))))
    return error_reply (id, IFB_ERROR_INVALID_REQUEST, "Invalid Request: 'params' must be an object or an array");

  name = json_object_get_string (method_obj);
  method = ifb_method_lookup (name);
  if (!method) {
    g_autofree char *msg = g_strdup_printf ("Method not found: '%s'", name);
    return has_id ? error_reply (id, IFB_ERROR_METHOD_NOT_FOUND, msg) : NULL;
  }

  call = (IfbCall) {
    .manager = m, .connection = conn, .peer = peer, .method = method->name,
    .in_fds = method->takes_fds ? in_fds : NULL, .out_fds = out_fds,
  };
  start = g_get_monotonic_time ();
  ok = ifb_peer_check (peer, m->config, method->access, method->name, &error) &&
       method->func (&call, params, &result, &error);
  ifb_metrics_rpc_observe (method->name, error, g_get_monotonic_time () - start);
  if (!ok) {
    if (error->domain == IFB_ERROR && error->code != IFB_ERROR_INVALID_PARAMS)
      g_message ("%s from uid %u pid %d failed: %s", method->name, (unsigned) peer->uid, (int) peer->pid, error->message);
    if (!has_id)
      return NULL;
    return ifb_jsonrpc_error_new (id, error);
  }
  if (!has_id) {
    json_object_put (result);
    return NULL;
  }
  return ifb_jsonrpc_result_new (id, result);
}

void
ifb_dispatch_line (IfbManager *m, IfbConnection *conn, const IfbPeer *peer,
                   const char *line, size_t len, IfbFdList *in_fds_,
                   json_object **ret_reply, IfbFdList **ret_fds)
{
  g_autoptr (IfbFdList) in_fds = in_fds_;
  g_autoptr (IfbFdList) out_fds = ifb_fd_list_new ();
  g_autoptr (json_object) req = NULL;
  g_autoptr (GError) error = NULL;
  json_object *reply = NULL;

  *ret_reply = NULL;
  *ret_fds = NULL;

  req = ifb_json_parse (line, len, (int) m->config->max_depth, &error);
  if (!req) {
    *ret_reply = ifb_jsonrpc_error_new (NULL, error);
    return;
  }

  if (json_object_is_type (req, json_type_array)) {
    size_t n = json_object_array_length (req);
    json_object *replies;

    if (n == 0) {
      *ret_reply = error_reply (NULL, IFB_ERROR_INVALID_REQUEST, "Invalid Request: empty batch");
      return;
    }
    if (n > m->config->max_batch) {
      g_autofree char *msg = g_strdup_printf ("Limit exceeded: a batch may hold at most %u requests ([limits] max-batch)",
                                              m->config->max_batch);
      *ret_reply = error_reply (NULL, IFB_ERROR_LIMIT_EXCEEDED, msg);
      return;
    }
    replies = json_object_new_array ();
    for (size_t i = 0; i < n; i++) {
      json_object *r = handle_one (m, conn, peer, json_object_array_get_idx (req, i), NULL, out_fds);
      if (r)
        json_object_array_add (replies, r);
    }
    if (json_object_array_length (replies) == 0) {
      json_object_put (replies);
      return;
    }
    reply = replies;
  } else {
    reply = handle_one (m, conn, peer, req, in_fds, out_fds);
  }

  *ret_reply = reply;
  if (reply && ifb_fd_list_len (out_fds) > 0)
    *ret_fds = g_steal_pointer (&out_fds);
}
