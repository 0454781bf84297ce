/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbPeer: who is on the other end of a connection (SO_PEERCRED, SO_PEERGROUPS and a pidfd from
 * SO_PEERPIDFD or pidfd_open), and the access rules applied on every call.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <glib.h>

#include "config.h"

typedef enum {
  IFB_ACCESS_ANY,               /* rpc.discover */
  IFB_ACCESS_READ,              /* root, admin group, read group */
  IFB_ACCESS_ADMIN,             /* root, admin group */
  IFB_ACCESS_VM_FDS,            /* admin, or a peer inside that guest's cgroup (checked by the method) */
} IfbAccess;

typedef struct {
  pid_t pid;
  uid_t uid;
  gid_t gid;
  gid_t *groups;                /* its supplementary groups that are the admin or the read group */
  int n_groups;                 /* 0..2 */
  int pidfd;                    /* -1 if neither SO_PEERPIDFD nor a checked pidfd_open worked */
  bool pidfd_exact;             /* from SO_PEERPIDFD: the connecting process itself */
  guint64 start_time;           /* without SO_PEERPIDFD: the start time of the process pidfd is */
  bool vmm_socket;              /* connected to the VMM socket: may call vm.fds only */
} IfbPeer;

/* Identify the peer of a connected AF_UNIX socket, keeping of its groups those c's access rules
 * name. FALSE when the kernel does not say who it is. */
gboolean ifb_peer_from_socket (int sockfd, const IfbConfig *c, IfbPeer **ret_peer, GError **error);
IfbPeer *ifb_peer_free (IfbPeer *p);

bool ifb_peer_is_admin (const IfbPeer *p, const IfbConfig *c);
bool ifb_peer_can_read (const IfbPeer *p, const IfbConfig *c);
/* Check access; the error names the peer and what it lacks. */
gboolean ifb_peer_check (const IfbPeer *p, const IfbConfig *c, IfbAccess access, const char *method, GError **error);
/* The peer process's current cgroup2 path, read through its pidfd; without SO_PEERPIDFD, only
 * while that process is still the one checked at accept (see peer.c). */
gboolean ifb_peer_get_cgroup (const IfbPeer *p, char **ret_path, GError **error);
/* ifb_cgroup_guest_check() for a guest peer p creates (p NULL: no caller to protect);
 * allow_caller_cgroup is root's explicit "yes, a cgroup I am in". */
gboolean ifb_peer_check_guest_cgroup (const IfbPeer *p, const char *guest, const char *daemon_cgroup,
                                      gboolean allow_caller_cgroup, GError **error);

/* Raise the peer process's RLIMIT_MEMLOCK, soft and hard, to at least bytes (never lower it);
 * refused if the process is gone or is no longer the one identified at accept. */
gboolean ifb_peer_raise_memlock (const IfbPeer *p, guint64 bytes, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbPeer, ifb_peer_free)
