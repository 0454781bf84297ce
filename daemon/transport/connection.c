/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * Each connection has one watch in the daemon's epoll (fdwatch.c). Work is served in slices so
 * that no connection delays the others by more than one slice: a wake-up reads at most
 * READS_PER_WAKEUP chunks, and stops reading while complete lines are still waiting; it
 * dispatches at most SLICE_LINES lines, then yields. Lines left over keep the watch on G_IO_OUT,
 * which a writable socket reports on the next loop turn, after every other ready connection has
 * had its own slice.
 *
 * What a peer can make us hold is bounded where it grows:
 *  - input: a line up to [limits] max-frame (the frame reader); complete lines only one read's
 *    worth, since reading stops while lines wait;
 *  - fds: at most MAX_UNCLAIMED_FDS on a line that has not ended, and every fd held for any
 *    connection counts against its owner's budget (the server's, a fraction of RLIMIT_NOFILE); over either,
 *    the connection is closed and its fds with it;
 *  - output: lines are dispatched only while fewer than [limits] max-pending replies and less
 *    than half of [limits] max-queued-bytes wait to be sent (a batch's replies are bounded by the
 *    other half, dispatch.c); every queued line, reply or event, is checked when it is queued,
 *    and a connection over max-queued-bytes is closed right then, with a log line, whether or
 *    not it ever reads or writes again (a subscriber that never reads).
 *
 * A line whose work goes on (a worker is running for it) keeps its place: each line's reply
 * (reply.c) waits in `lines`, replies leave in line order as they complete, and lines still
 * waiting count against max-pending. A connection that closes detaches its waiting replies:
 * their work completes and commits, the answers are dropped.
 *
 * A peer that shuts down its writing side (shutdown(SHUT_WR)) still gets the replies to what it
 * sent. A peer that has hung up entirely (G_IO_HUP: nobody can read a reply any more) is closed
 * at once: lines it left unanswered are dropped, not served. A frame over max-frame is answered
 * with a limit error and the connection is closed; so is a truncated control message (too many
 * fds) or ancillary data other than SCM_RIGHTS.
 */
#define G_LOG_DOMAIN "ifb-connection"

#include <errno.h>
#include <glib-unix.h>

#include "connection.h"
#include "dispatch.h"
#include "reply.h"
#include "fdwatch.h"
#include "errors.h"
#include "frame.h"
#include "json.h"
#include "jsonrpc.h"
#include "util.h"

#define READS_PER_WAKEUP 8
#define SLICE_LINES 32            /* lines dispatched per connection per loop turn */
#define MAX_UNCLAIMED_FDS 64      /* fds on a line that has not ended yet */

struct IfbConnection {
  IfbCore *core;
  IfbConnectionOwner owner;
  IfbCaller caller;             /* what the layers above may ask of it */
  int fd;
  IfbPeer *peer;
  IfbFrameReader *reader;
  IfbFrameWriter *writer;
  guint source;
  GIOCondition watching;
  guint queued_replies;
  gboolean subscribed;
  gboolean closing;             /* flush what is queued, then close */
  gboolean eof;                 /* the peer shut down writing: answer what it sent, then close */
  gboolean in_io;               /* inside on_io(), which flushes and updates the watch at its end */
  gboolean overflow;            /* over max-queued-bytes: closed as soon as the stack unwinds */
  guint close_source;           /* idle source that closes an overflowing connection */
  guint held_fds;               /* fds of this connection counted in the server's budget */
  gint64 last_active;           /* monotonic time of the last bytes received */
  GQueue lines;                 /* IfbReply of each dispatched line, in line order, until sent */
};

static void update_watch (IfbConnection *c);

static void
close_now (IfbConnection *c)
{
  c->owner.closed (c, c->owner.data);   /* frees c */
}

static gboolean
on_close_later (gpointer data)
{
  IfbConnection *c = data;
  c->close_source = 0;
  close_now (c);
  return G_SOURCE_REMOVE;
}

void
ifb_connection_send (IfbConnection *c, json_object *msg, IfbFdList *fds)
{
  size_t len, queued = ifb_frame_writer_queued_bytes (c->writer);
  const char *line;

  if (c->overflow) {
    ifb_fd_list_free (fds);
    return;
  }
  line = ifb_json_to_line (msg, &len);
  if (queued + len + 1 > c->core->config->max_queued_bytes) {
    g_message ("Closing connection of uid %u pid %d: %zu bytes of replies and events wait to be sent, and %zu more "
               "would exceed [limits] max-queued-bytes=%u (it does not read)",
               (unsigned) c->peer->uid, (int) c->peer->pid, queued, len + 1, c->core->config->max_queued_bytes);
    ifb_fd_list_free (fds);
    c->overflow = TRUE;
    /* Not from here: the caller may be iterating the connections (a broadcast) or be this
     * connection's on_io(), which checks overflow when it ends. */
    if (!c->in_io && !c->close_source)
      c->close_source = g_idle_add (on_close_later, c);
    return;
  }
  ifb_frame_writer_queue (c->writer, line, len, fds);
  c->queued_replies++;
  /* A reply queued while on_io() runs is flushed by on_io() right after, which then updates the
   * watch once; updating it here as well would add G_IO_OUT and drop it again, two epoll_ctl
   * calls per request for nothing. */
  if (!c->in_io)
    update_watch (c);
}

static gboolean
flush (IfbConnection *c)
{
  int r = ifb_frame_writer_flush (c->writer, c->fd);
  if (r == 0)
    c->queued_replies = 0;
  if (r < 0 && r != -EAGAIN) {
    g_debug ("connection of pid %d: send failed: %s", (int) c->peer->pid, g_strerror (-r));
    return FALSE;
  }
  return TRUE;
}

static void
reject_frame (IfbConnection *c, IfbError code, const char *msg)
{
  g_autoptr (GError) e = g_error_new_literal (IFB_ERROR, code, msg);
  g_autoptr (json_object) reply = ifb_jsonrpc_error_new (NULL, e);
  ifb_connection_send (c, reply, NULL);
  c->closing = TRUE;
}

/* Whether another line may be dispatched: its replies must fit in what is left. */
static gboolean
may_dispatch (IfbConnection *c)
{
  return !c->closing && !c->overflow && c->queued_replies + c->lines.length < c->core->config->max_pending &&
         ifb_frame_writer_queued_bytes (c->writer) < c->core->config->max_queued_bytes / 2;
}

/* Send the completed replies at the head of the line queue, in order. */
static void
send_ready (IfbConnection *c)
{
  while (!g_queue_is_empty (&c->lines) && ifb_reply_is_complete (g_queue_peek_head (&c->lines))) {
    g_autoptr (IfbReply) r = g_queue_pop_head (&c->lines);
    g_autoptr (json_object) msg = ifb_reply_steal_message (r);
    if (msg)
      ifb_connection_send (c, msg, ifb_reply_steal_fds (r));
  }
}

static void
on_reply_ready (gpointer data)
{
  IfbConnection *c = data;

  if (c->in_io)
    return;   /* on_io() sends what is ready before it returns */
  send_ready (c);
  if (!c->overflow)
    update_watch (c);
}

/* Keep the server's count of held fds current; FALSE when this connection must go. */
static gboolean
account_fds (IfbConnection *c)
{
  guint held = ifb_frame_reader_held_fds (c->reader);
  guint unclaimed = ifb_frame_reader_unclaimed_fds (c->reader);
  gboolean within = c->owner.hold_fds ((int) held - (int) c->held_fds, c->owner.data);

  c->held_fds = held;
  if (unclaimed > MAX_UNCLAIMED_FDS) {
    g_message ("Closing connection of uid %u pid %d: %u fds sent on a line that has not ended (at most %d)",
               (unsigned) c->peer->uid, (int) c->peer->pid, unclaimed, MAX_UNCLAIMED_FDS);
    return FALSE;
  }
  if (!within && held > 0) {
    g_message ("Closing connection of uid %u pid %d: it holds %u fds and the daemon's budget for fds in transit "
               "(%u, an eighth of RLIMIT_NOFILE) is spent", (unsigned) c->peer->uid, (int) c->peer->pid, held,
               c->owner.fd_budget);
    return FALSE;
  }
  return TRUE;
}

/* Dispatch up to max_lines complete lines; returns how many. */
static guint
dispatch_frames (IfbConnection *c, guint max_lines)
{
  char *line;
  size_t len;
  IfbFdList *fds;
  guint n = 0;

  for (; n < max_lines && may_dispatch (c) && ifb_frame_reader_pop (c->reader, &line, &len, &fds); n++) {
    if (len == 0 || (len == 1 && line[0] == '\r')) {   /* blank line: nothing to answer */
      g_free (line);
      ifb_fd_list_free (fds);
      continue;
    }
    g_queue_push_tail (&c->lines, ifb_dispatch_line_start (c->core, &c->caller, c->peer, line, len, fds));
    g_free (line);
    send_ready (c);
  }
  return n;
}

static gboolean on_io_inner (IfbConnection *c, GIOCondition cond);
static void set_subscribed (gpointer data, gboolean on);

static gboolean
on_io (int fd, GIOCondition cond, gpointer data)
{
  IfbConnection *c = data;
  gboolean keep;

  c->in_io = TRUE;
  keep = on_io_inner (c, cond);   /* G_SOURCE_REMOVE: c is freed */
  if (keep)
    c->in_io = FALSE;
  return keep;
}

static gboolean
on_io_inner (IfbConnection *c, GIOCondition cond)
{
  guint left = SLICE_LINES;   /* lines this turn may still dispatch */

  /* Hung up entirely: nobody is left to read an answer, so nothing more is worked on. */
  if (cond & (G_IO_HUP | G_IO_ERR)) {
    close_now (c);
    return G_SOURCE_REMOVE;
  }
  if (cond & G_IO_OUT) {
    if (!flush (c)) {
      close_now (c);
      return G_SOURCE_REMOVE;
    }
  }
  /* Lines read earlier first (held back by max-pending or by the slice). */
  left -= dispatch_frames (c, left);
  if ((cond & G_IO_IN) && !c->closing && !c->eof) {
    for (int i = 0; i < READS_PER_WAKEUP && left > 0 && may_dispatch (c) && !ifb_frame_reader_has_frames (c->reader); i++) {
      ssize_t n = ifb_frame_reader_recv (c->reader, c->fd);
      if (n == -EAGAIN)
        break;
      if (n == 0) {   /* a half-close (shutdown(SHUT_WR)) still gets its replies */
        c->eof = TRUE;
        break;
      }
      if (n < 0 && n != -EMSGSIZE && n != -EPROTO) {
        close_now (c);
        return G_SOURCE_REMOVE;
      }
      if (n == -EPROTO) {
        g_message ("Closing connection of pid %d: truncated or unexpected control message (more than %d fds?)",
                   (int) c->peer->pid, IFB_FRAME_MAX_FDS);
        close_now (c);
        return G_SOURCE_REMOVE;
      }
      c->last_active = g_get_monotonic_time ();
      if (!account_fds (c)) {
        close_now (c);
        return G_SOURCE_REMOVE;
      }
      if (n == -EMSGSIZE) {
        g_autofree char *msg = g_strdup_printf ("Limit exceeded: frame larger than %u bytes ([limits] max-frame)",
                                                c->core->config->max_frame);
        dispatch_frames (c, G_MAXUINT);   /* complete lines before the oversized one still count */
        reject_frame (c, IFB_ERROR_LIMIT_EXCEEDED, msg);
        break;
      }
      left -= dispatch_frames (c, left);
      /* A short read drained the socket: the level-triggered watch brings us back if more came,
       * so skip the recvmsg() that would only say EAGAIN (one syscall per request saved). */
      if (n < IFB_FRAME_READ_SIZE)
        break;
    }
  }
  if (!account_fds (c)) {
    close_now (c);
    return G_SOURCE_REMOVE;
  }
  send_ready (c);   /* answers that completed while this ran */
  if (!flush (c) || c->overflow) {
    close_now (c);
    return G_SOURCE_REMOVE;
  }
  if ((c->closing || (c->eof && !ifb_frame_reader_has_frames (c->reader) && g_queue_is_empty (&c->lines))) &&
      ifb_frame_writer_is_empty (c->writer)) {
    close_now (c);
    return G_SOURCE_REMOVE;
  }
  update_watch (c);
  return G_SOURCE_CONTINUE;
}

static void
update_watch (IfbConnection *c)
{
  GIOCondition want = 0;
  gboolean lines_waiting = ifb_frame_reader_has_frames (c->reader);

  if (!c->closing && !c->eof && !lines_waiting && may_dispatch (c))
    want |= G_IO_IN;
  /* Lines left for the next slice: a writable socket reports G_IO_OUT on the next loop turn. */
  if (!ifb_frame_writer_is_empty (c->writer) || (lines_waiting && may_dispatch (c)))
    want |= G_IO_OUT;
  /* a half-closed peer whose last line completed with nothing to send: on_io() closes */
  if (c->eof && g_queue_is_empty (&c->lines))
    want |= G_IO_OUT;
  if (want == c->watching && c->source)
    return;
  c->watching = want;
  /* All connections share one epoll instance (fdwatch.c): a wake-up costs O(ready fds), not
   * O(connections) as one GSource per connection would (GLib polls and checks every source on
   * every iteration), and changing the condition is one epoll_ctl. */
  if (c->source)
    ifb_fd_watch_update (c->source, want);
  else
    c->source = ifb_fd_watch_add (c->fd, want, on_io, c);
}

IfbConnection *
ifb_connection_new (IfbCore *core, const IfbConnectionOwner *owner, int fd, IfbPeer *peer)
{
  IfbConnection *c = g_new0 (IfbConnection, 1);
  c->core = core;
  c->owner = *owner;
  c->caller = (IfbCaller) { .peer = peer, .reply_ready = on_reply_ready, .set_subscribed = set_subscribed, .owner = c };
  c->fd = fd;
  c->peer = peer;
  c->reader = ifb_frame_reader_new (core->config->max_frame);
  c->writer = ifb_frame_writer_new ();
  c->last_active = g_get_monotonic_time ();
  update_watch (c);
  return c;
}

IfbConnection *
ifb_connection_free (IfbConnection *c)
{
  if (!c)
    return NULL;
  ifb_fd_watch_remove (c->source);   /* before the close: epoll tracks the open file */
  if (c->close_source)
    g_source_remove (c->close_source);
  c->owner.hold_fds (-(int) c->held_fds, c->owner.data);
  for (IfbReply *r; (r = g_queue_pop_head (&c->lines));) {
    ifb_reply_detach (r);
    ifb_reply_unref (r);
  }
  ifb_close (c->fd);
  ifb_peer_free (c->peer);
  ifb_frame_reader_free (c->reader);
  ifb_frame_writer_free (c->writer);
  g_free (c);
  return NULL;
}

const IfbPeer *
ifb_connection_get_peer (IfbConnection *c)
{
  return c->peer;
}

static void
set_subscribed (gpointer data, gboolean on)
{
  IfbConnection *c = data;
  c->subscribed = on;
}

gboolean
ifb_connection_is_subscribed (IfbConnection *c)
{
  return c->subscribed;
}

gboolean
ifb_connection_is_idle (IfbConnection *c, gint64 now, gint64 timeout_usec)
{
  return !c->subscribed && now - c->last_active >= timeout_usec && ifb_frame_writer_is_empty (c->writer) &&
         !ifb_frame_reader_has_frames (c->reader) && g_queue_is_empty (&c->lines);
}
