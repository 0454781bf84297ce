/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * Start-up, in order: choose the backend (kernel when /dev/iommu is a character device, unless
 * told otherwise; the emulated one gets a private copy of its device tree in the runtime dir:
 * the set built into the daemon, or the template tree the configuration names),
 * open /dev and /sys (or their emulated stand-ins) as directory fds, find cgroup2 and check where
 * the memory controller lives, load the saved registry, take the fds systemd hands back
 * (LISTEN_FDS: the listening socket when socket-activated, and the fd store), re-associate them
 * with the saved guests, write the registry back, start listening, and only then READY=1.
 *
 * The core (core.h) is given its hooks here: a guest's state is persisted by state.c and shown
 * in STATUS= (notify.c), events go to the server's subscribers.
 */
#define G_LOG_DOMAIN "ifb-manager"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <glib-unix.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "device-kind.h"
#include "emul-builtin.h"
#include "emul-root.h"
#include "errors.h"
#include "lifecycle.h"
#include "libvirt-watch.h"
#include "manager.h"
#include "metrics-text.h"
#include "notify.h"
#include "proc-cgroup.h"
#include "server.h"
#include "state.h"
#include "util.h"
#include "worker.h"

static char *
status_line (IfbCore *core)
{
  return g_strdup_printf ("%u guests, %u devices, %s backend", ifb_registry_n_vms (core->registry),
                          ifb_registry_n_devices (core->registry), ifb_uapi_backend_name (core->backend));
}

static void
show_status (IfbCore *core)
{
  g_autofree char *status = status_line (core);
  ifb_notify_status (status);
}

static gboolean
hook_persist (IfbVm *vm, GError **error, gpointer data)
{
  IfbManager *m = data;

  if (vm && !ifb_state_save_vm (m->core->runtime_dirfd, vm, error))
    return FALSE;
  show_status (m->core);
  return TRUE;
}

static gboolean
hook_forget (const IfbVm *vm, GError **error, gpointer data)
{
  IfbManager *m = data;

  if (!ifb_state_remove_vm (m->core->runtime_dirfd, vm->uuid, error))
    return FALSE;
  show_status (m->core);
  return TRUE;
}

static void
hook_emit (const char *type, json_object *params, gpointer data)
{
  IfbManager *m = data;

  if (m->server)
    ifb_server_broadcast_event (m->server, type, params);
  else
    json_object_put (params);
}

IfbManager *
ifb_manager_new (IfbConfig *config, GError **error)
{
  IfbManager *m = g_new0 (IfbManager, 1);
  m->core = ifb_core_new (config);
  m->core->hooks = (IfbCoreHooks) { .persist = hook_persist, .forget = hook_forget, .emit = hook_emit, .data = m };
  m->loop = g_main_loop_new (NULL, FALSE);
  return m;
}

IfbManager *
ifb_manager_free (IfbManager *m)
{
  if (!m)
    return NULL;
  ifb_metrics_textfile_stop ();
  m->libvirt = ifb_libvirt_watch_free (m->libvirt);
  m->server = ifb_server_free (m->server);
  m->core = ifb_core_free (m->core);
  g_main_loop_unref (m->loop);
  g_free (m);
  return NULL;
}

static int
open_dir (int at, const char *path)
{
  int fd = openat (at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

static gboolean
choose_backend (IfbCore *core, GError **error)
{
  IfbConfig *c = core->config;
  IfbBackendChoice choice = c->backend;
  int r;

  if (choice == IFB_BACKEND_CHOICE_AUTO) {
    g_autofree char *iommu = g_build_filename (c->dev_root, "iommu", NULL);
    struct stat st;
    if (stat (iommu, &st) == 0 && S_ISCHR (st.st_mode)) {
      choice = IFB_BACKEND_CHOICE_KERNEL;
      core->backend_reason = g_strdup_printf ("auto: %s is present", iommu);
    } else {
      choice = IFB_BACKEND_CHOICE_EMULATED;
      core->backend_reason = g_strdup_printf ("auto: %s is absent, so devices and IOMMUFD are emulated", iommu);
    }
  } else {
    core->backend_reason = g_strdup_printf ("configured: backend=%s", ifb_backend_choice_to_string (choice));
  }

  if (choice == IFB_BACKEND_CHOICE_KERNEL) {
    core->backend = ifb_uapi_backend_kernel ();
    if ((core->dev_dirfd = open_dir (AT_FDCWD, c->dev_root)) < 0)
      return ifb_error_set_errno (error, IFB_ERROR_UNAVAILABLE, core->dev_dirfd, "Opening '%s'", c->dev_root);
    if ((core->sys_dirfd = open_dir (AT_FDCWD, c->sys_root)) < 0)
      return ifb_error_set_errno (error, IFB_ERROR_UNAVAILABLE, core->sys_dirfd, "Opening '%s'", c->sys_root);
    return TRUE;
  }

  core->backend = ifb_uapi_backend_emulated ();
  core->device_reset_ms = c->emulated_device_reset_ms;
  /* the daemon too: a bind or last close of a bound device in the main loop shows as the reset
   * it would be on real hardware */
  ifb_uapi_set_device_reset_ms (core->backend, core->device_reset_ms);
  {
    ifb_autofd int root = -1;
    r = c->emulated_template ? ifb_emul_root_prepare (c->emulated_template, core->runtime_dirfd, "emulated", &root)
                             : ifb_emul_builtin_prepare (core->runtime_dirfd, "emulated", &root);
    if (r < 0 && c->emulated_template)
      return ifb_error_set_errno (error, IFB_ERROR_UNAVAILABLE, r,
                                  "Preparing the emulated device tree from '%s'", c->emulated_template);
    if (r < 0)
      return ifb_error_set_errno (error, IFB_ERROR_UNAVAILABLE, r, "Preparing the built-in emulated device tree");
    core->emulated_root = g_build_filename (c->runtime_dir, "emulated", NULL);
    if ((core->dev_dirfd = open_dir (root, "dev")) < 0 || (core->sys_dirfd = open_dir (root, "sys")) < 0)
      return ifb_error_set_errno (error, IFB_ERROR_UNAVAILABLE, -errno, "Opening the emulated root '%s'",
                                  core->emulated_root);
  }
  return TRUE;
}

static bool
have_cap_sys_resource (void)
{
  struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
  struct __user_cap_data_struct data[2] = { { 0 } };
  if (syscall (SYS_capget, &hdr, data) < 0)
    return false;
  return (data[CAP_SYS_RESOURCE / 32].effective >> (CAP_SYS_RESOURCE % 32)) & 1;
}

/* What the host offers that the configuration counts on: cgroup2 and its memory controller, our
 * own cgroup, CAP_SYS_RESOURCE, an fd store large enough, the worker program. What is missing is
 * logged and worked around, never fatal. */
static void
check_host (IfbCore *core)
{
  IfbConfig *c = core->config;
  g_autoptr (GError) local = NULL;
  g_autoptr (GError) no_worker = NULL;
  guint64 max_fds = (guint64) c->max_vms * (1 + c->max_devices_per_vm);
  const char *fdstore = g_getenv ("FDSTORE");
  char self[PATH_MAX];   /* any cgroup path the kernel reports fits */

  core->cgroups = ifb_cgroup_root_open (&local);
  if (!core->cgroups)
    g_warning ("%s: guests cannot be given workers in their cgroups, ignoring", local->message);
  else if (!ifb_cgroup_root_has_memory (core->cgroups))
    g_warning ("The memory controller is not enabled on cgroup2 (%s): workers run in the guests' cgroups, "
               "but their kernel memory cannot be charged there (memory sits on cgroup v1 or is off), ignoring",
               ifb_cgroup_root_mount (core->cgroups));
  if (ifb_proc_cgroup_self (self, sizeof (self)) == 0)
    core->self_cgroup = g_strdup (self);
  if (c->rlimit_per_process && !have_cap_sys_resource ()) {
    g_warning ("Without CAP_SYS_RESOURCE the per-process IOMMU_OPTION_RLIMIT_MODE cannot be set: guests keep the "
               "kernel's per-user accounting ([accounting] rlimit-per-process), ignoring");
    c->rlimit_per_process = false;
  }
  /* systemd returns every stored fd's name in one environment string, LISTEN_FDNAMES, which the
   * kernel caps at 128 KiB (MAX_ARG_STRLEN); our names take at most 6 bytes with the ':'. */
  if (max_fds * 6 > 128 * 1024)
    g_warning ("[limits] max-vms=%u with max-devices-per-vm=%u allows %" G_GUINT64_FORMAT " fds in the fd store, "
               "whose names could exceed what systemd can pass back on restart (128 KiB of LISTEN_FDNAMES), ignoring",
               c->max_vms, c->max_devices_per_vm, max_fds);
  /* systemd 254+ tells us the size of our fd store ($FDSTORE = FileDescriptorStoreMax=). A store
   * smaller than our limits can hold drops fds over it without telling us, and those guests would
   * not survive the next restart: say so now rather than then. */
  if (fdstore && g_ascii_strtoull (fdstore, NULL, 10) < max_fds)
    g_warning ("The fd store holds %s fds (FileDescriptorStoreMax=) but [limits] max-vms=%u with "
               "max-devices-per-vm=%u may need %" G_GUINT64_FORMAT ": guests beyond it would be lost on restart, ignoring",
               fdstore, c->max_vms, c->max_devices_per_vm, max_fds);
  if (!ifb_worker_init (c->max_workers, &no_worker))
    g_warning ("%s: guests with the bound hand-off cannot be made (the package is incomplete?), ignoring",
               no_worker->message);
}

/* The fds systemd passed (LISTEN_FDS): the listening sockets when socket-activated — the VMM
 * socket is the one named "vmm" (*ret_vmm_fd), the RPC socket the other (*ret_listen_fd), each -1
 * when absent — and the fd store, handed to restore with the saved guests. */
static gboolean
restore_guests (IfbCore *core, int *ret_listen_fd, int *ret_vmm_fd, GError **error)
{
  g_autoptr (GPtrArray) saved = NULL;
  g_autoptr (GPtrArray) stored_names = g_ptr_array_new ();
  g_autofree int *stored = NULL;
  g_auto (GStrv) names = NULL;
  int listen_fd = -1, vmm_fd = -1, n;

  if (!ifb_state_load (core->runtime_dirfd, core->config->max_vms, &saved, error))
    return FALSE;
  n = sd_listen_fds_with_names (TRUE, &names);
  if (n < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, n, "Reading LISTEN_FDS");
  stored = g_new0 (int, MAX (n, 1));
  for (int i = 0; i < n; i++) {
    int fd = SD_LISTEN_FDS_START + i;
    fcntl (fd, F_SETFD, FD_CLOEXEC);
    if (sd_is_socket_unix (fd, SOCK_STREAM, 1, NULL, 0) > 0) {
      gboolean vmm = names && names[i] && strcmp (names[i], "vmm") == 0;
      if (vmm ? vmm_fd < 0 : listen_fd < 0) {
        *(vmm ? &vmm_fd : &listen_fd) = fd;
        continue;
      }
    }
    stored[stored_names->len] = fd;
    g_ptr_array_add (stored_names, names && names[i] ? names[i] : (char *) "unknown");
  }
  ifb_lifecycle_restore (core, saved, stored, (char **) stored_names->pdata, stored_names->len);
  *ret_listen_fd = listen_fd;
  *ret_vmm_fd = vmm_fd;
  return ifb_core_persist (core, NULL, error);
}

static gboolean
on_signal (gpointer data)
{
  IfbManager *m = data;
  g_message ("Shutting down on signal");
  g_main_loop_quit (m->loop);
  return G_SOURCE_CONTINUE;
}

gboolean
ifb_manager_start (IfbManager *m, GError **error)
{
  IfbCore *core = m->core;
  IfbConfig *c = core->config;
  g_autofree char *status = NULL;
  int listen_fd = -1, vmm_fd = -1;

  if (g_mkdir_with_parents (c->runtime_dir, 0755) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_UNAVAILABLE, -errno, "Creating runtime dir '%s'", c->runtime_dir);
  if ((core->runtime_dirfd = open_dir (AT_FDCWD, c->runtime_dir)) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_UNAVAILABLE, core->runtime_dirfd, "Opening runtime dir '%s'", c->runtime_dir);
  if (!choose_backend (core, error))
    return FALSE;
  g_message ("Backend: %s (%s)", ifb_uapi_backend_name (core->backend), core->backend_reason);
  ifb_device_kinds_probe (core);
  check_host (core);
  if (!restore_guests (core, &listen_fd, &vmm_fd, error))
    return FALSE;

  /* Socket-activated, the VMM socket is the one systemd passes; else the configured path, if any. */
  m->server = ifb_server_new (core, listen_fd, c->socket_path, vmm_fd, listen_fd >= 0 ? NULL : c->vmm_socket_path, error);
  if (!m->server)
    return FALSE;
  if (c->libvirt_uri)
    m->libvirt = ifb_libvirt_watch_new (core, c->libvirt_uri);

  g_unix_signal_add (SIGTERM, on_signal, m);
  g_unix_signal_add (SIGINT, on_signal, m);
  signal (SIGPIPE, SIG_IGN);

  status = status_line (core);
  g_message ("Ready on %s: %s (%" G_GUINT64_FORMAT " restored)", listen_fd >= 0 ? "socket-activated fd" : c->socket_path,
             status, core->gauges.restored_vms);
  ifb_notify_ready (status);
  ifb_notify_watchdog_start ();
  ifb_metrics_textfile_start (core);
  ifb_lifecycle_tidy_in_background (core);
  return TRUE;
}

void
ifb_manager_run (IfbManager *m)
{
  g_main_loop_run (m->loop);
  ifb_notify_stopping ();
}
