/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation (see uid-queue.h for the contract)
 *
 * Without this, each ready connection got its own slice per loop turn: 300 connections of one
 * uid, each with a vm.fds, put 300 calls ahead of root's broker.info. Now a uid's connections
 * share one small slice per turn, and those left over leave the ready list (parked: no input
 * watch), so the next epoll_wait() sees root's connection at once. Parked connections are
 * stepped from an idle source, which runs only when no watch of the loop is ready (GLib
 * dispatches the higher-priority epoll source first): at most one step of one connection
 * separates two looks at the ready list.
 */
#define G_LOG_DOMAIN "ifb-connection"

#include "fdwatch.h"
#include "uid-queue.h"

typedef struct {
  guint64 turn;
  guint used;                   /* lines dispatched in turn */
  GQueue parked;                /* items waiting for a step, in order */
  gboolean in_ring;
} UidShare;

static GHashTable *shares;      /* uid -> UidShare* (one daemon per process) */
static GQueue ring;             /* UidShare* with parked items, round robin */
static guint step_source;
static void (*step_fn) (gpointer item);

static gboolean
share_is_idle (gpointer key, gpointer value, gpointer data)
{
  return g_queue_is_empty (&((UidShare *) value)->parked);
}

static UidShare *
share_of (uid_t uid)
{
  guint64 turn = ifb_fd_watch_turn ();
  UidShare *s;

  if (!shares)
    shares = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, g_free);
  s = g_hash_table_lookup (shares, GUINT_TO_POINTER (uid));
  if (!s) {
    if (g_hash_table_size (shares) >= 4096)   /* a forgotten share is a fresh one */
      g_hash_table_foreach_remove (shares, share_is_idle, NULL);
    s = g_new0 (UidShare, 1);
    g_queue_init (&s->parked);
    g_hash_table_insert (shares, GUINT_TO_POINTER (uid), s);
  }
  if (s->turn != turn) {
    s->turn = turn;
    s->used = 0;
  }
  return s;
}

guint
ifb_uid_queue_left (uid_t uid)
{
  UidShare *s = share_of (uid);
  return IFB_UID_QUEUE_TURN_LINES - MIN (s->used, IFB_UID_QUEUE_TURN_LINES);
}

void
ifb_uid_queue_used (uid_t uid, guint n)
{
  share_of (uid)->used += n;
}

static gboolean
on_step (gpointer data)
{
  UidShare *s = g_queue_pop_head (&ring);
  gpointer item;

  if (!s) {
    step_source = 0;
    return G_SOURCE_REMOVE;
  }
  s->in_ring = FALSE;
  item = g_queue_pop_head (&s->parked);
  if (!g_queue_is_empty (&s->parked)) {
    g_queue_push_tail (&ring, s);
    s->in_ring = TRUE;
  }
  if (item)
    step_fn (item);   /* may park it again, or park and remove others */
  if (g_queue_is_empty (&ring)) {
    step_source = 0;
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

void
ifb_uid_queue_park (uid_t uid, gpointer item, void (*step) (gpointer item))
{
  UidShare *s = share_of (uid);

  step_fn = step;
  g_queue_push_tail (&s->parked, item);
  if (!s->in_ring) {
    g_queue_push_tail (&ring, s);
    s->in_ring = TRUE;
  }
  if (!step_source)
    step_source = g_idle_add (on_step, NULL);   /* G_PRIORITY_DEFAULT_IDLE: after every ready watch */
}

void
ifb_uid_queue_remove (uid_t uid, gpointer item)
{
  UidShare *s = shares ? g_hash_table_lookup (shares, GUINT_TO_POINTER (uid)) : NULL;

  if (!s || !g_queue_remove (&s->parked, item))
    return;
  if (g_queue_is_empty (&s->parked) && s->in_ring) {
    g_queue_remove (&ring, s);
    s->in_ring = FALSE;
  }
}
