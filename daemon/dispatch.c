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
 * Access is checked on every call from the peer's credentials (peer.c); then the params are
 * parsed by the method's own table (its entry in rpc-methods.c), and the handler gets what that
 * parsed, never the raw params. fds that arrive with a line are offered to the method only if it
 * takes fds and the line is a single request; anything left is closed when the call returns.
 * Replies that carry fds share one list per line and refer to them by index.
 *
 * A line's answers are collected in an IfbReply (reply.c), slot by slot. A handler may answer
 * later (ifb_call_defer(): its worker is running) or park the call until its guest is idle
 * (ifb_call_park_if_busy()); the connection sends the line's reply, in line order, when every
 * slot is in.
 *
 * What one line can cost is bounded: a batch's replies may take a quarter of [limits]
 * max-queued-bytes, measured as they are made, and the requests after that are answered with
 * limit-exceeded without running; the expensive methods (a large reply, or a walk of every guest
 * or device) are budgeted per uid by a token bucket of [limits] expensive-calls-per-second
 * (root and the admin group are not counted). Refused calls are logged through
 * ifb_log_refusal(), a few per uid per interval.
 */
#define G_LOG_DOMAIN "ifb-dispatch"

#include <string.h>

#include "dispatch.h"
#include "errors.h"
#include "log.h"
#include "util.h"
#include "json.h"
#include "jsonrpc.h"
#include "metrics.h"

const IfbMethod *
ifb_method_lookup (const char *name)
{
  for (const IfbMethod *mt = ifb_methods; mt->name; mt++)
    if (strcmp (mt->name, name) == 0)
      return mt;
  return NULL;
}

static gboolean
id_is_valid (json_object *id)
{
  /* json-c represents null as NULL; presence is checked by the caller */
  return !id || json_object_is_type (id, json_type_string) || json_object_is_type (id, json_type_int) ||
         json_object_is_type (id, json_type_double);
}

typedef struct {
  double tokens;
  gint64 last;
} Bucket;

static GHashTable *buckets;   /* uid -> Bucket* (one manager per process) */

/* One expensive call of uid, if its bucket (rate per second, as deep as one second's worth)
 * has a token. */
static gboolean
take_token (uid_t uid, guint rate)
{
  gint64 now = g_get_monotonic_time ();
  Bucket *b;

  if (!buckets)
    buckets = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, g_free);
  b = g_hash_table_lookup (buckets, GUINT_TO_POINTER (uid));
  if (!b) {
    if (g_hash_table_size (buckets) >= 4096)   /* a full bucket and a forgotten one are the same */
      g_hash_table_remove_all (buckets);
    b = g_new0 (Bucket, 1);
    b->tokens = rate;
    b->last = now;
    g_hash_table_insert (buckets, GUINT_TO_POINTER (uid), b);
  }
  b->tokens = MIN ((double) rate, b->tokens + (double) (now - b->last) * rate / G_USEC_PER_SEC);
  b->last = now;
  if (b->tokens < 1.0)
    return FALSE;
  b->tokens -= 1.0;
  return TRUE;
}

static gboolean
check_budget (IfbCore *core, const IfbPeer *peer, const IfbMethod *method, GError **error)
{
  guint rate = core->config->expensive_calls_per_second;

  if (!method->expensive || rate == 0 || ifb_peer_is_admin (peer, core->config) || take_token (peer->uid, rate))
    return TRUE;
  return g_set_error (error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED,
                      "Limit reached: uid %u may make at most %u calls of rpc.discover, vm.list, device.list and metrics "
                      "per second ([limits] expensive-calls-per-second)", (unsigned) peer->uid, rate), FALSE;
}

static json_object *
error_reply (json_object *id, IfbError code, const char *msg)
{
  g_autoptr (GError) e = g_error_new_literal (IFB_ERROR, code, msg);
  return ifb_jsonrpc_error_new (id, e);
}

/* ---- deferred and parked calls ------------------------------------------------------- */

struct IfbDeferred {
  IfbCore *core;
  gint64 started_usec;
  IfbReply *reply;
  guint slot;
  json_object *id;
  gboolean has_id;
  char *method;
  char *vm_name, *vm_uuid;      /* the guest the call names, for the log (either may be NULL) */
};

/* The guest a call names, for its log line: the guest's own name and UUID when it exists, else
 * what the params say ('vm' or vm.create's 'name', 'uuid'). Borrowed from params or the guest. */
static void
call_guest (IfbCore *core, json_object *params, const char **ret_name, const char **ret_uuid)
{
  const char *name = ifb_json_get_string (params, "vm"), *uuid = ifb_json_get_string (params, "uuid");
  IfbVm *vm;

  if (!name)
    name = ifb_json_get_string (params, "name");
  vm = name ? ifb_registry_lookup_name (core->registry, name) : uuid ? ifb_registry_lookup_uuid (core->registry, uuid) : NULL;
  *ret_name = vm ? vm->name : name;
  *ret_uuid = vm ? vm->uuid : uuid;
}

/* A failed call's log line: the real reason (private_reason, when the peer was told less) and,
 * when the call names a guest, IFB_VM= and IFB_VM_UUID=. Invalid params are the caller's
 * business and not logged. */
static void
log_failure (IfbCore *core, const IfbPeer *peer, const char *method, const char *vm_name, const char *vm_uuid,
             const GError *error, const char *private_reason)
{
  uid_t uid = peer ? peer->uid : (uid_t) -1;

  if (error->domain != IFB_ERROR || error->code == IFB_ERROR_INVALID_PARAMS)
    return;
  if (vm_name || vm_uuid)
    ifb_log_refusal_vm (uid, core->config->max_refusals_logged, vm_name, vm_uuid, "%s from uid %d pid %d for guest '%s' failed: %s",
                        method, peer ? (int) peer->uid : -1, peer ? (int) peer->pid : -1, vm_name ? vm_name : vm_uuid,
                        private_reason ? private_reason : error->message);
  else
    ifb_log_refusal (uid, core->config->max_refusals_logged, "%s from uid %d pid %d failed: %s", method,
                     peer ? (int) peer->uid : -1, peer ? (int) peer->pid : -1,
                     private_reason ? private_reason : error->message);
}

IfbDeferred *
ifb_call_defer (IfbCall *call)
{
  IfbDeferred *d = g_new0 (IfbDeferred, 1);

  d->core = call->core;
  d->reply = ifb_reply_ref (call->reply);
  d->slot = call->slot;
  d->id = json_object_get (call->id);
  d->has_id = call->has_id;
  d->method = g_strdup (call->method);
  d->started_usec = call->started_usec;
  {
    const char *name, *uuid;
    call_guest (call->core, call->params, &name, &uuid);
    d->vm_name = g_strdup (name);
    d->vm_uuid = g_strdup (uuid);
  }
  call->deferred = TRUE;
  return d;
}

IfbCore *ifb_deferred_core (IfbDeferred *d) { return d->core; }

IfbFdList *
ifb_deferred_out_fds (IfbDeferred *d)
{
  return ifb_reply_caller (d->reply) ? ifb_reply_fds (d->reply) : NULL;
}

const IfbPeer *
ifb_deferred_peer (IfbDeferred *d)
{
  const IfbCaller *c = ifb_reply_caller (d->reply);
  return c ? c->peer : NULL;
}

static void
deferred_free (IfbDeferred *d)
{
  ifb_reply_unref (d->reply);
  json_object_put (d->id);
  g_free (d->method);
  g_free (d->vm_name);
  g_free (d->vm_uuid);
  g_free (d);
}

void
ifb_deferred_return (IfbDeferred *d, json_object *result)
{
  ifb_metrics_rpc_observe (d->method, NULL, g_get_monotonic_time () - d->started_usec);
  if (!d->has_id) {
    json_object_put (result);
    ifb_reply_fill (d->reply, d->slot, NULL);
  } else {
    ifb_reply_fill (d->reply, d->slot, ifb_jsonrpc_result_new (d->id, result));
  }
  deferred_free (d);
}

void
ifb_deferred_fail (IfbDeferred *d, const GError *error)
{
  const IfbPeer *peer = ifb_deferred_peer (d);

  ifb_metrics_rpc_observe (d->method, error, g_get_monotonic_time () - d->started_usec);
  log_failure (d->core, peer, d->method, d->vm_name, d->vm_uuid, error, NULL);
  ifb_reply_fill (d->reply, d->slot, d->has_id ? ifb_jsonrpc_error_new (d->id, (GError *) error) : NULL);
  deferred_free (d);
}

static void invoke (IfbCore *core, const IfbCaller *caller, const IfbPeer *peer, const IfbMethod *method,
                    json_object *id, gboolean has_id, json_object *params, IfbFdList *in_fds, IfbReply *r, guint slot,
                    gint64 started_usec);

typedef struct {
  IfbCore *core;
  IfbReply *reply;
  guint slot;
  const IfbMethod *method;
  json_object *id, *params;
  gboolean has_id;
  IfbFdList *in_fds;
  gint64 started_usec;
} Parked;

static void
parked_free (Parked *p)
{
  ifb_reply_unref (p->reply);
  json_object_put (p->id);
  json_object_put (p->params);
  ifb_fd_list_free (p->in_fds);
  g_free (p);
}

static void
resume_parked (gpointer data)
{
  Parked *p = data;
  const IfbCaller *caller = ifb_reply_caller (p->reply);

  if (caller)
    invoke (p->core, caller, caller->peer, p->method, p->id, p->has_id, p->params, p->in_fds,
            p->reply, p->slot, p->started_usec);
  else
    ifb_reply_fill (p->reply, p->slot, NULL);   /* the peer hung up: its queued work is dropped */
  parked_free (p);
}

gboolean
ifb_call_park (IfbCall *call, IfbCallWait wait, gpointer user)
{
  Parked *p;

  if (!call->reply)
    return FALSE;
  p = g_new0 (Parked, 1);
  p->core = call->core;
  p->reply = ifb_reply_ref (call->reply);
  p->slot = call->slot;
  p->method = ifb_method_lookup (call->method);
  p->id = json_object_get (call->id);
  p->has_id = call->has_id;
  p->started_usec = call->started_usec;
  p->params = json_object_get (call->params);
  if (!wait (resume_parked, p, user)) {   /* nothing to wait for */
    parked_free (p);
    return FALSE;
  }
  if (call->in_fds) {   /* what the method takes comes along (resume runs from the main loop, later) */
    p->in_fds = ifb_fd_list_new ();
    for (guint i = 0; i < ifb_fd_list_len (call->in_fds); i++)
      ifb_fd_list_push (p->in_fds, ifb_fd_list_steal (call->in_fds, i));
  }
  call->deferred = TRUE;
  return TRUE;
}

static gboolean
wait_for_guest (void (*resume) (gpointer data), gpointer data, gpointer user)
{
  IfbVm *vm = user;

  if (!ifb_vm_is_busy (vm))
    return FALSE;
  ifb_vm_when_idle (vm, resume, data);
  return TRUE;
}

gboolean
ifb_call_park_if_busy (IfbCall *call, IfbVm *vm)
{
  return ifb_call_park (call, wait_for_guest, vm);
}

void
ifb_call_subscribe (IfbCall *call)
{
  if (call->caller && call->caller->set_subscribed)
    call->caller->set_subscribed (call->caller->owner, TRUE);
}

/* ---- one request --------------------------------------------------------------------- */

/* params parsed by method's table into a new args struct (*ret_args NULL when it takes none). */
static gboolean
parse_args (const IfbMethod *method, json_object *params, void **ret_args, GError **error)
{
  static const IfbParamSpec none[] = { { NULL } };
  g_autofree void *args = NULL;

  if (method->args_size)
    args = method->args_defaults ? g_memdup2 (method->args_defaults, method->args_size)
                                 : g_malloc0 (method->args_size);
  if (!ifb_params_parse (params, method->params ? method->params : none, args, error))
    return FALSE;
  *ret_args = g_steal_pointer (&args);
  return TRUE;
}

/* started_usec: when the request arrived; a parked call keeps its first arrival. */
static void
invoke (IfbCore *core, const IfbCaller *caller, const IfbPeer *peer, const IfbMethod *method,
        json_object *id, gboolean has_id, json_object *params, IfbFdList *in_fds, IfbReply *r, guint slot,
        gint64 started_usec)
{
  g_autoptr (GError) error = NULL;
  g_autofree void *args = NULL;
  json_object *result = NULL;
  IfbCall call = {
    .core = core, .caller = caller, .peer = peer, .method = method->name,
    .in_fds = method->takes_fds ? in_fds : NULL, .out_fds = ifb_reply_fds (r),
    .params = params, .id = id, .has_id = has_id, .reply = r, .slot = slot, .started_usec = started_usec,
  };
  gboolean ok = ifb_peer_check (peer, core->config, method->access, method->name, &error) &&
                check_budget (core, peer, method, &error) &&
                parse_args (method, params, &args, &error) &&
                method->func (&call, args, &result, &error);

  if (!call.deferred)   /* answered now; a deferred call is counted when it is answered */
    ifb_metrics_rpc_observe (method->name, error, g_get_monotonic_time () - started_usec);
  if (!ok) {
    const char *vm_name, *vm_uuid;
    call_guest (core, params, &vm_name, &vm_uuid);
    log_failure (core, peer, method->name, vm_name, vm_uuid, error, call.private_reason);
    g_free (call.private_reason);
    ifb_reply_fill (r, slot, has_id ? ifb_jsonrpc_error_new (id, error) : NULL);
    return;
  }
  if (call.deferred)
    return;
  if (!has_id) {
    json_object_put (result);
    ifb_reply_fill (r, slot, NULL);
    return;
  }
  ifb_reply_fill (r, slot, ifb_jsonrpc_result_new (id, result));
}

/* Returns an answer when the request is refused before reaching its method, else NULL (the
 * method fills its slot, now or later). */
static json_object *
handle_one (IfbCore *core, const IfbCaller *caller, const IfbPeer *peer, json_object *req,
            IfbFdList *in_fds, IfbReply *r, guint slot, gboolean *ret_invoked)
{
  json_object *id = NULL, *method_obj = NULL, *params = NULL, *version = NULL;
  gboolean has_id = FALSE;
  const IfbMethod *method;
  const char *name;

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

  *ret_invoked = TRUE;
  invoke (core, caller, peer, method, id, has_id, params, in_fds, r, slot, g_get_monotonic_time ());
  return NULL;
}

/* One request into a new slot of r. */
static void
handle_into (IfbCore *core, const IfbCaller *caller, const IfbPeer *peer, json_object *req, IfbFdList *in_fds,
             IfbReply *r)
{
  guint slot = ifb_reply_add_slot (r);
  gboolean invoked = FALSE;
  json_object *early = handle_one (core, caller, peer, req, in_fds, r, slot, &invoked);

  if (!invoked)   /* refused before its method ran (NULL: an unknown method's notification) */
    ifb_reply_fill (r, slot, early);
}

IfbReply *
ifb_dispatch_line_start (IfbCore *core, const IfbCaller *caller, const IfbPeer *peer,
                         const char *line, size_t len, IfbFdList *in_fds_)
{
  g_autoptr (IfbFdList) in_fds = in_fds_;
  g_autoptr (json_object) req = NULL;
  g_autoptr (GError) error = NULL;
  gboolean batch;
  IfbReply *r;

  req = ifb_json_parse (line, len, (int) core->config->max_depth, &error);
  batch = req && json_object_is_type (req, json_type_array) && json_object_array_length (req) > 0 &&
          json_object_array_length (req) <= core->config->max_batch;
  r = ifb_reply_new (caller, batch);
  if (!req) {
    ifb_reply_fill (r, ifb_reply_add_slot (r), ifb_jsonrpc_error_new (NULL, error));
  } else if (batch) {
    for (size_t i = 0; i < json_object_array_length (req); i++) {
      json_object *one = json_object_array_get_idx (req, i);
      json_object *id = NULL;
      if (ifb_reply_bytes (r) < core->config->max_queued_bytes / 4) {
        handle_into (core, caller, peer, one, NULL, r);
        continue;
      }
      /* Over this line's share of the queue: the rest is answered, not run. */
      if (json_object_is_type (one, json_type_object) && !json_object_object_get_ex (one, "id", &id))
        continue;   /* a notification: nothing to say */
      ifb_reply_fill (r, ifb_reply_add_slot (r),
                      error_reply (id_is_valid (id) ? id : NULL, IFB_ERROR_LIMIT_EXCEEDED,
                                   "Limit reached: this batch's replies take a quarter of [limits] max-queued-bytes "
                                   "already; the request was not run"));
    }
  } else if (json_object_is_type (req, json_type_array)) {
    size_t n = json_object_array_length (req);
    g_autofree char *msg = n == 0 ? g_strdup ("Invalid Request: empty batch")
      : g_strdup_printf ("Limit exceeded: a batch may hold at most %u requests ([limits] max-batch)", core->config->max_batch);
    ifb_reply_fill (r, ifb_reply_add_slot (r),
                    error_reply (NULL, n == 0 ? IFB_ERROR_INVALID_REQUEST : IFB_ERROR_LIMIT_EXCEEDED, msg));
  } else {
    handle_into (core, caller, peer, req, in_fds, r);
  }
  ifb_reply_seal (r);
  return r;
}

void
ifb_dispatch_line (IfbCore *core, const IfbCaller *caller, const IfbPeer *peer,
                   const char *line, size_t len, IfbFdList *in_fds,
                   json_object **ret_reply, IfbFdList **ret_fds)
{
  g_autoptr (IfbReply) r = ifb_dispatch_line_start (core, caller, peer, line, len, in_fds);

  while (!ifb_reply_is_complete (r))
    g_main_context_iteration (NULL, TRUE);
  *ret_reply = ifb_reply_steal_message (r);
  *ret_fds = NULL;
  if (*ret_reply && ifb_fd_list_len (ifb_reply_fds (r)) > 0)
    *ret_fds = ifb_reply_steal_fds (r);
}
