/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * The broker names cgroups by their path below the cgroup2 mount, and touches them only through
 * a directory fd of that mount: a guest's cgroup is opened one component at a time with
 * O_NOFOLLOW and checked to be on cgroup2 (statfs), so no symlink or other filesystem can stand
 * in for it. A process's cgroup is read from /proc/PID/cgroup (proc-cgroup.c parses it) and
 * trusted only while a pidfd shows the process is the one meant and still alive.
 *
 * The rules of what may be a guest's cgroup (never '/', the broker's own or its ancestors, nor
 * one holding the caller unless root says so) live here as pure functions of paths.
 */
#define G_LOG_DOMAIN "ifb-cgroup"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "cgroup.h"
#include "errors.h"
#include "proc-cgroup.h"
#include "util.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

struct IfbCgroupRoot {
  char *mount;
  int dirfd;
  bool has_memory;
};

IfbCgroupRoot *
ifb_cgroup_root_open (GError **error)
{
  g_autofree char *mounts = NULL;
  g_auto (GStrv) lines = NULL;
  g_autoptr (GError) local = NULL;
  g_autofree char *controllers = NULL;
  IfbCgroupRoot *r;
  char *mount = NULL;

  if (!g_file_get_contents ("/proc/self/mounts", &mounts, NULL, &local))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_FAILED, "Reading /proc/self/mounts: %s", local->message), NULL;
  lines = g_strsplit (mounts, "\n", -1);
  for (char **l = lines; *l && !mount; l++) {
    g_auto (GStrv) f = g_strsplit (*l, " ", 4);
    if (g_strv_length (f) >= 3 && strcmp (f[2], "cgroup2") == 0)
      mount = g_strcompress (f[1]);   /* undo \040 escapes */
  }
  if (!mount)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_UNAVAILABLE, "No cgroup2 hierarchy is mounted"), NULL;

  r = g_new0 (IfbCgroupRoot, 1);
  r->mount = mount;
  r->dirfd = open (mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (r->dirfd < 0) {
    int e = errno;
    ifb_cgroup_root_free (r);
    return ifb_error_set_errno (error, IFB_ERROR_UNAVAILABLE, -e, "Opening cgroup2 mount '%s'", mount), NULL;
  }
  {
    g_autofree char *p = g_build_filename (mount, "cgroup.controllers", NULL);
    if (g_file_get_contents (p, &controllers, NULL, NULL)) {
      g_auto (GStrv) names = g_strsplit_set (g_strstrip (controllers), " ", -1);
      r->has_memory = g_strv_contains ((const char *const *) names, "memory");
    }
  }
  return r;
}

IfbCgroupRoot *
ifb_cgroup_root_free (IfbCgroupRoot *r)
{
  if (!r)
    return NULL;
  ifb_close (r->dirfd);
  g_free (r->mount);
  g_free (r);
  return NULL;
}

const char *
ifb_cgroup_root_mount (const IfbCgroupRoot *r)
{
  return r->mount;
}

bool
ifb_cgroup_root_has_memory (const IfbCgroupRoot *r)
{
  return r->has_memory;
}

gboolean
ifb_cgroup_path_validate (const char *path, GError **error)
{
  g_auto (GStrv) parts = NULL;

  if (!path || path[0] != '/')
    return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID,
                        "Cgroup path '%s' must be absolute within the cgroup2 hierarchy", path ? path : ""), FALSE;
  if (strlen (path) > 4096)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID, "Cgroup path is too long"), FALSE;
  if (strcmp (path, "/") == 0)
    return TRUE;
  for (const char *p = path; *p; p++)
    if ((unsigned char) *p < 0x20 || *p == 0x7f)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID,
                          "Cgroup path contains a control character"), FALSE;
  parts = g_strsplit (path + 1, "/", -1);
  for (char **c = parts; *c; c++)
    if (!**c || strcmp (*c, ".") == 0 || strcmp (*c, "..") == 0)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID,
                          "Cgroup path '%s' is not normalised (empty, '.' or '..' component)", path), FALSE;
  return TRUE;
}

gboolean
ifb_cgroup_open (const IfbCgroupRoot *r, const char *path, int *ret_dirfd, GError **error)
{
  g_auto (GStrv) parts = NULL;
  ifb_autofd int fd = -1;
  struct statfs sfs;

  if (!ifb_cgroup_path_validate (path, error))
    return FALSE;
  fd = fcntl (r->dirfd, F_DUPFD_CLOEXEC, 3);
  if (fd < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "dup"), FALSE;
  parts = g_strsplit (path + 1, "/", -1);
  for (char **c = parts; *c && **c; c++) {
    int next = openat (fd, *c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0)
      return ifb_error_set_errno (error, IFB_ERROR_CGROUP_INVALID, -errno,
                                  "Cgroup '%s' (component '%s') cannot be opened", path, *c), FALSE;
    ifb_close (fd);
    fd = next;
  }
  if (fstatfs (fd, &sfs) < 0 || sfs.f_type != CGROUP2_SUPER_MAGIC)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID,
                        "'%s' is not a directory of the cgroup2 hierarchy", path), FALSE;
  *ret_dirfd = ifb_steal_fd (&fd);
  return TRUE;
}

gboolean
ifb_cgroup_open_worker_target (int guest_dirfd, int *ret_dirfd, gboolean *ret_leaf, GError **error)
{
  char buf[256];
  ssize_t n = 0;
  int fd = openat (guest_dirfd, "cgroup.subtree_control", O_RDONLY | O_CLOEXEC);
  gboolean delegates;

  if (fd >= 0) {
    n = read (fd, buf, sizeof (buf) - 1);
    close (fd);
  }
  delegates = n > 0 && buf[0] != '\n';
  if (!delegates) {
    fd = fcntl (guest_dirfd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0)
      return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "dup"), FALSE;
    *ret_dirfd = fd;
    *ret_leaf = FALSE;
    return TRUE;
  }
  if (mkdirat (guest_dirfd, IFB_CGROUP_WORKER_LEAF, 0755) < 0 && errno != EEXIST)
    return ifb_error_set_errno (error, IFB_ERROR_CGROUP_INVALID, -errno,
                                "Creating the worker leaf cgroup '%s'", IFB_CGROUP_WORKER_LEAF), FALSE;
  fd = openat (guest_dirfd, IFB_CGROUP_WORKER_LEAF, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return ifb_error_set_errno (error, IFB_ERROR_CGROUP_INVALID, -errno,
                                "Opening the worker leaf cgroup '%s'", IFB_CGROUP_WORKER_LEAF), FALSE;
  *ret_dirfd = fd;
  *ret_leaf = TRUE;
  return TRUE;
}

void
ifb_cgroup_worker_leaf_remove (int guest_dirfd)
{
  if (unlinkat (guest_dirfd, IFB_CGROUP_WORKER_LEAF, AT_REMOVEDIR) < 0 && errno != ENOENT)
    g_debug ("Removing the worker leaf cgroup: %s", g_strerror (errno));
}

/* A pidfd polls readable once its process has exited (a zombie included). Unlike signal 0
 * through pidfd_send_signal(), which is EPERM for another uid's process without CAP_KILL, this
 * needs no privilege: the unit gives the daemon no CAP_KILL, and a VMM runs as its own user. */
bool
ifb_pidfd_is_alive (int pidfd)
{
  struct pollfd p = { .fd = pidfd, .events = POLLIN };
  int r;

  do
    r = poll (&p, 1, 0);
  while (r < 0 && errno == EINTR);
  return r == 0;
}

int
ifb_proc_stat (pid_t pid, char *ret_state, guint64 *ret_start_time)
{
  g_autofree char *file = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *text = NULL;
  g_auto (GStrv) f = NULL;
  const char *p;

  if (!g_file_get_contents (file, &text, NULL, NULL))
    return -ESRCH;
  /* comm may hold spaces and parentheses: the fields start after the last ')' */
  if (!(p = strrchr (text, ')')) || p[1] != ' ')
    return -EINVAL;
  f = g_strsplit (p + 2, " ", 21);
  if (g_strv_length (f) < 20)
    return -EINVAL;
  if (ret_state)
    *ret_state = f[0][0];
  if (ret_start_time)
    *ret_start_time = g_ascii_strtoull (f[19], NULL, 10);   /* field 22, starttime */
  return 0;
}

int
ifb_proc_euid (pid_t pid, uid_t *ret_uid)
{
  g_autofree char *file = g_strdup_printf ("/proc/%d/status", (int) pid);
  g_autofree char *text = NULL;
  const char *p;
  unsigned long real, eff;

  if (!g_file_get_contents (file, &text, NULL, NULL))
    return -ESRCH;
  if (!(p = strstr (text, "\nUid:")) || sscanf (p + 5, "%lu %lu", &real, &eff) != 2)
    return -EINVAL;
  *ret_uid = (uid_t) eff;
  return 0;
}

gboolean
ifb_cgroup_of_pidfd (int pidfd, pid_t pid, char **ret_path, GError **error)
{
  g_autofree char *file = g_strdup_printf ("/proc/%d/cgroup", (int) pid);
  ifb_autofd int fd = open (file, O_RDONLY | O_CLOEXEC);
  char path[PATH_MAX];
  char state = 0;
  int r;

  if (fd < 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID, "Process %d has gone", (int) pid), FALSE;
  r = ifb_proc_cgroup_read (fd, path, sizeof (path));
  /* A zombie still answers signal 0 and keeps its cgroup, but it runs nothing any more: a guest
   * defined by it would be defined by a cgroup no process of it lives in. */
  if (ifb_proc_stat (pid, &state, NULL) < 0 || state == 'Z' || state == 'X')
    return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID, "Process %d has exited", (int) pid), FALSE;
  /* The pidfd pins the pid number: while it still refers to a live process, /proc/PID was it. */
  if (!ifb_pidfd_is_alive (pidfd))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID, "Process %d has gone", (int) pid), FALSE;
  if (r == -ENOENT)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID,
                        "Process %d is in no cgroup2 cgroup", (int) pid), FALSE;
  if (r < 0)
    return ifb_error_set_errno (error, IFB_ERROR_CGROUP_INVALID, r, "Reading %s", file);
  *ret_path = g_strdup (path);
  return TRUE;
}

gboolean
ifb_cgroup_of_pid (pid_t pid, char **ret_path, GError **error)
{
  ifb_autofd int pidfd = -1;

  if (pid <= 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "Invalid pid %d", (int) pid), FALSE;
  pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
  if (pidfd < 0)
    return ifb_error_set_errno (error, IFB_ERROR_CGROUP_INVALID, -errno, "Process %d", (int) pid), FALSE;
  return ifb_cgroup_of_pidfd (pidfd, pid, ret_path, error);
}


bool
ifb_cgroup_is_within (const char *path, const char *base)
{
  size_t n;
  if (!path || !base)
    return false;
  if (strcmp (base, "/") == 0)
    return path[0] == '/';
  n = strlen (base);
  return strncmp (path, base, n) == 0 && (path[n] == 0 || path[n] == '/');
}

gboolean
ifb_cgroup_guest_check (const char *guest, const char *daemon_cgroup, const char *caller_cgroup,
                        gboolean caller_may_share, GError **error)
{
  if (strcmp (guest, "/") == 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID,
                        "Cgroup '/' holds every process of the host: anyone would pass a guest's "
                        "cgroup check there"), FALSE;
  if (daemon_cgroup && ifb_cgroup_is_within (daemon_cgroup, guest))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID,
                        "Cgroup '%s' contains the broker itself (%s): it cannot be a guest's", guest,
                        daemon_cgroup), FALSE;
  if (caller_may_share)
    return TRUE;
  if (!caller_cgroup)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID,
                        "Cannot tell whether cgroup '%s' contains the caller (its cgroup is unknown); "
                        "root may say it does on purpose with options.allow_caller_cgroup", guest), FALSE;
  if (ifb_cgroup_is_within (caller_cgroup, guest))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID,
                        "Cgroup '%s' contains the caller (%s): every process there would receive the "
                        "guest's fds; root may ask for it on purpose with options.allow_caller_cgroup",
                        guest, caller_cgroup), FALSE;
  return TRUE;
}
