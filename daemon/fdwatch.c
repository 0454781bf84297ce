/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * One epoll fd, created on first use, is the only fd GLib polls for all watches (a GSource with
 * g_source_add_unix_fd()). When it is readable, dispatch() takes up to MAX_EVENTS ready watches
 * from epoll_wait(..., 0) and calls each; level-triggered epoll reports the rest again on the next
 * iteration, so one busy fd cannot hold the others back. Each epoll event carries the watch id,
 * not a pointer: a callback may remove any watch (its own or another connection's), and an event
 * for a removed id is simply skipped. Ids are never 0 and never reused while live.
 */
#define G_LOG_DOMAIN "ifb-fdwatch"

#include <errno.h>
#include <sys/epoll.h>

#include "fdwatch.h"
#include "util.h"

#define MAX_EVENTS 64

typedef struct {
  int fd;
  GUnixFDSourceFunc func;
  gpointer data;
} Watch;

typedef struct {
  GSource source;
  int epfd;
} EpollSource;

static EpollSource *epoll_source;
static GHashTable *watches;     /* id -> Watch* */
static guint next_id = 1;

static guint32
to_epoll (GIOCondition c)
{
  return (c & G_IO_IN ? EPOLLIN : 0) | (c & G_IO_OUT ? EPOLLOUT : 0);
}

static GIOCondition
from_epoll (guint32 e)
{
  return (e & EPOLLIN ? G_IO_IN : 0) | (e & EPOLLOUT ? G_IO_OUT : 0) | (e & EPOLLHUP ? G_IO_HUP : 0) |
         (e & EPOLLERR ? G_IO_ERR : 0);
}

static gboolean
dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  EpollSource *s = (EpollSource *) source;
  struct epoll_event ev[MAX_EVENTS];
  int n = epoll_wait (s->epfd, ev, MAX_EVENTS, 0);

  for (int i = 0; i < n; i++) {
    guint id = (guint) ev[i].data.u64;
    Watch *w = g_hash_table_lookup (watches, GUINT_TO_POINTER (id));
    if (w && !w->func (w->fd, from_epoll (ev[i].events), w->data))
      ifb_fd_watch_remove (id);
  }
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs epoll_funcs = { .dispatch = dispatch };

static gboolean
ensure_source (void)
{
  int epfd;

  if (epoll_source)
    return TRUE;
  epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (epfd < 0)
    return FALSE;
  epoll_source = (EpollSource *) g_source_new (&epoll_funcs, sizeof (EpollSource));
  epoll_source->epfd = epfd;
  g_source_set_static_name (&epoll_source->source, "ifb-fdwatch");
  g_source_add_unix_fd (&epoll_source->source, epfd, G_IO_IN);
  /* As connection.c's sources were: the daemon runs no nested loop, and a source that may not
   * recurse is unblocked with two eventfd writes per dispatch. */
  g_source_set_can_recurse (&epoll_source->source, TRUE);
  g_source_attach (&epoll_source->source, NULL);
  watches = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, g_free);
  return TRUE;
}

guint
ifb_fd_watch_add (int fd, GIOCondition cond, GUnixFDSourceFunc func, gpointer data)
{
  struct epoll_event ev = { .events = to_epoll (cond) };
  Watch *w;
  guint id;

  if (!ensure_source ())
    return 0;
  do
    id = next_id++;
  while (id == 0 || g_hash_table_contains (watches, GUINT_TO_POINTER (id)));
  ev.data.u64 = id;
  if (epoll_ctl (epoll_source->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    g_debug ("epoll_ctl(ADD, %d): %s", fd, g_strerror (errno));
    return 0;
  }
  w = g_new0 (Watch, 1);
  w->fd = fd;
  w->func = func;
  w->data = data;
  g_hash_table_insert (watches, GUINT_TO_POINTER (id), w);
  return id;
}

void
ifb_fd_watch_update (guint id, GIOCondition cond)
{
  Watch *w = id && watches ? g_hash_table_lookup (watches, GUINT_TO_POINTER (id)) : NULL;
  struct epoll_event ev = { .events = to_epoll (cond), .data.u64 = id };

  if (w && epoll_ctl (epoll_source->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
    g_debug ("epoll_ctl(MOD, %d): %s", w->fd, g_strerror (errno));
}

void
ifb_fd_watch_remove (guint id)
{
  Watch *w = id && watches ? g_hash_table_lookup (watches, GUINT_TO_POINTER (id)) : NULL;

  if (!w)
    return;
  /* The fd is still open here (callers remove the watch before closing it). */
  epoll_ctl (epoll_source->epfd, EPOLL_CTL_DEL, w->fd, NULL);
  g_hash_table_remove (watches, GUINT_TO_POINTER (id));
}
