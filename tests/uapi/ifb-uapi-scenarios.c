/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Runs the scenario list (daemon/uapi/scenarios.c) on one backend and prints one line per
 * scenario, so the emulated and the kernel tier can be diffed. Exit status 1 on any mismatch.
 *
 *   ifb-uapi-scenarios --backend emulated [--dev-root DIR | --template DIR] [--device vfioN]...
 *   ifb-uapi-scenarios --backend kernel [--dev-root /dev] --device vfio0 [--mock]
 *
 * --dev-root is the directory standing for /dev. For the emulated backend without one, a
 * private emulated root is copied from --template (default: the source tree's tests/fixtures/emulated) into a
 * temporary directory. Without --device, every cdev in DEV/vfio/devices is tested.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "ifb-config.h"
#include "emul-root.h"
#include "scenarios.h"
#include "uapi.h"
#include "util.h"

static char *arg_backend = NULL;
static char *arg_dev_root = NULL;
static char *arg_template = NULL;
static char **arg_devices = NULL;
static char *arg_only = NULL;
static gboolean arg_mock = FALSE;

static const GOptionEntry options[] = {
  { "backend", 'b', 0, G_OPTION_ARG_STRING, &arg_backend, "emulated or kernel", "NAME" },
  { "dev-root", 'd', 0, G_OPTION_ARG_FILENAME, &arg_dev_root, "Directory standing for /dev", "DIR" },
  { "template", 't', 0, G_OPTION_ARG_FILENAME, &arg_template, "Emulated root template", "DIR" },
  { "device", 'D', 0, G_OPTION_ARG_STRING_ARRAY, &arg_devices, "Device cdev to test (repeatable)", "vfioN" },
  { "mock", 'm', 0, G_OPTION_ARG_NONE, &arg_mock, "Also test the IOMMUFD_TEST mock device", NULL },
  { "only", 'o', 0, G_OPTION_ARG_STRING, &arg_only, "Run scenarios with this name prefix", "PREFIX" },
  { NULL }
};

static int
cmp_str (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static GPtrArray *
list_cdevs (int dev_dirfd)
{
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  int fd = openat (dev_dirfd, "vfio/devices", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct dirent *de;
  DIR *d;

  if (fd < 0)
    return names;
  d = fdopendir (fd);
  if (!d) {
    close (fd);
    return names;
  }
  while ((de = readdir (d)))
    if (g_str_has_prefix (de->d_name, "vfio"))
      g_ptr_array_add (names, g_strdup (de->d_name));
  closedir (d);
  g_ptr_array_sort (names, cmp_str);
  return names;
}

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) octx = g_option_context_new ("- run the IOMMUFD scenario list");
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) cdevs = NULL;
  g_autofree char *tmpdir = NULL;
  ifb_autofd int dev_dirfd = -1;
  ifb_autofd int rootfd = -1;
  IfbScenarioEnv env = { 0 };
  unsigned failed;

  g_option_context_add_main_entries (octx, options, NULL);
  if (!g_option_context_parse (octx, &argc, &argv, &error)) {
    fprintf (stderr, "%s\n", error->message);
    return 2;
  }
  if (g_strcmp0 (arg_backend, "kernel") == 0)
    env.backend = ifb_uapi_backend_kernel ();
  else if (!arg_backend || g_strcmp0 (arg_backend, "emulated") == 0)
    env.backend = ifb_uapi_backend_emulated ();
  else {
    fprintf (stderr, "Unknown backend '%s'\n", arg_backend);
    return 2;
  }

  if (arg_dev_root) {
    dev_dirfd = open (arg_dev_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } else if (ifb_uapi_backend_is_emulated (env.backend)) {
    ifb_autofd int tfd = -1;
    int r;

    tmpdir = g_dir_make_tmp ("ifb-uapi-scenarios-XXXXXX", &error);
    if (!tmpdir) {
      fprintf (stderr, "%s\n", error->message);
      return 2;
    }
    tfd = open (tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    r = ifb_emul_root_prepare (arg_template ? arg_template : IFB_TEST_EMUL_TEMPLATE, tfd, "root", &rootfd);
    if (r < 0) {
      fprintf (stderr, "Preparing emulated root: %s\n", g_strerror (-r));
      return 2;
    }
    dev_dirfd = openat (rootfd, "dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } else {
    dev_dirfd = open ("/dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }
  if (dev_dirfd < 0) {
    fprintf (stderr, "Opening the device directory: %s\n", g_strerror (errno));
    return 2;
  }

  if (arg_devices) {
    cdevs = g_ptr_array_new_with_free_func (g_free);
    for (char **d = arg_devices; *d; d++)
      g_ptr_array_add (cdevs, g_strdup (*d));
  } else {
    cdevs = list_cdevs (dev_dirfd);
  }
  env.dev_dirfd = dev_dirfd;
  env.cdevs = (const char *const *) cdevs->pdata;
  env.n_cdevs = cdevs->len;
  env.mock = arg_mock;
  env.only = arg_only;

  printf ("# backend %s, %u device(s)%s\n", ifb_uapi_backend_name (env.backend), cdevs->len, arg_mock ? " + mock" : "");
  failed = ifb_scenarios_run (&env, stdout);
  printf ("# %u mismatch(es)\n", failed);

  if (tmpdir) {
    g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", tmpdir);
    if (system (cmd) != 0)
      fprintf (stderr, "Could not remove %s, ignoring\n", tmpdir);
  }
  return failed ? 1 : 0;
}
