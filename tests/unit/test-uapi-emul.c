/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The emulated IOMMUFD: the scenario list, cross-process state, cgroup audit, robustness. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "emul-root.h"
#include "scenarios.h"
#include "uapi.h"
#include "util.h"

typedef struct {
  char *tmpdir;
  int rootfd;
  int devfd;                    /* the emulated root's dev/ */
  const IfbUapiBackend *b;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  const char *tmpl = g_getenv ("IFB_TEST_EMUL_TEMPLATE");
  g_autoptr (GError) error = NULL;
  ifb_autofd int tfd = -1;

  g_assert_nonnull (tmpl);
  f->tmpdir = g_dir_make_tmp ("ifb-test-uapi-XXXXXX", &error);
  g_assert_no_error (error);
  tfd = open (f->tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  g_assert_cmpint (ifb_emul_root_prepare (tmpl, tfd, "root", &f->rootfd), ==, 0);
  f->devfd = openat (f->rootfd, "dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  g_assert_cmpint (f->devfd, >=, 0);
  f->b = ifb_uapi_backend_emulated ();
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", f->tmpdir);

  close (f->devfd);
  close (f->rootfd);
  g_assert_cmpint (system (cmd), ==, 0);
  g_free (f->tmpdir);
}

static void
test_scenarios (Fixture *f, gconstpointer data)
{
  /* Invariant: every scenario of the shared list passes on the emulated backend, on every
   * fixture device (VT-d with and without nesting, SMMUv3). */
  static const char *const cdevs[] = { "vfio0", "vfio1", "vfio2", "vfio3" };
  IfbScenarioEnv env = { .backend = f->b, .dev_dirfd = f->devfd, .cdevs = cdevs, .n_cdevs = G_N_ELEMENTS (cdevs) };
  g_autofree char *out = NULL;
  size_t outlen = 0;
  FILE *fp = open_memstream (&out, &outlen);
  unsigned failed;

  failed = ifb_scenarios_run (&env, fp);
  fclose (fp);
  g_test_message ("%s", out);
  g_assert_cmpuint (failed, ==, 0);
  g_assert_nonnull (strstr (out, "scenario alloc_hwpt_nested@intel-vtd+nest: ok\n"));
  g_assert_nonnull (strstr (out, "scenario alloc_hwpt_nested@intel-vtd: ok\n"));
  g_assert_nonnull (strstr (out, "scenario alloc_hwpt_nested@arm-smmuv3+nest: ok\n"));
  g_assert_nonnull (strstr (out, "scenario cmd_length.hwpt_alloc: ok\n"));
  g_assert_nonnull (strstr (out, "scenario cmd_length.veventq_alloc: ok\n"));
  g_assert_nonnull (strstr (out, "scenario viommu@arm-smmuv3+nest: ok\n"));
  g_assert_nonnull (strstr (out, "scenario vdevice_alloc@arm-smmuv3+nest: ok\n"));
  g_assert_nonnull (strstr (out, "scenario veventq_alloc@arm-smmuv3+nest: ok\n"));
  g_assert_nonnull (strstr (out, "scenario viommu@intel-vtd+nest: ok\n"));
}

static void
test_backend_for_fd (Fixture *f, gconstpointer data)
{
  /* Invariant: a process that only received fds can tell emulated context and device fds from
   * kernel ones. */
  ifb_autofd int ctx = -1;
  ifb_autofd int dev = -1;
  ifb_autofd int null = open ("/dev/null", O_RDWR | O_CLOEXEC);

  g_assert_cmpint (ifb_uapi_open_iommufd (f->b, f->devfd, &ctx), ==, 0);
  g_assert_cmpint (ifb_uapi_open_device (f->b, f->devfd, "vfio0", &dev), ==, 0);
  g_assert_true (ifb_uapi_backend_for_fd (ctx) == f->b);
  g_assert_true (ifb_uapi_backend_for_fd (dev) == f->b);
  g_assert_true (ifb_uapi_backend_for_fd (null) == ifb_uapi_backend_kernel ());
  g_assert_cmpint (ifb_uapi_open_device (f->b, f->devfd, "../iommu", &dev), ==, -EINVAL);
  g_assert_cmpint (ifb_uapi_ioctl (f->b, null, 0x3b81, NULL), ==, -ENOTTY);
}

static void
test_device_rdev (Fixture *f, gconstpointer data)
{
  /* Invariant: an opened device cdev tells its device number, as st_rdev does on a real cdev
   * (the emulated cdev's profile carries it); anything else is no device cdev. */
  ifb_autofd int ctx = -1;
  ifb_autofd int dev = -1;
  ifb_autofd int null = open ("/dev/null", O_RDWR | O_CLOEXEC);
  uint64_t rdev = 0;
  struct stat st;

  g_assert_cmpint (ifb_uapi_open_iommufd (f->b, f->devfd, &ctx), ==, 0);
  g_assert_cmpint (ifb_uapi_open_device (f->b, f->devfd, "vfio3", &dev), ==, 0);
  g_assert_cmpint (ifb_uapi_device_rdev (f->b, dev, &rdev), ==, 0);
  g_assert_cmpuint (rdev, ==, makedev (511, 3));
  g_assert_cmpint (ifb_uapi_device_rdev (f->b, ctx, &rdev), ==, -ENODEV);
  g_assert_cmpint (ifb_uapi_device_rdev (ifb_uapi_backend_kernel (), ctx, &rdev), ==, -ENODEV);
  g_assert_cmpint (ifb_uapi_device_rdev (ifb_uapi_backend_kernel (), null, &rdev), ==, 0);
  g_assert_cmpint (fstat (null, &st), ==, 0);
  g_assert_cmpuint (rdev, ==, st.st_rdev);
}

static void
test_object_limit (Fixture *f, gconstpointer data)
{
  /* Invariant: a context holds at most a fixed number of objects; beyond, ENOMEM like a
   * failed allocation, and freeing one makes room again. */
  ifb_autofd int ctx = -1;
  uint32_t id = 0, last = 0;
  unsigned n = 0;
  int r;

  g_assert_cmpint (ifb_uapi_open_iommufd (f->b, f->devfd, &ctx), ==, 0);
  while ((r = ifb_uapi_ioas_alloc (f->b, ctx, &id)) == 0) {
    last = id;
    n++;
  }
  g_assert_cmpint (r, ==, -ENOMEM);
  g_assert_cmpuint (n, ==, 1024);
  g_assert_cmpint (ifb_uapi_destroy (f->b, ctx, 7), ==, 0);
  g_assert_cmpint (ifb_uapi_ioas_alloc (f->b, ctx, &id), ==, 0);
  g_assert_cmpuint (id, ==, 7);     /* lowest free id, as the kernel's xarray */
  g_assert_cmpuint (last, ==, 1024);
}

/* The cgroup2 mount point, from /proc/mounts; NULL when there is none. */
static char *
find_cgroup2_mount (void)
{
  g_autofree char *mounts = NULL;
  g_auto (GStrv) lines = NULL;

  if (!g_file_get_contents ("/proc/mounts", &mounts, NULL, NULL))
    return NULL;
  lines = g_strsplit (mounts, "\n", -1);
  for (char **l = lines; *l; l++) {
    g_auto (GStrv) f = g_strsplit (*l, " ", 4);
    if (g_strv_length (f) >= 3 && g_str_equal (f[2], "cgroup2"))
      return g_strdup (f[1]);
  }
  return NULL;
}

static char *
own_cgroup2_path (void)
{
  g_autofree char *s = NULL;
  g_auto (GStrv) lines = NULL;

  if (!g_file_get_contents ("/proc/self/cgroup", &s, NULL, NULL))
    return NULL;
  lines = g_strsplit (s, "\n", -1);
  for (char **l = lines; *l; l++)
    if (g_str_has_prefix (*l, "0::"))
      return g_strdup (*l + 3);
  return NULL;
}

static const IfbUapiObject *
find_object (const IfbUapiObject *objs, size_t n, IfbUapiObjType type)
{
  for (size_t i = 0; i < n; i++)
    if (objs[i].type == type)
      return &objs[i];
  return NULL;
}

static void
test_worker_cgroup (Fixture *f, gconstpointer data)
{
  /* Invariant: a worker moved into another cgroup2 directory changes the same context through
   * an inherited fd, and every object it allocates records that cgroup and its pid. */
  g_autofree char *mnt = find_cgroup2_mount ();
  g_autofree char *own = own_cgroup2_path ();
  g_autofree char *rel = NULL, *dir = NULL, *procs = NULL;
  IfbUapiObject objs[16];
  ifb_autofd int ctx = -1;
  ifb_autofd int dev = -1;
  uint32_t dev_id;
  size_t n = 0;
  int status;
  pid_t pid;

  if (!mnt || !own) {
    g_test_skip ("no cgroup2 mount");
    return;
  }
  rel = g_strdup_printf ("%s%sifb-test-uapi-%d", own, g_str_has_suffix (own, "/") ? "" : "/", (int) getpid ());
  dir = g_build_filename (mnt, rel, NULL);
  if (g_mkdir (dir, 0755) < 0) {
    g_test_skip_printf ("cannot create cgroup %s: %s", dir, g_strerror (errno));
    return;
  }
  procs = g_build_filename (dir, "cgroup.procs", NULL);

  g_assert_cmpint (ifb_uapi_open_iommufd (f->b, f->devfd, &ctx), ==, 0);
  g_assert_cmpint (ifb_uapi_open_device (f->b, f->devfd, "vfio0", &dev), ==, 0);
  g_assert_cmpint (ifb_uapi_device_bind (f->b, dev, ctx, &dev_id), ==, 0);

  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0) {
    uint32_t ioas, hwpt;
    int pfd = open (procs, O_WRONLY | O_CLOEXEC);
    if (pfd < 0 || write (pfd, "0\n", 2) != 2)
      _exit (10);
    close (pfd);
    if (ifb_uapi_ioas_alloc (f->b, ctx, &ioas) < 0)
      _exit (11);
    if (ifb_uapi_hwpt_alloc (f->b, ctx, dev_id, ioas, IFB_HWPT_NEST_PARENT, &hwpt) < 0)
      _exit (12);
    _exit (0);
  }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);

  g_assert_cmpint (ifb_uapi_emul_list_objects (ctx, objs, G_N_ELEMENTS (objs), &n), ==, 0);
  g_assert_cmpuint (n, ==, 3);
  for (IfbUapiObjType t = IFB_UAPI_OBJ_IOAS; t <= IFB_UAPI_OBJ_HWPT_PAGING; t++) {
    const IfbUapiObject *o = find_object (objs, n, t);
    g_assert_nonnull (o);
    if (t == IFB_UAPI_OBJ_DEVICE) {
      g_assert_cmpint (o->creator_pid, ==, getpid ());
      g_assert_cmpstr (o->cgroup, ==, own);
    } else {
      g_assert_cmpint (o->creator_pid, ==, pid);
      g_assert_cmpstr (o->cgroup, ==, rel);
    }
  }
  g_assert_cmpuint (find_object (objs, n, IFB_UAPI_OBJ_HWPT_PAGING)->flags, ==, 1);
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

static void
send_fds (int sock, const int *fds, int n)
{
  char byte = 'x', cbuf[CMSG_SPACE (sizeof (int) * 4)];
  struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = CMSG_SPACE (sizeof (int) * (size_t) n) };
  struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);

  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN (sizeof (int) * (size_t) n);
  memcpy (CMSG_DATA (cm), fds, sizeof (int) * (size_t) n);
  if (sendmsg (sock, &msg, 0) != 1)
    _exit (20);
}

static void
recv_fds (int sock, int *fds, int n)
{
  char byte, cbuf[CMSG_SPACE (sizeof (int) * 4)];
  struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  struct cmsghdr *cm;

  g_assert_cmpint (recvmsg (sock, &msg, MSG_CMSG_CLOEXEC), ==, 1);
  g_assert_false (msg.msg_flags & MSG_CTRUNC);
  cm = CMSG_FIRSTHDR (&msg);
  g_assert_nonnull (cm);
  g_assert_cmpuint (cm->cmsg_len, ==, CMSG_LEN (sizeof (int) * (size_t) n));
  memcpy (fds, CMSG_DATA (cm), sizeof (int) * (size_t) n);
}

static void
test_survives_owner (Fixture *f, gconstpointer data)
{
  /* Invariant: a context outlives the process that created it when its fd is kept elsewhere
   * (systemd's fd store): a child builds state, hands the fds over SCM_RIGHTS and is killed;
   * the parent carries on with the same objects and the device stays bound. */
  IfbUapiObject objs[16];
  int sv[2], fds[2], status;
  uint32_t id;
  size_t n;
  pid_t pid;

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0) {
    uint32_t ioas, dev_id, hwpt;
    int ctx, dev;
    if (ifb_uapi_open_iommufd (f->b, f->devfd, &ctx) < 0 || ifb_uapi_open_device (f->b, f->devfd, "vfio1", &dev) < 0 ||
        ifb_uapi_ioas_alloc (f->b, ctx, &ioas) < 0 || ifb_uapi_device_bind (f->b, dev, ctx, &dev_id) < 0 ||
        ifb_uapi_hwpt_alloc (f->b, ctx, dev_id, ioas, IFB_HWPT_NEST_PARENT, &hwpt) < 0 ||
        ifb_uapi_device_attach (f->b, dev, hwpt) < 0)
      _exit (1);
    send_fds (sv[1], (int[]) { ctx, dev }, 2);
    pause ();
    _exit (0);
  }
  close (sv[1]);
  recv_fds (sv[0], fds, 2);
  close (sv[0]);
  kill (pid, SIGKILL);
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_assert_true (WIFSIGNALED (status));

  g_assert_true (ifb_uapi_backend_for_fd (fds[0]) == f->b);
  g_assert_cmpint (ifb_uapi_emul_list_objects (fds[0], objs, G_N_ELEMENTS (objs), &n), ==, 0);
  g_assert_cmpuint (n, ==, 3);
  g_assert_cmpint (objs[2].type, ==, IFB_UAPI_OBJ_HWPT_PAGING);
  g_assert_cmpint (objs[2].creator_pid, ==, pid);
  /* The attached HWPT is busy; after detaching through the kept device fd it can go. */
  g_assert_cmpint (ifb_uapi_destroy (f->b, fds[0], objs[2].id), ==, -EBUSY);
  g_assert_cmpint (ifb_uapi_device_detach (f->b, fds[1]), ==, 0);
  g_assert_cmpint (ifb_uapi_destroy (f->b, fds[0], objs[2].id), ==, 0);
  g_assert_cmpint (ifb_uapi_ioas_alloc (f->b, fds[0], &id), ==, 0);
  /* Closing the kept device fd unbinds: the device object goes away. */
  close (fds[1]);
  g_assert_cmpint (ifb_uapi_emul_list_objects (fds[0], objs, G_N_ELEMENTS (objs), &n), ==, 0);
  g_assert_cmpuint (n, ==, 2);
  close (fds[0]);
}

static void
on_alarm (int sig)
{
  static const char msg[] = "context lock not recovered after owner death\n";
  (void) !write (2, msg, sizeof msg - 1);
  _exit (99);
}

/* The child pid says on pipefd when it holds ctx's lock; kill it there, then the context must
 * serve the next call (within 10 s) with its state intact. */
static void
kill_locker_and_relock (Fixture *f, int ctx, uint32_t ioas, pid_t pid, int pipefd[2])
{
  uint32_t id;
  int status;
  char c;

  g_assert_cmpint (read (pipefd[0], &c, 1), ==, 1);
  kill (pid, SIGKILL);
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  close (pipefd[0]);
  close (pipefd[1]);

  signal (SIGALRM, on_alarm);
  alarm (50);   /* only catches a hang (valgrind is slow), within meson's 60 s */
  g_assert_cmpint (ifb_uapi_ioas_alloc (f->b, ctx, &id), ==, 0);
  alarm (0);
  g_assert_cmpuint (id, ==, ioas + 1);
  g_assert_cmpint (ifb_uapi_destroy (f->b, ctx, ioas), ==, 0);
}

/* A forked child takes ctx's lock and is killed holding it; unseen: it first unregisters its
 * robust list, so the kernel does not mark the lock at its death. */
static void
forked_locker_dies (Fixture *f, gboolean unseen)
{
  ifb_autofd int ctx = -1;
  int pipefd[2];
  uint32_t ioas;
  pid_t pid;

  g_assert_cmpint (ifb_uapi_open_iommufd (f->b, f->devfd, &ctx), ==, 0);
  g_assert_cmpint (ifb_uapi_ioas_alloc (f->b, ctx, &ioas), ==, 0);
  g_assert_cmpint (pipe2 (pipefd, O_CLOEXEC), ==, 0);
  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0) {
    struct { void *next; long futex_offset; void *pending; } *none = NULL;
    if ((unseen && syscall (SYS_set_robust_list, none, sizeof (*none)) < 0) || ifb_emul_debug_lock (ctx) < 0)
      _exit (1);
    (void) !write (pipefd[1], "l", 1);
    pause ();
    _exit (0);
  }
  kill_locker_and_relock (f, ctx, ioas, pid, pipefd);
}

static void
test_robust_lock (Fixture *f, gconstpointer data)
{
  /* Invariant: a worker killed while holding a context's lock does not wedge it; the next
   * caller recovers the lock and the state. */
  forked_locker_dies (f, FALSE);
}

static void
test_robust_lock_unseen_death (Fixture *f, gconstpointer data)
{
  /* Invariant: a holder that died without the kernel marking the lock (its robust list did not
   * have it: a CLONE_VM worker's lock is queued on the daemon's list, and a list with an entry
   * in since-unmapped memory stops the kernel's walk) does not wedge the context either: after
   * waiting a second, the next caller finds the owner gone and takes over. */
  forked_locker_dies (f, TRUE);
}

/* A worker as daemon/workers/worker.c makes them: a process sharing our memory (CLONE_VM, so also our
 * thread pointer and glibc's idea of "the current thread"), on its own stack. */
typedef struct {
  int ctx;
  int pipe_w;
} VmChild;

static int
vm_child_main (void *data)
{
  VmChild *c = data;
  if (ifb_emul_debug_lock (c->ctx) < 0)
    _exit (1);
  (void) !write (c->pipe_w, "l", 1);
  for (;;)
    pause ();
  return 0;
}

static void
test_robust_lock_clone_vm (Fixture *f, gconstpointer data)
{
  /* Invariant: the same for a worker that shares our memory, as the daemon's do. glibc records a
   * robust mutex's owner as the calling thread's cached TID and queues it on that thread's
   * robust list, both of which such a worker shares with us. */
  ifb_autofd int ctx = -1;
  int pipefd[2];
  uint32_t ioas;
  static char stack[256 * 1024] __attribute__ ((aligned (16)));
  VmChild c;
  pid_t pid;

  g_assert_cmpint (ifb_uapi_open_iommufd (f->b, f->devfd, &ctx), ==, 0);
  g_assert_cmpint (ifb_uapi_ioas_alloc (f->b, ctx, &ioas), ==, 0);
  g_assert_cmpint (pipe2 (pipefd, O_CLOEXEC), ==, 0);
  c.ctx = ctx;
  c.pipe_w = pipefd[1];
  if (g_getenv ("LD_PRELOAD") && strstr (g_getenv ("LD_PRELOAD"), "vgpreload")) {
    /* valgrind runs no clone() but a thread's or a fork's, and exits on any other */
    close (pipefd[0]);
    close (pipefd[1]);
    g_test_skip ("valgrind cannot run a clone(CLONE_VM) child (the normal and ASan passes do)");
    return;
  }
  pid = clone (vm_child_main, stack + sizeof stack, CLONE_VM | SIGCHLD, &c);
  g_assert_cmpint (pid, >=, 0);
  kill_locker_and_relock (f, ctx, ioas, pid, pipefd);
}

/* An SMMUv3 profile like the fixture's vfio3, written as dev/vfio/devices/<name>. */
static void
write_smmu_profile (Fixture *f, const char *name, gboolean canwbs, guint32 idr3)
{
  g_autofree char *text = g_strdup_printf ("ifb-emulated-device 1\niommu=arm-smmuv3\nidr0=0x10001893\n"
                                           "idr1=0x0e7b0210\nidr3=0x%08x\nidr5=0x75\n%s",
                                           idr3, canwbs ? "canwbs=1\n" : "");
  g_autofree char *path = g_strdup_printf ("vfio/devices/%s", name);
  ifb_autofd int fd = openat (f->devfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (write (fd, text, strlen (text)), ==, (ssize_t) strlen (text));
}

/* A context with an IOAS, the device cdev bound, and a NEST_PARENT on the IOAS. */
static void
bind_parent (Fixture *f, int ctx, const char *cdev, uint32_t ioas, int *ret_devfd, uint32_t *ret_dev_id,
             uint32_t *ret_parent)
{
  g_assert_cmpint (ifb_uapi_open_device (f->b, f->devfd, cdev, ret_devfd), ==, 0);
  g_assert_cmpint (ifb_uapi_device_bind (f->b, *ret_devfd, ctx, ret_dev_id), ==, 0);
  if (ret_parent)
    g_assert_cmpint (ifb_uapi_hwpt_alloc (f->b, ctx, *ret_dev_id, ioas, IFB_HWPT_NEST_PARENT, ret_parent), ==, 0);
}

static void
test_viommu_types (Fixture *f, gconstpointer data)
{
  /* Invariant: a vIOMMU exists only where the kernel's drivers offer one: never on Intel VT-d;
   * on an Arm SMMUv3 that nests, of type ARM_SMMUV3 only, and only when the root complex is
   * coherent (canwbs=1, firmware's word) or the SMMU forces write-back at stage 2 (IDR3.FWB). */
  ifb_autofd int ctx = -1;
  ifb_autofd int vtd = -1;
  ifb_autofd int plain = -1;
  ifb_autofd int fwb = -1;
  ifb_autofd int coherent = -1;
  uint32_t ioas, vtd_id, vtd_parent, plain_id, plain_parent, fwb_id, fwb_parent, id, parent, viommu;

  write_smmu_profile (f, "vfio20", FALSE, 0x1214);
  write_smmu_profile (f, "vfio21", FALSE, 0x1214 | (1u << 8));
  g_assert_cmpint (ifb_uapi_open_iommufd (f->b, f->devfd, &ctx), ==, 0);
  g_assert_cmpint (ifb_uapi_ioas_alloc (f->b, ctx, &ioas), ==, 0);
  bind_parent (f, ctx, "vfio0", ioas, &vtd, &vtd_id, &vtd_parent);
  bind_parent (f, ctx, "vfio20", ioas, &plain, &plain_id, &plain_parent);
  bind_parent (f, ctx, "vfio21", ioas, &fwb, &fwb_id, &fwb_parent);
  bind_parent (f, ctx, "vfio3", ioas, &coherent, &id, &parent);

  g_assert_cmpint (ifb_uapi_viommu_alloc (f->b, ctx, vtd_id, vtd_parent, IFB_VIOMMU_TYPE_ARM_SMMUV3, &viommu), ==, -EOPNOTSUPP);
  g_assert_cmpint (ifb_uapi_viommu_alloc (f->b, ctx, plain_id, plain_parent, IFB_VIOMMU_TYPE_ARM_SMMUV3, &viommu), ==, -EOPNOTSUPP);
  g_assert_cmpint (ifb_uapi_viommu_alloc (f->b, ctx, id, parent, IFB_VIOMMU_TYPE_SELFTEST, &viommu), ==, -EOPNOTSUPP);
  g_assert_cmpint (ifb_uapi_viommu_alloc (f->b, ctx, id, parent, IFB_VIOMMU_TYPE_TEGRA241_CMDQV, &viommu), ==, -EOPNOTSUPP);
  g_assert_cmpint (ifb_uapi_viommu_alloc (f->b, ctx, fwb_id, fwb_parent, IFB_VIOMMU_TYPE_ARM_SMMUV3, &viommu), ==, 0);
  g_assert_cmpint (ifb_uapi_destroy (f->b, ctx, viommu), ==, 0);
  g_assert_cmpint (ifb_uapi_viommu_alloc (f->b, ctx, id, parent, IFB_VIOMMU_TYPE_ARM_SMMUV3, &viommu), ==, 0);
  g_assert_cmpint (ifb_viommu_type_for_iommu (IFB_IOMMU_TYPE_INTEL_VTD), ==, IFB_VIOMMU_TYPE_INVALID);
  g_assert_cmpint (ifb_viommu_type_for_iommu (IFB_IOMMU_TYPE_ARM_SMMUV3), ==, IFB_VIOMMU_TYPE_ARM_SMMUV3);
  g_assert_cmpint (ifb_viommu_type_from_string ("selftest"), ==, IFB_VIOMMU_TYPE_SELFTEST);
  g_assert_cmpint (ifb_viommu_type_from_string ("intel-vtd"), ==, IFB_VIOMMU_TYPE_INVALID);
}

static void
test_selftest_profile (Fixture *f, gconstpointer data)
{
  /* Invariant: a cdev whose profile says iommu=selftest answers the whole scenario list as the
   * kernel's IOMMUFD_TEST mock driver does (GET_HW_INFO type selftest; nested HWPTs on a HWPT
   * and through a vIOMMU with selftest data; the selftest vIOMMU and vEVENTQ types), so the
   * mock boot's lines have an emulated counterpart of the same kind. */
  static const char *const cdevs[] = { "vfio22" };
  static const char text[] = "ifb-emulated-device 1\niommu=selftest\n";
  IfbScenarioEnv env = { .backend = f->b, .dev_dirfd = f->devfd, .cdevs = cdevs, .n_cdevs = G_N_ELEMENTS (cdevs) };
  ifb_autofd int fd = openat (f->devfd, "vfio/devices/vfio22", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  g_autofree char *out = NULL;
  size_t outlen = 0;
  FILE *fp;
  unsigned failed;

  g_assert_cmpint (write (fd, text, sizeof text - 1), ==, (ssize_t) sizeof text - 1);
  fp = open_memstream (&out, &outlen);
  failed = ifb_scenarios_run (&env, fp);
  fclose (fp);
  g_test_message ("%s", out);
  g_assert_cmpuint (failed, ==, 0);
  for (const char *const *s = (const char *const[]) { "get_hw_info", "alloc_hwpt", "alloc_hwpt_nested", "viommu",
                                                      "vdevice_alloc", "veventq_alloc", NULL }; *s; s++) {
    g_autofree char *line = g_strdup_printf ("scenario %s@selftest+nest: ok\n", *s);
    g_assert_nonnull (strstr (out, line));
  }
}

static void
test_viommu_objects (Fixture *f, gconstpointer data)
{
  /* Invariant: vDEVICEs and vEVENTQs hang off their vIOMMU as the kernel's do: a virtual id once
   * per vIOMMU and a device once, one vEVENTQ per type; each keeps its parent busy; the listing
   * names them with their virtual id; an empty vEVENTQ reads 0 bytes and does not seek; closing
   * a device's fd (its unbind) takes its vDEVICE along. */
  IfbUapiObject objs[16];
  ifb_autofd int ctx = -1;
  ifb_autofd int dev_a = -1;
  ifb_autofd int dev_b = -1;
  ifb_autofd int qfd = -1;
  uint32_t ioas, a, b, parent, viommu, va, vb, q, q2;
  const uint64_t big = UINT64_C (0x1234567800000001);
  int qfd2 = -1;
  size_t n;
  char buf[64];

  write_smmu_profile (f, "vfio20", TRUE, 0x1214);
  g_assert_cmpint (ifb_uapi_open_iommufd (f->b, f->devfd, &ctx), ==, 0);
  g_assert_cmpint (ifb_uapi_ioas_alloc (f->b, ctx, &ioas), ==, 0);
  bind_parent (f, ctx, "vfio3", ioas, &dev_a, &a, &parent);
  bind_parent (f, ctx, "vfio20", ioas, &dev_b, &b, NULL);
  g_assert_cmpint (ifb_uapi_viommu_alloc (f->b, ctx, a, parent, IFB_VIOMMU_TYPE_ARM_SMMUV3, &viommu), ==, 0);

  g_assert_cmpint (ifb_uapi_vdevice_alloc (f->b, ctx, viommu, a, big, &va), ==, 0);
  g_assert_cmpint (ifb_uapi_vdevice_alloc (f->b, ctx, viommu, b, big, &vb), ==, -EEXIST);
  g_assert_cmpint (ifb_uapi_vdevice_alloc (f->b, ctx, viommu, b, 1, &vb), ==, 0);
  g_assert_cmpint (ifb_uapi_veventq_alloc (f->b, ctx, viommu, IFB_VIOMMU_TYPE_ARM_SMMUV3, 16, &q, &qfd), ==, 0);
  g_assert_cmpint (ifb_uapi_veventq_alloc (f->b, ctx, viommu, IFB_VIOMMU_TYPE_ARM_SMMUV3, 16, &q2, &qfd2), ==, -EEXIST);
  g_assert_cmpint (fcntl (qfd, F_GETFD), ==, FD_CLOEXEC);
  g_assert_cmpint (read (qfd, buf, sizeof buf), ==, 0);
  g_assert_cmpint (pread (qfd, buf, sizeof buf, 0), ==, -1);
  g_assert_cmpint (errno, ==, ESPIPE);

  g_assert_cmpint (ifb_uapi_emul_list_objects (ctx, objs, G_N_ELEMENTS (objs), &n), ==, 0);
  g_assert_cmpuint (n, ==, 8);   /* IOAS, 2 devices, parent, vIOMMU, 2 vDEVICEs, vEVENTQ */
  for (size_t i = 0; i < n; i++) {
    if (objs[i].id == va) {
      g_assert_cmpint (objs[i].type, ==, IFB_UAPI_OBJ_VDEVICE);
      g_assert_cmpuint (objs[i].virt_id, ==, big);
      g_assert_cmpuint (objs[i].parent_id, ==, viommu);
      g_assert_cmpuint (objs[i].dev_id, ==, a);
    } else if (objs[i].id == q) {
      g_assert_cmpint (objs[i].type, ==, IFB_UAPI_OBJ_VEVENTQ);
      g_assert_cmpuint (objs[i].parent_id, ==, viommu);
    }
  }

  /* Busy in dependency order: the HWPT under the vIOMMU, the vIOMMU under its children. */
  g_assert_cmpint (ifb_uapi_destroy (f->b, ctx, parent), ==, -EBUSY);
  g_assert_cmpint (ifb_uapi_destroy (f->b, ctx, viommu), ==, -EBUSY);
  g_assert_cmpint (ifb_uapi_destroy (f->b, ctx, va), ==, 0);
  g_assert_cmpint (ifb_uapi_destroy (f->b, ctx, q), ==, 0);
  g_assert_cmpint (ifb_uapi_destroy (f->b, ctx, viommu), ==, -EBUSY);
  /* The device's unbind (last close of its fd) drops its vDEVICE. */
  ifb_uapi_device_close (f->b, dev_b);
  dev_b = -1;
  g_assert_cmpint (ifb_uapi_destroy (f->b, ctx, vb), ==, -ENOENT);
  g_assert_cmpint (ifb_uapi_destroy (f->b, ctx, viommu), ==, 0);
  g_assert_cmpint (ifb_uapi_destroy (f->b, ctx, parent), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/ifb/uapi/emul/scenarios", Fixture, NULL, fixture_setup, test_scenarios, fixture_teardown);
  g_test_add ("/ifb/uapi/emul/backend-for-fd", Fixture, NULL, fixture_setup, test_backend_for_fd, fixture_teardown);
  g_test_add ("/ifb/uapi/emul/device-rdev", Fixture, NULL, fixture_setup, test_device_rdev, fixture_teardown);
  g_test_add ("/ifb/uapi/emul/viommu-types", Fixture, NULL, fixture_setup, test_viommu_types, fixture_teardown);
  g_test_add ("/ifb/uapi/emul/selftest-profile", Fixture, NULL, fixture_setup, test_selftest_profile, fixture_teardown);
  g_test_add ("/ifb/uapi/emul/viommu-objects", Fixture, NULL, fixture_setup, test_viommu_objects, fixture_teardown);
  g_test_add ("/ifb/uapi/emul/object-limit", Fixture, NULL, fixture_setup, test_object_limit, fixture_teardown);
  g_test_add ("/ifb/uapi/emul/worker-cgroup", Fixture, NULL, fixture_setup, test_worker_cgroup, fixture_teardown);
  g_test_add ("/ifb/uapi/emul/survives-owner", Fixture, NULL, fixture_setup, test_survives_owner, fixture_teardown);
  g_test_add ("/ifb/uapi/emul/robust-lock", Fixture, NULL, fixture_setup, test_robust_lock, fixture_teardown);
  g_test_add ("/ifb/uapi/emul/robust-lock-clone-vm", Fixture, NULL, fixture_setup, test_robust_lock_clone_vm,
              fixture_teardown);
  g_test_add ("/ifb/uapi/emul/robust-lock-unseen-death", Fixture, NULL, fixture_setup, test_robust_lock_unseen_death,
              fixture_teardown);
  return g_test_run ();
}
