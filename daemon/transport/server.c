/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The listener. Accepts with SOCK_CLOEXEC|SOCK_NONBLOCK, reads the peer's credentials once, and
 * refuses a connection beyond [limits] max-connections or max-connections-per-uid by closing it
 * straight away (the peer sees EOF; the journal says why). The last [limits]
 * reserved-connections of max-connections are kept for root and the admin group, so that
 * unprivileged uids together cannot lock the operator out.
 *
 * A second, optional listener is the VMM socket (world-connectable, for libvirt's unprivileged
 * QEMU user whatever its name and groups): it accepts only root, the admin group and processes
 * inside some guest's cgroup — anyone else is closed at once, so it cannot hold slots — and its
 * connections may call vm.fds alone (peer.c), which still checks the guest's own cgroup.
 *
 * It also keeps what is shared between connections: the budget of fds that peers may make the
 * daemon hold in transit (an eighth of RLIMIT_NOFILE, so that guests, connections and the
 * operator keep the rest), and the sweep that closes connections idle for [limits]
 * idle-timeout seconds.
 */
#define G_LOG_DOMAIN "ifb-server"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "connection.h"
#include "errors.h"
#include "fdwatch.h"
#include "jsonrpc.h"
#include "log.h"
#include "server.h"
#include "util.h"

typedef struct {
  IfbServer *server;
  int fd;
  char *path;                   /* bound by us: unlinked on exit */
  guint source;                 /* the listening socket's watch; 0 while accepting is paused */
  guint resume;                 /* timeout that resumes accepting after EMFILE/ENFILE */
  bool vmm;                     /* the VMM socket: guests' VMMs and admins only, vm.fds only */
} Listener;

struct IfbServer {
  IfbCore *core;
  Listener listeners[2];        /* the RPC socket, and the VMM socket when fd >= 0 */
  GHashTable *connections;      /* IfbConnection* set (owned) */
  GHashTable *per_uid;          /* uid -> count */
  GHashTable *out_fds;          /* uid -> fds in replies its peers have not received */
  guint fds_held;               /* fds in transit, over all connections */
  guint fd_budget;
  IfbConnectionOwner owner;     /* what connections ask of the server */
  guint idle_sweep;             /* timeout source of the idle sweep, 0 when off */
};

#define ACCEPT_PAUSE_MS 100

static gboolean on_accept (int fd, GIOCondition cond, gpointer data);
static void on_connection_closed (IfbConnection *c, gpointer data);

static gboolean
on_resume (gpointer data)
{
  Listener *l = data;
  l->resume = 0;
  l->source = ifb_fd_watch_add (l->fd, G_IO_IN, on_accept, l);
  return G_SOURCE_REMOVE;
}

static gboolean
on_accept (int fd, GIOCondition cond, gpointer data)
{
  Listener *l = data;
  IfbServer *s = l->server;

  for (int i = 0; i < 64; i++) {
    g_autoptr (GError) error = NULL;
    IfbPeer *peer = NULL;
    guint uid_count;
    int cfd = accept4 (l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (cfd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* Out of fds (or memory): the pending connection stays in the backlog and the socket
         * stays readable, so watching it would spin the loop at full CPU and flood the journal
         * (found by tests/integration/test-abuse.py). Stop watching for a moment; connections
         * wait in the backlog meanwhile, and clients that close free fds for the next try. */
        g_warning ("accept: %s: pausing new connections for %d ms", g_strerror (errno), ACCEPT_PAUSE_MS);
        l->source = 0;
        l->resume = g_timeout_add (ACCEPT_PAUSE_MS, on_resume, l);
        return G_SOURCE_REMOVE;
      }
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
        g_warning ("accept: %s", g_strerror (errno));
      break;
    }
    if (!ifb_peer_from_socket (cfd, s->core->config, &peer, &error)) {
      g_message ("Refusing connection: %s", error->message);
      ifb_close (cfd);
      continue;
    }
    /* On the VMM socket every call but vm.fds is refused, and vm.fds is refused to a process
     * outside the guest's cgroup, each with an answer that says so (and the real reason in the
     * journal). A peer in no guest's cgroup is not closed at once: its launcher would only see
     * "connection reset" and the VM's start no reason at all. The connection limits bound it. */
    peer->vmm_socket = l->vmm;
    uid_count = GPOINTER_TO_UINT (g_hash_table_lookup (s->per_uid, GUINT_TO_POINTER (peer->uid)));
    if (g_hash_table_size (s->connections) >= s->core->config->max_connections ||
        uid_count >= s->core->config->max_connections_per_uid ||
        (g_hash_table_size (s->connections) + MIN (s->core->config->reserved_connections,
                                                   s->core->config->max_connections / 2) >= s->core->config->max_connections &&
         !ifb_peer_is_admin (peer, s->core->config))) {
      ifb_log_refusal (peer->uid, s->core->config->max_refusals_logged,
                 "Refusing connection of uid %u pid %d: connection limit reached ([limits] %s)",
                 (unsigned) peer->uid, (int) peer->pid,
                 uid_count >= s->core->config->max_connections_per_uid ? "max-connections-per-uid" :
                 g_hash_table_size (s->connections) >= s->core->config->max_connections ? "max-connections" :
                 "max-connections less reserved-connections, which are kept for root and the admin group");
      ifb_peer_free (peer);
      ifb_close (cfd);
      continue;
    }
    g_hash_table_insert (s->per_uid, GUINT_TO_POINTER (peer->uid), GUINT_TO_POINTER (uid_count + 1));
    g_hash_table_add (s->connections, ifb_connection_new (s->core, &s->owner, cfd, peer));
    s->core->gauges.connections = g_hash_table_size (s->connections);
  }
  return G_SOURCE_CONTINUE;
}

static void
on_connection_closed (IfbConnection *c, gpointer data)
{
  IfbServer *s = data;
  uid_t uid = ifb_connection_get_peer (c)->uid;
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (s->per_uid, GUINT_TO_POINTER (uid)));

  if (n <= 1)
    g_hash_table_remove (s->per_uid, GUINT_TO_POINTER (uid));
  else
    g_hash_table_insert (s->per_uid, GUINT_TO_POINTER (uid), GUINT_TO_POINTER (n - 1));
  g_hash_table_remove (s->connections, c);
  s->core->gauges.connections = g_hash_table_size (s->connections);
}

static gboolean
hold_fds (int delta, gpointer data)
{
  IfbServer *s = data;
  s->fds_held = (guint) MAX (0, (int) s->fds_held + delta);
  return s->fds_held <= s->fd_budget;
}

static guint
hold_out_fds (uid_t uid, int delta, gpointer data)
{
  IfbServer *s = data;
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (s->out_fds, GUINT_TO_POINTER (uid)));

  n = (guint) MAX (0, (int) n + delta);
  if (delta == 0)
    return n;
  if (n == 0)
    g_hash_table_remove (s->out_fds, GUINT_TO_POINTER (uid));
  else
    g_hash_table_insert (s->out_fds, GUINT_TO_POINTER (uid), GUINT_TO_POINTER (n));
  return n;
}

static gboolean
on_idle_sweep (gpointer data)
{
  IfbServer *s = data;
  g_autoptr (GPtrArray) idle = g_ptr_array_new ();
  gint64 now = g_get_monotonic_time (), timeout = (gint64) s->core->config->idle_timeout * G_USEC_PER_SEC;
  GHashTableIter it;
  gpointer key;

  g_hash_table_iter_init (&it, s->connections);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (ifb_connection_is_idle (key, now, timeout))
      g_ptr_array_add (idle, key);
  if (idle->len > 0)
    g_message ("Closing %u connections idle for %u s or more ([limits] idle-timeout)", idle->len,
               s->core->config->idle_timeout);
  for (guint i = 0; i < idle->len; i++)
    on_connection_closed (g_ptr_array_index (idle, i), s);
  return G_SOURCE_CONTINUE;
}

static int
bind_path (const char *path, guint mode, GError **error)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  ifb_autofd int fd = -1;
  mode_t old;
  int r;

  if (strlen (path) >= sizeof (sa.sun_path))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "Socket path '%s' is too long", path), -1;
  strcpy (sa.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "socket()"), -1;
  unlink (path);
  old = umask (0117);
  r = bind (fd, (struct sockaddr *) &sa, sizeof (sa));
  umask (old);
  if (r < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Binding '%s'", path), -1;
  /* Access is decided per call from the peer's credentials; the mode only narrows who may ask. */
  if (chmod (path, mode) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "chmod '%s'", path), -1;
  if (listen (fd, SOMAXCONN) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "listen on '%s'", path), -1;
  return ifb_steal_fd (&fd);
}

static gboolean
listener_init (IfbServer *s, Listener *l, int listen_fd, const char *path, guint mode, bool vmm, GError **error)
{
  if (listen_fd < 0) {
    listen_fd = bind_path (path, mode, error);
    if (listen_fd < 0)
      return FALSE;
  } else {
    int fl = fcntl (listen_fd, F_GETFL);
    fcntl (listen_fd, F_SETFL, fl | O_NONBLOCK);
    fcntl (listen_fd, F_SETFD, FD_CLOEXEC);
    path = NULL;
  }
  l->server = s;
  l->fd = listen_fd;
  l->path = g_strdup (path);
  l->vmm = vmm;
  l->source = ifb_fd_watch_add (listen_fd, G_IO_IN, on_accept, l);
  return TRUE;
}

static void
listener_deinit (Listener *l)
{
  if (l->fd < 0)
    return;
  ifb_fd_watch_remove (l->source);
  if (l->resume)
    g_source_remove (l->resume);
  ifb_close (l->fd);
  if (l->path)
    unlink (l->path);
  g_free (l->path);
  l->fd = -1;
}

IfbServer *
ifb_server_new (IfbCore *core, int listen_fd, const char *path, int vmm_fd, const char *vmm_path, GError **error)
{
  g_autofree IfbServer *s = g_new0 (IfbServer, 1);

  s->core = core;
  s->listeners[0].fd = s->listeners[1].fd = -1;
  if (!listener_init (s, &s->listeners[0], listen_fd, path, core->config->socket_mode, false, error))
    return NULL;
  /* Anyone may connect to the VMM socket: who it serves is decided at accept and per call. */
  if ((vmm_fd >= 0 || vmm_path) && !listener_init (s, &s->listeners[1], vmm_fd, vmm_path, 0666, true, error)) {
    listener_deinit (&s->listeners[0]);
    return NULL;
  }
  s->connections = g_hash_table_new_full (g_direct_hash, g_direct_equal, (GDestroyNotify) ifb_connection_free, NULL);
  s->per_uid = g_hash_table_new (g_direct_hash, g_direct_equal);
  s->out_fds = g_hash_table_new (g_direct_hash, g_direct_equal);
  {
    struct rlimit rl = { .rlim_cur = 1024 };
    getrlimit (RLIMIT_NOFILE, &rl);
    s->fd_budget = (guint) MIN (rl.rlim_cur / 8, (rlim_t) G_MAXINT / 2);
  }
  s->owner = (IfbConnectionOwner) { .hold_fds = hold_fds, .fd_budget = s->fd_budget, .hold_out_fds = hold_out_fds,
                                    .closed = on_connection_closed, .data = s };
  if (core->config->idle_timeout > 0)   /* checked four times per timeout: closed within 1.25 of it */
    s->idle_sweep = g_timeout_add (MAX (250u, core->config->idle_timeout * 1000u / 4), on_idle_sweep, s);
  return g_steal_pointer (&s);
}

IfbServer *
ifb_server_free (IfbServer *s)
{
  if (!s)
    return NULL;
  listener_deinit (&s->listeners[0]);
  listener_deinit (&s->listeners[1]);
  if (s->idle_sweep)
    g_source_remove (s->idle_sweep);
  g_hash_table_unref (s->connections);
  g_hash_table_unref (s->per_uid);
  g_hash_table_unref (s->out_fds);
  g_free (s);
  return NULL;
}

void
ifb_server_broadcast_event (IfbServer *s, const char *type, json_object *params)
{
  g_autoptr (json_object) notification = NULL;
  GHashTableIter it;
  gpointer key;

  json_object_object_add (params, "event", json_object_new_string (type));
  notification = ifb_jsonrpc_request_new ("event", params, -1);   /* a notification: no id */

  g_hash_table_iter_init (&it, s->connections);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (ifb_connection_is_subscribed (key))
      ifb_connection_send (key, notification, NULL);
}
