/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbCgroupRoot: the cgroup2 hierarchy as the broker sees it. Paths are always relative to the
 * cgroup2 mount ("/machine/qemu-1-vm.libvirt-qemu"), found in /proc/mounts — never assumed to be
 * /sys/fs/cgroup (hybrid hosts mount it at /sys/fs/cgroup/unified).
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <glib.h>

typedef struct IfbCgroupRoot IfbCgroupRoot;

/* Find and open the cgroup2 mount. */
IfbCgroupRoot *ifb_cgroup_root_open (GError **error);
IfbCgroupRoot *ifb_cgroup_root_free (IfbCgroupRoot *r);
const char *ifb_cgroup_root_mount (const IfbCgroupRoot *r);
/* Whether the memory controller is enabled on cgroup2 (else it sits on v1, or nowhere). */
bool ifb_cgroup_root_has_memory (const IfbCgroupRoot *r);

/*
 * Check a guest cgroup path's syntax: absolute, normalised (no empty, "." or ".." component),
 * printable, at most 4096 bytes. Does not touch the filesystem.
 */
gboolean ifb_cgroup_path_validate (const char *path, GError **error);

/*
 * Open the cgroup directory at path (validated as above) component by component with
 * O_NOFOLLOW beneath the mount, and check it is a cgroup2 directory. *ret_dirfd is a directory
 * opened O_RDONLY (not O_PATH), so openat() of "cgroup.procs" and the like works through it.
 * A component that cannot be opened is named in the error.
 */
gboolean ifb_cgroup_open (const IfbCgroupRoot *r, const char *path, int *ret_dirfd, GError **error);

/*
 * Where a worker for the guest cgroup guest_dirfd goes. cgroup2 keeps processes out of a cgroup
 * that delegates controllers to children (the "no internal processes" rule: writing a pid into
 * its cgroup.procs answers EBUSY), as a libvirt machine cgroup on a pure cgroup2 host does.
 * Then the worker goes into a leaf IFB_CGROUP_WORKER_LEAF below it — still inside the guest, so
 * charges land there — which the caller removes with ifb_cgroup_worker_leaf_remove() once the
 * worker is gone, so the guest's manager can remove its cgroup. *ret_leaf says whether a leaf is
 * in use.
 */
#define IFB_CGROUP_WORKER_LEAF "iommufd-broker-worker"
gboolean ifb_cgroup_open_worker_target (int guest_dirfd, int *ret_dirfd, gboolean *ret_leaf, GError **error);
void ifb_cgroup_worker_leaf_remove (int guest_dirfd);

/* The cgroup2 path of a process, read through its pidfd so a recycled pid cannot fool us (the
 * calling process's own: ifb_proc_cgroup_self() in proc-cgroup.h). */
gboolean ifb_cgroup_of_pidfd (int pidfd, pid_t pid, char **ret_path, GError **error);
/* pidfd_open() + the above. */
gboolean ifb_cgroup_of_pid (pid_t pid, char **ret_path, GError **error);

/* TRUE while the process of pidfd has not exited (no signal is sent: no privilege needed). */
bool ifb_pidfd_is_alive (int pidfd);

/* /proc/PID/stat: the state letter ('Z' for a zombie) and the start time (clock ticks after
 * boot). -ESRCH when the process is gone. */
int ifb_proc_stat (pid_t pid, char *ret_state, guint64 *ret_start_time);
/* /proc/PID/status: the effective uid. */
int ifb_proc_euid (pid_t pid, uid_t *ret_uid);

/*
 * Whether guest may be a guest's cgroup: never '/' (every process would pass vm.fds' cgroup
 * check) nor the broker's own cgroup or an ancestor of it, and not a cgroup that contains the
 * caller (caller_cgroup; NULL: unknown) unless caller_may_share (root asked for it explicitly).
 */
gboolean ifb_cgroup_guest_check (const char *guest, const char *daemon_cgroup, const char *caller_cgroup,
                                 gboolean caller_may_share, GError **error);

/* Whether path is base or below it. */
bool ifb_cgroup_is_within (const char *path, const char *base);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbCgroupRoot, ifb_cgroup_root_free)
