/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The libvirt watcher against libvirt's test driver (test:///default: an in-process hypervisor
 * with one running domain "test", which emits lifecycle events). The test drives that driver
 * from the same process through its own connection; the watcher sees the events on the GLib
 * loop, and its reconcile child (a fork) sees a copy of the driver's state.
 */
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <libvirt/libvirt.h>

#include "lifecycle.h"
#include "libvirt-watch.h"
#include "manager.h"

#define TEST_UUID "6695eb01-f6a4-8304-79aa-97f2502e193f"

static IfbManager *
manager_new (char **ret_tmp)
{
  g_autoptr (GError) error = NULL;
  IfbConfig *c = ifb_config_load (NULL, FALSE, &error);
  char *tmp = g_dir_make_tmp ("ifb-watch-XXXXXX", &error);
  IfbManager *m;

  g_assert_no_error (error);
  g_free (c->socket_path);
  c->socket_path = g_build_filename (tmp, "rpc.sock", NULL);
  g_free (c->runtime_dir);
  c->runtime_dir = g_build_filename (tmp, "run", NULL);
  c->backend = IFB_BACKEND_CHOICE_EMULATED;
  g_free (c->emulated_template);
  c->emulated_template = g_strdup (g_getenv ("IFB_TEST_EMUL_TEMPLATE"));
  m = ifb_manager_new (c, &error);
  g_assert_no_error (error);
  g_assert_true (ifb_manager_start (m, &error));
  g_assert_no_error (error);
  *ret_tmp = tmp;
  return m;
}

typedef struct {
  gboolean done;
  IfbVm *vm;
} Created;

static void
created (IfbCore *m, IfbVm *vm, const GError *error, gpointer data)
{
  Created *c = data;
  g_assert_no_error ((GError *) error);
  c->vm = vm;
  c->done = TRUE;
}

static IfbVm *
guest (IfbCore *m, const char *name, const char *uuid, const char *cgroup)
{
  IfbVmCreateArgs a = { .name = name, .uuid = uuid, .cgroup = cgroup, .pidfd = -1,
                        .options = { .defer = TRUE }, .rlimit_per_process = 0 };
  Created c = { 0 };
  ifb_lifecycle_create (m, &a, created, &c);
  while (!c.done)
    g_main_context_iteration (NULL, TRUE);
  return c.vm;
}

/* Run the loop until name is gone (or not, within timeout). */
static gboolean
wait_gone (IfbCore *m, const char *name, guint timeout_ms)
{
  gint64 end = g_get_monotonic_time () + timeout_ms * 1000;
  while (g_get_monotonic_time () < end) {
    if (!ifb_registry_lookup (m->registry, name))
      return TRUE;
    g_main_context_iteration (NULL, FALSE);
    g_usleep (5000);
  }
  return !ifb_registry_lookup (m->registry, name);
}

static void
age (IfbCore *m, const char *name)
{
  ifb_registry_lookup (m->registry, name)->created_usec -= 60 * G_USEC_PER_SEC;
}

static void
test_watch_test_driver (void)
{
  /* Invariant: only libvirt guests whose domain is gone or inactive are destroyed — at start-up
   * (reconcile) and on STOPPED/UNDEFINED events — and nothing else. */
  g_autofree char *tmp = NULL;
  IfbManager *mgr = manager_new (&tmp);
  IfbCore *m = mgr->core;
  virConnectPtr conn;
  virDomainPtr dom;
  IfbLibvirtWatch *w;

  guest (m, "test", TEST_UUID, "/machine/qemu-1-test.libvirt-qemu");
  guest (m, "ghost", NULL, "/machine/qemu-9-ghost.libvirt-qemu");
  guest (m, "ghost-machined", NULL, "/machine.slice/machine-qemu\\x2d8\\x2dghost\\x2dmachined.scope");
  guest (m, "manual", NULL, "/not-libvirt/manual");
  guest (m, "other-scope", NULL, "/machine.slice/machine-lxc\\x2d1\\x2dother.scope");
  age (m, "test");
  age (m, "ghost");
  age (m, "ghost-machined");
  age (m, "manual");
  age (m, "other-scope");

  w = ifb_libvirt_watch_new (m, "test:///default");
  mgr->libvirt = w;
  g_assert_true (m->gauges.libvirt_connected);
  /* start-up reconcile: the ghosts (either cgroup layout) have no domain */
  g_assert_true (wait_gone (m, "ghost", 10000));
  g_assert_true (wait_gone (m, "ghost-machined", 10000));
  g_assert_nonnull (ifb_registry_lookup (m->registry, "test"));
  g_assert_nonnull (ifb_registry_lookup (m->registry, "manual"));
  g_assert_nonnull (ifb_registry_lookup (m->registry, "other-scope"));

  /* STOPPED event for a running domain's guest */
  conn = virConnectOpen ("test:///default");
  g_assert_nonnull (conn);
  dom = virDomainLookupByName (conn, "test");
  g_assert_nonnull (dom);
  g_assert_cmpint (virDomainDestroy (dom), ==, 0);
  g_assert_true (wait_gone (m, "test", 10000));

  /* a fresh guest (created just now) is judged by a reconcile: the domain is inactive */
  g_assert_cmpint (virDomainCreate (dom), ==, 0);
  guest (m, "test", TEST_UUID, "/machine/qemu-2-test.libvirt-qemu");
  g_assert_cmpint (virDomainDestroy (dom), ==, 0);
  g_assert_true (wait_gone (m, "test", 10000));

  /* UNDEFINED */
  guest (m, "test", TEST_UUID, "/machine/qemu-3-test.libvirt-qemu");
  age (m, "test");
  g_assert_cmpint (virDomainUndefine (dom), ==, 0);
  g_assert_true (wait_gone (m, "test", 10000));
  g_assert_nonnull (ifb_registry_lookup (m->registry, "manual"));
  g_assert_nonnull (ifb_registry_lookup (m->registry, "other-scope"));

  virDomainFree (dom);
  virConnectClose (conn);
  ifb_manager_free (mgr);
}

static void
test_watch_unreachable (void)
{
  /* Invariant: a libvirt that is not there neither blocks nor fails the daemon; it is retried. */
  g_autofree char *tmp = NULL;
  IfbManager *mgr = manager_new (&tmp);
  IfbCore *m = mgr->core;
  g_autofree char *uri = g_strdup_printf ("qemu+unix:///system?socket=%s/none.sock", tmp);
  IfbLibvirtWatch *w = ifb_libvirt_watch_new (m, uri);
  mgr->libvirt = w;
  g_assert_nonnull (w);
  g_assert_false (m->gauges.libvirt_connected);
  ifb_manager_free (mgr);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* The daemon warns about this host (cgroup v1 memory, no CAP_SYS_RESOURCE): not failures here. */
  g_log_set_always_fatal (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL);
  g_test_add_func ("/ifb/libvirt-watch/test-driver", test_watch_test_driver);
  g_test_add_func ("/ifb/libvirt-watch/unreachable", test_watch_unreachable);
  return g_test_run ();
}
