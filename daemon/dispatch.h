/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The JSON-RPC 2.0 dispatcher: request validation, batches, notifications, access control on
 * every call, and the only place where a GError becomes a JSON-RPC error object.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

#include "fdlist.h"
#include "core.h"
#include "params.h"
#include "peer.h"
#include "reply.h"
#include "vm.h"

/* What a method handler gets. */
typedef struct {
  IfbCore *core;
  const IfbCaller *caller;      /* NULL in unit tests */
  const IfbPeer *peer;
  const char *method;
  IfbFdList *in_fds;            /* fds that came with the request (NULL if none); steal what you keep */
  IfbFdList *out_fds;           /* fds to send with the reply line; append and put the index in the result */
  /* the dispatcher's own */
  json_object *params;
  json_object *id;
  gboolean has_id;
  IfbReply *reply;
  guint slot;
  gboolean deferred;            /* the handler took the answer out (ifb_call_defer/park) */
  gint64 started_usec;          /* when the request arrived (parked or not): the metrics' latency */
  char *private_reason;         /* a refusal's real reason when the peer is told less: logged, never sent */
} IfbCall;

/*
 * A handler whose work goes on after it returns (a worker is running) takes the answer out of
 * the call and returns TRUE with no result; later, from the main loop, exactly one of
 * ifb_deferred_return()/ifb_deferred_fail() answers. The line's reply waits for it; the
 * connection may be gone by then, in which case the answer is dropped.
 */
typedef struct IfbDeferred IfbDeferred;
IfbDeferred *ifb_call_defer (IfbCall *call);
IfbCore *ifb_deferred_core (IfbDeferred *d);
/* The fds of the line the answer goes with (NULL when the connection is gone). */
IfbFdList *ifb_deferred_out_fds (IfbDeferred *d);
/* The peer that asked, while its connection lives (NULL after). */
const IfbPeer *ifb_deferred_peer (IfbDeferred *d);
void ifb_deferred_return (IfbDeferred *d, json_object *result);   /* result taken */
void ifb_deferred_fail (IfbDeferred *d, const GError *error);

/*
 * Park a call until what it needs is free: wait (resume, data, user) either queues resume (data)
 * to be called later from the main loop and returns TRUE, or returns FALSE when there is nothing
 * to wait for. A parked call runs again from the start when resumed (or is dropped if its
 * connection has gone). Returns TRUE when parked: the handler returns TRUE with no result.
 */
typedef gboolean (*IfbCallWait) (void (*resume) (gpointer data), gpointer data, gpointer user);
gboolean ifb_call_park (IfbCall *call, IfbCallWait wait, gpointer user);

/* One guest's requests run in arrival order: a handler about to change a guest that is busy
 * (a worker is running for it) parks the call until the guest is idle. */
gboolean ifb_call_park_if_busy (IfbCall *call, IfbVm *vm);

/* events.subscribe: the caller's connection gets the event notifications from now on. */
void ifb_call_subscribe (IfbCall *call);

/* args: the request's params as the method's table entry parsed them (NULL when it takes none);
 * its strings and arrays are borrowed from the request and last until the handler returns. */
typedef gboolean (*IfbMethodFunc) (IfbCall *call, const void *args, json_object **ret_result, GError **error);

typedef struct {
  const char *name;
  IfbAccess access;
  gboolean takes_fds;
  IfbMethodFunc func;
  gboolean expensive;           /* a large reply or a walk of every guest or device: budgeted per uid */
  /* What the method accepts: the dispatcher parses params by this table into a struct of
   * args_size bytes, which starts as a copy of args_defaults (zeroes when NULL). params NULL:
   * the method takes none (any member is unknown). proto/openrpc.json describes the same. */
  const IfbParamSpec *params;
  size_t args_size;
  const void *args_defaults;
} IfbMethod;

/* The one method table (rpc-methods.c), terminated by { NULL }. */
extern const IfbMethod ifb_methods[];
const IfbMethod *ifb_method_lookup (const char *name);

/*
 * Handle one protocol line (in_fds taken). Returns its reply, sealed: complete now, or once the
 * work of deferred calls is done (the caller is told: reply_ready).
 */
IfbReply *ifb_dispatch_line_start (IfbCore *core, const IfbCaller *caller, const IfbPeer *peer,
                                   const char *line, size_t len, IfbFdList *in_fds);

/* The same, waiting in the default main context until the reply is complete (tests, fuzzing).
 * *ret_reply is the message to send (NULL for none: notifications), *ret_fds its fds. */
void ifb_dispatch_line (IfbCore *core, const IfbCaller *caller, const IfbPeer *peer,
                        const char *line, size_t len, IfbFdList *in_fds,
                        json_object **ret_reply, IfbFdList **ret_fds);
