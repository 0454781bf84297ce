/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbConnection: one client. Reads frames (with their fds), hands each to the dispatcher, queues
 * the replies, and applies the per-connection limits: frame size, requests in flight (we stop
 * reading while too many replies are unsent), and the depth of the parser.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

#include "core.h"
#include "fdlist.h"
#include "peer.h"

typedef struct IfbConnection IfbConnection;

/* What a connection asks of its owner (the server): the budget it shares with the others, and
 * its end. */
typedef struct {
  /* Count delta more (or fewer) fds held in transit for peers; FALSE when over the budget. */
  gboolean (*hold_fds) (int delta, gpointer data);
  guint fd_budget;              /* that budget, for the log line */
  /* Count delta more (or fewer) fds in replies to uid that its peers have not received (queued,
   * or sent and unread); returns the uid's total. */
  guint (*hold_out_fds) (uid_t uid, int delta, gpointer data);
  /* The connection is done: the owner frees it (ifb_connection_free()). */
  void (*closed) (IfbConnection *c, gpointer data);
  gpointer data;
} IfbConnectionOwner;

/* peer taken. */
IfbConnection *ifb_connection_new (IfbCore *core, const IfbConnectionOwner *owner, int fd, IfbPeer *peer);
IfbConnection *ifb_connection_free (IfbConnection *c);

const IfbPeer *ifb_connection_get_peer (IfbConnection *c);
gboolean ifb_connection_is_subscribed (IfbConnection *c);
/* Whether the peer has sent nothing for timeout_usec and nothing is owed to it (subscribers,
 * which wait for events by design, never are). */
gboolean ifb_connection_is_idle (IfbConnection *c, gint64 now, gint64 timeout_usec);
/* Queue a line and its fds (taken). Over [limits] max-queued-bytes the line is dropped and the
 * connection is closed once the caller's stack unwinds. */
void ifb_connection_send (IfbConnection *c, json_object *msg, IfbFdList *fds);
