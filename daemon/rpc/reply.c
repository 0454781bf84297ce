/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define G_LOG_DOMAIN "ifb-reply"

#include "reply.h"

struct IfbReply {
  gint ref;
  const IfbCaller *caller;
  gboolean batch;
  gboolean sealed;
  GPtrArray *slots;             /* json_object* per request, NULL until filled or for notifications */
  guint outstanding;
  size_t bytes;                 /* of the responses filled in so far (batches only) */
  IfbFdList *fds;
};

IfbReply *
ifb_reply_new (const IfbCaller *caller, gboolean batch)
{
  IfbReply *r = g_new0 (IfbReply, 1);
  r->ref = 1;
  r->caller = caller;
  r->batch = batch;
  r->slots = g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_put);
  r->fds = ifb_fd_list_new ();
  return r;
}

IfbReply *
ifb_reply_ref (IfbReply *r)
{
  g_atomic_int_inc (&r->ref);
  return r;
}

void
ifb_reply_unref (IfbReply *r)
{
  if (!r || !g_atomic_int_dec_and_test (&r->ref))
    return;
  g_ptr_array_unref (r->slots);
  ifb_fd_list_free (r->fds);
  g_free (r);
}

guint
ifb_reply_add_slot (IfbReply *r)
{
  g_ptr_array_add (r->slots, NULL);
  r->outstanding++;
  return r->slots->len - 1;
}

void
ifb_reply_fill (IfbReply *r, guint i, json_object *response)
{
  g_return_if_fail (i < r->slots->len && r->outstanding > 0);
  g_ptr_array_index (r->slots, i) = response;
  if (r->batch && response) {
    size_t len = 0;
    json_object_to_json_string_length (response, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    r->bytes += len + 1;
  }
  r->outstanding--;
  if (r->sealed && r->outstanding == 0 && r->caller && r->caller->reply_ready)
    r->caller->reply_ready (r->caller->owner);
}

void
ifb_reply_seal (IfbReply *r)
{
  r->sealed = TRUE;
}

IfbFdList *ifb_reply_fds (IfbReply *r) { return r->fds; }
const IfbCaller *ifb_reply_caller (IfbReply *r) { return r->caller; }
void ifb_reply_detach (IfbReply *r) { r->caller = NULL; }

size_t ifb_reply_bytes (IfbReply *r) { return r->bytes; }

gboolean
ifb_reply_is_complete (IfbReply *r)
{
  return r->sealed && r->outstanding == 0;
}

json_object *
ifb_reply_steal_message (IfbReply *r)
{
  json_object *arr;

  if (!r->batch)
    return r->slots->len ? g_steal_pointer (&g_ptr_array_index (r->slots, 0)) : NULL;
  arr = NULL;
  for (guint i = 0; i < r->slots->len; i++) {
    json_object *o = g_steal_pointer (&g_ptr_array_index (r->slots, i));
    if (!o)
      continue;
    if (!arr)
      arr = json_object_new_array ();
    json_object_array_add (arr, o);
  }
  return arr;
}

IfbFdList *
ifb_reply_steal_fds (IfbReply *r)
{
  IfbFdList *fds = r->fds;
  r->fds = ifb_fd_list_new ();
  return fds;
}
