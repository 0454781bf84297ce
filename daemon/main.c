/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iommufd-brokerd: brokers IOMMUFD contexts and VFIO device cdevs to virtual machines. */
#define G_LOG_DOMAIN "iommufd-brokerd"

#include <stdlib.h>
#include <sys/resource.h>

#include "config.h"
#include "errors.h"
#include "fault.h"
#include "fdwatch.h"
#include "ifb-config.h"
#include "log.h"
#include "manager.h"

static char *arg_socket;
static char *arg_vmm_socket;
static char *arg_backend;
static char *arg_runtime_dir;
static char *arg_config;
static char *arg_emulated_template;

static const GOptionEntry entries[] = {
  { "socket", 0, 0, G_OPTION_ARG_FILENAME, &arg_socket, "Listen on PATH (default " IFB_DEFAULT_SOCKET ")", "PATH" },
  { "vmm-socket", 0, 0, G_OPTION_ARG_FILENAME, &arg_vmm_socket, "Also listen on PATH (mode 0666) for VMMs: vm.fds only, to guests' processes and admins", "PATH" },
  { "backend", 0, 0, G_OPTION_ARG_STRING, &arg_backend, "auto (default), kernel or emulated", "NAME" },
  { "runtime-dir", 0, 0, G_OPTION_ARG_FILENAME, &arg_runtime_dir, "State directory (default " IFB_DEFAULT_RUNTIME_DIR ")", "DIR" },
  { "config", 0, 0, G_OPTION_ARG_FILENAME, &arg_config, "Configuration file (default " IFB_CONFIG_FILE ")", "FILE" },
  { "emulated-template", 0, 0, G_OPTION_ARG_FILENAME, &arg_emulated_template, "Template tree of the emulated devices (default: the set built into the daemon)", "DIR" },
  { NULL },
};

static gboolean
apply_arguments (IfbConfig *c, GError **error)
{
  if (arg_socket)
    g_free (c->socket_path), c->socket_path = g_strdup (arg_socket);
  if (arg_vmm_socket)
    g_free (c->vmm_socket_path), c->vmm_socket_path = g_strdup (arg_vmm_socket);
  if (arg_runtime_dir)
    g_free (c->runtime_dir), c->runtime_dir = g_strdup (arg_runtime_dir);
  if (arg_emulated_template)
    g_free (c->emulated_template), c->emulated_template = g_strdup (arg_emulated_template);
  if (arg_backend && (c->backend = ifb_backend_choice_from_string (arg_backend)) == IFB_BACKEND_CHOICE_INVALID)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                        "--backend '%s' is not one of auto, kernel, emulated", arg_backend), FALSE;
  return TRUE;
}

/*
 * Each guest holds 1 + its devices fds, and the daemon keeps them all (4096 guests x 2 devices =
 * 12288). systemd starts services with a soft RLIMIT_NOFILE of 1024 and a high hard limit, and
 * expects a program that needs more, and uses no select(), to raise the soft limit itself (as
 * systemd and dbus-broker do). GLib polls with poll(), not select(). Workers inherit the limit,
 * and the VMM never sees it (it gets its fds over the socket).
 */
static void
raise_nofile_limit (void)
{
  struct rlimit rl;
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit (RLIMIT_NOFILE, &rl) < 0)
      g_message ("Could not raise RLIMIT_NOFILE to %llu, ignoring", (unsigned long long) rl.rlim_max);
  }
}

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- IOMMUFD broker for virtual machines");
  g_autoptr (GError) error = NULL;
  g_autoptr (IfbManager) m = NULL;
  IfbConfig *config;

  ifb_log_init ();
  ifb_fault_init ();
  ifb_fd_watch_init ();
  raise_nofile_limit ();
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    g_printerr ("iommufd-brokerd: %s\n", error->message);
    return 2;
  }
  config = ifb_config_load (arg_config ? arg_config : IFB_CONFIG_FILE, arg_config != NULL, &error);
  if (!config || !apply_arguments (config, &error)) {
    g_printerr ("iommufd-brokerd: %s\n", error->message);
    ifb_config_free (config);
    return 2;
  }
  m = ifb_manager_new (config, &error);
  if (!ifb_manager_start (m, &error)) {
    g_printerr ("iommufd-brokerd: %s\n", error->message);
    return 1;
  }
  ifb_manager_run (m);
  return 0;
}
