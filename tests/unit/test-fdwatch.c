/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/base/fdwatch.c: watches on one epoll instance, with the default main context blocking in
 * epoll_wait() itself (ifb_fd_watch_init()). Every other kind of GLib wake-up must still arrive:
 * timeouts, a wake-up from another thread, and fds GLib polls on its own (which switch the loop
 * to g_poll() for as long as they exist).
 */
#include <glib-unix.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdwatch.h"

typedef struct {
  int fd;
  guint id;
  int calls;
  guint other;                  /* a watch this one's callback removes */
} Probe;

static gboolean
on_readable (int fd, GIOCondition cond, gpointer data)
{
  Probe *p = data;
  char buf[64];

  p->calls++;
  g_assert_true (cond & G_IO_IN);
  g_assert_cmpint (read (fd, buf, sizeof buf), >, 0);
  if (p->other) {
    ifb_fd_watch_remove (p->other);
    p->other = 0;
  }
  return G_SOURCE_CONTINUE;
}

static void
iterate_until (int *counter, int want)
{
  /* only catches a hang (valgrind runs this 10-50x slower): the loop ends as soon as it counts */
  gint64 deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  while (*counter < want && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (*counter, ==, want);
}

static void
test_direct (void)
{
  /* GLib's wake-up fd was found: the loop blocks in epoll_wait() while only watches exist. */
  g_assert_true (ifb_fd_watch_is_direct ());
}

static void
test_watch_and_remove (void)
{
  int sv[2], sv2[2];
  Probe a = { 0 }, b = { 0 };

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2), ==, 0);
  a.fd = sv[0];
  b.fd = sv2[0];
  a.id = ifb_fd_watch_add (a.fd, G_IO_IN, on_readable, &a);
  b.id = ifb_fd_watch_add (b.fd, G_IO_IN, on_readable, &b);
  g_assert_cmpuint (a.id, >, 0);
  g_assert_cmpuint (b.id, >, 0);
  g_assert_cmpuint (a.id, !=, b.id);

  g_assert_cmpint (write (sv[1], "x", 1), ==, 1);
  iterate_until (&a.calls, 1);
  g_assert_cmpint (b.calls, ==, 0);

  /* Both ready in one wake-up; whichever runs first removes the other, which is not called. */
  a.other = b.id;
  b.other = a.id;
  g_assert_cmpint (write (sv[1], "y", 1), ==, 1);
  g_assert_cmpint (write (sv2[1], "z", 1), ==, 1);
  g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint ((a.calls - 1) + b.calls, ==, 1);

  ifb_fd_watch_remove (a.calls > 1 ? a.id : b.id);
  for (int i = 0; i < 2; i++)
    close (sv[i]), close (sv2[i]);
}

static gboolean
count_and_stop (gpointer data)
{
  (*(int *) data)++;
  return G_SOURCE_REMOVE;
}

static void
test_timeout (void)
{
  int fired = 0;
  gint64 t0 = g_get_monotonic_time ();

  g_timeout_add (50, count_and_stop, &fired);
  iterate_until (&fired, 1);
  g_assert_cmpint (g_get_monotonic_time () - t0, >=, 45 * 1000);
}

static gpointer
add_idle_from_thread (gpointer data)
{
  g_usleep (50 * 1000);
  g_idle_add (count_and_stop, data);   /* wakes the default context through its wake-up fd */
  return NULL;
}

static void
test_wakeup_from_thread (void)
{
  int fired = 0;
  GThread *t = g_thread_new ("waker", add_idle_from_thread, &fired);

  iterate_until (&fired, 1);
  g_thread_join (t);
}

static gboolean
on_glib_fd (int fd, GIOCondition cond, gpointer data)
{
  char c;
  g_assert_cmpint (read (fd, &c, 1), ==, 1);
  (*(int *) data)++;
  return G_SOURCE_CONTINUE;
}

static void
test_foreign_fd (void)
{
  int p[2], sv[2], glib_calls = 0;
  Probe w = { 0 };
  guint src;

  g_assert_true (g_unix_open_pipe (p, FD_CLOEXEC, NULL));
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
  src = g_unix_fd_add (p[0], G_IO_IN, on_glib_fd, &glib_calls);
  w.fd = sv[0];
  w.id = ifb_fd_watch_add (w.fd, G_IO_IN, on_readable, &w);

  /* GLib polls a fd of its own: both kinds still arrive (g_poll() on all of them). */
  g_assert_cmpint (write (p[1], "a", 1), ==, 1);
  iterate_until (&glib_calls, 1);
  g_assert_cmpint (write (sv[1], "b", 1), ==, 1);
  iterate_until (&w.calls, 1);

  /* And once it is gone, the direct path serves the watches again. */
  g_source_remove (src);
  g_assert_cmpint (write (sv[1], "c", 1), ==, 1);
  iterate_until (&w.calls, 2);

  ifb_fd_watch_remove (w.id);
  close (p[0]), close (p[1]), close (sv[0]), close (sv[1]);
}

int
main (int argc, char **argv)
{
  ifb_fd_watch_init ();   /* first, as iommufd-brokerd's main() does */
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/fdwatch/direct", test_direct);
  g_test_add_func ("/fdwatch/watch-and-remove", test_watch_and_remove);
  g_test_add_func ("/fdwatch/timeout", test_timeout);
  g_test_add_func ("/fdwatch/wakeup-from-thread", test_wakeup_from_thread);
  g_test_add_func ("/fdwatch/foreign-fd", test_foreign_fd);
  return g_test_run ();
}
