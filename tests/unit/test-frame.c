/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of proto/frame.c: the line reader (partial lines, byte-at-a-time, several lines per
 * read, fds attached to the line whose first byte carried them, the frame-size limit exactly at
 * and one above, MSG_CTRUNC) and the writer (partial sends on a small socket buffer, fds with the
 * first byte of their line). Real AF_UNIX socketpairs where the kernel's behaviour matters.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "util.h"

static void
make_pair (int sv[2])
{
  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  g_assert_no_errno (fcntl (sv[1], F_SETFL, O_NONBLOCK));
}

/* sendmsg data with fds (all on this one call). */
static void
send_with_fds (int sock, const char *data, size_t len, const int *fds, size_t n_fds)
{
  struct iovec iov = { .iov_base = (void *) data, .iov_len = len };
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE (sizeof (int) * 64)];
  } control;
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

  g_assert_cmpuint (n_fds, <=, 64);
  if (n_fds > 0) {
    struct cmsghdr *c;
    memset (&control, 0, sizeof (control));
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE (sizeof (int) * n_fds);
    c = CMSG_FIRSTHDR (&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN (sizeof (int) * n_fds);
    memcpy (CMSG_DATA (c), fds, sizeof (int) * n_fds);
  }
  g_assert_cmpint (sendmsg (sock, &msg, MSG_NOSIGNAL), ==, (ssize_t) len);
}

/* Pop one line and compare it; returns its fds (may be NULL). */
static IfbFdList *
expect_line (IfbFrameReader *r, const char *want)
{
  g_autofree char *line = NULL;
  IfbFdList *fds = NULL;
  size_t len = 0;

  g_assert_true (ifb_frame_reader_pop (r, &line, &len, &fds));
  g_assert_cmpuint (len, ==, strlen (want));
  g_assert_cmpstr (line, ==, want);
  return fds;
}

static void
expect_no_line (IfbFrameReader *r)
{
  char *line = NULL;
  size_t len = 0;
  IfbFdList *fds = NULL;
  g_assert_false (ifb_frame_reader_pop (r, &line, &len, &fds));
  g_assert_null (line);
}

/* Drain the socket into the reader until it would block; returns the number of recv() calls. */
static int
recv_all (IfbFrameReader *r, int sock)
{
  int calls = 0;
  ssize_t n;
  while ((n = ifb_frame_reader_recv (r, sock)) > 0)
    calls++;
  g_assert_cmpint (n, ==, -EAGAIN);
  return calls;
}

static int
open_count (void)
{
  g_autoptr (GDir) d = g_dir_open ("/proc/self/fd", 0, NULL);
  int n = 0;
  g_assert_nonnull (d);
  while (g_dir_read_name (d))
    n++;
  return n;
}

/* Two fds refer to the same open file. */
static gboolean
same_file (int a, int b)
{
  struct stat sa, sb;
  g_assert_no_errno (fstat (a, &sa));
  g_assert_no_errno (fstat (b, &sb));
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* A line split across feeds is only popped once its '\n' arrived; the partial part is pending. */
static void
test_partial_line (void)
{
  g_autoptr (IfbFrameReader) r = ifb_frame_reader_new (1024);

  g_assert_cmpint (ifb_frame_reader_feed (r, "{\"a\":", 5, NULL, 0), ==, 0);
  expect_no_line (r);
  g_assert_cmpuint (ifb_frame_reader_pending (r), ==, 5);
  g_assert_cmpint (ifb_frame_reader_feed (r, "1}", 2, NULL, 0), ==, 0);
  expect_no_line (r);
  g_assert_cmpuint (ifb_frame_reader_pending (r), ==, 7);
  g_assert_cmpint (ifb_frame_reader_feed (r, "\n{\"b\"", 5, NULL, 0), ==, 0);
  g_assert_null (expect_line (r, "{\"a\":1}"));
  expect_no_line (r);
  g_assert_cmpuint (ifb_frame_reader_pending (r), ==, 4);
}

/* A peer dribbling one byte per send over a real socket still yields exactly its lines. */
static void
test_one_byte_at_a_time (void)
{
  g_autoptr (IfbFrameReader) r = ifb_frame_reader_new (1024);
  const char *text = "first line\n\nthird\n";
  int sv[2];

  make_pair (sv);
  for (size_t i = 0; text[i]; i++) {
    g_assert_cmpint (write (sv[0], text + i, 1), ==, 1);
    g_assert_cmpint (ifb_frame_reader_recv (r, sv[1]), ==, 1);
    if (i == 9)   /* "first line" complete but no '\n' yet */
      expect_no_line (r);
  }
  g_assert_null (expect_line (r, "first line"));
  g_assert_null (expect_line (r, ""));
  g_assert_null (expect_line (r, "third"));
  expect_no_line (r);
  g_assert_cmpuint (ifb_frame_reader_pending (r), ==, 0);
  close (sv[0]);
  g_assert_cmpint (ifb_frame_reader_recv (r, sv[1]), ==, 0);   /* EOF */
  close (sv[1]);
}

/* Several lines arriving in one read are all queued, in order; the tail stays pending. */
static void
test_several_lines_one_read (void)
{
  g_autoptr (IfbFrameReader) r = ifb_frame_reader_new (1024);
  const char *text = "a\nbb\nccc\ndd";
  int sv[2];

  make_pair (sv);
  g_assert_cmpint (write (sv[0], text, strlen (text)), ==, (ssize_t) strlen (text));
  g_assert_cmpint (ifb_frame_reader_recv (r, sv[1]), ==, (ssize_t) strlen (text));
  g_assert_null (expect_line (r, "a"));
  g_assert_null (expect_line (r, "bb"));
  g_assert_null (expect_line (r, "ccc"));
  expect_no_line (r);
  g_assert_cmpuint (ifb_frame_reader_pending (r), ==, 2);
  close (sv[0]);
  close (sv[1]);
}

/* An embedded NUL does not cut a line short: ret_len is the true length. */
static void
test_embedded_nul (void)
{
  g_autoptr (IfbFrameReader) r = ifb_frame_reader_new (1024);
  g_autofree char *line = NULL;
  size_t len = 0;

  g_assert_cmpint (ifb_frame_reader_feed (r, "ab\0cd\n", 6, NULL, 0), ==, 0);
  g_assert_true (ifb_frame_reader_pop (r, &line, &len, NULL));
  g_assert_cmpuint (len, ==, 5);
  g_assert_cmpmem (line, 5, "ab\0cd", 5);
}

/*
 * fds belong to the line whose first byte they rode on, even when the kernel joins the segments
 * of earlier fd-less lines into the same read (it does: it only stops *after* a segment with fds).
 */
static void
test_fds_attached_to_their_line (void)
{
  g_autoptr (IfbFrameReader) r = ifb_frame_reader_new (1024);
  g_autoptr (IfbFdList) l1 = NULL, l2 = NULL, l3 = NULL, l4 = NULL;
  int sv[2], p1[2], p2[2];

  make_pair (sv);
  g_assert_no_errno (pipe2 (p1, O_CLOEXEC));
  g_assert_no_errno (pipe2 (p2, O_CLOEXEC));

  /* L1 without fds, then L2 with p1[0] on its first byte and the rest of L2 sent later, then
   * L3 without fds, then L4 whose fds come with the whole line. Nothing is read in between. */
  send_with_fds (sv[0], "L1\n", 3, NULL, 0);
  send_with_fds (sv[0], "L", 1, &p1[0], 1);
  send_with_fds (sv[0], "2\nL3\n", 5, NULL, 0);
  send_with_fds (sv[0], "L4\n", 3, (int[]) { p2[0], p2[1] }, 2);
  recv_all (r, sv[1]);

  l1 = expect_line (r, "L1");
  l2 = expect_line (r, "L2");
  l3 = expect_line (r, "L3");
  l4 = expect_line (r, "L4");
  expect_no_line (r);
  g_assert_cmpuint (ifb_fd_list_len (l1), ==, 0);
  g_assert_cmpuint (ifb_fd_list_len (l2), ==, 1);
  g_assert_true (same_file (ifb_fd_list_get (l2, 0), p1[0]));
  g_assert_cmpuint (ifb_fd_list_len (l3), ==, 0);
  g_assert_cmpuint (ifb_fd_list_len (l4), ==, 2);
  g_assert_true (same_file (ifb_fd_list_get (l4, 0), p2[0]));
  g_assert_true (same_file (ifb_fd_list_get (l4, 1), p2[1]));
  /* received fds are close-on-exec */
  g_assert_cmpint (fcntl (ifb_fd_list_get (l2, 0), F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);

  for (int i = 0; i < 2; i++) {
    close (sv[i]);
    close (p1[i]);
    close (p2[i]);
  }
}

/* fds arriving while a line is half-read (before its '\n') stay with that line. */
static void
test_fds_mid_line_stay_with_line (void)
{
  g_autoptr (IfbFrameReader) r = ifb_frame_reader_new (1024);
  g_autoptr (IfbFdList) l = NULL;
  int sv[2], p[2];

  make_pair (sv);
  g_assert_no_errno (pipe2 (p, O_CLOEXEC));
  send_with_fds (sv[0], "X", 1, &p[0], 1);
  recv_all (r, sv[1]);
  expect_no_line (r);
  send_with_fds (sv[0], "YZ\n", 3, NULL, 0);
  recv_all (r, sv[1]);
  l = expect_line (r, "XYZ");
  g_assert_cmpuint (ifb_fd_list_len (l), ==, 1);
  g_assert_true (same_file (ifb_fd_list_get (l, 0), p[0]));
  for (int i = 0; i < 2; i++) {
    close (sv[i]);
    close (p[i]);
  }
}

/* A line of exactly max_frame bytes passes; one byte more fails with -EMSGSIZE. */
static void
test_limit_exact (void)
{
  const size_t max = 1024;
  g_autofree char *buf = g_malloc (max + 2);
  int sv[2];

  memset (buf, 'x', max + 1);

  {
    g_autoptr (IfbFrameReader) r = ifb_frame_reader_new (max);
    g_autofree char *line = NULL;
    size_t len = 0;
    buf[max] = '\n';
    g_assert_cmpint (ifb_frame_reader_feed (r, buf, max + 1, NULL, 0), ==, 0);
    g_assert_true (ifb_frame_reader_pop (r, &line, &len, NULL));
    g_assert_cmpuint (len, ==, max);
  }
  {
    g_autoptr (IfbFrameReader) r = ifb_frame_reader_new (max);
    buf[max] = 'x';
    buf[max + 1] = '\n';
    g_assert_cmpint (ifb_frame_reader_feed (r, buf, max + 2, NULL, 0), ==, -EMSGSIZE);
    expect_no_line (r);
  }
  /* The limit holds on the partial line even when no '\n' ever comes, and is checked before the
   * bytes are buffered: nothing past max_frame is kept. */
  {
    g_autoptr (IfbFrameReader) r = ifb_frame_reader_new (max);
    g_assert_cmpint (ifb_frame_reader_feed (r, buf, max, NULL, 0), ==, 0);
    g_assert_cmpuint (ifb_frame_reader_pending (r), ==, max);
    g_assert_cmpint (ifb_frame_reader_feed (r, "y", 1, NULL, 0), ==, -EMSGSIZE);
    g_assert_cmpuint (ifb_frame_reader_pending (r), <=, max);
  }
  /* The same over a socket: one byte above the limit in one read. */
  {
    g_autoptr (IfbFrameReader) r = ifb_frame_reader_new (max);
    make_pair (sv);
    g_assert_cmpint (write (sv[0], buf, max + 1), ==, (ssize_t) max + 1);
    g_assert_cmpint (ifb_frame_reader_recv (r, sv[1]), ==, -EMSGSIZE);
    g_assert_cmpuint (ifb_frame_reader_pending (r), <=, max);
    close (sv[0]);
    close (sv[1]);
  }
  /* A complete line before the oversized one is still delivered. */
  {
    g_autoptr (IfbFrameReader) r = ifb_frame_reader_new (max);
    g_assert_cmpint (ifb_frame_reader_feed (r, "ok\n", 3, NULL, 0), ==, 0);
    g_assert_cmpint (ifb_frame_reader_feed (r, buf, max + 1, NULL, 0), ==, -EMSGSIZE);
    g_assert_null (expect_line (r, "ok"));
  }
}

/* More fds in one message than IFB_FRAME_MAX_FDS: MSG_CTRUNC is -EPROTO and no fd is leaked. */
static void
test_too_many_fds (void)
{
  g_autoptr (IfbFrameReader) r = ifb_frame_reader_new (1024);
  int sv[2], fds[40], before, after;

  make_pair (sv);
  for (int i = 0; i < 40; i++)
    fds[i] = sv[0];
  before = open_count ();
  send_with_fds (sv[0], "x\n", 2, fds, 40);
  g_assert_cmpint (ifb_frame_reader_recv (r, sv[1]), ==, -EPROTO);
  after = open_count ();
  g_assert_cmpint (after, ==, before);
  expect_no_line (r);

  /* Exactly IFB_FRAME_MAX_FDS is fine. */
  send_with_fds (sv[0], "y\n", 2, fds, IFB_FRAME_MAX_FDS);
  g_assert_cmpint (ifb_frame_reader_recv (r, sv[1]), ==, 2);
  {
    g_autoptr (IfbFdList) l = expect_line (r, "y");
    g_assert_cmpuint (ifb_fd_list_len (l), ==, IFB_FRAME_MAX_FDS);
  }
  g_assert_cmpint (open_count (), ==, before);
  close (sv[0]);
  close (sv[1]);
}

/* Freeing a reader closes the fds of unpopped and partial lines. */
static void
test_reader_free_closes_fds (void)
{
  int before = open_count (), p[2];
  IfbFrameReader *r = ifb_frame_reader_new (1024);

  g_assert_no_errno (pipe2 (p, O_CLOEXEC));
  /* A partial line holding fds, and a complete one nobody popped. */
  g_assert_cmpint (ifb_frame_reader_feed (r, "a\nb", 3, p, 2), ==, 0);
  ifb_frame_reader_free (r);
  g_assert_cmpint (open_count (), ==, before);
}

/*
 * The writer with a small send buffer: flush returns -EAGAIN while bytes remain, keeps its
 * place, and the peer reassembles exactly the lines queued, with each line's fds arriving with
 * the first byte of that line and never with another.
 */
static void
test_writer_partial_sends (void)
{
  g_autoptr (IfbFrameWriter) w = ifb_frame_writer_new ();
  g_autoptr (IfbFrameReader) r = ifb_frame_reader_new (1 << 20);
  const size_t big = 200000;
  g_autofree char *payload = g_malloc (big);
  int sv[2], p[2], sndbuf = 4096, eagains = 0, rc;
  IfbFdList *fds;

  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv));
  g_assert_no_errno (setsockopt (sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof (sndbuf)));
  g_assert_no_errno (pipe2 (p, O_CLOEXEC));
  for (size_t i = 0; i < big; i++)
    payload[i] = 'a' + (char) (i % 26);

  ifb_frame_writer_queue (w, "first", 5, NULL);
  ifb_frame_writer_queue (w, payload, big, NULL);
  fds = ifb_fd_list_new ();
  ifb_fd_list_push_dup (fds, p[0]);
  ifb_frame_writer_queue (w, "with-fd", 7, fds);
  ifb_frame_writer_queue (w, "last", 4, NULL);
  g_assert_cmpuint (ifb_frame_writer_queued_bytes (w), ==, 6 + big + 1 + 8 + 5);
  g_assert_false (ifb_frame_writer_is_empty (w));

  while ((rc = ifb_frame_writer_flush (w, sv[0])) == -EAGAIN) {
    eagains++;
    recv_all (r, sv[1]);
  }
  g_assert_cmpint (rc, ==, 0);
  g_assert_cmpint (eagains, >, 0);   /* the small buffer really forced partial sends */
  g_assert_true (ifb_frame_writer_is_empty (w));
  g_assert_cmpuint (ifb_frame_writer_queued_bytes (w), ==, 0);
  recv_all (r, sv[1]);

  g_assert_null (expect_line (r, "first"));
  {
    g_autofree char *line = NULL;
    g_autoptr (IfbFdList) l = NULL;
    size_t len;
    g_assert_true (ifb_frame_reader_pop (r, &line, &len, &l));
    g_assert_cmpuint (len, ==, big);
    g_assert_cmpmem (line, len, payload, big);
    g_assert_cmpuint (ifb_fd_list_len (l), ==, 0);
  }
  {
    g_autoptr (IfbFdList) l = expect_line (r, "with-fd");
    g_assert_cmpuint (ifb_fd_list_len (l), ==, 1);
    g_assert_true (same_file (ifb_fd_list_get (l, 0), p[0]));
  }
  {
    g_autoptr (IfbFdList) l = expect_line (r, "last");
    g_assert_cmpuint (ifb_fd_list_len (l), ==, 0);
  }
  expect_no_line (r);
  for (int i = 0; i < 2; i++) {
    close (sv[i]);
    close (p[i]);
  }
}

/* The fds of a line go out with its first byte: a raw recvmsg of one byte gets them all. */
static void
test_writer_fds_on_first_byte (void)
{
  g_autoptr (IfbFrameWriter) w = ifb_frame_writer_new ();
  IfbFdList *fds = ifb_fd_list_new ();
  int sv[2], p[2], before;
  char c;
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE (sizeof (int) * 4)];
  } control;
  struct iovec iov = { .iov_base = &c, .iov_len = 1 };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof (control.buf) };
  struct cmsghdr *cm;

  make_pair (sv);
  g_assert_no_errno (pipe2 (p, O_CLOEXEC));
  before = open_count ();
  ifb_fd_list_push_dup (fds, p[0]);
  ifb_fd_list_push_dup (fds, p[1]);
  ifb_frame_writer_queue (w, "hello", 5, fds);
  g_assert_cmpint (ifb_frame_writer_flush (w, sv[0]), ==, 0);
  /* the writer closed its copies once sent */
  g_assert_cmpint (open_count (), ==, before);

  g_assert_cmpint (recvmsg (sv[1], &msg, MSG_CMSG_CLOEXEC), ==, 1);
  g_assert_cmpint (c, ==, 'h');
  cm = CMSG_FIRSTHDR (&msg);
  g_assert_nonnull (cm);
  g_assert_cmpint (cm->cmsg_type, ==, SCM_RIGHTS);
  g_assert_cmpuint (cm->cmsg_len, ==, CMSG_LEN (2 * sizeof (int)));
  {
    int got[2];
    memcpy (got, CMSG_DATA (cm), sizeof (got));
    g_assert_true (same_file (got[0], p[0]));
    g_assert_true (same_file (got[1], p[1]));
    close (got[0]);
    close (got[1]);
  }
  for (int i = 0; i < 2; i++) {
    close (sv[i]);
    close (p[i]);
  }
}

/* A peer that went away makes flush fail with -EPIPE (no SIGPIPE kills us). */
static void
test_writer_peer_gone (void)
{
  g_autoptr (IfbFrameWriter) w = ifb_frame_writer_new ();
  int sv[2];

  make_pair (sv);
  close (sv[1]);
  ifb_frame_writer_queue (w, "x", 1, NULL);
  g_assert_cmpint (ifb_frame_writer_flush (w, sv[0]), ==, -EPIPE);
  close (sv[0]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ifb/frame/partial-line", test_partial_line);
  g_test_add_func ("/ifb/frame/one-byte-at-a-time", test_one_byte_at_a_time);
  g_test_add_func ("/ifb/frame/several-lines-one-read", test_several_lines_one_read);
  g_test_add_func ("/ifb/frame/embedded-nul", test_embedded_nul);
  g_test_add_func ("/ifb/frame/fds-attached-to-their-line", test_fds_attached_to_their_line);
  g_test_add_func ("/ifb/frame/fds-mid-line", test_fds_mid_line_stay_with_line);
  g_test_add_func ("/ifb/frame/limit-exact", test_limit_exact);
  g_test_add_func ("/ifb/frame/too-many-fds", test_too_many_fds);
  g_test_add_func ("/ifb/frame/reader-free-closes-fds", test_reader_free_closes_fds);
  g_test_add_func ("/ifb/frame/writer-partial-sends", test_writer_partial_sends);
  g_test_add_func ("/ifb/frame/writer-fds-on-first-byte", test_writer_fds_on_first_byte);
  g_test_add_func ("/ifb/frame/writer-peer-gone", test_writer_peer_gone);
  return g_test_run ();
}
