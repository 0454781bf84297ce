/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * One epoll fd holds all watches and is the only fd GLib sees for them (a GSource with
 * g_source_add_unix_fd()). When it is readable, dispatch() takes up to MAX_EVENTS ready watches
 * and calls each; level-triggered epoll reports the rest again on the next iteration, so one busy
 * fd cannot hold the others back. Each epoll event carries the watch id, not a pointer: a
 * callback may remove any watch (its own or another connection's), and an event for a removed id
 * is simply skipped. Ids are never 0 and never reused while live.
 *
 * The main context blocks in epoll_wait() itself. GLib would poll() the
 * epoll fd and dispatch() would then ask epoll_wait() what was ready: two syscalls per wake-up,
 * and a wake-up through epoll's own wait queue. ifb_fd_watch_init() learns the fd GLib uses to
 * wake its context (the only fd an empty context polls) and adds it to the epoll set; the poll
 * function installed on the default context then, whenever GLib asks for exactly those two fds
 * (the daemon's case: its listening sockets and connections are all watches here), makes one
 * epoll_wait() with GLib's timeout, answers GLib for both fds, and keeps the events for
 * dispatch(). When GLib asks for any other fd (libvirt-glib's sockets with [libvirt] uri set) or
 * not for the epoll fd (a higher-priority source is ready), it falls back to g_poll() and
 * dispatch() to epoll_wait(..., 0), as before.
 */
#define G_LOG_DOMAIN "ifb-fdwatch"

#include <errno.h>
#include <string.h>
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

#define WAKEUP_ID 0             /* the epoll event of GLib's wake-up fd (watch ids are never 0) */

static EpollSource *epoll_source;
static GHashTable *watches;     /* id -> Watch* */
static guint next_id = 1;
static int wakeup_fd = -1;      /* GLib's wake-up fd, in the epoll set; -1: not learned */
static struct epoll_event pending[MAX_EVENTS];
static int n_pending = -1;      /* events the poll function already took for dispatch(); -1: none */
static guint64 turn;            /* dispatch() calls so far */

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
  int n;

  turn++;
  if (n_pending >= 0) {
    n = n_pending;
    memcpy (ev, pending, (size_t) n * sizeof (ev[0]));
    n_pending = -1;
  } else {
    n = epoll_wait (s->epfd, ev, MAX_EVENTS, 0);
  }
  for (int i = 0; i < n; i++) {
    guint id = (guint) ev[i].data.u64;
    Watch *w = id == WAKEUP_ID ? NULL : g_hash_table_lookup (watches, GUINT_TO_POINTER (id));
    if (w && !w->func (w->fd, from_epoll (ev[i].events), w->data))
      ifb_fd_watch_remove (id);
  }
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs epoll_funcs = { .dispatch = dispatch };

static gint
epoll_poll (GPollFD *fds, guint n_fds, gint timeout)
{
  GPollFD *ep = NULL, *wake = NULL;
  int n;

  n_pending = -1;
  for (guint i = 0; i < n_fds; i++) {
    if (epoll_source && fds[i].fd == epoll_source->epfd && !ep)
      ep = &fds[i];
    else if (fds[i].fd == wakeup_fd && wakeup_fd >= 0 && !wake)
      wake = &fds[i];
    else
      return g_poll (fds, n_fds, timeout);
  }
  if (!ep)
    return g_poll (fds, n_fds, timeout);

  n = epoll_wait (epoll_source->epfd, pending, MAX_EVENTS, timeout);
  if (n < 0)
    return -1;   /* errno set: EINTR, which GLib ignores */
  ep->revents = 0;
  if (wake)
    wake->revents = 0;
  n_pending = 0;
  for (int i = 0; i < n; i++) {   /* GLib's wake-up is GLib's; the watches' events stay for dispatch() */
    if (pending[i].data.u64 != WAKEUP_ID)
      pending[n_pending++] = pending[i];
    else if (wake)
      wake->revents = G_IO_IN;
  }
  if (n_pending > 0)
    ep->revents = G_IO_IN;
  return (ep->revents != 0) + (wake && wake->revents != 0);
}

static gint
learn_wakeup_fd (GPollFD *fds, guint n_fds, gint timeout)
{
  if (n_fds == 1)
    wakeup_fd = fds[0].fd;
  return 0;
}

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

void
ifb_fd_watch_init (void)
{
  GMainContext *ctx = g_main_context_default ();
  struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKEUP_ID };

  /* An iteration of a context with no sources polls GLib's wake-up fd, nothing else. */
  g_main_context_set_poll_func (ctx, learn_wakeup_fd);
  g_main_context_iteration (ctx, FALSE);
  if (!ensure_source ()) {
    g_main_context_set_poll_func (ctx, NULL);
    return;
  }
  if (wakeup_fd >= 0 && epoll_ctl (epoll_source->epfd, EPOLL_CTL_ADD, wakeup_fd, &ev) < 0) {
    g_debug ("epoll_ctl(ADD, GLib's wake-up fd %d): %s", wakeup_fd, g_strerror (errno));
    wakeup_fd = -1;
  }
  if (wakeup_fd < 0)
    g_debug ("GLib's wake-up fd not found: the main loop polls the epoll fd with g_poll()");
  g_main_context_set_poll_func (ctx, epoll_poll);
}

guint64
ifb_fd_watch_turn (void)
{
  return turn;
}

gboolean
ifb_fd_watch_is_direct (void)
{
  return wakeup_fd >= 0;
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
