/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * The kernel charges IOMMUFD allocations (GFP_KERNEL_ACCOUNT) to the memory cgroup of the task
 * that issues the ioctl. To charge a guest, the daemon does not allocate itself: it starts a
 * short-lived worker program, iommufd-broker-worker (worker-main.c), directly inside the guest's
 * cgroup and lets it issue the whole batch of one request. On real hardware that batch is slow —
 * vfio-pci resets a device when it is bound and when it is released (a function reset alone
 * waits 100 ms) — so the daemon never waits for a worker: it starts it, watches its pidfd in the
 * main loop, and completes the request when the worker has exited.
 *
 * Spawning, the way posix_spawn() and systemd's safe_fork_full() do it: the daemon blocks every
 * signal and vfork()s a child that shares its memory only until it executes the worker program
 * (the daemon is suspended for that half millisecond, nothing else); the child resets every
 * signal handler to the default, unblocks all signals, clears close-on-exec on exactly the fds
 * the batch names, and execs. From then on the worker shares nothing with the daemon but the
 * batch (a memfd) and those fds, and a signal sent to the guest's cgroup ends the worker, never
 * the daemon. Among those fds is the guest cgroup's cgroup.procs, opened by the daemon: the
 * worker's first act is to write itself into it, before it touches a device or a context, so it
 * allocates nothing outside the guest. Moving a task into a cgroup waits for an RCU grace period
 * (the cgroup threadgroup lock, milliseconds on a busy host): the worker waits it out, not the
 * main loop.
 *
 * Why not clone3(CLONE_INTO_CGROUP), which puts the child in the cgroup at birth: with
 * CLONE_VFORK the daemon waits until the child execs, and a child born into a frozen cgroup
 * (cgroup.freeze=1, a paused guest) never does, and the daemon would hang (tests/integration/
 * test-workers.py has such a guest); without CLONE_VFORK, clone3 copies the daemon's page tables
 * (~2 ms in the main loop per worker). vfork is also what systemd's RestrictNamespaces= seccomp
 * filter allows (it refuses clone3 with ENOSYS).
 *
 * The deadline is the daemon's: a timer kills the worker through its pidfd (SIGKILL also ends a
 * task in a frozen cgroup2), so a frozen or stuck worker cannot hold anything up. At most
 * max_running workers run at once; further batches wait in arrival order, and a few are started
 * per main-loop turn (spawn_some()).
 */
#define G_LOG_DOMAIN "ifb-worker"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errors.h"
#include "fault.h"
#include "fdwatch.h"
#include "metrics.h"
#include "util.h"
#include "worker.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

#define WORKER_PROGRAM "iommufd-broker-worker"

static const char *const step_names[_IFB_WORKER_STEP_MAX] = {
  [IFB_WORKER_STEP_NONE] = "none",
  [IFB_WORKER_STEP_IOAS_ALLOC] = "ioas-alloc",
  [IFB_WORKER_STEP_BIND] = "bind",
  [IFB_WORKER_STEP_HW_INFO] = "hw-info",
  [IFB_WORKER_STEP_HWPT_ALLOC] = "hwpt-alloc",
  [IFB_WORKER_STEP_ATTACH] = "attach",
  [IFB_WORKER_STEP_VIOMMU_ALLOC] = "viommu-alloc",
  [IFB_WORKER_STEP_VDEVICE_ALLOC] = "vdevice-alloc",
  [IFB_WORKER_STEP_VEVENTQ_ALLOC] = "veventq-alloc",
};

typedef struct {
  IfbWorkerBatch *batch;
  int cgroup_dirfd;
  guint timeout_ms;
  IfbWorkerDone done;
  gpointer data;
  pid_t pid;
  int pidfd;
  guint watch;
  guint timer;
  gint64 started_usec;
  gboolean timed_out;
  GError *error;                /* could not start: reported from an idle callback */
} Worker;

static int program_fd = -1;     /* the worker program, O_PATH */
static guint max_running = 32;
static guint n_running;
static GQueue waiting = G_QUEUE_INIT;
static guint64 n_workers;

const char *
ifb_worker_step_to_string (IfbWorkerStep s)
{
  return (unsigned) s < _IFB_WORKER_STEP_MAX ? step_names[s] : "unknown";
}

guint64 ifb_worker_count (void) { return n_workers; }
guint ifb_worker_n_running (void) { return n_running; }
guint ifb_worker_n_waiting (void) { return waiting.length; }

gboolean
ifb_worker_init (guint max, GError **error)
{
  g_autofree char *self = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *dir = self ? g_path_get_dirname (self) : NULL;
  g_autofree char *path = dir ? g_build_filename (dir, WORKER_PROGRAM, NULL) : NULL;

  max_running = MAX (max, 1);
  if (program_fd >= 0)
    return TRUE;
  if (!path || (program_fd = open (path, O_PATH | O_CLOEXEC)) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_UNAVAILABLE, -errno, "Finding the worker program %s next to the daemon",
                                path ? path : WORKER_PROGRAM);
  g_debug ("Worker program: %s", path);
  return TRUE;
}

IfbWorkerBatch *
ifb_worker_batch_new (const IfbUapiBackend *backend)
{
  IfbWorkerBatch *b;
  int fd = memfd_create ("ifb-worker-batch", MFD_CLOEXEC);

  if (fd < 0)
    return NULL;
  if (ftruncate (fd, sizeof (IfbWorkerBatch)) < 0 ||
      (b = mmap (NULL, sizeof (IfbWorkerBatch), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
    ifb_close (fd);
    return NULL;
  }
  b->memfd = fd;
  g_strlcpy (b->backend, ifb_uapi_backend_name (backend), sizeof b->backend);
  b->iommufd = -1;
  b->sys_dirfd = b->dev_dirfd = -1;
  b->failed_index = -1;
  b->viommu_type = IFB_VIOMMU_TYPE_INVALID;
  b->reply_fd = b->reply_daemon_fd = -1;
  return b;
}

IfbWorkerBatch *
ifb_worker_batch_free (IfbWorkerBatch *b)
{
  if (b) {
    int fd = b->memfd;
    ifb_close (b->reply_fd);
    ifb_close (b->reply_daemon_fd);
    munmap (b, sizeof (IfbWorkerBatch));
    ifb_close (fd);
  }
  return NULL;
}

/* ---- spawning ------------------------------------------------------------------------ */

typedef struct {
  char *const *argv;
  const int *keep;              /* fds the worker inherits */
  int n_keep;
} ChildArgs;

extern char **environ;

/* The child, between clone and exec: sharing the daemon's memory, so async-signal-safe calls
 * only, and nothing written but its own stack. */
static int
child_exec (void *data)
{
  const ChildArgs *a = data;
  struct sigaction dfl = { .sa_handler = SIG_DFL };
  sigset_t none;

  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      sigaction (sig, &dfl, NULL);
  for (int i = 0; i < a->n_keep; i++)
    if (a->keep[i] >= 0)
      fcntl (a->keep[i], F_SETFD, 0);
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  syscall (SYS_execveat, program_fd, "", a->argv, environ, AT_EMPTY_PATH);
  _exit (127);
}


/* vfork + exec a worker, where the daemon is (it moves itself into its cgroup). */
static pid_t
spawn_here (const ChildArgs *a, int *ret_pidfd)
{
  pid_t pid = vfork ();

  if (pid == 0)
    child_exec ((void *) a);   /* never returns */
  if (pid < 0)
    return -errno;
  *ret_pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
  if (*ret_pidfd < 0) {
    int e = errno;
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
    return -e;
  }
  return pid;
}

static gboolean
spawn (Worker *w, GError **error)
{
  IfbWorkerBatch *b = w->batch;
  ifb_autofd int procs = -1;
  char batch_arg[16], procs_arg[16], parent_arg[16];
  char *argv[] = { (char *) WORKER_PROGRAM, batch_arg, procs_arg, parent_arg, NULL };
  int keep[IFB_WORKER_MAX_DEVICES + 6];
  ChildArgs a = { .argv = argv, .keep = keep };
  sigset_t all, old;
  pid_t pid;
  int f;

  if ((f = ifb_fault_check ("worker-spawn")))
    return ifb_error_set_errno (error, IFB_ERROR_WORKER_FAILED, f, "Starting a worker");
  if (program_fd < 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_UNAVAILABLE, "No worker program (ifb_worker_init)"), FALSE;
  keep[a.n_keep++] = b->memfd;
  keep[a.n_keep++] = b->iommufd;
  if (b->reply_fd >= 0)
    keep[a.n_keep++] = b->reply_fd;
  keep[a.n_keep++] = b->sys_dirfd;   /* a rebind's; the daemon keeps its own */
  keep[a.n_keep++] = b->dev_dirfd;
  for (size_t i = 0; i < b->n_devices; i++)
    if (!b->devices[i].mock)   /* the mock has no fd of its own */
      keep[a.n_keep++] = b->devices[i].device_fd;
  g_snprintf (batch_arg, sizeof batch_arg, "%d", b->memfd);
  g_snprintf (parent_arg, sizeof parent_arg, "%d", (int) getpid ());
  if (w->cgroup_dirfd >= 0) {   /* the worker moves itself there first thing (worker-main.c) */
    if ((procs = openat (w->cgroup_dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC)) < 0)
      return ifb_error_set_errno (error, IFB_ERROR_WORKER_FAILED, -errno, "Opening the guest's cgroup.procs");
    keep[a.n_keep++] = procs;
  }
  g_snprintf (procs_arg, sizeof procs_arg, "%d", procs);
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  pid = spawn_here (&a, &w->pidfd);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (pid < 0)
    return ifb_error_set_errno (error, IFB_ERROR_WORKER_FAILED, pid, "Starting a worker");
  n_workers++;
  w->pid = b->pid = pid;
  return TRUE;
}

/* ---- running and reaping ------------------------------------------------------------- */

static void start_waiting (void);

static void
finish (Worker *w, GError *error)
{
  IfbWorkerDone done = w->done;
  gpointer data = w->data;
  IfbWorkerBatch *b = w->batch;

  ifb_fd_watch_remove (w->watch);
  if (w->timer)
    g_source_remove (w->timer);
  ifb_close (w->pidfd);
  ifb_close (w->cgroup_dirfd);
  g_free (w);
  done (b, error, data);
  if (error)
    g_error_free (error);
}

static gboolean
on_worker_exit (int fd, GIOCondition cond, gpointer data)
{
  Worker *w = data;
  siginfo_t si = { 0 };
  GError *error = NULL;

  n_running--;   /* finish() removes the watch before it closes the pidfd (fdwatch.h) */
  if (waitid (P_PIDFD, (id_t) w->pidfd, &si, WEXITED) < 0)
    ifb_error_set_errno (&error, IFB_ERROR_WORKER_FAILED, -errno, "Waiting for worker %d", (int) w->pid);
  else if (w->timed_out)
    g_set_error (&error, IFB_ERROR, IFB_ERROR_WORKER_KILLED,
                 "Worker %d did not finish within %u ms ([broker] worker-timeout-ms) and was killed",
                 (int) w->pid, w->timeout_ms);
  else if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED)
    g_set_error (&error, IFB_ERROR, IFB_ERROR_WORKER_KILLED, "Worker %d was killed by signal SIG%s (%d)",
                 (int) w->pid, sigabbrev_np (si.si_status) ? sigabbrev_np (si.si_status) : "?", si.si_status);
  else if (si.si_status == 127)
    g_set_error (&error, IFB_ERROR, IFB_ERROR_WORKER_FAILED, "Worker %d: the worker program could not be executed",
                 (int) w->pid);
  else if (si.si_status == 7 && w->batch->place_err)
    ifb_error_set_errno (&error, IFB_ERROR_WORKER_FAILED, w->batch->place_err,
                         "Worker %d could not move itself into the guest's cgroup", (int) w->pid);
  else if (si.si_status != 0 || !w->batch->finished)
    g_set_error (&error, IFB_ERROR, IFB_ERROR_WORKER_FAILED, "Worker %d exited with status %d before finishing",
                 (int) w->pid, si.si_status);
  ifb_metrics_worker_observe ("vfork", error == NULL,
                              g_get_monotonic_time () - w->started_usec);
  finish (w, error);
  start_waiting ();
  return G_SOURCE_REMOVE;
}

static gboolean
on_timeout (gpointer data)
{
  Worker *w = data;

  w->timer = 0;
  w->timed_out = TRUE;
  syscall (SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);   /* on_worker_exit() reports it */
  return G_SOURCE_REMOVE;
}

static gboolean
report_not_started (gpointer data)
{
  Worker *w = data;
  finish (w, g_steal_pointer (&w->error));
  return G_SOURCE_REMOVE;
}

/* A release or probe batch's fds are the worker's: the daemon's copies go now (or, with no
 * worker, the daemon closes them itself, paying for the resets). The batch is left as it is: the
 * worker reads the same numbers in its own fd table, maybe at this very moment. */
static void
give_up_fds (IfbWorkerBatch *b, gboolean close_as_device)
{
  const IfbUapiBackend *be = ifb_uapi_backend_by_name (b->backend);
  gboolean workers_own = b->release || b->probe;

  for (size_t i = 0; workers_own && i < b->n_devices; i++) {
    if (close_as_device)
      ifb_uapi_device_close (be, b->devices[i].device_fd);
    else
      close (b->devices[i].device_fd);
  }
  if (workers_own && b->iommufd >= 0)
    close (b->iommufd);
}

static void
run (Worker *w)
{
  w->batch->finished = false;
  w->started_usec = g_get_monotonic_time ();   /* before: the child may be at work before spawn() returns */
  if (!spawn (w, &w->error)) {
    give_up_fds (w->batch, TRUE);
    g_idle_add (report_not_started, w);
    return;
  }
  give_up_fds (w->batch, FALSE);
  n_running++;
  w->watch = ifb_fd_watch_add (w->pidfd, G_IO_IN, on_worker_exit, w);
  w->timer = g_timeout_add (w->timeout_ms, on_timeout, w);
}

/*
 * Spawning suspends the daemon until the child has exec'd (CLONE_VFORK; about half a millisecond):
 * a boot storm's 32 requests read in one loop turn would hold every other client up for their
 * sum. So workers are started a few per main-loop turn, from a source of the same priority as the
 * connections, which get their turn in between.
 */
#define SPAWNS_PER_TURN 2
static guint spawn_source;

static gboolean
spawn_some (gpointer data)
{
  for (int n = 0; n < SPAWNS_PER_TURN && n_running < max_running && !g_queue_is_empty (&waiting); n++)
    run (g_queue_pop_head (&waiting));
  if (n_running < max_running && !g_queue_is_empty (&waiting))
    return G_SOURCE_CONTINUE;
  spawn_source = 0;
  return G_SOURCE_REMOVE;
}

static void
start_waiting (void)
{
  if (!spawn_source && n_running < max_running && !g_queue_is_empty (&waiting))
    spawn_source = g_idle_add_full (G_PRIORITY_DEFAULT, spawn_some, NULL, NULL);
}

void
ifb_worker_start (IfbWorkerBatch *b, int cgroup_dirfd, guint timeout_ms,
                  IfbWorkerDone done, gpointer data)
{
  Worker *w = g_new0 (Worker, 1);

  w->batch = b;
  w->cgroup_dirfd = cgroup_dirfd;
  w->timeout_ms = timeout_ms;
  w->done = done;
  w->data = data;
  w->pidfd = -1;
  b->failed_index = -1;
  b->cgroup[0] = 0;
  g_queue_push_tail (&waiting, w);
  start_waiting ();
}
