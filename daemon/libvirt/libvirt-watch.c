/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * The watcher keeps one read-only libvirt connection whose events arrive on the GLib main loop
 * (libvirt-glib's gvir_event_register() implements libvirt's event loop with GSources). It
 * reaps broker guests whose libvirt domain is gone, as a backstop for a missed `release` hook:
 *
 *  - lifecycle STOPPED/UNDEFINED for a domain that matches a libvirt guest (UUID, else name):
 *    the guest is destroyed and logged. A guest created less than FRESH_USEC ago is not trusted
 *    to be the one that stopped (the event may be late and refer to the previous run of a domain
 *    that is starting again): a reconcile decides instead.
 *  - reconcile, at start-up, after every reconnect and for fresh guests as above: each libvirt
 *    guest created before the snapshot whose domain no longer exists or is not active is
 *    destroyed and logged. A guest in `prepare` is safe: libvirt gives the domain its id before
 *    the prepare hook runs, so the domain is active in the snapshot.
 *
 * Only "libvirt guests" are touched: those whose cgroup is a libvirt QEMU domain cgroup, in
 * either layout the hook computes ("<partition>/<machine>.libvirt-qemu" without machined,
 * ".../machine-qemu\x2d<id>\x2d<name>.scope" with it; proto/libvirt-cgroup.c builds and
 * recognizes both). Guests made by other tools have nothing to do with libvirt and are never
 * reaped here.
 *
 * Never blocking the main loop: libvirtd holds a domain's lock while it runs that domain's
 * hooks, and our hook waits for us; any libvirt call that takes domain locks (listing domains)
 * made from the main loop could deadlock with a hook in flight. Event delivery needs no call
 * (the virDomainPtr carries name and UUID). The listing for a reconcile therefore runs in a
 * forked child with its own connection, which writes "UUID ID NAME" lines into a pipe the main
 * loop reads; it may block on a domain lock without harm, and is killed after LIST_TIMEOUT_SEC.
 * Opening the connection and registering callbacks take no domain lock.
 *
 * When libvirtd goes away (close callback), the connection is dropped and re-opened with
 * exponential backoff (1 s .. 30 s); once back, a reconcile catches whatever was missed.
 */
#define G_LOG_DOMAIN "ifb-libvirt"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib-unix.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libvirt-glib/libvirt-glib.h>

#include "libvirt-cgroup.h"
#include "lifecycle.h"
#include "libvirt-watch.h"
#include "log.h"
#include "util.h"

#define FRESH_USEC (5 * G_USEC_PER_SEC)
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define LIST_TIMEOUT_SEC 60
#define LIST_MAX_BYTES (8u << 20)

struct IfbLibvirtWatch {
  IfbCore *core;
  char *uri;
  virConnectPtr conn;
  int lifecycle_id;
  guint reconnect_source;
  guint backoff_ms;
  gboolean outage_logged;

  /* the reconcile child */
  pid_t lister_pid;
  int lister_fd;
  guint lister_source;
  guint lister_timeout;
  GString *lister_out;
  gint64 lister_snapshot_usec;
  gboolean reconcile_again;
};

static void watch_connect (IfbLibvirtWatch *w);
static void reconcile_start (IfbLibvirtWatch *w);

static const char *
last_error (void)
{
  const virError *e = virGetLastError ();
  return e && e->message ? e->message : "unknown libvirt error";
}

/* libvirt prints its errors on stderr by default; we report them ourselves. */
static void
silence_libvirt (void *opaque, virErrorPtr error)
{
}

/* A guest whose cgroup is a libvirt QEMU domain's, in either layout (proto/libvirt-cgroup.h). */
static gboolean
is_libvirt_guest (const IfbVm *vm)
{
  return vm->cgroup && ifb_libvirt_cgroup_parse (vm->cgroup, NULL, NULL, NULL);
}

static IfbVm *
find_guest (IfbLibvirtWatch *w, const char *uuid, const char *name)
{
  IfbVm *vm = uuid ? ifb_registry_lookup (w->core->registry, uuid) : NULL;
  if (!vm && name)
    vm = ifb_registry_lookup (w->core->registry, name);
  return vm && is_libvirt_guest (vm) ? vm : NULL;
}

static void
destroy_guest (IfbLibvirtWatch *w, IfbVm *vm, const char *why)
{
  ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Guest '%s': %s; destroying it", vm->name, why);
  ifb_lifecycle_destroy_when_idle (w->core, vm);
}

static int
on_lifecycle (virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
  IfbLibvirtWatch *w = opaque;
  char uuid[VIR_UUID_STRING_BUFLEN];
  const char *name = virDomainGetName (dom);
  IfbVm *vm;

  if (event != VIR_DOMAIN_EVENT_STOPPED && event != VIR_DOMAIN_EVENT_UNDEFINED)
    return 0;
  if (virDomainGetUUIDString (dom, uuid) < 0)
    uuid[0] = '\0';
  g_debug ("libvirt: domain '%s' (%s) %s", name, uuid, event == VIR_DOMAIN_EVENT_STOPPED ? "stopped" : "undefined");
  if (!(vm = find_guest (w, uuid[0] ? uuid : NULL, name)))
    return 0;
  if (g_get_real_time () - vm->created_usec < FRESH_USEC) {
    g_debug ("Guest '%s' is younger than the event may be; reconciling instead", vm->name);
    reconcile_start (w);
    return 0;
  }
  destroy_guest (w, vm, event == VIR_DOMAIN_EVENT_STOPPED ? "its libvirt domain stopped"
                                                          : "its libvirt domain was undefined");
  return 0;
}

/* ---- reconcile -------------------------------------------------------------------------- */

typedef struct {
  char *uuid;
  int id;
  char *name;
} DomainLine;

static void
domain_line_free (DomainLine *d)
{
  g_free (d->uuid);
  g_free (d->name);
  g_free (d);
}

/* In the forked child: list every domain as "UUID ID NAME\n" into fd, then _exit(). Only this
 * process's own, fresh connection is used. */
G_GNUC_NORETURN static void
lister_child (const char *uri, int fd)
{
  virConnectPtr c;
  virDomainPtr *doms = NULL;
  int n;
  FILE *f;

  alarm (LIST_TIMEOUT_SEC);
  c = virConnectOpenReadOnly (uri);
  if (!c)
    _exit (2);
  n = virConnectListAllDomains (c, &doms, 0);
  if (n < 0)
    _exit (3);
  f = fdopen (fd, "w");
  if (!f)
    _exit (4);
  for (int i = 0; i < n; i++) {
    char uuid[VIR_UUID_STRING_BUFLEN];
    if (virDomainGetUUIDString (doms[i], uuid) == 0)
      fprintf (f, "%s %d %s\n", uuid, (int) virDomainGetID (doms[i]), virDomainGetName (doms[i]));
  }
  _exit (fclose (f) == 0 ? 0 : 5);
}

static void
reconcile_apply (IfbLibvirtWatch *w, const char *text, gint64 snapshot_usec)
{
  g_autoptr (GPtrArray) doms = g_ptr_array_new_with_free_func ((GDestroyNotify) domain_line_free);
  g_autoptr (GPtrArray) vms = NULL;
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);

  for (char **l = lines; *l; l++) {
    g_auto (GStrv) f = g_strsplit (*l, " ", 3);
    DomainLine *d;
    if (g_strv_length (f) != 3)
      continue;
    d = g_new0 (DomainLine, 1);
    d->uuid = g_strdup (f[0]);
    d->id = atoi (f[1]);
    d->name = g_strdup (f[2]);
    g_ptr_array_add (doms, d);
  }

  vms = ifb_registry_list (w->core->registry);
  for (guint i = 0; i < vms->len; i++) {
    IfbVm *vm = g_ptr_array_index (vms, i);
    DomainLine *match = NULL;
    if (!is_libvirt_guest (vm) || vm->created_usec >= snapshot_usec)
      continue;
    for (guint j = 0; j < doms->len && !match; j++) {
      DomainLine *d = g_ptr_array_index (doms, j);
      if (g_ascii_strcasecmp (d->uuid, vm->uuid) == 0)
        match = d;
    }
    for (guint j = 0; j < doms->len && !match; j++) {
      DomainLine *d = g_ptr_array_index (doms, j);
      if (strcmp (d->name, vm->name) == 0)
        match = d;
    }
    if (!match)
      destroy_guest (w, vm, "no libvirt domain of that name or UUID exists (reconcile)");
    else if (match->id < 0)
      destroy_guest (w, vm, "its libvirt domain is not running (reconcile)");
  }
  g_debug ("Reconciled %u guests with %u libvirt domains", vms->len, doms->len);
}

static void
lister_finish (IfbLibvirtWatch *w)
{
  int status = 0;
  g_autofree char *out = NULL;

  g_clear_handle_id (&w->lister_source, g_source_remove);
  g_clear_handle_id (&w->lister_timeout, g_source_remove);
  w->lister_fd = ifb_close (w->lister_fd);
  /* The pipe reached EOF: the child has exited or is exiting (or was killed by the timeout). */
  while (waitpid (w->lister_pid, &status, 0) < 0 && errno == EINTR)
    ;
  w->lister_pid = 0;
  out = g_string_free (g_steal_pointer (&w->lister_out), FALSE);
  if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
    reconcile_apply (w, out, w->lister_snapshot_usec);
  else
    g_warning ("Listing libvirt domains for a reconcile failed (%s %d), ignoring",
               WIFEXITED (status) ? "exit status" : "signal",
               WIFEXITED (status) ? WEXITSTATUS (status) : WTERMSIG (status));
  if (w->reconcile_again) {
    w->reconcile_again = FALSE;
    reconcile_start (w);
  }
}

static gboolean
on_lister_readable (int fd, GIOCondition cond, gpointer data)
{
  IfbLibvirtWatch *w = data;
  char buf[8192];
  ssize_t n = read (fd, buf, sizeof (buf));

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return G_SOURCE_CONTINUE;
  if (n > 0 && w->lister_out->len + (size_t) n <= LIST_MAX_BYTES) {
    g_string_append_len (w->lister_out, buf, n);
    return G_SOURCE_CONTINUE;
  }
  if (n > 0)
    kill (w->lister_pid, SIGKILL);
  w->lister_source = 0;
  lister_finish (w);
  return G_SOURCE_REMOVE;
}

static gboolean
on_lister_timeout (gpointer data)
{
  IfbLibvirtWatch *w = data;
  w->lister_timeout = 0;
  if (w->lister_pid > 0)
    kill (w->lister_pid, SIGKILL);
  return G_SOURCE_REMOVE;
}

static void
reconcile_start (IfbLibvirtWatch *w)
{
  int p[2];
  pid_t pid;

  if (w->lister_pid > 0) {
    w->reconcile_again = TRUE;   /* one more after this one: it may predate what we learnt */
    return;
  }
  if (pipe2 (p, O_CLOEXEC) < 0) {
    g_warning ("Reconcile with libvirt: pipe: %s, ignoring", g_strerror (errno));
    return;
  }
  w->lister_snapshot_usec = g_get_real_time ();
  fflush (NULL);
  pid = fork ();
  if (pid < 0) {
    g_warning ("Reconcile with libvirt: fork: %s, ignoring", g_strerror (errno));
    close (p[0]);
    close (p[1]);
    return;
  }
  if (pid == 0) {
    close (p[0]);
    lister_child (w->uri, p[1]);
  }
  close (p[1]);
  g_unix_set_fd_nonblocking (p[0], TRUE, NULL);
  w->lister_pid = pid;
  w->lister_fd = p[0];
  w->lister_out = g_string_new (NULL);
  w->lister_source = g_unix_fd_add (p[0], G_IO_IN | G_IO_HUP | G_IO_ERR, on_lister_readable, w);
  w->lister_timeout = g_timeout_add_seconds (LIST_TIMEOUT_SEC + 5, on_lister_timeout, w);
}

/* ---- connection ------------------------------------------------------------------------- */

static void
watch_disconnect (IfbLibvirtWatch *w)
{
  if (!w->conn)
    return;
  if (w->lifecycle_id >= 0)
    virConnectDomainEventDeregisterAny (w->conn, w->lifecycle_id);
  w->lifecycle_id = -1;
  virConnectUnregisterCloseCallback (w->conn, NULL);
  virConnectClose (w->conn);
  w->conn = NULL;
  w->core->gauges.libvirt_connected = FALSE;
}

static gboolean
on_reconnect_timer (gpointer data)
{
  IfbLibvirtWatch *w = data;
  w->reconnect_source = 0;
  watch_connect (w);
  return G_SOURCE_REMOVE;
}

static void
schedule_reconnect (IfbLibvirtWatch *w)
{
  if (w->reconnect_source)
    return;
  w->backoff_ms = w->backoff_ms ? MIN (w->backoff_ms * 2, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
  w->reconnect_source = g_timeout_add (w->backoff_ms, on_reconnect_timer, w);
}

static gboolean
on_closed_idle (gpointer data)
{
  IfbLibvirtWatch *w = data;
  watch_disconnect (w);
  schedule_reconnect (w);
  return G_SOURCE_REMOVE;
}

static void
on_close (virConnectPtr conn, int reason, void *opaque)
{
  IfbLibvirtWatch *w = opaque;
  g_warning ("Lost the libvirt connection to %s (reason %d); reconnecting", w->uri, reason);
  w->outage_logged = TRUE;
  /* Not from inside libvirt's own callback: tear down from the main loop. */
  g_idle_add (on_closed_idle, w);
}

static void
watch_connect (IfbLibvirtWatch *w)
{
  w->conn = virConnectOpenReadOnly (w->uri);
  if (!w->conn) {
    if (!w->outage_logged)
      g_warning ("Cannot connect to libvirt at %s: %s; retrying with backoff", w->uri, last_error ());
    else
      g_debug ("Reconnecting to libvirt at %s: %s", w->uri, last_error ());
    w->outage_logged = TRUE;
    schedule_reconnect (w);
    return;
  }
  w->lifecycle_id = virConnectDomainEventRegisterAny (w->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                      VIR_DOMAIN_EVENT_CALLBACK (on_lifecycle), w, NULL);
  if (w->lifecycle_id < 0) {
    g_warning ("Subscribing to libvirt lifecycle events at %s: %s; retrying with backoff", w->uri, last_error ());
    watch_disconnect (w);
    schedule_reconnect (w);
    return;
  }
  virConnectRegisterCloseCallback (w->conn, on_close, w, NULL);
  if (virConnectSetKeepAlive (w->conn, 5, 3) < 0)
    g_debug ("libvirt keepalive not available on %s: %s", w->uri, last_error ());
  g_message ("Watching libvirt domain lifecycle events at %s%s", w->uri, w->outage_logged ? " (reconnected)" : "");
  w->outage_logged = FALSE;
  w->backoff_ms = 0;
  w->core->gauges.libvirt_connected = TRUE;
  reconcile_start (w);
}

IfbLibvirtWatch *
ifb_libvirt_watch_new (IfbCore *core, const char *uri)
{
  static gboolean registered;
  IfbLibvirtWatch *w = g_new0 (IfbLibvirtWatch, 1);

  if (!registered) {
    gvir_init (NULL, NULL);
    gvir_event_register ();
    virSetErrorFunc (NULL, silence_libvirt);
    registered = TRUE;
  }
  w->core = core;
  w->uri = g_strdup (uri);
  w->lifecycle_id = -1;
  w->lister_fd = -1;
  watch_connect (w);
  return w;
}

IfbLibvirtWatch *
ifb_libvirt_watch_free (IfbLibvirtWatch *w)
{
  if (!w)
    return NULL;
  g_clear_handle_id (&w->reconnect_source, g_source_remove);
  g_clear_handle_id (&w->lister_source, g_source_remove);
  g_clear_handle_id (&w->lister_timeout, g_source_remove);
  if (w->lister_pid > 0) {
    kill (w->lister_pid, SIGKILL);
    waitpid (w->lister_pid, NULL, 0);
  }
  ifb_close (w->lister_fd);
  if (w->lister_out)
    g_string_free (w->lister_out, TRUE);
  watch_disconnect (w);
  g_free (w->uri);
  g_free (w);
  return NULL;
}
