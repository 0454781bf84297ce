/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * A peer is identified once, at accept: SO_PEERCRED (pid, uid, gid of the process that called
 * connect()), SO_PEERGROUPS, and a pidfd. Roles come from the uid and groups alone: the primary
 * group and, of the supplementary ones (all of them are read, however many), the admin and the
 * read group when the peer is in them. Authorizing
 * by cgroup (vm.fds for a guest's VMM) also needs the process itself, and a pid number alone is
 * not one: the connecting process may have exited before we accepted, and its pid been reused.
 *
 *  - SO_PEERPIDFD (Linux 6.5) gives a pidfd the kernel took at connect() time: it is the
 *    connecting process or nothing. Only such a peer is authorized by cgroup outright.
 *  - Otherwise (Debian 12's 6.1, or SO_PEERPIDFD refused because the peer has exited) we open a
 *    pidfd on the SO_PEERCRED pid. That process may be another one that reused the pid, so its
 *    effective uid must equal SO_PEERCRED's and, when the cgroup is read, it must still be alive
 *    with the same start time as when we opened it. A pid reused by a process of the same uid
 *    remains possible; the refusal message names the fallback so an operator can tell.
 */
#define G_LOG_DOMAIN "ifb-peer"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cgroup.h"
#include "errors.h"
#include "peer.h"
#include "util.h"

/* Linux 6.5; Debian 12's headers (6.1) lack it. The value is the same on every architecture
 * but alpha, mips, parisc and sparc, none of which this daemon targets (libvirt does the same). */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* SO_PEERGROUPS: every supplementary group of the peer, of which p keeps those the access rules
 * name. The kernel answers ERANGE with the length it needs when the buffer is short; the groups
 * were fixed at connect(), so the second call fits. The peer chooses how many it has (a user
 * with subordinate gids can give itself 65536 in a user namespace), so the full list is held
 * only here, at most the kernel's NGROUPS_MAX (256 KiB): a longer answer is refused. */
static gboolean
peer_groups (int sockfd, const IfbConfig *c, IfbPeer *p, GError **error)
{
  gid_t first[64];
  g_autofree gid_t *grown = NULL;
  gid_t *groups = first;
  socklen_t len = sizeof (first);
  size_t n;

  if (getsockopt (sockfd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
    if (errno != ERANGE)
      return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "SO_PEERGROUPS");
    if (len > NGROUPS_MAX * sizeof (gid_t) || len <= sizeof (first))
      return g_set_error (error, IFB_ERROR, IFB_ERROR_FAILED,
                          "SO_PEERGROUPS: the kernel asks for %u bytes of groups", (unsigned) len), FALSE;
    groups = grown = g_malloc (len);
    if (getsockopt (sockfd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
      return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "SO_PEERGROUPS");
  }
  n = len / sizeof (gid_t);
  for (size_t i = 0; i < n; i++)
    if ((groups[i] == c->admin_gid || groups[i] == c->read_gid) && groups[i] != (gid_t) -1) {
      if (!p->groups)
        p->groups = g_new (gid_t, 2);
      if (p->n_groups == 0 || p->groups[0] != groups[i])
        p->groups[p->n_groups++] = groups[i];
      if (p->n_groups == 2)
        break;
    }
  return TRUE;
}

gboolean
ifb_peer_from_socket (int sockfd, const IfbConfig *c, IfbPeer **ret_peer, GError **error)
{
  g_autoptr (IfbPeer) p = g_new0 (IfbPeer, 1);
  struct ucred cred;
  socklen_t len = sizeof (cred);
  int pidfd = -1;
  socklen_t plen = sizeof (pidfd);

  p->pidfd = -1;
  if (getsockopt (sockfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "SO_PEERCRED");
  p->pid = cred.pid;
  p->uid = cred.uid;
  p->gid = cred.gid;
  if (!peer_groups (sockfd, c, p, error))
    return FALSE;
  if (getsockopt (sockfd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &plen) == 0 && pidfd >= 0) {
    p->pidfd = pidfd;
    p->pidfd_exact = true;
  } else if (p->pid > 0) {
    uid_t uid;
    p->pidfd = (int) syscall (SYS_pidfd_open, p->pid, 0);   /* always close-on-exec */
    if (p->pidfd >= 0 &&
        (ifb_proc_stat (p->pid, NULL, &p->start_time) < 0 || ifb_proc_euid (p->pid, &uid) < 0 || uid != p->uid)) {
      g_debug ("pid %d of a uid %u peer is now another process: no pidfd", (int) p->pid, (unsigned) p->uid);
      p->pidfd = ifb_close (p->pidfd);
    }
  }
  *ret_peer = g_steal_pointer (&p);
  return TRUE;
}

IfbPeer *
ifb_peer_free (IfbPeer *p)
{
  if (!p)
    return NULL;
  ifb_close (p->pidfd);
  g_free (p->groups);
  g_free (p);
  return NULL;
}

static bool
in_group (const IfbPeer *p, gid_t gid)
{
  if (gid == (gid_t) -1)
    return false;
  if (p->gid == gid)
    return true;
  for (int i = 0; i < p->n_groups; i++)
    if (p->groups[i] == gid)
      return true;
  return false;
}

bool
ifb_peer_is_admin (const IfbPeer *p, const IfbConfig *c)
{
  return p->uid == 0 || in_group (p, c->admin_gid);
}

bool
ifb_peer_can_read (const IfbPeer *p, const IfbConfig *c)
{
  return ifb_peer_is_admin (p, c) || in_group (p, c->read_gid);
}

gboolean
ifb_peer_check (const IfbPeer *p, const IfbConfig *c, IfbAccess access, const char *method, GError **error)
{
  if (p->vmm_socket && access != IFB_ACCESS_VM_FDS)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_PERMISSION_DENIED,
                        "Permission denied: the VMM socket serves vm.fds only, not %s (peer uid %u, pid %d)", method,
                        (unsigned) p->uid, (int) p->pid), FALSE;
  switch (access) {
  case IFB_ACCESS_ANY:
  case IFB_ACCESS_VM_FDS:
    return TRUE;
  case IFB_ACCESS_READ:
    if (ifb_peer_can_read (p, c))
      return TRUE;
    return g_set_error (error, IFB_ERROR, IFB_ERROR_PERMISSION_DENIED,
                        "Permission denied: %s needs root, the admin group%s%s%s or the read group%s%s%s (peer uid %u, pid %d)",
                        method,
                        c->admin_group ? " '" : "", c->admin_group ? c->admin_group : "", c->admin_group ? "'" : "",
                        c->read_group ? " '" : "", c->read_group ? c->read_group : "", c->read_group ? "'" : "",
                        (unsigned) p->uid, (int) p->pid), FALSE;
  case IFB_ACCESS_ADMIN:
    if (ifb_peer_is_admin (p, c))
      return TRUE;
    return g_set_error (error, IFB_ERROR, IFB_ERROR_PERMISSION_DENIED,
                        "Permission denied: %s changes state and needs root or the admin group%s%s%s (peer uid %u, pid %d)",
                        method,
                        c->admin_group ? " '" : "", c->admin_group ? c->admin_group : "", c->admin_group ? "'" : "",
                        (unsigned) p->uid, (int) p->pid), FALSE;
  }
  g_assert_not_reached ();
}

gboolean
ifb_peer_get_cgroup (const IfbPeer *p, char **ret_path, GError **error)
{
  g_autofree char *path = NULL;
  guint64 start = 0;
  uid_t uid;

  if (p->pidfd < 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_PERMISSION_DENIED,
                        "Cannot identify the peer's process (pid %d): the kernel gave no pidfd for it "
                        "(SO_PEERPIDFD) and pid %d is gone or now another user's", (int) p->pid, (int) p->pid), FALSE;
  if (!ifb_cgroup_of_pidfd (p->pidfd, p->pid, &path, error))
    return FALSE;
  /* Without SO_PEERPIDFD: the process we read is still the one we checked at accept (alive,
   * thanks to the pidfd; same start time and uid). */
  if (!p->pidfd_exact &&
      (ifb_proc_stat (p->pid, NULL, &start) < 0 || start != p->start_time ||
       ifb_proc_euid (p->pid, &uid) < 0 || uid != p->uid ||
       !ifb_pidfd_is_alive (p->pidfd)))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_PERMISSION_DENIED,
                        "Cannot identify the peer's process (pid %d): it changed while its cgroup was read "
                        "(no SO_PEERPIDFD)", (int) p->pid), FALSE;
  *ret_path = g_steal_pointer (&path);
  return TRUE;
}

gboolean
ifb_peer_raise_memlock (const IfbPeer *p, guint64 bytes, GError **error)
{
  struct rlimit old, want;

  /* prlimit() takes a pid: the pidfd shows it is still the peer's before and after. A pid that
   * died and was reused in between would need the whole pid space to wrap in microseconds. */
  if (p->pidfd < 0 || !ifb_pidfd_is_alive (p->pidfd))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_PERMISSION_DENIED,
                        "Cannot raise RLIMIT_MEMLOCK of pid %d: the process is gone or unidentified", (int) p->pid), FALSE;
  if (prlimit (p->pid, RLIMIT_MEMLOCK, NULL, &old) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Reading RLIMIT_MEMLOCK of pid %d", (int) p->pid);
  want.rlim_cur = old.rlim_cur == RLIM_INFINITY || old.rlim_cur >= bytes ? old.rlim_cur : bytes;
  want.rlim_max = old.rlim_max == RLIM_INFINITY || old.rlim_max >= want.rlim_cur ? old.rlim_max : want.rlim_cur;
  if ((want.rlim_cur != old.rlim_cur || want.rlim_max != old.rlim_max) && prlimit (p->pid, RLIMIT_MEMLOCK, &want, NULL) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno,
                                "Raising RLIMIT_MEMLOCK of the VMM (pid %d) to %" G_GUINT64_FORMAT " MiB%s",
                                (int) p->pid, bytes >> 20,
                                errno == EPERM ? " (the broker needs CAP_SYS_RESOURCE for that)" : "");
  if (!ifb_pidfd_is_alive (p->pidfd))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_PERMISSION_DENIED,
                        "Cannot raise RLIMIT_MEMLOCK of pid %d: the process exited meanwhile", (int) p->pid), FALSE;
  return TRUE;
}

gboolean
ifb_peer_check_guest_cgroup (const IfbPeer *p, const char *guest, const char *daemon_cgroup,
                             gboolean allow_caller_cgroup, GError **error)
{
  g_autofree char *mine = NULL;

  if (allow_caller_cgroup && p && p->uid != 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_PERMISSION_DENIED,
                        "Permission denied: only root may create a guest in a cgroup that contains it "
                        "(options.allow_caller_cgroup; peer uid %u)", (unsigned) p->uid), FALSE;
  if (p && !allow_caller_cgroup)
    ifb_peer_get_cgroup (p, &mine, NULL);
  return ifb_cgroup_guest_check (guest, daemon_cgroup, mine, !p || allow_caller_cgroup, error);
}
