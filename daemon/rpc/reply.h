/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbReply: what one protocol line will answer — a single response or a batch's array — filled
 * in slot by slot, now or later (a request whose worker is still running), and sent by its
 * connection in line order once every slot is in. A reply outlives its connection when work is
 * still under way: the work completes and commits, the answer is dropped.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

#include "fdlist.h"
#include "peer.h"

typedef struct IfbReply IfbReply;

/*
 * Who sent a line, as the layers above the transport see it: the peer, and what they may ask of
 * its connection (owner) — nothing else of it.
 */
typedef struct {
  const IfbPeer *peer;
  void (*reply_ready) (gpointer owner);                   /* a line's reply completed: send what is ready */
  void (*set_subscribed) (gpointer owner, gboolean on);   /* events.subscribe */
  gpointer owner;
} IfbCaller;

/* A line's reply for caller (NULL in unit tests; it must outlive the reply or detach it);
 * batch: answer with an array. */
IfbReply *ifb_reply_new (const IfbCaller *caller, gboolean batch);
IfbReply *ifb_reply_ref (IfbReply *r);
void ifb_reply_unref (IfbReply *r);

/* One more request of the line; returns its slot index. */
guint ifb_reply_add_slot (IfbReply *r);
/* Fill slot i with a response object (taken), or NULL when nothing is sent (a notification). */
void ifb_reply_fill (IfbReply *r, guint i, json_object *response);
/* Every request of the line has a slot now: from here on the last fill hands it to the connection. */
void ifb_reply_seal (IfbReply *r);

/* The fds sent with the line (results refer to them by index). */
IfbFdList *ifb_reply_fds (IfbReply *r);
/* The caller, or NULL once its connection is gone. */
const IfbCaller *ifb_reply_caller (IfbReply *r);
void ifb_reply_detach (IfbReply *r);   /* the connection is closing */

gboolean ifb_reply_is_complete (IfbReply *r);
/* What the batch's responses filled in so far take on the wire (0 for a single request). */
size_t ifb_reply_bytes (IfbReply *r);
/* What to send: the response or the batch array (NULL when only notifications). Taken. */
json_object *ifb_reply_steal_message (IfbReply *r);
IfbFdList *ifb_reply_steal_fds (IfbReply *r);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbReply, ifb_reply_unref)
