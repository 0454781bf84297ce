/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * The reader keeps one byte buffer and a queue of completed frames. Received bytes are scanned
 * for '\n' only from where the previous scan stopped, so a peer dribbling one byte at a time
 * costs O(n) overall. The limit is enforced on the partial line: once it holds max_frame bytes
 * without a newline the reader fails with -EMSGSIZE and the caller drops the connection, so a
 * peer can never make us buffer more than max_frame + one read.
 *
 * fds: recvmsg() with MSG_CMSG_CLOEXEC into a control buffer sized for IFB_FRAME_MAX_FDS. A
 * larger batch makes the kernel set MSG_CTRUNC (and close the fds that did not fit), which is a
 * protocol error. A stream read that returns fds ends with the segment that carried them, but
 * may start with bytes of earlier fd-less writes, so fds are attached to the last line that
 * begins in that read (a sender puts the fds on a line's first byte and starts no second line
 * in the same sendmsg, as the writer below does).
 *
 * The writer queues lines with their fds and sends each line's fds with its first byte; a
 * partially sent line keeps its offset. Sent fds are closed (the peer has its own copies).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "frame.h"
#include "util.h"

typedef struct {
  char *line;
  size_t len;
  IfbFdList *fds;
} Frame;

struct IfbFrameReader {
  size_t max_frame;
  GByteArray *buf;        /* partial line */
  size_t scanned;         /* bytes of buf already searched for '\n' */
  IfbFdList *fds;         /* fds of the partial line */
  GQueue frames;          /* of Frame* */
  guint frame_fds;        /* fds of the complete lines in frames */
};

static void
frame_free (Frame *f)
{
  if (!f)
    return;
  g_free (f->line);
  ifb_fd_list_free (f->fds);
  g_free (f);
}

IfbFrameReader *
ifb_frame_reader_new (size_t max_frame)
{
  IfbFrameReader *r = g_new0 (IfbFrameReader, 1);
  r->max_frame = max_frame;
  r->buf = g_byte_array_new ();
  g_queue_init (&r->frames);
  return r;
}

IfbFrameReader *
ifb_frame_reader_free (IfbFrameReader *r)
{
  if (!r)
    return NULL;
  g_byte_array_unref (r->buf);
  ifb_fd_list_free (r->fds);
  g_queue_clear_full (&r->frames, (GDestroyNotify) frame_free);
  g_free (r);
  return NULL;
}

size_t
ifb_frame_reader_pending (const IfbFrameReader *r)
{
  return r->buf->len;
}

guint
ifb_frame_reader_unclaimed_fds (const IfbFrameReader *r)
{
  return ifb_fd_list_len (r->fds);
}

guint
ifb_frame_reader_held_fds (const IfbFrameReader *r)
{
  return ifb_fd_list_len (r->fds) + r->frame_fds;
}

gboolean
ifb_frame_reader_has_frames (const IfbFrameReader *r)
{
  return r->frames.length > 0;
}

int
ifb_frame_reader_feed (IfbFrameReader *r, const char *data, size_t len, const int *fds, size_t n_fds)
{
  if (n_fds > 0) {
    if (!r->fds)
      r->fds = ifb_fd_list_new ();
    for (size_t i = 0; i < n_fds; i++)
      ifb_fd_list_push (r->fds, fds[i]);
  }

  while (len > 0) {
    const char *nl = memchr (data, '\n', len);
    size_t take = nl ? (size_t) (nl - data) : len;

    if (r->buf->len + take > r->max_frame)
      return -EMSGSIZE;
    g_byte_array_append (r->buf, (const guint8 *) data, take);
    if (!nl)
      break;

    Frame *f = g_new0 (Frame, 1);
    f->len = r->buf->len;
    g_byte_array_append (r->buf, (const guint8 *) "", 1);
    f->line = (char *) g_byte_array_free (g_steal_pointer (&r->buf), FALSE);
    f->fds = g_steal_pointer (&r->fds);
    r->frame_fds += ifb_fd_list_len (f->fds);
    r->buf = g_byte_array_new ();
    g_queue_push_tail (&r->frames, f);

    data += take + 1;
    len -= take + 1;
  }
  return 0;
}

ssize_t
ifb_frame_reader_recv (IfbFrameReader *r, int sockfd)
{
  char data[IFB_FRAME_READ_SIZE];
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE (sizeof (int) * IFB_FRAME_MAX_FDS)];
  } control;
  struct iovec iov = { .iov_base = data, .iov_len = sizeof (data) };
  struct msghdr msg = {
    .msg_iov = &iov, .msg_iovlen = 1,
    .msg_control = control.buf, .msg_controllen = sizeof (control.buf),
  };
  int fds[IFB_FRAME_MAX_FDS];
  size_t n_fds = 0;
  gboolean bad_cmsg = FALSE;
  ssize_t n;
  int rc;

  n = recvmsg (sockfd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0)
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;

  for (struct cmsghdr *c = CMSG_FIRSTHDR (&msg); c; c = CMSG_NXTHDR (&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t k = (c->cmsg_len - CMSG_LEN (0)) / sizeof (int);
      const int *p = (const int *) CMSG_DATA (c);
      for (size_t i = 0; i < k; i++) {
        if (n_fds < G_N_ELEMENTS (fds))
          fds[n_fds++] = p[i];
        else
          ifb_close (p[i]);
      }
    } else {
      bad_cmsg = TRUE;
    }
  }

  if ((msg.msg_flags & MSG_CTRUNC) || bad_cmsg) {
    for (size_t i = 0; i < n_fds; i++)
      ifb_close (fds[i]);
    return -EPROTO;
  }
  if (n == 0) {
    for (size_t i = 0; i < n_fds; i++)
      ifb_close (fds[i]);
    return 0;
  }

  /* The kernel joins the segments of earlier fd-less writes into the read that ends with the
   * segment carrying fds (it stops after that one, never before it), so the fds belong to the
   * last line that begins in this read, not to the first byte of the read. */
  if (n_fds > 0) {
    size_t start = r->buf->len == 0 ? 0 : (size_t) n;
    for (size_t i = (size_t) n; i-- > 1;)
      if (data[i - 1] == '\n') {
        start = i;
        break;
      }
    if (start == (size_t) n)   /* no line begins here: fds in mid-line stay with that line */
      start = 0;
    if (start > 0 && (rc = ifb_frame_reader_feed (r, data, start, NULL, 0)) < 0) {
      for (size_t i = 0; i < n_fds; i++)
        ifb_close (fds[i]);
      return rc;
    }
    rc = ifb_frame_reader_feed (r, data + start, (size_t) n - start, fds, n_fds);
  } else {
    rc = ifb_frame_reader_feed (r, data, (size_t) n, NULL, 0);
  }
  if (rc < 0)
    return rc;
  return n;
}

gboolean
ifb_frame_reader_pop (IfbFrameReader *r, char **ret_line, size_t *ret_len, IfbFdList **ret_fds)
{
  Frame *f = g_queue_pop_head (&r->frames);
  if (!f)
    return FALSE;
  r->frame_fds -= ifb_fd_list_len (f->fds);
  *ret_line = g_steal_pointer (&f->line);
  *ret_len = f->len;
  if (ret_fds)
    *ret_fds = g_steal_pointer (&f->fds);
  frame_free (f);
  return TRUE;
}

struct IfbFrameWriter {
  GQueue frames;          /* of Frame*; line includes the '\n' */
  size_t offset;          /* bytes of the head frame already sent */
  size_t queued;
  guint queued_fds;       /* fds of frames not sent yet */
};

IfbFrameWriter *
ifb_frame_writer_new (void)
{
  IfbFrameWriter *w = g_new0 (IfbFrameWriter, 1);
  g_queue_init (&w->frames);
  return w;
}

IfbFrameWriter *
ifb_frame_writer_free (IfbFrameWriter *w)
{
  if (!w)
    return NULL;
  g_queue_clear_full (&w->frames, (GDestroyNotify) frame_free);
  g_free (w);
  return NULL;
}

void
ifb_frame_writer_queue (IfbFrameWriter *w, const char *line, size_t len, IfbFdList *fds)
{
  Frame *f = g_new0 (Frame, 1);
  f->line = g_malloc (len + 1);
  memcpy (f->line, line, len);
  f->line[len] = '\n';
  f->len = len + 1;
  f->fds = fds;
  w->queued += f->len;
  w->queued_fds += ifb_fd_list_len (fds);
  g_queue_push_tail (&w->frames, f);
}

int
ifb_frame_writer_flush (IfbFrameWriter *w, int sockfd)
{
  Frame *f;

  while ((f = g_queue_peek_head (&w->frames))) {
    struct iovec iov = { .iov_base = f->line + w->offset, .iov_len = f->len - w->offset };
    union {
      struct cmsghdr align;
      char buf[CMSG_SPACE (sizeof (int) * IFB_FRAME_MAX_FDS)];
    } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    guint n_fds = w->offset == 0 ? ifb_fd_list_len (f->fds) : 0;
    ssize_t n;

    if (n_fds > IFB_FRAME_MAX_FDS)
      return -EMSGSIZE;
    if (n_fds > 0) {
      struct cmsghdr *c;
      memset (&control, 0, sizeof (control));
      msg.msg_control = control.buf;
      msg.msg_controllen = CMSG_SPACE (sizeof (int) * n_fds);
      c = CMSG_FIRSTHDR (&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN (sizeof (int) * n_fds);
      memcpy (CMSG_DATA (c), ifb_fd_list_data (f->fds), sizeof (int) * n_fds);
    }

    n = sendmsg (sockfd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0)
      return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (n_fds > 0) {
      f->fds = ifb_fd_list_free (f->fds);   /* the peer holds them now */
      w->queued_fds -= n_fds;
    }
    w->offset += (size_t) n;
    w->queued -= (size_t) n;
    if (w->offset < f->len)
      return -EAGAIN;
    w->offset = 0;
    frame_free (g_queue_pop_head (&w->frames));
  }
  return 0;
}

gboolean
ifb_frame_writer_is_empty (const IfbFrameWriter *w)
{
  return w->frames.length == 0;
}

size_t
ifb_frame_writer_queued_bytes (const IfbFrameWriter *w)
{
  return w->queued;
}

guint
ifb_frame_writer_queued_fds (const IfbFrameWriter *w)
{
  return w->queued_fds;
}
