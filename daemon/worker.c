/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * The kernel charges IOMMUFD allocations (GFP_KERNEL_ACCOUNT) to the memory cgroup of the task
 * that issues the ioctl. To charge a guest, the daemon does not allocate itself: it starts a
 * short-lived worker directly inside the guest's cgroup and lets it issue the whole batch of one
 * request (IOAS, then per device BIND, GET_HW_INFO, HWPT_ALLOC, ATTACH).
 *
 *  - Preferred: clone3(CLONE_INTO_CGROUP | CLONE_PIDFD). The child is born in the target cgroup:
 *    no window in which it allocates elsewhere, no cgroup.procs write. On x86-64 with
 *    CLONE_VM | CLONE_VFORK as well, on a stack of its own (as posix_spawn() does): the child
 *    shares the daemon's memory instead of copying its ~360 mappings and page tables, which made
 *    a plain-fork worker cost ~2 ms of CPU, most of a guest's setup (tests/bench, issue 9). The
 *    parent sleeps in clone3() until the child has exited, so the two never run at once; the
 *    timeout is then the child's own (an ITIMER_REAL whose SIGALRM kills it). Counts of fault
 *    injection the child touches are put back afterwards (fault.h), as a forked one's were lost.
 *  - Fallback, when clone3 is refused with ENOSYS (systemd's RestrictNamespaces= installs a
 *    seccomp filter that answers ENOSYS to clone3, because its flags cannot be inspected): fork()
 *    a child that blocks on a pipe until the parent has written its pid into the target's
 *    cgroup.procs, then proceeds.
 *
 * The child only touches the batch, which lives in a MAP_SHARED anonymous mapping: that is how
 * results come back from a child with fork semantics (the fallbacks). Between fork and
 * _exit the child calls only async-signal-safe functions (the uAPI layer does no malloc/stdio).
 * If a step fails the child undoes what it did (detach, destroy HWPTs, destroy a fresh IOAS);
 * binding is undone by the parent closing the device fds, as the kernel unbinds on close.
 *
 * The parent waits on the child's pidfd with a timeout (config worker-timeout-ms) and kills it if
 * it hangs. This suspends the main loop for the duration of the batch — a few ioctls, measured in
 * tens of microseconds — which is simpler and cheaper than a state machine around the wait.
 */
#define G_LOG_DOMAIN "ifb-worker"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "errors.h"
#include "fault.h"
#include "metrics.h"
#include "util.h"
#include "worker.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Layout of clone3's argument (CLONE_ARGS_SIZE_VER2, Linux 5.7+). */
struct ifb_clone_args {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
  uint64_t set_tid, set_tid_size, cgroup;
};

static guint64 n_workers;

static const char *const step_names[_IFB_WORKER_STEP_MAX] = {
  [IFB_WORKER_STEP_NONE] = "none",
  [IFB_WORKER_STEP_IOAS_ALLOC] = "ioas-alloc",
  [IFB_WORKER_STEP_BIND] = "bind",
  [IFB_WORKER_STEP_HW_INFO] = "hw-info",
  [IFB_WORKER_STEP_HWPT_ALLOC] = "hwpt-alloc",
  [IFB_WORKER_STEP_ATTACH] = "attach",
};

const char *
ifb_worker_step_to_string (IfbWorkerStep s)
{
  return (unsigned) s < _IFB_WORKER_STEP_MAX ? step_names[s] : "unknown";
}

guint64
ifb_worker_count (void)
{
  return n_workers;
}

/* One freed batch stays mapped for the next request: a fresh shared mapping, faulted in page by
 * page and munmapped with its TLB flush, was 4% of the daemon's share of a guest's setup (perf,
 * tests/bench). The daemon is single-threaded and a batch is freed only after its worker is
 * reaped, so nobody else can still be writing into it. */
static IfbWorkerBatch *spare_batch;

IfbWorkerBatch *
ifb_worker_batch_new (void)
{
  IfbWorkerBatch *b;

  if (spare_batch) {
    b = spare_batch;
    spare_batch = NULL;
    memset (b, 0, sizeof (*b));   /* as a fresh mapping is */
  } else {
    void *p = mmap (NULL, sizeof (IfbWorkerBatch), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      return NULL;
    b = p;
  }
  b->iommufd = -1;
  b->failed_index = -1;
  return b;
}

IfbWorkerBatch *
ifb_worker_batch_free (IfbWorkerBatch *b)
{
  if (b && !spare_batch)
    spare_batch = b;
  else if (b)
    munmap (b, sizeof (IfbWorkerBatch));
  return NULL;
}

/* Each step goes through the fault hook first (and then is not carried out), so tests can fail
 * any one of them. */
#define STEP(name, call) (ifb_fault_check (name) ?: (call))

static void
undo (IfbWorkerBatch *b, size_t upto, bool ioas_is_new)
{
  for (size_t i = 0; i < upto; i++) {
    IfbWorkerDevice *d = &b->devices[i];
    if (d->selftest && d->stdev_id) {
      /* A mock has no fd whose close unbinds it: destroying it detaches and unbinds. */
      ifb_uapi_destroy (b->backend, b->iommufd, d->stdev_id);
      d->stdev_id = 0;
    } else if (d->hwpt_id) {
      ifb_uapi_device_detach (b->backend, d->device_fd);
    }
    if (d->hwpt_id) {
      ifb_uapi_destroy (b->backend, b->iommufd, d->hwpt_id);
      d->hwpt_id = 0;
    }
  }
  if (ioas_is_new && b->ioas_id) {
    ifb_uapi_destroy (b->backend, b->iommufd, b->ioas_id);
    b->ioas_id = 0;
  }
}

/* The worker's body. Async-signal-safe only. */
static void
worker_steps (IfbWorkerBatch *b)
{
  ifb_cgroup_self (b->cgroup, sizeof (b->cgroup));

  if (b->alloc_ioas) {
    b->ioas_err = ifb_fault_check ("ioas-alloc");
    if (!b->ioas_err)
      b->ioas_err = ifb_uapi_ioas_alloc (b->backend, b->iommufd, &b->ioas_id);
    if (b->ioas_err)
      return;
  }

  for (size_t i = 0; i < b->n_devices; i++) {
    IfbWorkerDevice *d = &b->devices[i];
    uint32_t flags = d->want_flags;
    int r;

    d->failed_step = IFB_WORKER_STEP_BIND;
    if (d->selftest)   /* MOCK_DOMAIN: the mock, bound and attached to an automatic HWPT on the IOAS */
      r = STEP ("bind", ifb_uapi_selftest_mock_domain (b->backend, b->iommufd, b->ioas_id, &d->stdev_id, NULL, &d->dev_id));
    else
      r = STEP ("bind", ifb_uapi_device_bind (b->backend, d->device_fd, b->iommufd, &d->dev_id));
    if (r == 0) {
      d->failed_step = IFB_WORKER_STEP_HW_INFO;
      r = STEP ("hw-info", ifb_uapi_get_hw_info (b->backend, b->iommufd, d->dev_id, &d->info));
    }
    if (r == 0) {
      d->failed_step = IFB_WORKER_STEP_HWPT_ALLOC;
      if ((flags & IFB_HWPT_DIRTY_TRACKING) && !d->info.dirty_tracking)
        flags &= ~IFB_HWPT_DIRTY_TRACKING;   /* asked for "where supported" */
      r = STEP ("hwpt-alloc", ifb_uapi_hwpt_alloc (b->backend, b->iommufd, d->dev_id, b->ioas_id, flags, &d->hwpt_id));
      if (r == -EOPNOTSUPP && (flags & IFB_HWPT_NEST_PARENT) && d->allow_plain) {
        flags &= ~IFB_HWPT_NEST_PARENT;
        r = ifb_uapi_hwpt_alloc (b->backend, b->iommufd, d->dev_id, b->ioas_id, flags, &d->hwpt_id);
      }
    }
    if (r == 0) {
      d->hwpt_flags = flags;
      d->failed_step = IFB_WORKER_STEP_ATTACH;
      r = STEP ("attach", d->selftest ? ifb_uapi_selftest_mock_domain_replace (b->backend, b->iommufd, d->stdev_id, d->hwpt_id)
                                      : ifb_uapi_device_attach (b->backend, d->device_fd, d->hwpt_id));
      if (r < 0) {
        ifb_uapi_destroy (b->backend, b->iommufd, d->hwpt_id);
        d->hwpt_id = 0;
      }
    }
    if (r < 0) {
      d->err = r;
      if (d->selftest && d->stdev_id) {
        ifb_uapi_destroy (b->backend, b->iommufd, d->stdev_id);
        d->stdev_id = 0;
      }
      b->failed_index = (int) i;
      undo (b, i, b->alloc_ioas);
      return;
    }
    d->failed_step = IFB_WORKER_STEP_NONE;
  }
}

static pid_t worker_parent;   /* the daemon, set before each spawn (shared or copied into the child) */

static void
worker_main (IfbWorkerBatch *b)
{
  /* Die with the daemon. A worker left running after a crash goes on allocating in a context the
   * restarted daemon has already reconciled: test-fdstore's kill -9 rounds caught HWPTs made
   * after the new daemon's tidy, referenced by no device. The check closes the window in which
   * the daemon died before the signal was asked for. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (getppid () != worker_parent)
    _exit (4);
  ifb_uapi_emul_batch_begin ();   /* the emulated backend keeps its table mapped meanwhile */
  worker_steps (b);
  ifb_uapi_emul_batch_end ();
}

static pid_t
spawn_clone3 (int cgroup_dirfd, int *ret_pidfd)
{
  struct ifb_clone_args args = {
    .flags = CLONE_INTO_CGROUP | CLONE_PIDFD,
    .pidfd = (uint64_t) (uintptr_t) ret_pidfd,
    .exit_signal = SIGCHLD,
    .cgroup = (uint64_t) cgroup_dirfd,
  };
  long pid = syscall (SYS_clone3, &args, sizeof (args));
  return pid < 0 ? -errno : (pid_t) pid;
}

#if defined(__x86_64__)
#define HAVE_CLONE3_VM 1
#define WORKER_STACK_SIZE (256u * 1024u)
#define WORKER_STACK_GUARD 4096u

typedef struct {
  IfbWorkerBatch *batch;
  guint timeout_ms;
} VmChild;

/*
 * clone3() whose child starts fn(arg) on the stack given in args and exits with its return
 * value, without ever returning into C code of the parent's stack frames (the same trampoline
 * as glibc's clone(), which has no clone3 counterpart before glibc 2.39). fn and arg sit in
 * r8/r9, which the syscall keeps in the child. Returns the pid in the parent, or -errno.
 */
static long
clone3_on_stack (struct ifb_clone_args *args, int (*fn) (void *), void *arg)
{
  register int (*r8_fn) (void *) __asm__ ("r8") = fn;
  register void *r9_arg __asm__ ("r9") = arg;
  long ret;

  __asm__ volatile ("syscall\n\t"
                    "test %%rax, %%rax\n\t"
                    "jnz 1f\n\t"
                    "xor %%ebp, %%ebp\n\t"     /* child: outermost frame */
                    "mov %%r9, %%rdi\n\t"
                    "call *%%r8\n\t"
                    "mov %%eax, %%edi\n\t"
                    "mov $60, %%eax\n\t"       /* SYS_exit */
                    "syscall\n\t"
                    "ud2\n"
                    "1:"
                    : "=a" (ret)
                    : "0" ((long) SYS_clone3), "D" (args), "S" (sizeof (*args)), "r" (r8_fn), "r" (r9_arg)
                    : "rcx", "r11", "memory");
  return ret;
}

/* The CLONE_VM child. Async-signal-safe only; its timer's SIGALRM (default action) ends it. */
static int
vm_child_main (void *data)
{
  VmChild *c = data;
  struct sigaction sa = { .sa_handler = SIG_DFL };
  struct itimerval it = { .it_value = { .tv_sec = c->timeout_ms / 1000, .tv_usec = (c->timeout_ms % 1000) * 1000 } };
  sigset_t set;

  sigaction (SIGALRM, &sa, NULL);
  sigemptyset (&set);
  sigaddset (&set, SIGALRM);
  sigprocmask (SIG_UNBLOCK, &set, NULL);
  setitimer (ITIMER_REAL, &it, NULL);
  worker_main (c->batch);
  return 0;
}

static pid_t
spawn_clone3_vm (IfbWorkerBatch *b, int cgroup_dirfd, guint timeout_ms, int *ret_pidfd)
{
  static uint8_t *stack;        /* one worker at a time (the parent waits in clone3): reused */
  VmChild c = { .batch = b, .timeout_ms = timeout_ms };
  struct ifb_clone_args args = {
    .flags = CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP | CLONE_PIDFD,
    .pidfd = (uint64_t) (uintptr_t) ret_pidfd,
    .exit_signal = SIGCHLD,
    .cgroup = (uint64_t) cgroup_dirfd,
  };
  IfbFaultHits hits;
  long pid;

  if (!stack) {
    void *p = mmap (NULL, WORKER_STACK_GUARD + WORKER_STACK_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
      return -errno;
    mprotect (p, WORKER_STACK_GUARD, PROT_NONE);   /* an overflow faults instead of corrupting */
    stack = p;
  }
  args.stack = (uint64_t) (uintptr_t) (stack + WORKER_STACK_GUARD);
  args.stack_size = WORKER_STACK_SIZE;
  ifb_fault_hits_save (&hits);
  pid = clone3_on_stack (&args, vm_child_main, &c);
  ifb_fault_hits_restore (&hits);
  ifb_uapi_emul_batch_end ();   /* a child killed mid-batch left its mappings in our memory */
  return (pid_t) pid;
}
#endif

static gboolean
wait_child (int pidfd, pid_t pid, guint timeout_ms, GError **error)
{
  struct pollfd p = { .fd = pidfd, .events = POLLIN };
  siginfo_t si = { 0 };
  int r;

  do
    r = poll (&p, 1, (int) timeout_ms);
  while (r < 0 && errno == EINTR);
  if (r == 0) {
    syscall (SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    waitid (P_PIDFD, (id_t) pidfd, &si, WEXITED);
    return g_set_error (error, IFB_ERROR, IFB_ERROR_WORKER_FAILED,
                        "Worker %d did not finish within %u ms and was killed", (int) pid, timeout_ms), FALSE;
  }
  if (waitid (P_PIDFD, (id_t) pidfd, &si, WEXITED) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_WORKER_FAILED, -errno, "Waiting for worker %d", (int) pid);
  if (si.si_code != CLD_EXITED || si.si_status != 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_WORKER_FAILED,
                        "Worker %d died (%s %d)", (int) pid,
                        si.si_code == CLD_EXITED ? "exit status" : "signal", si.si_status), FALSE;
  return TRUE;
}

static gboolean
run_fork_and_move (IfbWorkerBatch *b, int cgroup_dirfd, guint timeout_ms, GError **error)
{
  ifb_autofd int go_r = -1, go_w = -1, procs = -1, pidfd = -1;
  int pipefd[2];
  char pidbuf[32];
  pid_t pid;
  int n;

  if (pipe2 (pipefd, O_CLOEXEC) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_WORKER_FAILED, -errno, "pipe2");
  go_r = pipefd[0];
  go_w = pipefd[1];
  procs = openat (cgroup_dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
  if (procs < 0)
    return ifb_error_set_errno (error, IFB_ERROR_WORKER_FAILED, -errno, "Opening the guest's cgroup.procs");

  pid = fork ();
  if (pid < 0)
    return ifb_error_set_errno (error, IFB_ERROR_WORKER_FAILED, -errno, "fork");
  if (pid == 0) {
    char go = 0;
    close (go_w);
    if (read (go_r, &go, 1) != 1 || go != 'g')
      _exit (3);
    worker_main (b);
    _exit (0);
  }
  n_workers++;
  b->pid = pid;
  b->used_fallback = true;
  pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
  n = g_snprintf (pidbuf, sizeof (pidbuf), "%d\n", (int) pid);
  if (write (procs, pidbuf, (size_t) n) != n) {
    int e = errno;
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
    return ifb_error_set_errno (error, IFB_ERROR_WORKER_FAILED, -e, "Moving worker %d into the guest's cgroup", (int) pid);
  }
  if (write (go_w, "g", 1) != 1 || pidfd < 0) {
    int e = errno;
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
    return ifb_error_set_errno (error, IFB_ERROR_WORKER_FAILED, -e, "Starting worker %d", (int) pid);
  }
  return wait_child (pidfd, pid, timeout_ms, error);
}

static gboolean
worker_run (IfbWorkerBatch *b, int cgroup_dirfd, IfbWorkerMode mode, guint timeout_ms, GError **error)
{
  ifb_autofd int pidfd = -1;
  pid_t pid;
  int f;

  b->failed_index = -1;
  b->cgroup[0] = 0;
  worker_parent = getpid ();
  if ((f = ifb_fault_check ("worker-spawn")))
    return ifb_error_set_errno (error, IFB_ERROR_WORKER_FAILED, f, "Starting a worker");

  if (mode == IFB_WORKER_MODE_FORK)
    return run_fork_and_move (b, cgroup_dirfd, timeout_ms, error);

#ifdef HAVE_CLONE3_VM
  pid = spawn_clone3_vm (b, cgroup_dirfd, timeout_ms, &pidfd);
  if (pid > 0) {
    n_workers++;
    b->pid = pid;
    b->used_fallback = false;
    return wait_child (pidfd, pid, timeout_ms, error);   /* it has exited: this only reaps */
  }
  if (pid != -ENOSYS && pid != -EINVAL)   /* EINVAL: a kernel without CLONE_VM in clone3 here */
    return ifb_error_set_errno (error, IFB_ERROR_WORKER_FAILED, pid, "clone3 into the guest's cgroup");
  pidfd = -1;
#endif
  pid = spawn_clone3 (cgroup_dirfd, &pidfd);
  if (pid == -ENOSYS)
    return run_fork_and_move (b, cgroup_dirfd, timeout_ms, error);
  if (pid < 0)
    return ifb_error_set_errno (error, IFB_ERROR_WORKER_FAILED, pid, "clone3 into the guest's cgroup");
  if (pid == 0) {
    worker_main (b);
    _exit (0);
  }
  n_workers++;
  b->pid = pid;
  b->used_fallback = false;
  return wait_child (pidfd, pid, timeout_ms, error);
}

gboolean
ifb_worker_run (IfbWorkerBatch *b, int cgroup_dirfd, IfbWorkerMode mode, guint timeout_ms, GError **error)
{
  guint64 spawned = n_workers;
  gint64 start = g_get_monotonic_time ();
  gboolean ok = worker_run (b, cgroup_dirfd, mode, timeout_ms, error);

  if (n_workers != spawned)   /* a worker ran (ok or not), rather than failing to start */
    ifb_metrics_worker_observe (b->used_fallback ? "fork" : "clone3", ok, g_get_monotonic_time () - start);
  return ok;
}
