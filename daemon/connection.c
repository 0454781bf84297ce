/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * Each connection has one GLib fd source. While the reply queue is short it watches for input;
 * each wake-up reads a bounded number of chunks so one busy client cannot starve the others,
 * and dispatches every complete line. When more than [limits] max-pending replies are waiting
 * to be sent, it stops reading until the peer drains them: a client that pipelines without
 * reading only stalls itself; lines already read wait in the frame reader and are dispatched as
 * the replies drain. A peer that shuts down its writing side still gets the replies to what it
 * sent before the connection is closed. A frame over [limits] max-frame is answered with a limit error and
 * the connection is closed; so is a truncated control message (too many fds) or ancillary data
 * other than SCM_RIGHTS.
 *
 * A line whose work goes on (a worker is running for it) keeps its place: each line's reply
 * (reply.c) waits in `lines` and replies leave in line order as they complete; lines still
 * waiting count against max-pending. Closing a connection detaches its waiting replies: their
 * work completes and commits, the answers are dropped.
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
#include "server.h"
#include "util.h"

#define READS_PER_WAKEUP 8
#define MAX_QUEUED_BYTES (16u << 20)   /* a subscriber that never reads is dropped past this */

struct IfbConnection {
  IfbManager *manager;
  IfbServer *server;
  int fd;
  IfbPeer *peer;
  IfbFrameReader *reader;
  IfbFrameWriter *writer;
  guint source;
  GIOCondition watching;
  guint queued_replies;
  GQueue lines;                 /* IfbReply of each dispatched line, in line order, until sent */
  gboolean subscribed;
  gboolean closing;             /* flush what is queued, then close */
  gboolean eof;                 /* the peer shut down writing: answer what it sent, then close */
  gboolean in_io;               /* inside on_io(), which flushes and updates the watch at its end */
};

static void update_watch (IfbConnection *c);

/* Replies and lines still being worked on, against [limits] max-pending. */
static guint
n_pending (IfbConnection *c)
{
  return c->queued_replies + c->lines.length;
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

void
ifb_connection_reply_ready (IfbConnection *c)
{
  if (c->in_io)
    return;   /* on_io() sends what is ready before it returns */
  send_ready (c);
  update_watch (c);
}

static void
close_now (IfbConnection *c)
{
  ifb_server_connection_closed (c->server, c);   /* frees c */
}

void
ifb_connection_send (IfbConnection *c, json_object *msg, IfbFdList *fds)
{
  size_t len;
  const char *line = ifb_json_to_line (msg, &len);
  ifb_frame_writer_queue (c->writer, line, len, fds);
  c->queued_replies++;
  /* Performance: a reply queued while on_io() runs is flushed by on_io() right after, which then
   * updates the watch once. Updating it here too replaced the GSource twice per call (G_IO_OUT
   * added, then dropped), each replacement waking the main context through its eventfd: five
   * extra syscalls per round trip (tests/bench, issue 9). */
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

static void
dispatch_frames (IfbConnection *c)
{
  char *line;
  size_t len;
  IfbFdList *fds;

  while (!c->closing && n_pending (c) < c->manager->config->max_pending &&
         ifb_frame_reader_pop (c->reader, &line, &len, &fds)) {
    if (len == 0 || (len == 1 && line[0] == '\r')) {   /* blank line: nothing to answer */
      g_free (line);
      ifb_fd_list_free (fds);
      continue;
    }
    g_queue_push_tail (&c->lines, ifb_dispatch_line_start (c->manager, c, c->peer, line, len, fds));
    g_free (line);
    send_ready (c);
  }
}

static gboolean on_io_inner (IfbConnection *c, GIOCondition cond);

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
  if (cond & G_IO_OUT) {
    if (!flush (c)) {
      close_now (c);
      return G_SOURCE_REMOVE;
    }
  }
  if ((cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) && !c->closing && !c->eof) {
    for (int i = 0; i < READS_PER_WAKEUP && n_pending (c) < c->manager->config->max_pending; i++) {
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
      if (n == -EMSGSIZE) {
        g_autofree char *msg = g_strdup_printf ("Limit exceeded: frame larger than %u bytes ([limits] max-frame)",
                                                c->manager->config->max_frame);
        dispatch_frames (c);   /* complete lines before the oversized one still count */
        reject_frame (c, IFB_ERROR_LIMIT_EXCEEDED, msg);
        break;
      }
      dispatch_frames (c);
      /* A short read drained the socket: the level-triggered watch brings us back if more came,
       * so skip the recvmsg() that would only say EAGAIN (one syscall per request saved). */
      if (n < IFB_FRAME_READ_SIZE)
        break;
    }
  } else if ((cond & (G_IO_HUP | G_IO_ERR)) && c->closing) {
    close_now (c);
    return G_SOURCE_REMOVE;
  }

  /* Lines parked in the reader while max-pending replies waited are dispatched as soon as the
   * replies drain, whether or not the peer sends anything more. */
  for (;;) {
    dispatch_frames (c);
    send_ready (c);
    if (!flush (c)) {
      close_now (c);
      return G_SOURCE_REMOVE;
    }
    if (c->closing || !ifb_frame_reader_has_frames (c->reader) || !ifb_frame_writer_is_empty (c->writer))
      break;
  }

  if ((c->closing || (c->eof && !ifb_frame_reader_has_frames (c->reader) && g_queue_is_empty (&c->lines))) &&
      ifb_frame_writer_is_empty (c->writer)) {
    close_now (c);
    return G_SOURCE_REMOVE;
  }
  if (ifb_frame_writer_queued_bytes (c->writer) > MAX_QUEUED_BYTES) {
    g_message ("Closing connection of pid %d: it does not read its replies", (int) c->peer->pid);
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

  if (!c->closing && !c->eof && n_pending (c) < c->manager->config->max_pending)
    want |= G_IO_IN;
  /* also when a half-closed peer's last line completed with nothing to send: on_io() closes */
  if (!ifb_frame_writer_is_empty (c->writer) || (c->eof && g_queue_is_empty (&c->lines)))
    want |= G_IO_OUT;
  if (want == c->watching && c->source)
    return;
  c->watching = want;
  /* All connections share one epoll instance (fdwatch.c): a wake-up costs O(ready fds), not
   * O(connections) as one GSource per connection did (GLib polls and checks every source on
   * every iteration: 2000 idle clients made broker.info 6x slower; test-abuse.py), and changing
   * the condition is one epoll_ctl. */
  if (c->source)
    ifb_fd_watch_update (c->source, want);
  else
    c->source = ifb_fd_watch_add (c->fd, want, on_io, c);
}

IfbConnection *
ifb_connection_new (IfbManager *m, IfbServer *s, int fd, IfbPeer *peer)
{
  IfbConnection *c = g_new0 (IfbConnection, 1);
  c->manager = m;
  c->server = s;
  c->fd = fd;
  c->peer = peer;
  c->reader = ifb_frame_reader_new (m->config->max_frame);
  c->writer = ifb_frame_writer_new ();
  update_watch (c);
  return c;
}

IfbConnection *
ifb_connection_free (IfbConnection *c)
{
  if (!c)
    return NULL;
  ifb_fd_watch_remove (c->source);   /* before the close: epoll tracks the open file */
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

void
ifb_connection_set_subscribed (IfbConnection *c, gboolean on)
{
  c->subscribed = on;
}

gboolean
ifb_connection_is_subscribed (IfbConnection *c)
{
  return c->subscribed;
}
