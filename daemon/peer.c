/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define G_LOG_DOMAIN "ifb-peer"

#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cgroup.h"
#include "errors.h"
#include "peer.h"
#include "util.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

gboolean
ifb_peer_from_socket (int sockfd, IfbPeer **ret_peer, GError **error)
{
  g_autoptr (IfbPeer) p = g_new0 (IfbPeer, 1);
  struct ucred cred;
  socklen_t len = sizeof (cred);
  gid_t groups[256];
  socklen_t glen = sizeof (groups);
  int pidfd = -1;
  socklen_t plen = sizeof (pidfd);

  p->pidfd = -1;
  if (getsockopt (sockfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "SO_PEERCRED");
  p->pid = cred.pid;
  p->uid = cred.uid;
  p->gid = cred.gid;
  if (getsockopt (sockfd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0) {
    p->n_groups = (int) (glen / sizeof (gid_t));
    p->groups = g_memdup2 (groups, glen);
  }
  if (getsockopt (sockfd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &plen) == 0 && pidfd >= 0)
    p->pidfd = pidfd;
  else if (p->pid > 0)
    p->pidfd = (int) syscall (SYS_pidfd_open, p->pid, 0);
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
  if (p->pidfd < 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_PERMISSION_DENIED,
                        "Cannot identify the peer's process (pid %d)", (int) p->pid), FALSE;
  return ifb_cgroup_of_pidfd (p->pidfd, p->pid, ret_path, error);
}
