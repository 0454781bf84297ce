/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/base/config.c against units/broker.conf.example: every key the example documents is one the
 * daemon knows, each documented value is the default, and a bad value names the key.
 */
#include <string.h>

#include "config.h"
#include "errors.h"

static char *
example_uncommented (void)
{
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;
  GString *out = g_string_new (NULL);

  g_assert_true (g_file_get_contents (g_getenv ("IFB_CONFIG_EXAMPLE"), &text, NULL, NULL));
  lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l; l++) {
    /* "#key=value" (a setting), not "# prose" */
    if ((*l)[0] == '#' && g_ascii_islower ((*l)[1]) && strchr (*l, '=') && !strchr (*l, ' '))
      g_string_append (out, *l + 1);
    else
      g_string_append (out, *l);
    g_string_append_c (out, '\n');
  }
  return g_string_free (out, FALSE);
}

static void
test_example_is_the_defaults (void)
{
  g_autofree char *text = example_uncommented ();
  g_autoptr (GError) error = NULL;
  IfbConfig *defaults = ifb_config_load_data ("", 0, &error);
  IfbConfig *c;
  guint settings = 0;

  g_assert_no_error (error);
  c = ifb_config_load_data (text, strlen (text), &error);
  g_assert_no_error (error);
  for (const char *p = text; (p = strstr (p, "=")); p++)
    settings++;
  g_assert_cmpuint (settings, >=, 20);   /* the example really documents the keys */

  g_assert_cmpstr (c->socket_path, ==, defaults->socket_path);
  g_assert_cmpuint (c->socket_mode, ==, defaults->socket_mode);
  g_assert_cmpstr (c->runtime_dir, ==, defaults->runtime_dir);
  g_assert_cmpint (c->backend, ==, defaults->backend);
  g_assert_cmpstr (c->dev_root, ==, defaults->dev_root);
  g_assert_cmpstr (c->sys_root, ==, defaults->sys_root);
  g_assert_cmpuint (c->worker_timeout_ms, ==, defaults->worker_timeout_ms);
  g_assert_cmpuint (c->max_frame, ==, defaults->max_frame);
  g_assert_cmpuint (c->max_depth, ==, defaults->max_depth);
  g_assert_cmpuint (c->max_connections, ==, defaults->max_connections);
  g_assert_cmpuint (c->max_connections_per_uid, ==, defaults->max_connections_per_uid);
  g_assert_cmpuint (c->max_pending, ==, defaults->max_pending);
  g_assert_cmpuint (c->max_batch, ==, defaults->max_batch);
  g_assert_cmpuint (c->max_vms, ==, defaults->max_vms);
  g_assert_cmpuint (c->max_devices_per_vm, ==, defaults->max_devices_per_vm);
  g_assert_cmpstr (c->admin_group, ==, defaults->admin_group);
  g_assert_cmpstr (c->read_group, ==, defaults->read_group);
  g_assert_cmpint (c->rlimit_per_process, ==, defaults->rlimit_per_process);
  g_assert_cmpstr (c->libvirt_uri, ==, defaults->libvirt_uri);
  g_assert_cmpstr (c->libvirt_cgroup_layout, ==, defaults->libvirt_cgroup_layout);
  g_assert_cmpint (c->allow_selftest, ==, defaults->allow_selftest);
  g_assert_cmpstr (c->metrics_textfile, ==, defaults->metrics_textfile);
  g_assert_cmpuint (c->metrics_interval_sec, ==, defaults->metrics_interval_sec);
  g_assert_null (defaults->emulated_template);   /* the built-in set */
  g_assert_cmpstr (c->emulated_template, ==, defaults->emulated_template);
  ifb_config_free (c);
  ifb_config_free (defaults);
}

static void
test_cgroup_layout (void)
{
  static const char *const good[] = { "auto", "systemd", "manual" };

  for (guint i = 0; i < G_N_ELEMENTS (good); i++) {
    g_autofree char *text = g_strdup_printf ("[libvirt]\ncgroup-layout=%s\n", good[i]);
    g_autoptr (GError) error = NULL;
    IfbConfig *c = ifb_config_load_data (text, strlen (text), &error);
    g_assert_no_error (error);
    g_assert_cmpstr (c->libvirt_cgroup_layout, ==, good[i]);
    ifb_config_free (c);
  }
  {
    const char *text = "[libvirt]\ncgroup-layout=machined\n";
    g_autoptr (GError) error = NULL;
    g_assert_null (ifb_config_load_data (text, strlen (text), &error));
    g_assert_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (error->message, "[libvirt] cgroup-layout='machined' is not one of auto, systemd, manual"));
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/config/example-is-the-defaults", test_example_is_the_defaults);
  g_test_add_func ("/config/cgroup-layout", test_cgroup_layout);
  return g_test_run ();
}
