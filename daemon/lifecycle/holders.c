/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * A guest's iommufd stays open in the broker (and in systemd's fd store) for the guest's whole
 * life, so whatever a VMM allocates in it — its IOAS with all guest RAM mapped and pinned, its
 * HWPTs, a vIOMMU — would outlive the VMM until vm.destroy. The broker therefore remembers who
 * holds a guest's fds: every vm.fds caller (the launcher, which then execs the VMM under the same
 * pid) and the pid the libvirt "started" hook names. Each holder is watched through a pidfd in the
 * daemon's epoll; when the last one exits, the guest's context is replaced by a fresh one
 * (ifb_lifecycle_reclaim()), which frees everything in the old one. The next vm.fds — a reboot,
 * a restarted VMM — starts from a clean context without vm.destroy.
 *
 * Under the unbound hand-off one VMM at a time is the rule the kernel sets anyway (one bind per
 * device): a second process asking while another still holds the fds is refused, naming it.
 *
 * The process that called vm.fds is not always the one that keeps the fds: a launcher may fork the
 * VMM, hand it the fds and exit (a daemonizing wrapper). So when the last watched holder exits,
 * the processes then in the guest's cgroup (and the cgroups below it, but not the broker's own
 * worker leaf) become the holders, up to MAX_HOLDERS of them, and the guest is reclaimed only
 * when that finds none: a launcher's exit is not its VMM's, while a VMM that exits alone, in a
 * cgroup nothing else runs in, is reclaimed as before.
 *
 * Holders are saved with the guest as pid + start time (/proc/PID/stat field 22), so after a
 * broker restart a recycled pid is not mistaken for the VMM; a guest whose holders all died while
 * the broker was down is reclaimed once the main loop runs.
 */
#define G_LOG_DOMAIN "ifb-holders"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cgroup.h"
#include "errors.h"
#include "fdwatch.h"
#include "holders.h"
#include "lifecycle.h"
#include "log.h"
#include "util.h"

#define MAX_HOLDERS 16

typedef struct {
  IfbCore *core;
  IfbVm *vm;                    /* valid while the watch exists: freeing the guest removes it */
  pid_t pid;
} HolderWatch;

static IfbVmHolder *
find_holder (IfbVm *vm, pid_t pid, guint *ret_index)
{
  for (guint i = 0; i < vm->holders->len; i++)
    if (g_array_index (vm->holders, IfbVmHolder, i).pid == pid) {
      if (ret_index)
        *ret_index = i;
      return &g_array_index (vm->holders, IfbVmHolder, i);
    }
  return NULL;
}

#define ADOPT_MAX_DEPTH 8
#define ADOPT_MAX_DIRS 256

/* Add the processes of the cgroup dirfd and below it as holders; *budget bounds the directories. */
static void
adopt_dir (IfbCore *core, IfbVm *vm, int dirfd, guint depth, guint *budget)
{
  ifb_autofd int procs = openat (dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
  g_autofree char *text = NULL;
  DIR *d;
  struct dirent *e;
  int subfd;

  if (procs >= 0) {
    char buf[4096];
    ssize_t n;
    GString *s = g_string_new (NULL);
    while ((n = read (procs, buf, sizeof buf)) > 0 && s->len < 65536)
      g_string_append_len (s, buf, n);
    text = g_string_free (s, FALSE);
  }
  for (char *p = text, *next; p && *p && vm->holders->len < MAX_HOLDERS; p = next) {
    g_autofree char *cgroup = NULL;
    gint64 pid = g_ascii_strtoll (p, &next, 10);
    if (next == p)
      break;
    /* Only a live process still inside the guest (read through its pidfd) counts. */
    if (pid > 0 && pid <= G_MAXINT32 && pid != getpid () && ifb_cgroup_of_pid ((pid_t) pid, &cgroup, NULL) &&
        ifb_cgroup_is_within (cgroup, vm->cgroup) && ifb_holders_add (core, vm, (pid_t) pid, -1, NULL))
      ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Process %d, in guest '%s''s cgroup %s, now holds its fds",
                  (int) pid, vm->name, cgroup);
  }
  if (depth >= ADOPT_MAX_DEPTH || vm->holders->len >= MAX_HOLDERS || (subfd = dup (dirfd)) < 0)
    return;
  if (!(d = fdopendir (subfd))) {
    ifb_close (subfd);
    return;
  }
  while ((e = readdir (d)) && *budget > 0 && vm->holders->len < MAX_HOLDERS) {
    ifb_autofd int child = -1;
    if (e->d_type != DT_DIR || e->d_name[0] == '.' || strcmp (e->d_name, IFB_CGROUP_WORKER_LEAF) == 0)
      continue;
    (*budget)--;
    if ((child = openat (dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0)
      adopt_dir (core, vm, child, depth + 1, budget);
  }
  closedir (d);
}

/* The last holder exited: the processes left in the guest's cgroup hold its fds now, or, with
 * none left, the guest is reclaimed. */
static void
holders_gone (IfbCore *core, IfbVm *vm)
{
  ifb_autofd int dirfd = -1;
  guint budget = ADOPT_MAX_DIRS;

  if (vm->cgroup && core->cgroups && ifb_cgroup_open (core->cgroups, vm->cgroup, &dirfd, NULL))
    adopt_dir (core, vm, dirfd, 0, &budget);
  if (vm->holders->len == 0)
    ifb_lifecycle_reclaim (core, vm);
  else
    ifb_core_persist (core, vm, NULL);
}

static gboolean
on_holder_exit (int fd, GIOCondition cond, gpointer data)
{
  HolderWatch *w = data;
  IfbCore *core = w->core;
  IfbVm *vm = w->vm;
  guint idx;
  IfbVmHolder *h = find_holder (vm, w->pid, &idx);

  /* w is freed here; the holder's clear below still removes the watch, before it closes the
   * pidfd (epoll_ctl(DEL) by fd number after the close could hit a new fd with that number: the
   * reclaim started below opens a worker's pidfd). dispatch()'s removal is then a no-op. */
  if (h)
    h->watch_data = NULL;
  ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Process %d, holding guest '%s''s fds, exited", (int) w->pid, vm->name);
  g_free (w);
  if (h)
    g_array_remove_index (vm->holders, idx);
  if (vm->holders->len == 0)
    holders_gone (core, vm);
  else
    ifb_core_persist (core, vm, NULL);
  return G_SOURCE_REMOVE;
}

static gboolean
watch (IfbCore *core, IfbVm *vm, IfbVmHolder *h)
{
  HolderWatch *w = g_new0 (HolderWatch, 1);

  w->core = core;
  w->vm = vm;
  w->pid = h->pid;
  h->watch = ifb_fd_watch_add (h->pidfd, G_IO_IN, on_holder_exit, w);
  if (!h->watch) {
    g_free (w);
    return FALSE;
  }
  h->watch_data = w;
  return TRUE;
}

gboolean
ifb_holders_admit (IfbVm *vm, pid_t pid, GError **error)
{
  if (vm->options.handoff != IFB_HANDOFF_UNBOUND)
    return TRUE;
  for (guint i = 0; i < vm->holders->len; i++) {
    const IfbVmHolder *h = &g_array_index (vm->holders, IfbVmHolder, i);
    if (h->pid != pid)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_BUSY,
                          "Guest '%s''s fds are held by process %d (its VMM): the kernel allows one bind per "
                          "device, so they are handed out again when it exits", vm->name, (int) h->pid), FALSE;
  }
  return TRUE;
}

gboolean
ifb_holders_add (IfbCore *core, IfbVm *vm, pid_t pid, int pidfd, GError **error)
{
  IfbVmHolder h = { .pid = pid, .pidfd = -1 };

  vm->vmm_pid = pid;
  if (find_holder (vm, pid, NULL))
    return TRUE;
  if (vm->holders->len >= MAX_HOLDERS)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED,
                        "Guest '%s' has %u processes holding its fds already", vm->name, MAX_HOLDERS), FALSE;
  h.pidfd = pidfd >= 0 ? fcntl (pidfd, F_DUPFD_CLOEXEC, 3) : (int) syscall (SYS_pidfd_open, pid, 0);
  if (h.pidfd < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Watching process %d, which takes guest '%s''s fds",
                                (int) pid, vm->name);
  if (ifb_proc_stat (pid, NULL, &h.start_time) < 0) {
    ifb_close (h.pidfd);
    return g_set_error (error, IFB_ERROR, IFB_ERROR_FAILED, "Process %d, which takes guest '%s''s fds, is gone",
                        (int) pid, vm->name), FALSE;
  }
  g_array_append_val (vm->holders, h);
  if (!watch (core, vm, &g_array_index (vm->holders, IfbVmHolder, vm->holders->len - 1))) {
    g_array_remove_index (vm->holders, vm->holders->len - 1);
    return g_set_error (error, IFB_ERROR, IFB_ERROR_FAILED, "Watching process %d: epoll refused its pidfd", (int) pid), FALSE;
  }
  return TRUE;
}

typedef struct {
  IfbCore *core;
  char *uuid;
} ReclaimLater;

static gboolean
reclaim_later (gpointer data)
{
  ReclaimLater *r = data;
  IfbVm *vm = ifb_registry_lookup (r->core->registry, r->uuid);

  if (vm && vm->holders->len == 0)
    holders_gone (r->core, vm);
  g_free (r->uuid);
  g_free (r);
  return G_SOURCE_REMOVE;
}

void
ifb_holders_restore (IfbCore *core, IfbVm *vm)
{
  gboolean had = vm->holders->len > 0;

  for (guint i = 0; i < vm->holders->len;) {
    IfbVmHolder *h = &g_array_index (vm->holders, IfbVmHolder, i);
    guint64 st = 0;
    h->pidfd = (int) syscall (SYS_pidfd_open, h->pid, 0);
    /* The pidfd pins whoever has the pid now; the start time says whether it is the same process. */
    if (h->pidfd < 0 || ifb_proc_stat (h->pid, NULL, &st) < 0 || st != h->start_time || !watch (core, vm, h)) {
      ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Process %d, which held guest '%s''s fds, exited while the broker was down",
                  (int) h->pid, vm->name);
      g_array_remove_index (vm->holders, i);
      continue;
    }
    i++;
  }
  if (had && vm->holders->len == 0) {
    ReclaimLater *r = g_new0 (ReclaimLater, 1);
    r->core = core;
    r->uuid = g_strdup (vm->uuid);
    g_idle_add (reclaim_later, r);
  }
}
