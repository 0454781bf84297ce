/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * Each connection has one watch in the daemon's epoll (fdwatch.c). Work is served in slices so
 * that no uid delays the others by more than one slice: a wake-up reads at most
 * READS_PER_WAKEUP chunks, and stops reading while complete lines are still waiting; it
 * dispatches what is left of its uid's share of the loop turn (uid-queue.c), then yields. A
 * connection with work left over once that share is spent is parked: it watches only for
 * output, and its uid's queue steps it from the loop when no watch is ready, uids in turn. So
 * 300 connections of one uid put one share of work, not 300 slices, ahead of root's line.
 *
 * What a peer can make us hold is bounded where it grows:
 *  - input: a line up to [limits] max-frame (the frame reader); complete lines only one read's
 *    worth, since reading stops while lines wait;
 *  - fds: at most MAX_UNCLAIMED_FDS on a line that has not ended, and every fd held for any
 *    connection counts against its owner's budget (the server's, a fraction of RLIMIT_NOFILE); over either,
 *    the connection is closed and its fds with it;
 *  - fds in replies: those queued and those sent but not yet read by the peer (its receive queue
 *    is not empty: SIOCOUTQ) are counted per connection and per uid (the server's tally). At
 *    [limits] max-queued-fds, or the uid at max-queued-fds-per-uid, the connection stops reading;
 *    one whose own count is still over after queued-fds-timeout seconds is closed, and a reply
 *    that would take it past twice the limit closes it at once: whatever a peer does, the fds
 *    the daemon keeps (or keeps in flight) for it stay bounded;
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
#include <sys/ioctl.h>
#include <linux/sockios.h>

#include "connection.h"
#include "dispatch.h"
#include "reply.h"
#include "uid-queue.h"
#include "fdwatch.h"
#include "errors.h"
#include "frame.h"
#include "json.h"
#include "jsonrpc.h"
#include "util.h"

#define READS_PER_WAKEUP 8
#define SLICE_LINES 32            /* lines dispatched per connection per wake-up, at most */
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
  gboolean parked;              /* waiting in its uid's queue (uid-queue.c) for a step */
  guint close_source;           /* idle source that closes an overflowing connection */
  guint held_fds;               /* fds of this connection counted in the server's budget */
  guint sent_fds;               /* fds sent since the peer's receive queue was last seen empty */
  guint out_fds;                /* queued + sent, as counted in the server's tally for the uid */
  guint fds_tick;               /* while over an fd limit: checks whether the peer read */
  gint64 fds_over_since;        /* paused since, with fds of its own unread (0: not) */
  gint64 last_active;           /* monotonic time of the last bytes received */
  GQueue lines;                 /* IfbReply of each dispatched line, in line order, until sent */
};

static void update_watch (IfbConnection *c);
static gboolean may_dispatch (IfbConnection *c);

/* ---- fds in replies the peer has not received ------------------------------------------------ */

/* Bring the server's tally up to date; with refresh, first see whether the peer read all it was
 * sent (then nothing sent is in flight any more). */
static void
sync_out_fds (IfbConnection *c, gboolean refresh)
{
  guint now;
  int outq = -1;

  if (refresh && c->sent_fds > 0 && ioctl (c->fd, SIOCOUTQ, &outq) == 0 && outq == 0)
    c->sent_fds = 0;
  now = ifb_frame_writer_queued_fds (c->writer) + c->sent_fds;
  if (now != c->out_fds)
    c->owner.hold_out_fds (c->peer->uid, (int) now - (int) c->out_fds, c->owner.data);
  c->out_fds = now;
}

/* Whether its fds in replies (or its uid's) are at their limit: then it reads nothing more. */
static gboolean
out_fds_over (IfbConnection *c)
{
  return c->out_fds >= c->core->config->max_queued_fds ||
         c->owner.hold_out_fds (c->peer->uid, 0, c->owner.data) >= c->core->config->max_queued_fds_per_uid;
}

static gboolean
on_fds_tick (gpointer data)
{
  IfbConnection *c = data;
  gint64 now = g_get_monotonic_time ();

  sync_out_fds (c, TRUE);
  if (!out_fds_over (c)) {
    c->fds_tick = 0;
    c->fds_over_since = 0;
    update_watch (c);   /* reads again */
    return G_SOURCE_REMOVE;
  }
  /* Only a connection with fds of its own unread is closed; one paused for its uid's count waits. */
  if (c->out_fds == 0)
    c->fds_over_since = 0;
  else {
    if (!c->fds_over_since)
      c->fds_over_since = now;
    if (now - c->fds_over_since >= (gint64) c->core->config->queued_fds_timeout * G_USEC_PER_SEC) {
      g_message ("Closing connection of uid %u pid %d: %u fds in replies it has not read for %u s ([limits] "
                 "max-queued-fds=%u, max-queued-fds-per-uid=%u, queued-fds-timeout)", (unsigned) c->peer->uid,
                 (int) c->peer->pid, c->out_fds, c->core->config->queued_fds_timeout, c->core->config->max_queued_fds,
                 c->core->config->max_queued_fds_per_uid);
      c->fds_tick = 0;
      c->owner.closed (c, c->owner.data);   /* frees c */
      return G_SOURCE_REMOVE;
    }
  }
  return G_SOURCE_CONTINUE;
}

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
  if (fds && c->out_fds + ifb_fd_list_len (fds) > 2 * c->core->config->max_queued_fds) {
    g_message ("Closing connection of uid %u pid %d: %u fds in replies it has not read, and %u more would exceed "
               "twice [limits] max-queued-fds=%u (it does not read)", (unsigned) c->peer->uid, (int) c->peer->pid,
               c->out_fds, ifb_fd_list_len (fds), c->core->config->max_queued_fds);
    ifb_fd_list_free (fds);
    c->overflow = TRUE;
    if (!c->in_io && !c->close_source)
      c->close_source = g_idle_add (on_close_later, c);
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
  sync_out_fds (c, FALSE);
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
  guint before = ifb_frame_writer_queued_fds (c->writer);
  int r = ifb_frame_writer_flush (c->writer, c->fd);

  c->sent_fds += before - ifb_frame_writer_queued_fds (c->writer);   /* in flight until the peer reads */
  sync_out_fds (c, FALSE);
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
  if (c->closing || c->overflow || c->queued_replies + c->lines.length >= c->core->config->max_pending ||
      ifb_frame_writer_queued_bytes (c->writer) >= c->core->config->max_queued_bytes / 2)
    return FALSE;
  if (c->out_fds > 0)
    sync_out_fds (c, TRUE);
  if (c->fds_tick || !out_fds_over (c))
    return !c->fds_tick;
  /* Over: read nothing more until the peer reads (checked by the tick), or close it. */
  c->fds_tick = g_timeout_add (100, on_fds_tick, c);
  return FALSE;
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
  ifb_uid_queue_used (c->peer->uid, n);
  return n;
}

static gboolean on_io_inner (IfbConnection *c, GIOCondition cond, gboolean stepping);
static void set_subscribed (gpointer data, gboolean on);

static gboolean
on_io (int fd, GIOCondition cond, gpointer data)
{
  IfbConnection *c = data;
  gboolean keep;

  c->in_io = TRUE;
  keep = on_io_inner (c, cond, FALSE);   /* G_SOURCE_REMOVE: c is freed */
  if (keep)
    c->in_io = FALSE;
  return keep;
}

/* A parked connection's turn in its uid's queue. */
static void
step (gpointer data)
{
  IfbConnection *c = data;

  c->parked = FALSE;
  c->in_io = TRUE;
  if (on_io_inner (c, G_IO_IN | G_IO_OUT, TRUE))   /* either may find nothing (EAGAIN): harmless */
    c->in_io = FALSE;
}

static gboolean
on_io_inner (IfbConnection *c, GIOCondition cond, gboolean stepping)
{
  /* lines this wake-up may still dispatch: a step's, or what the uid's share of the turn has left;
   * none for a parked connection woken to send */
  guint left = stepping ? IFB_UID_QUEUE_STEP_LINES : c->parked ? 0 : MIN (SLICE_LINES, ifb_uid_queue_left (c->peer->uid));

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
  /* Out of lines to dispatch with more to do (lines read, or input it did not get to): wait in
   * the uid's queue rather than in the ready list. */
  if (left == 0 && !c->parked && !c->closing && may_dispatch (c) &&
      (ifb_frame_reader_has_frames (c->reader) || ((cond & G_IO_IN) && !c->eof))) {
    c->parked = TRUE;
    ifb_uid_queue_park (c->peer->uid, c, step);
  }
  update_watch (c);
  return G_SOURCE_CONTINUE;
}

static void
update_watch (IfbConnection *c)
{
  GIOCondition want = 0;
  gboolean lines_waiting = ifb_frame_reader_has_frames (c->reader);

  if (c->parked)   /* its queue steps it: only what is queued to send */
    want = ifb_frame_writer_is_empty (c->writer) ? 0 : G_IO_OUT;
  else if (!c->closing && !c->eof && !lines_waiting && may_dispatch (c))
    want |= G_IO_IN;
  /* Lines left for the next slice: a writable socket reports G_IO_OUT on the next loop turn. */
  if (!c->parked && (!ifb_frame_writer_is_empty (c->writer) || (lines_waiting && may_dispatch (c))))
    want |= G_IO_OUT;
  /* a half-closed peer whose last line completed with nothing to send: on_io() closes */
  if (!c->parked && c->eof && g_queue_is_empty (&c->lines))
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
  if (c->parked)
    ifb_uid_queue_remove (c->peer->uid, c);
  if (c->close_source)
    g_source_remove (c->close_source);
  if (c->fds_tick)
    g_source_remove (c->fds_tick);
  c->owner.hold_fds (-(int) c->held_fds, c->owner.data);
  if (c->out_fds)
    c->owner.hold_out_fds (c->peer->uid, -(int) c->out_fds, c->owner.data);
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
