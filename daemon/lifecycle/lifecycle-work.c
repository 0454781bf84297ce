/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * How a guest's operations get their kernel work done without the main loop ever waiting:
 *  - one operation per guest at a time: a guest is busy while a worker runs for it, and what must
 *    wait for it (a parked request, a reclaim) queues and runs, in arrival order, once it is idle;
 *  - allocation (ifb_lifecycle_run_batch()): one worker in the guest's cgroup per request
 *    (worker.c), whose results are applied from the main loop when it has exited;
 *  - release (ifb_lifecycle_op_done()): what an operation gave up is torn down by a release
 *    worker before the operation ends (see the comment above Release).
 * The operations themselves, and the order of effects that keeps a crash harmless, are in
 * lifecycle.c.
 */
#define G_LOG_DOMAIN "ifb-lifecycle"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cgroup.h"
#include "device-kind.h"
#include "errors.h"
#include "fault.h"
#include "fdwatch.h"
#include "lifecycle-private.h"
#include "log.h"
#include "notify.h"
#include "util.h"
#include "worker.h"

/*
 * Releasing devices. On real hardware the last close of a bound device fd resets the device
 * (vfio_pci_core_disable(): 100 ms and more), in the process that closes it — never the main
 * loop; nor does unpinning a guest's memory when its IOAS goes. So an operation that gives devices
 * or a context up (detach, destroy, a failed attach, a reclaim) only collects them
 * (ifb_lifecycle_release_device(), ifb_lifecycle_release_context() -> vm->releasing), and before it ends a release worker
 * inherits the fds and does the kernel's part in kernel order — detach, destroy each HWPT, close
 * each device, destroy the IOAS, close the context — the daemon having closed its own copies. Under a service manager
 * the fds' fd-store copies were removed first; a barrier (waited for in the main loop, not by
 * blocking it) makes sure PID 1 has closed its copies, so the worker's close is the last one. The
 * guest stays busy until the worker is done, and the operation's answer waits for it: a device
 * detached from one guest can be attached to another as soon as the detach has answered.
 */
typedef struct {
  IfbCore *core;
  IfbVm *vm;                    /* a reference */
  GArray *items;                /* IfbVmRelease */
  int ctx;                      /* the context the HWPTs (and maybe the IOAS) are in, or -1 */
  uint32_t ioas_id;             /* to destroy, 0 when the context stays */
  uint32_t viommu_id, veventq_id;   /* to destroy before the HWPTs (the vEVENTQ first), 0 when none */
  GError *error;                /* the operation's own outcome, passed on */
  IfbLifecycleDone done;
  gpointer data;
} Release;


static void
on_released (IfbWorkerBatch *b, const GError *error, gpointer data)
{
  Release *r = data;

  if (error)   /* its fds were closed when it ended, however it ended */
    ifb_log_vm (G_LOG_LEVEL_WARNING, r->vm, NULL, "Guest '%s': releasing %u devices: %s, ignoring", r->vm->name,
                r->items->len, error->message);
  ifb_worker_batch_free (b);
  ifb_lifecycle_op_done (r->core, r->vm, r->error, r->done, r->data);
  ifb_vm_free (r->vm);
  g_array_unref (r->items);
  g_clear_error (&r->error);
  g_free (r);
}

static void
release_now (gpointer data)
{
  Release *r = data;
  IfbWorkerBatch *b = ifb_worker_batch_new (r->core->backend);

  if (!b) {   /* no worker: close them here, as a last resort (their objects go with the context) */
    for (guint i = 0; i < r->items->len; i++)
      ifb_uapi_device_close (r->core->backend, g_array_index (r->items, IfbVmRelease, i).fd);
    g_array_set_size (r->items, 0);
    ifb_close (r->ctx);
    on_released (NULL, NULL, r);
    return;
  }
  b->release = true;
  b->device_reset_ms = r->core->device_reset_ms;
  b->iommufd = r->ctx;   /* the worker takes these fds */
  b->ioas_id = r->ioas_id;
  b->viommu_id = r->viommu_id;
  b->veventq_id = r->veventq_id;
  b->n_devices = r->items->len;
  for (guint i = 0; i < r->items->len; i++) {
    b->devices[i].device_fd = g_array_index (r->items, IfbVmRelease, i).fd;
    b->devices[i].hwpt_id = g_array_index (r->items, IfbVmRelease, i).hwpt_id;
    b->devices[i].vdev_id = g_array_index (r->items, IfbVmRelease, i).vdev_id;
  }
  ifb_worker_start (b, -1, r->core->config->worker_timeout_ms, on_released, r);
}

/* What runs once PID 1 has closed its copies of the fd-store entries removed so far (a barrier,
 * watched in the main loop, not waited for), so the worker's close is the last one; at once
 * without a service manager. */
typedef struct {
  void (*fn) (gpointer data);
  gpointer data;
  int fd;
  guint watch;
} AfterBarrier;

static gboolean
on_barrier (int fd, GIOCondition cond, gpointer data)
{
  g_autofree AfterBarrier *ab = data;

  ifb_fd_watch_remove (ab->watch);   /* before the close: epoll removes by fd number */
  ifb_close (ab->fd);
  ab->fn (ab->data);
  return G_SOURCE_REMOVE;
}

static void
after_fdstore_barrier (void (*fn) (gpointer data), gpointer data)
{
  AfterBarrier *ab = g_new0 (AfterBarrier, 1);

  ab->fn = fn;
  ab->data = data;
  ab->fd = -1;
  if (ifb_notify_barrier_start (&ab->fd) == 0 && (ab->watch = ifb_fd_watch_add (ab->fd, G_IO_IN, on_barrier, ab)))
    return;
  ifb_close (ab->fd);
  g_free (ab);
  fn (data);
}

/*
 * fds that belong to no guest (restore found them in the fd store): the contexts and device fds
 * go to release workers, one context and up to IFB_WORKER_MAX_DEVICES device fds each, after the
 * fd-store barrier, so the last close of a bound device (its reset) is a worker's.
 */
typedef struct {
  IfbCore *core;
  GArray *contexts, *devices;   /* of int, taken */
  guint pending;
  void (*done) (IfbCore *core, gpointer data);
  gpointer data;
} FdRelease;

static void
on_fds_released (IfbWorkerBatch *b, const GError *error, gpointer data)
{
  FdRelease *fr = data;

  if (error)
    g_message ("Closing fds of no guest: %s, ignoring", error->message);
  ifb_worker_batch_free (b);
  if (--fr->pending > 0)
    return;
  fr->done (fr->core, fr->data);
  g_array_unref (fr->contexts);
  g_array_unref (fr->devices);
  g_free (fr);
}

static void
release_fds_now (gpointer data)
{
  FdRelease *fr = data;
  guint n_batches = MAX (fr->contexts->len, (fr->devices->len + IFB_WORKER_MAX_DEVICES - 1) / IFB_WORKER_MAX_DEVICES);

  fr->pending = n_batches + 1;   /* + this function's own, so done runs once, from the main loop */
  for (guint i = 0; i < n_batches; i++) {
    IfbWorkerBatch *b = ifb_worker_batch_new (fr->core->backend);
    guint first = i * IFB_WORKER_MAX_DEVICES, n = first < fr->devices->len ? MIN (IFB_WORKER_MAX_DEVICES, fr->devices->len - first) : 0;
    int ctx = i < fr->contexts->len ? g_array_index (fr->contexts, int, i) : -1;

    if (!b) {   /* no batch: close them here, as a last resort */
      for (guint j = 0; j < n; j++)
        ifb_uapi_device_close (fr->core->backend, g_array_index (fr->devices, int, first + j));
      ifb_close (ctx);
      fr->pending--;
      continue;
    }
    b->release = true;
    b->device_reset_ms = fr->core->device_reset_ms;
    b->iommufd = ctx;   /* the worker takes these fds */
    b->n_devices = n;
    for (guint j = 0; j < n; j++)
      b->devices[j].device_fd = g_array_index (fr->devices, int, first + j);
    ifb_worker_start (b, -1, fr->core->config->worker_timeout_ms, on_fds_released, fr);
  }
  on_fds_released (NULL, NULL, fr);
}


void
ifb_lifecycle_release_fds (IfbCore *core, GArray *contexts, GArray *devices, void (*done) (IfbCore *core, gpointer data),
                           gpointer data)
{
  FdRelease *fr = g_new0 (FdRelease, 1);

  fr->core = core;
  fr->contexts = contexts;
  fr->devices = devices;
  fr->done = done;
  fr->data = data;
  after_fdstore_barrier (release_fds_now, fr);
}

/* Finish an operation: release the devices it gave up, tell its caller, let the next one in. */
void
ifb_lifecycle_op_done (IfbCore *core, IfbVm *vm, const GError *error, IfbLifecycleDone done, gpointer data)
{
  if (vm->releasing->len > 0 || vm->releasing_ctx >= 0 || vm->releasing_viommu) {
    Release *r = g_new0 (Release, 1);
    r->core = core;
    r->vm = ifb_vm_ref (vm);
    r->items = g_steal_pointer (&vm->releasing);
    vm->releasing = g_array_new (FALSE, FALSE, sizeof (IfbVmRelease));
    g_array_set_size (r->items, MIN (r->items->len, IFB_WORKER_MAX_DEVICES));   /* at most max-devices-per-vm (64) */
    /* the HWPTs to destroy live in the context given up, else in the guest's own */
    r->ctx = vm->releasing_ctx >= 0 ? vm->releasing_ctx : fcntl (vm->iommufd, F_DUPFD_CLOEXEC, 3);
    r->ioas_id = vm->releasing_ctx >= 0 ? vm->releasing_ioas : 0;
    r->viommu_id = vm->releasing_viommu;
    r->veventq_id = vm->releasing_veventq;
    vm->releasing_viommu = vm->releasing_veventq = 0;
    vm->releasing_ctx = -1;
    vm->releasing_ioas = 0;
    r->error = error ? g_error_copy (error) : NULL;
    r->done = done;
    r->data = data;
    vm->busy = true;
    after_fdstore_barrier (release_now, r);
    return;
  }
  /* Idle before done: done may start the guest's next operation (which makes it busy again). */
  ifb_vm_ref (vm);
  vm->busy = false;
  if (done)
    done (core, vm, error, data);
  ifb_vm_run_waiters (vm);
  ifb_vm_free (vm);
}

/* Undo the allocations of devices (detach, destroy HWPT, close fd = unbind). */
void
ifb_lifecycle_release_device (IfbCore *core, IfbVm *vm, IfbVmDevice *d, gboolean in_store)
{
  const IfbDeviceKind *kind = ifb_device_kind_of (d->bdf);

  if (kind->release)
    kind->release (core, vm, d);
  if (in_store) {
    g_autofree char *name = ifb_vm_fdname_device (vm, d);
    ifb_notify_fdstore_remove (name);
  }
  if (d->fd >= 0) {   /* detach, HWPT, close: a release worker's, as the operation ends (ifb_lifecycle_op_done()) */
    IfbVmRelease rel = { .fd = d->fd, .hwpt_id = d->hwpt_id, .vdev_id = d->vdev_id };
    g_array_append_val (vm->releasing, rel);
  }
  d->fd = -1;
  d->hwpt_id = d->dev_id = d->vdev_id = 0;
  d->state = IFB_VM_DEVICE_RESERVED;
}

void
ifb_lifecycle_release_context (IfbCore *core, IfbVm *vm, gboolean in_store)
{
  if (in_store) {
    g_autofree char *name = ifb_vm_fdname_iommufd (vm);
    ifb_notify_fdstore_remove (name);
  }
  ifb_lifecycle_viommu_release (vm);
  if (vm->iommufd >= 0) {   /* its IOAS destroyed and closed by the release worker (unpinning takes time) */
    ifb_close (vm->releasing_ctx);   /* (one context given up per operation) */
    vm->releasing_ctx = vm->iommufd;
    vm->releasing_ioas = vm->ioas_id;
  }
  vm->iommufd = -1;
  vm->ioas_id = 0;
  g_clear_pointer (&vm->ioas_cgroup, g_free);
}

static gboolean
worker_error (IfbVm *vm, IfbWorkerBatch *b, IfbVmDevice **devs, GError **error)
{
  IfbWorkerDevice *wd;
  IfbVmDevice *d;

  if (b->failed_index < 0)
    return ifb_error_set_errno (error, IFB_ERROR_KERNEL, b->ioas_err,
                                "Guest '%s': allocating its IOAS (IOMMU_IOAS_ALLOC) failed", vm->name);
  wd = &b->devices[b->failed_index];
  d = devs[b->failed_index];
  if (ifb_lifecycle_viommu_error (vm, b, wd, d, error))
    return FALSE;
  if (wd->failed_step == IFB_WORKER_STEP_HWPT_ALLOC && wd->err == -EOPNOTSUPP && (wd->want_flags & IFB_HWPT_NEST_PARENT))
    return ifb_error_set_errno (error, IFB_ERROR_NEST_UNSUPPORTED, wd->err,
                                "Device %s: its IOMMU (%s) cannot be a nesting parent; IOMMU_HWPT_ALLOC with "
                                "NEST_PARENT was refused (option allow_plain gives a plain HWPT instead)",
                                d->bdf, ifb_iommu_type_to_string (wd->info.type));
  /* The kernel refuses a second open of a device's cdev state with EINVAL (vfio_df_open()), and a
   * device held through its group with EBUSY: either way someone outside the broker has it. */
  if (wd->failed_step == IFB_WORKER_STEP_BIND && (wd->err == -EBUSY || wd->err == -EINVAL))
    return ifb_error_set_errno (error, IFB_ERROR_DEVICE_BUSY, wd->err,
                                "Device %s is in use outside the broker (VFIO_DEVICE_BIND_IOMMUFD refused it)", d->bdf);
  return ifb_error_set_errno (error, IFB_ERROR_KERNEL, wd->err, "Device %s: step %s failed",
                              d->bdf, ifb_worker_step_to_string (wd->failed_step));
}

/* Open the guest's /dev/iommu and set its RLIMIT mode: before any object exists, as the kernel
 * refuses IOMMU_OPTION_RLIMIT_MODE afterwards. */
static gboolean
open_context (IfbCore *core, IfbVm *vm, GError **error)
{
  int r;

  if ((r = ifb_fault_check ("open-iommufd")) < 0 ||
      (r = ifb_uapi_open_iommufd (core->backend, core->dev_dirfd, &vm->iommufd)) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_KERNEL, r, "Guest '%s': opening /dev/iommu", vm->name);
  if (vm->rlimit_per_process &&
      ((r = ifb_fault_check ("rlimit")) < 0 || (r = ifb_uapi_set_rlimit_mode (core->backend, vm->iommufd, true)) < 0)) {
    vm->iommufd = ifb_close (vm->iommufd);
    return ifb_error_set_errno (error, IFB_ERROR_KERNEL, r,
                                "Guest '%s': setting IOMMU_OPTION_RLIMIT_MODE to per-process "
                                "(needs CAP_SYS_RESOURCE; [accounting] rlimit-per-process=false to skip)", vm->name);
  }
  return TRUE;
}

/*
 * The unbound hand-off: the context is an empty /dev/iommu the VMM fills itself, and a device is
 * ready once its checks passed (attach did them; vm.fds opens it afresh). Nothing to allocate,
 * so no worker: the VMM's own allocations happen in the guest's cgroup, where it runs.
 */
static gboolean
realize_unbound (IfbCore *core, IfbVm *vm, IfbVmDevice **devs, guint n, GError **error)
{
  if (vm->iommufd < 0) {
    g_autofree char *name = ifb_vm_fdname_iommufd (vm);
    int r;
    if (!open_context (core, vm, error))
      return FALSE;
    if ((r = ifb_notify_fdstore_add (name, vm->iommufd)) < 0) {
      vm->iommufd = ifb_close (vm->iommufd);
      return ifb_error_set_errno (error, IFB_ERROR_FAILED, r, "Guest '%s': storing its iommufd in the fd store", vm->name);
    }
  }
  for (guint i = 0; i < n; i++)
    devs[i]->state = IFB_VM_DEVICE_READY;
  return TRUE;
}

/*
 * Allocate, in one worker in the guest's cgroup, the context (if the guest has none yet) and the
 * given devices, then call done (from the main loop; from here when nothing needs a worker). On
 * success the fds are in the fd store and the devices are ready; on failure nothing of this
 * call remains. The guest is busy meanwhile.
 */

typedef struct {
  IfbCore *core;
  IfbVm *vm;                    /* a reference */
  GPtrArray *devs;              /* IfbVmDevice*, borrowed from the guest or the attach */
  gboolean new_ctx;
  int cgfd;
  gboolean leaf;
  IfbLifecycleBatchDone done;
  gpointer data;
} BatchJob;

static void
batch_end_now (BatchJob *j, const GError *error)
{
  j->done (j->core, j->vm, error, j->data);
  ifb_close (j->cgfd);
  g_ptr_array_unref (j->devs);
  ifb_vm_free (j->vm);
  g_free (j);
}

static void
batch_release (BatchJob *j, guint pushed, gboolean ctx_pushed)
{
  for (guint i = 0; i < j->devs->len; i++)
    ifb_lifecycle_release_device (j->core, j->vm, g_ptr_array_index (j->devs, i), i < pushed);
  if (j->new_ctx)
    ifb_lifecycle_release_context (j->core, j->vm, ctx_pushed);
}

static void
batch_finish (BatchJob *j, IfbWorkerBatch *b, const GError *werr)
{
  g_autoptr (GError) error = NULL;
  IfbVm *vm = j->vm;
  IfbVmDevice **devs = (IfbVmDevice **) j->devs->pdata;
  guint n = j->devs->len, pushed = 0;
  gboolean ctx_pushed = FALSE;
  int r;

  if (j->leaf)
    ifb_cgroup_worker_leaf_remove (j->cgfd);
  if (werr) {
    error = g_error_copy (werr);
    g_prefix_error (&error, "Guest '%s': ", vm->name);
    goto fail;
  }
  if (b->ioas_err || b->failed_index >= 0) {
    worker_error (vm, b, devs, &error);
    goto fail;
  }
  if (j->new_ctx) {
    vm->ioas_id = b->ioas_id;
    g_free (vm->ioas_cgroup);
    vm->ioas_cgroup = g_strdup (b->cgroup);
  }
  for (guint i = 0; i < n; i++) {
    IfbVmDevice *d = devs[i];
    IfbWorkerDevice *wd = &b->devices[i];
    d->dev_id = wd->dev_id;
    d->hwpt_id = wd->hwpt_id;
    d->hwpt_flags = wd->hwpt_flags;
    d->hw = wd->info;
    if (ifb_device_kind_of (d->bdf)->adopt)
      ifb_device_kind_of (d->bdf)->adopt (d, wd);
    g_free (d->cgroup);
    d->cgroup = g_strdup (b->cgroup);
    d->worker_pid = b->pid;
    d->state = IFB_VM_DEVICE_READY;
  }
  if (!ifb_lifecycle_viommu_apply (vm, devs, n, b, &error))
    goto fail;
  if (j->new_ctx) {
    g_autofree char *name = ifb_vm_fdname_iommufd (vm);
    if ((r = ifb_notify_fdstore_add (name, vm->iommufd)) < 0) {
      ifb_error_set_errno (&error, IFB_ERROR_FAILED, r, "Guest '%s': storing its iommufd in the fd store", vm->name);
      goto fail;
    }
    ctx_pushed = TRUE;
  }
  for (; pushed < n; pushed++) {
    g_autofree char *name = ifb_vm_fdname_device (vm, devs[pushed]);
    if ((r = ifb_notify_fdstore_add (name, devs[pushed]->fd)) < 0) {
      ifb_error_set_errno (&error, IFB_ERROR_FAILED, r, "Device %s: storing its fd in the fd store", devs[pushed]->bdf);
      goto fail;
    }
  }
  batch_end_now (j, NULL);
  return;

fail:
  /* the worker undid its own objects (one that was killed may have left some: the context's
   * reclaim or destroy frees them); closing the device fds unbinds them */
  if (b && b->viommu_new && vm->viommu_id == b->viommu_id)
    ifb_lifecycle_viommu_release (vm);
  batch_release (j, pushed, ctx_pushed);
  batch_end_now (j, error);
}

static void
on_batch_done (IfbWorkerBatch *b, const GError *error, gpointer data)
{
  batch_finish (data, b, error);
  ifb_worker_batch_free (b);
}

void
ifb_lifecycle_run_batch (IfbCore *core, IfbVm *vm, IfbVmDevice **devs, guint n, IfbLifecycleBatchDone done, gpointer data)
{
  g_autoptr (GError) error = NULL;
  IfbWorkerBatch *b = NULL;
  ifb_autofd int target = -1;
  BatchJob *j = g_new0 (BatchJob, 1);

  j->core = core;
  j->vm = ifb_vm_ref (vm);
  j->devs = g_ptr_array_new ();
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (j->devs, devs[i]);
  j->new_ctx = vm->iommufd < 0;
  j->cgfd = -1;
  j->done = done;
  j->data = data;

  if (vm->options.handoff == IFB_HANDOFF_UNBOUND) {
    realize_unbound (core, vm, devs, n, &error);
    batch_end_now (j, error);
    return;
  }
  if (!(b = ifb_worker_batch_new (core->backend))) {
    ifb_error_set_errno (&error, IFB_ERROR_FAILED, -errno, "Mapping a worker batch");
    batch_end_now (j, error);
    return;
  }
  if (n > IFB_WORKER_MAX_DEVICES) {
    g_set_error (&error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED, "Too many devices in one request");
    goto fail;
  }
  if (!core->cgroups) {
    g_set_error (&error, IFB_ERROR, IFB_ERROR_UNAVAILABLE, "No cgroup2 hierarchy: cannot place workers");
    goto fail;
  }
  if (!ifb_cgroup_open (core->cgroups, vm->cgroup, &j->cgfd, &error)) {
    g_prefix_error (&error, "Guest '%s': ", vm->name);
    goto fail;
  }
  if (j->new_ctx && !open_context (core, vm, &error))
    goto fail;
  for (guint i = 0; i < n; i++) {
    IfbVmDevice *d = devs[i];
    const IfbDeviceKind *kind = ifb_device_kind_of (d->bdf);
    if (!kind->open (core, vm, d, &d->fd, &error))
      goto fail;
    b->devices[i] = (IfbWorkerDevice) {
      .device_fd = d->fd,
      .want_flags = (vm->options.nest_parent ? IFB_HWPT_NEST_PARENT : 0) |
                    (vm->options.dirty_tracking ? IFB_HWPT_DIRTY_TRACKING : 0),
      .allow_plain = vm->options.allow_plain,
    };
    if (kind->prepare)
      kind->prepare (d, &b->devices[i]);
  }
  b->device_reset_ms = core->device_reset_ms;
  b->iommufd = vm->iommufd;
  b->alloc_ioas = j->new_ctx;
  b->ioas_id = vm->ioas_id;
  b->n_devices = n;
  ifb_lifecycle_viommu_prepare (vm, devs, n, b);
  if (!ifb_cgroup_open_worker_target (j->cgfd, &target, &j->leaf, &error)) {
    g_prefix_error (&error, "Guest '%s': ", vm->name);
    goto fail;
  }
  vm->busy = true;
  ifb_worker_start (b, ifb_steal_fd (&target), core->config->worker_timeout_ms, on_batch_done, j);
  return;

fail:
  ifb_worker_batch_free (b);
  batch_release (j, 0, FALSE);
  batch_end_now (j, error);
}

gboolean
ifb_lifecycle_open_device (IfbCore *core, IfbVm *vm, IfbVmDevice *d, int *ret_fd, GError **error)
{
  return ifb_device_kind_of (d->bdf)->open (core, vm, d, ret_fd, error);
}

typedef struct {
  IfbCore *core;
  char *uuid;
  void (*fn) (IfbCore *core, IfbVm *vm);
} Later;

static void
run_later (gpointer data)
{
  Later *l = data;
  IfbVm *vm = ifb_registry_lookup (l->core->registry, l->uuid);
  if (vm)
    l->fn (l->core, vm);
  g_free (l->uuid);
  g_free (l);
}

/* fn (m, vm) now, or once the guest is idle (if it still exists then). */
void
ifb_lifecycle_when_idle_do (IfbCore *core, IfbVm *vm, void (*fn) (IfbCore *core, IfbVm *vm))
{
  Later *l;

  if (!vm->busy) {
    fn (core, vm);
    return;
  }
  l = g_new0 (Later, 1);
  l->core = core;
  l->uuid = g_strdup (vm->uuid);
  l->fn = fn;
  ifb_vm_when_idle (vm, run_later, l);
}

