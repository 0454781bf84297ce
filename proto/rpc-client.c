/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "errors.h"
#include "frame.h"
#include "json.h"
#include "jsonrpc.h"
#include "rpc-client.h"
#include "util.h"

#define CLIENT_MAX_FRAME (64u << 20)

struct IfbRpcClient {
  int fd;
  gint64 next_id;
  IfbFrameReader *reader;
  GQueue notifications;   /* of json_object* */
};

IfbRpcClient *
ifb_rpc_client_connect (const char *socket_path, GError **error)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  ifb_autofd int fd = -1;
  IfbRpcClient *c;

  if (strlen (socket_path) >= sizeof (sa.sun_path))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                        "Socket path '%s' is too long", socket_path), NULL;
  strcpy (sa.sun_path, socket_path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "socket()"), NULL;
  if (connect (fd, (struct sockaddr *) &sa, sizeof (sa)) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_UNAVAILABLE, -errno,
                                "Cannot connect to the broker at '%s'", socket_path), NULL;

  c = g_new0 (IfbRpcClient, 1);
  c->fd = ifb_steal_fd (&fd);
  c->next_id = 1;
  c->reader = ifb_frame_reader_new (CLIENT_MAX_FRAME);
  g_queue_init (&c->notifications);
  return c;
}

IfbRpcClient *
ifb_rpc_client_free (IfbRpcClient *c)
{
  if (!c)
    return NULL;
  ifb_close (c->fd);
  ifb_frame_reader_free (c->reader);
  g_queue_clear_full (&c->notifications, (GDestroyNotify) (void (*) (void)) json_object_put);
  g_free (c);
  return NULL;
}

int
ifb_rpc_client_get_fd (IfbRpcClient *c)
{
  return c->fd;
}

static gboolean
send_all (IfbRpcClient *c, json_object *msg, IfbFdList *fds, GError **error)
{
  g_autoptr (IfbFrameWriter) w = ifb_frame_writer_new ();
  size_t len;
  const char *line = ifb_json_to_line (msg, &len);
  int r;

  ifb_frame_writer_queue (w, line, len, fds);
  while ((r = ifb_frame_writer_flush (w, c->fd)) == -EAGAIN) {
    struct pollfd p = { .fd = c->fd, .events = POLLOUT };
    poll (&p, 1, -1);
  }
  if (r < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, r, "Sending to the broker");
  return TRUE;
}

/* Read the next message from the socket, blocking. */
static gboolean
read_message (IfbRpcClient *c, json_object **ret_msg, IfbFdList **ret_fds, GError **error)
{
  for (;;) {
    g_autofree char *line = NULL;
    size_t len;
    IfbFdList *fds = NULL;
    ssize_t n;

    if (ifb_frame_reader_pop (c->reader, &line, &len, &fds)) {
      json_object *msg = ifb_json_parse (line, len, 64, error);
      if (!msg) {
        ifb_fd_list_free (fds);
        return FALSE;
      }
      *ret_msg = msg;
      if (ret_fds)
        *ret_fds = fds;
      else
        ifb_fd_list_free (fds);
      return TRUE;
    }
    n = ifb_frame_reader_recv (c->reader, c->fd);
    if (n == -EAGAIN) {
      struct pollfd p = { .fd = c->fd, .events = POLLIN };
      poll (&p, 1, -1);
      continue;
    }
    if (n == 0)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_UNAVAILABLE, "The broker closed the connection"), FALSE;
    if (n < 0)
      return ifb_error_set_errno (error, IFB_ERROR_FAILED, (int) n, "Reading from the broker");
  }
}

gboolean
ifb_rpc_client_call (IfbRpcClient *c, const char *method, json_object *params, IfbFdList *fds,
                     json_object **ret_result, IfbFdList **ret_fds, GError **error)
{
  gint64 id = c->next_id++;
  g_autoptr (json_object) req = ifb_jsonrpc_request_new (method, params, id);

  if (!send_all (c, req, fds, error))
    return FALSE;

  for (;;) {
    g_autoptr (json_object) msg = NULL;
    g_autoptr (IfbFdList) msg_fds = NULL;
    json_object *err;
    gint64 got;

    if (!read_message (c, &msg, &msg_fds, error))
      return FALSE;
    if (!ifb_json_get (msg, "id") && ifb_json_get (msg, "method")) {
      g_queue_push_tail (&c->notifications, g_steal_pointer (&msg));
      continue;
    }
    if (!ifb_json_get_int (msg, "id", &got) || got != id)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_FAILED, "Unexpected reply from the broker"), FALSE;
    err = ifb_json_get (msg, "error");
    if (err)
      return ifb_jsonrpc_error_to_gerror (err, error);
    if (ret_result)
      *ret_result = json_object_get (ifb_json_get (msg, "result"));
    if (ret_fds)
      *ret_fds = g_steal_pointer (&msg_fds);
    return TRUE;
  }
}

gboolean
ifb_rpc_client_next (IfbRpcClient *c, json_object **ret_notification, GError **error)
{
  json_object *n = g_queue_pop_head (&c->notifications);
  if (n) {
    *ret_notification = n;
    return TRUE;
  }
  return read_message (c, ret_notification, NULL, error);
}
