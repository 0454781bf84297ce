/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * A guest goes through: created (context + IOAS, or "pending" when its cgroup will only appear
 * later, as under libvirt where the hook runs before QEMU's cgroup exists), devices attached
 * (each "reserved" by ownership at once, and "ready" once bound with its HWPT), destroyed.
 *
 * Every allocation goes through run_batch(): one worker in the guest's cgroup per request
 * (worker.c). The order of effects is chosen so a crash or failure at any point leaves a state
 * that restore() can make whole without guessing:
 *   1. the worker allocates (and undoes its own work if a step fails);
 *   2. the new fds go to the fd store (FDSTORE=1);
 *   3. the guest's state is written (ifb_manager_commit());
 *   4. the reply is sent.
 * Destroying goes the other way round: the state is removed first, then fds and objects.
 * A failure in 2 or 3 is undone here (detach, destroy, close, FDSTOREREMOVE). A crash after 2
 * leaves fds in the store that the registry does not know: restore() closes them, which unbinds
 * the devices, and on the emulated backend destroys the HWPTs nobody references. A crash after 3
 * but before 4 leaves a complete guest the client was not told about; asking again says it
 * exists.
 */
#define G_LOG_DOMAIN "ifb-lifecycle"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cgroup.h"
#include "errors.h"
#include "fault.h"
#include "holders.h"
#include "lifecycle.h"
#include "log.h"
#include "notify.h"
#include "pci-device.h"
#include "state.h"
#include "selftest-device.h"
#include "util.h"
#include "worker.h"

/* Undo the allocations of devices (detach, destroy HWPT, close fd = unbind). */
static void
release_device (IfbManager *m, IfbVm *vm, IfbVmDevice *d, gboolean in_store)
{
  if (ifb_selftest_device_name_is (d->bdf))
    ifb_selftest_device_release (m, vm, d);   /* no device fd to detach: the mock goes first */
  else if (d->fd >= 0 && d->hwpt_id) {
    int r = ifb_uapi_device_detach (m->backend, d->fd);
    if (r < 0)
      ifb_log_vm (G_LOG_LEVEL_DEBUG, vm, d->bdf, "detach failed: %s", g_strerror (-r));
    r = ifb_uapi_destroy (m->backend, vm->iommufd, d->hwpt_id);
    if (r < 0)
      ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, d->bdf, "HWPT %u not destroyed (%s): it goes with the context",
                  d->hwpt_id, g_strerror (-r));
  }
  if (in_store) {
    g_autofree char *name = ifb_vm_fdname_device (vm, d);
    ifb_notify_fdstore_remove (name);
  }
  d->fd = ifb_close (d->fd);
  d->hwpt_id = 0;
  d->dev_id = 0;
  d->state = IFB_VM_DEVICE_RESERVED;
}

static void
release_context (IfbManager *m, IfbVm *vm, gboolean in_store)
{
  if (vm->iommufd >= 0 && vm->ioas_id) {
    int r = ifb_uapi_destroy (m->backend, vm->iommufd, vm->ioas_id);
    if (r < 0)
      ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "IOAS %u not destroyed (%s): it goes with the context",
                  vm->ioas_id, g_strerror (-r));
  }
  if (in_store) {
    g_autofree char *name = ifb_vm_fdname_iommufd (vm);
    ifb_notify_fdstore_remove (name);
  }
  vm->iommufd = ifb_close (vm->iommufd);
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
open_context (IfbManager *m, IfbVm *vm, GError **error)
{
  int r;

  if ((r = ifb_fault_check ("open-iommufd")) < 0 ||
      (r = ifb_uapi_open_iommufd (m->backend, m->dev_dirfd, &vm->iommufd)) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_KERNEL, r, "Guest '%s': opening /dev/iommu", vm->name);
  if (vm->rlimit_per_process &&
      ((r = ifb_fault_check ("rlimit")) < 0 || (r = ifb_uapi_set_rlimit_mode (m->backend, vm->iommufd, true)) < 0)) {
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
realize_unbound (IfbManager *m, IfbVm *vm, IfbVmDevice **devs, guint n, GError **error)
{
  if (vm->iommufd < 0) {
    g_autofree char *name = ifb_vm_fdname_iommufd (vm);
    int r;
    if (!open_context (m, vm, error))
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
 * given devices. On success the fds are in the fd store and the devices are ready; on failure
 * nothing of this call remains.
 */
static gboolean
run_batch (IfbManager *m, IfbVm *vm, IfbVmDevice **devs, guint n, GError **error)
{
  g_autoptr (IfbWorkerBatch) b = ifb_worker_batch_new ();
  ifb_autofd int cgfd = -1, target = -1;
  gboolean leaf = FALSE, ran;
  gboolean new_ctx = vm->iommufd < 0;
  guint pushed = 0;
  gboolean ctx_pushed = FALSE;
  int r;

  if (vm->options.handoff == IFB_VM_HANDOFF_UNBOUND)
    return realize_unbound (m, vm, devs, n, error);
  if (!b)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Mapping a worker batch");
  if (n > IFB_WORKER_MAX_DEVICES)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED, "Too many devices in one request"), FALSE;
  if (!m->cgroups)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_UNAVAILABLE, "No cgroup2 hierarchy: cannot place workers"), FALSE;
  if (!ifb_cgroup_open (m->cgroups, vm->cgroup, &cgfd, error))
    return g_prefix_error (error, "Guest '%s': ", vm->name), FALSE;

  if (new_ctx && !open_context (m, vm, error))
    return FALSE;

  for (guint i = 0; i < n; i++) {
    IfbVmDevice *d = devs[i];
    gboolean selftest = ifb_selftest_device_name_is (d->bdf);   /* a dup of the context fd */
    if (selftest) {
      if ((r = ifb_selftest_device_open (vm, &d->fd)) < 0) {
        ifb_error_set_errno (error, IFB_ERROR_KERNEL, r, "Device %s: opening it", d->bdf);
        goto fail;
      }
    } else if (!ifb_lifecycle_open_device (m, d, &d->fd, error)) {
      goto fail;
    }
    b->devices[i] = (IfbWorkerDevice) {
      .device_fd = d->fd,
      .want_flags = (vm->options.nest_parent ? IFB_HWPT_NEST_PARENT : 0) |
                    (vm->options.dirty_tracking ? IFB_HWPT_DIRTY_TRACKING : 0),
      .allow_plain = vm->options.allow_plain,
      .selftest = selftest,
    };
  }
  b->backend = m->backend;
  b->iommufd = vm->iommufd;
  b->alloc_ioas = new_ctx;
  b->ioas_id = vm->ioas_id;
  b->n_devices = n;

  if (!ifb_cgroup_open_worker_target (cgfd, &target, &leaf, error)) {
    g_prefix_error (error, "Guest '%s': ", vm->name);
    goto fail;
  }
  ran = ifb_worker_run (b, target, m->worker_mode, m->config->worker_timeout_ms, error);
  if (leaf)
    ifb_cgroup_worker_leaf_remove (cgfd);
  if (!ran) {
    g_prefix_error (error, "Guest '%s': ", vm->name);
    goto fail;
  }
  if (b->ioas_err || b->failed_index >= 0) {
    worker_error (vm, b, devs, error);
    goto fail;
  }

  if (new_ctx) {
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
    ifb_selftest_device_adopt (d, wd);
    g_free (d->cgroup);
    d->cgroup = g_strdup (b->cgroup);
    d->worker_pid = b->pid;
    d->state = IFB_VM_DEVICE_READY;
  }

  if (new_ctx) {
    g_autofree char *name = ifb_vm_fdname_iommufd (vm);
    if ((r = ifb_notify_fdstore_add (name, vm->iommufd)) < 0) {
      ifb_error_set_errno (error, IFB_ERROR_FAILED, r, "Guest '%s': storing its iommufd in the fd store", vm->name);
      goto fail;
    }
    ctx_pushed = TRUE;
  }
  for (; pushed < n; pushed++) {
    g_autofree char *name = ifb_vm_fdname_device (vm, devs[pushed]);
    if ((r = ifb_notify_fdstore_add (name, devs[pushed]->fd)) < 0) {
      ifb_error_set_errno (error, IFB_ERROR_FAILED, r, "Device %s: storing its fd in the fd store", devs[pushed]->bdf);
      goto fail;
    }
  }
  return TRUE;

fail:
  for (guint i = 0; i < n; i++)
    release_device (m, vm, devs[i], i < pushed);
  if (new_ctx)
    release_context (m, vm, ctx_pushed);
  return FALSE;
}

static gboolean
resolve_cgroup (IfbManager *m, const IfbVmCreateArgs *a, char **ret_cgroup, GError **error)
{
  int given = (a->cgroup != NULL) + (a->pid > 0) + (a->pidfd >= 0);

  if (given != 1)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                        "Invalid params: give exactly one of 'cgroup', 'pid' or 'pidfd'"), FALSE;
  if (a->cgroup) {
    if (!ifb_cgroup_path_validate (a->cgroup, error))
      return FALSE;
    *ret_cgroup = g_strdup (a->cgroup);
    return TRUE;
  }
  if (a->pid > 0)
    return ifb_cgroup_of_pid (a->pid, ret_cgroup, error);
  {
    /* A pidfd from the caller: its pid is in fdinfo; the pidfd itself pins it. */
    g_autofree char *path = g_strdup_printf ("/proc/self/fdinfo/%d", a->pidfd);
    g_autofree char *info = NULL;
    const char *p;
    if (!g_file_get_contents (path, &info, NULL, NULL) || !(p = strstr (info, "\nPid:")))
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS, "Invalid params: 'pidfd' is not a pidfd"), FALSE;
    return ifb_cgroup_of_pidfd (a->pidfd, (pid_t) atoi (p + 5), ret_cgroup, error);
  }
}

gboolean
ifb_lifecycle_create (IfbManager *m, const IfbVmCreateArgs *a, IfbVm **ret_vm, GError **error)
{
  g_autofree char *cgroup = NULL;
  g_autofree char *uuid = NULL;
  g_autoptr (IfbVm) vm = NULL;
  gboolean exists;

  if (!ifb_vm_name_validate (a->name, error))
    return FALSE;
  if (a->uuid && !g_uuid_string_is_valid (a->uuid))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                        "Invalid params: member 'uuid' is not a UUID: '%s'", a->uuid), FALSE;
  uuid = a->uuid ? g_ascii_strdown (a->uuid, -1) : g_uuid_string_random ();
  if (!resolve_cgroup (m, a, &cgroup, error))
    return FALSE;
  if (ifb_registry_lookup (m->registry, a->name) || ifb_registry_lookup (m->registry, uuid))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_VM_EXISTS, "A guest named '%s' or with UUID %s exists already",
                        a->name, uuid), FALSE;
  if (ifb_registry_n_vms (m->registry) >= m->config->max_vms)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED,
                        "Limit reached: at most %u guests ([limits] max-vms)", m->config->max_vms), FALSE;

  vm = ifb_vm_new (a->name, uuid, cgroup);
  vm->slot = ifb_registry_free_slot (m->registry);
  vm->options = a->options;
  vm->rlimit_per_process = a->rlimit_per_process < 0 ? m->config->rlimit_per_process : a->rlimit_per_process;

  {
    ifb_autofd int fd = -1;
    g_autoptr (GError) local = NULL;
    exists = m->cgroups && ifb_cgroup_open (m->cgroups, cgroup, &fd, &local);
    if (!exists && !vm->options.defer) {
      /* Without a cgroup2 hierarchy nothing set local: say so rather than propagate NULL (found by
       * tests/fuzz/fuzz-dispatch; the dispatcher would have dereferenced the unset error). */
      if (!local)
        local = g_error_new_literal (IFB_ERROR, IFB_ERROR_UNAVAILABLE, "No cgroup2 hierarchy: cannot place workers");
      g_propagate_error (error, g_steal_pointer (&local));
      return g_prefix_error (error, "Guest '%s': ", a->name), FALSE;
    }
  }
  if (exists && !run_batch (m, vm, NULL, 0, error))
    return FALSE;

  if (!ifb_registry_add (m->registry, vm, error) || !ifb_manager_commit (m, vm, error)) {
    if (ifb_registry_lookup (m->registry, vm->name) == vm)
      ifb_registry_remove (m->registry, vm);
    release_context (m, vm, TRUE);
    return FALSE;
  }
  ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Guest '%s' created (cgroup %s, %s)", vm->name, vm->cgroup,
              vm->iommufd >= 0 ? "context ready" : "pending until its cgroup exists");
  ifb_manager_emit (m, "vm.created", ifb_vm_to_json (vm, FALSE));
  *ret_vm = g_steal_pointer (&vm);
  return TRUE;
}

/* The device as sysfs shows it now: on vfio-pci, with a VFIO device cdev. */
static gboolean
lookup_vfio_device (IfbManager *m, const char *bdf, IfbPciDevice **ret_dev, GError **error)
{
  g_autoptr (IfbPciDevice) dev = NULL;
  const char *driver;

  if (!ifb_pci_device_lookup (m->sys_dirfd, bdf, &dev, error))
    return FALSE;
  driver = ifb_pci_device_get_driver (dev);
  if (g_strcmp0 (driver, "vfio-pci") != 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_NOT_VFIO,
                        "Device %s is %s%s%s, not to vfio-pci", bdf,
                        driver ? "bound to '" : "not bound to any driver", driver ? driver : "", driver ? "'" : ""), FALSE;
  if (!ifb_pci_device_get_vfio_cdev (dev))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_NOT_VFIO,
                        "Device %s has no VFIO device cdev (no vfio-dev/vfioN: kernel without VFIO_DEVICE_CDEV?)", bdf), FALSE;
  *ret_dev = g_steal_pointer (&dev);
  return TRUE;
}

gboolean
ifb_lifecycle_open_device (IfbManager *m, IfbVmDevice *d, int *ret_fd, GError **error)
{
  g_autoptr (IfbPciDevice) dev = NULL;
  ifb_autofd int fd = -1;
  guint64 want, got = 0;
  int r;

  if (!lookup_vfio_device (m, d->bdf, &dev, error))
    return FALSE;
  if (g_strcmp0 (d->cdev, ifb_pci_device_get_vfio_cdev (dev)) != 0) {
    g_free (d->cdev);           /* rebound to vfio-pci since attach: it has a new cdev */
    d->cdev = g_strdup (ifb_pci_device_get_vfio_cdev (dev));
  }
  if ((r = ifb_fault_check ("open-device")) < 0 ||
      (r = ifb_uapi_open_device (m->backend, m->dev_dirfd, d->cdev, &fd)) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_KERNEL, r, "Device %s: opening its cdev %s", d->bdf, d->cdev);
  want = ifb_pci_device_get_vfio_rdev (dev);
  r = ifb_uapi_device_rdev (m->backend, fd, &got);
  if (r < 0 || want == 0 || got != want)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_NOT_VFIO,
                        "Device %s: /dev/vfio/devices/%s is %s%u:%u, but sysfs says its cdev is %u:%u; refusing it",
                        d->bdf, d->cdev, r < 0 ? "no device cdev, " : "device ", r < 0 ? 0 : major (got),
                        r < 0 ? 0 : minor (got), major (want), minor (want)), FALSE;
  *ret_fd = ifb_steal_fd (&fd);
  return TRUE;
}

/* Checks of one device for attach; fills *ret_cdev. */
static gboolean
check_device (IfbManager *m, IfbVm *vm, const char *bdf, char **ret_cdev, GError **error)
{
  g_autoptr (IfbPciDevice) dev = NULL;
  IfbVm *owner;

  if (ifb_selftest_device_name_is (bdf)) {
    if (vm->options.handoff == IFB_VM_HANDOFF_UNBOUND)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                          "Device %s is a mock inside the guest's context, with no cdev to hand out: "
                          "selftest devices need the bound hand-off", bdf), FALSE;
    return ifb_selftest_device_check (m, vm, bdf, ret_cdev, error);
  }
  if (!lookup_vfio_device (m, bdf, &dev, error))
    return FALSE;
  owner = ifb_registry_device_owner (m->registry, bdf);
  if (owner == vm)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_BUSY, "Device %s is attached to guest '%s' already", bdf, vm->name), FALSE;
  if (owner)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_BUSY, "Device %s belongs to guest '%s'", bdf, owner->name), FALSE;
  *ret_cdev = g_strdup (ifb_pci_device_get_vfio_cdev (dev));
  return TRUE;
}

gboolean
ifb_lifecycle_attach (IfbManager *m, IfbVm *vm, const char *const *bdfs, guint n, GError **error)
{
  g_autoptr (GPtrArray) devs = g_ptr_array_new_with_free_func ((GDestroyNotify) ifb_vm_device_free);
  gboolean allocate;

  if (n == 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS, "Invalid params: no device given"), FALSE;
  if (vm->devices->len + n > m->config->max_devices_per_vm)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED,
                        "Limit reached: guest '%s' may have at most %u devices ([limits] max-devices-per-vm)",
                        vm->name, m->config->max_devices_per_vm), FALSE;
  for (guint i = 0; i < n; i++) {
    g_autofree char *cdev = NULL;
    IfbVmDevice *d;
    for (guint j = 0; j < i; j++)
      if (strcmp (bdfs[i], bdfs[j]) == 0)
        return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                            "Invalid params: device %s is listed twice", bdfs[i]), FALSE;
    if (!check_device (m, vm, bdfs[i], &cdev, error))
      return FALSE;
    d = ifb_vm_device_new (bdfs[i], cdev);
    if (vm->options.handoff == IFB_VM_HANDOFF_UNBOUND) {
      /* No bind will tell: check now that the node under /dev is the device sysfs names. */
      ifb_autofd int fd = -1;
      if (!ifb_lifecycle_open_device (m, d, &fd, error)) {
        ifb_vm_device_free (d);
        return FALSE;
      }
    }
    /* the lowest index neither the guest's devices nor this request's earlier ones use */
    for (d->index = 0;; d->index++) {
      gboolean taken = FALSE;
      for (guint j = 0; j < vm->devices->len && !taken; j++)
        taken = ((IfbVmDevice *) g_ptr_array_index (vm->devices, j))->index == d->index;
      for (guint j = 0; j < devs->len && !taken; j++)
        taken = ((IfbVmDevice *) g_ptr_array_index (devs, j))->index == d->index;
      if (!taken)
        break;
    }
    g_ptr_array_add (devs, d);
  }

  /* A ready guest allocates now; a pending one only reserves until its cgroup exists. */
  allocate = vm->iommufd >= 0;
  if (!allocate && vm->cgroup) {
    ifb_autofd int fd = -1;
    allocate = m->cgroups && ifb_cgroup_open (m->cgroups, vm->cgroup, &fd, NULL);
  }
  if (allocate) {
    /* A pending guest becoming ready takes its earlier reservations along, in the same worker. */
    g_autoptr (GPtrArray) batch = g_ptr_array_new ();
    for (guint i = 0; vm->iommufd < 0 && i < vm->devices->len; i++)
      g_ptr_array_add (batch, g_ptr_array_index (vm->devices, i));
    for (guint i = 0; i < devs->len; i++)
      g_ptr_array_add (batch, g_ptr_array_index (devs, i));
    if (!run_batch (m, vm, (IfbVmDevice **) batch->pdata, batch->len, error))
      return FALSE;
  }

  for (guint i = 0; i < devs->len; i++) {
    IfbVmDevice *d = g_ptr_array_index (devs, i);
    ifb_registry_claim_device (m->registry, d->bdf, vm);
    g_ptr_array_add (vm->devices, d);
  }
  g_free (g_ptr_array_steal (devs, NULL));   /* the devices are vm's now; the steal returns the old storage (leaked before; found by fuzz-dispatch) */
  for (guint i = 0; i < n; i++) {
    IfbVmDevice *d = ifb_vm_find_device (vm, bdfs[i]);
    gboolean bound = vm->options.handoff == IFB_VM_HANDOFF_BOUND;
    ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, d->bdf, "Device %s %s guest '%s'%s", d->bdf,
                d->state == IFB_VM_DEVICE_READY && bound ? "attached to" : "reserved for", vm->name,
                !bound ? " (unbound hand-off: its VMM binds it)" :
                d->state == IFB_VM_DEVICE_READY && !(d->hwpt_flags & IFB_HWPT_NEST_PARENT) && vm->options.nest_parent
                  ? " with a plain HWPT (its IOMMU cannot nest)" : "");
  }
  if (!ifb_manager_commit (m, vm, error)) {
    for (guint i = 0; i < n; i++) {
      IfbVmDevice *d = ifb_vm_find_device (vm, bdfs[i]);
      release_device (m, vm, d, TRUE);
      ifb_registry_release_device (m->registry, d->bdf);
      g_ptr_array_remove (vm->devices, d);
    }
    return FALSE;
  }
  for (guint i = 0; i < n; i++) {
    json_object *ev = json_object_new_object ();
    json_object_object_add (ev, "vm", json_object_new_string (vm->name));
    json_object_object_add (ev, "device", json_object_new_string (bdfs[i]));
    ifb_manager_emit (m, "device.attached", ev);
  }
  return TRUE;
}

gboolean
ifb_lifecycle_detach (IfbManager *m, IfbVm *vm, const char *bdf, GError **error)
{
  IfbVmDevice *d = ifb_vm_find_device (vm, bdf);
  json_object *ev;

  if (!d)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_NOT_ATTACHED, "Device %s is not attached to guest '%s'", bdf, vm->name), FALSE;
  release_device (m, vm, d, TRUE);
  ifb_registry_release_device (m->registry, bdf);
  ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, bdf, "Device %s detached from guest '%s'", bdf, vm->name);
  g_ptr_array_remove (vm->devices, d);
  if (!ifb_manager_commit (m, vm, error))
    return FALSE;   /* the device is free either way; the next commit writes it */
  ev = json_object_new_object ();
  json_object_object_add (ev, "vm", json_object_new_string (vm->name));
  json_object_object_add (ev, "device", json_object_new_string (bdf));
  ifb_manager_emit (m, "device.detached", ev);
  return TRUE;
}

void
ifb_lifecycle_destroy (IfbManager *m, IfbVm *vm_)
{
  g_autoptr (IfbVm) vm = ifb_registry_remove (m->registry, vm_);
  g_autoptr (GError) error = NULL;
  json_object *ev;

  /* The state goes first: a crash after it leaves fds in the store that match no guest, which
   * restore closes (the guest is gone, as asked); a crash before it leaves the guest whole. The
   * other order could leave a guest missing some of its devices. */
  if (!ifb_manager_commit_removal (m, vm, &error))
    ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "Forgetting the state of '%s': %s, ignoring", vm->name, error->message);
  /* Kernel order: every HWPT (after detaching its device) before the IOAS they sit on. */
  for (guint i = 0; i < vm->devices->len; i++)
    release_device (m, vm, g_ptr_array_index (vm->devices, i), TRUE);
  release_context (m, vm, TRUE);
  ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Guest '%s' destroyed", vm->name);
  ev = json_object_new_object ();
  json_object_object_add (ev, "vm", json_object_new_string (vm->name));
  json_object_object_add (ev, "uuid", json_object_new_string (vm->uuid));
  ifb_manager_emit (m, "vm.destroyed", ev);
}

gboolean
ifb_lifecycle_realize (IfbManager *m, IfbVm *vm, GError **error)
{
  g_autoptr (GPtrArray) pending = g_ptr_array_new ();

  for (guint i = 0; i < vm->devices->len; i++) {
    IfbVmDevice *d = g_ptr_array_index (vm->devices, i);
    if (d->state == IFB_VM_DEVICE_RESERVED)
      g_ptr_array_add (pending, d);
  }
  if (vm->iommufd >= 0 && pending->len == 0)
    return TRUE;
  if (!run_batch (m, vm, (IfbVmDevice **) pending->pdata, pending->len, error))
    return FALSE;
  if (!ifb_manager_commit (m, vm, error)) {
    for (guint i = 0; i < pending->len; i++)
      release_device (m, vm, g_ptr_array_index (pending, i), TRUE);
    return FALSE;
  }
  ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Guest '%s' realized in cgroup %s", vm->name, vm->cgroup);
  ifb_manager_emit (m, "vm.ready", ifb_vm_to_json (vm, FALSE));
  return TRUE;
}

void
ifb_lifecycle_reclaim (IfbManager *m, IfbVm *vm)
{
  g_autoptr (GError) error = NULL;
  gboolean bound = vm->options.handoff == IFB_VM_HANDOFF_BOUND;
  json_object *ev;

  ifb_vm_clear_holders (vm);
  if (vm->iommufd >= 0) {
    /* Back to pending: our own objects in kernel order, then the context with whatever else is
     * in it; bound devices are unbound by closing our fds (the VMM's copies are gone with it). */
    for (guint i = 0; i < vm->devices->len; i++)
      release_device (m, vm, g_ptr_array_index (vm->devices, i), bound);
    release_context (m, vm, TRUE);
    vm->vmm_exits++;
    ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Guest '%s': the last process holding its fds exited; its context is "
                "replaced, freeing what the VMM allocated and pinned", vm->name);
  }
  if (!ifb_lifecycle_realize (m, vm, &error)) {
    ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "Guest '%s': making its context again after its VMM exited: %s; "
                "the next vm.fds tries again", vm->name, error->message);
    g_clear_error (&error);
    if (!ifb_manager_commit (m, vm, &error))
      ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "%s, ignoring", error->message);
  }
  ev = json_object_new_object ();
  json_object_object_add (ev, "vm", json_object_new_string (vm->name));
  json_object_object_add (ev, "uuid", json_object_new_string (vm->uuid));
  json_object_object_add (ev, "vmm_exits", json_object_new_int64 ((gint64) vm->vmm_exits));
  ifb_manager_emit (m, "vm.reclaimed", ev);
}

static int
take_fd (GHashTable *by_name, const char *name)
{
  gpointer v;
  if (!g_hash_table_steal_extended (by_name, name, NULL, &v))
    return -1;
  return GPOINTER_TO_INT (v) - 1;
}

/* Emulated backend only: destroy paging HWPTs on the guest's IOAS that the registry does not
 * reference and nothing uses (left by a crash between allocation and commit). */
static void
reap_orphans (IfbManager *m, IfbVm *vm)
{
  IfbUapiObject objs[256];
  size_t n = 0;

  if (!ifb_uapi_backend_is_emulated (m->backend) || vm->iommufd < 0)
    return;
  if (ifb_uapi_emul_list_objects (vm->iommufd, objs, G_N_ELEMENTS (objs), &n) < 0)
    return;
  for (size_t i = 0; i < MIN (n, G_N_ELEMENTS (objs)); i++) {
    gboolean known = FALSE;
    if (objs[i].type != IFB_UAPI_OBJ_HWPT_PAGING || objs[i].parent_id != vm->ioas_id)
      continue;
    for (guint j = 0; j < vm->devices->len && !known; j++)
      known = ((IfbVmDevice *) g_ptr_array_index (vm->devices, j))->hwpt_id == objs[i].id;
    if (!known && ifb_uapi_destroy (m->backend, vm->iommufd, objs[i].id) == 0)
      ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Destroyed orphaned HWPT %u of guest '%s' (interrupted attach)",
                  objs[i].id, vm->name);
  }
}

static void
tidy (IfbManager *m, IfbVm *vm)
{
  if (!vm->needs_tidy)
    return;
  vm->needs_tidy = false;
  reap_orphans (m, vm);
}

IfbVm *
ifb_lifecycle_get (IfbManager *m, const char *key, GError **error)
{
  IfbVm *vm = ifb_registry_get (m->registry, key, error);
  if (vm)
    tidy (m, vm);
  return vm;
}

typedef struct {
  IfbManager *m;
  GPtrArray *uuids;             /* of char*, left to tidy */
} TidyJob;

static gboolean
tidy_some (gpointer data)
{
  TidyJob *job = data;

  for (int n = 0; n < 64 && job->uuids->len > 0; n++) {
    g_autofree char *uuid = g_ptr_array_steal_index_fast (job->uuids, job->uuids->len - 1);
    IfbVm *vm = ifb_registry_lookup (job->m->registry, uuid);
    if (vm)
      tidy (job->m, vm);
  }
  if (job->uuids->len > 0)
    return G_SOURCE_CONTINUE;
  g_ptr_array_unref (job->uuids);
  g_free (job);
  return G_SOURCE_REMOVE;
}

void
ifb_lifecycle_tidy_in_background (IfbManager *m)
{
  g_autoptr (GPtrArray) vms = ifb_registry_list (m->registry);
  TidyJob *job = g_new0 (TidyJob, 1);

  job->m = m;
  job->uuids = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < vms->len; i++)
    if (((IfbVm *) g_ptr_array_index (vms, i))->needs_tidy)
      g_ptr_array_add (job->uuids, g_strdup (((IfbVm *) g_ptr_array_index (vms, i))->uuid));
  if (job->uuids->len == 0) {
    g_ptr_array_unref (job->uuids);
    g_free (job);
    return;
  }
  g_idle_add (tidy_some, job);
}

/* Restore changed what was saved: say so on disk (failures are logged; the next change retries). */
static void
forget_state (IfbManager *m, IfbVm *vm)
{
  g_autoptr (GError) error = NULL;
  if (!ifb_state_remove_vm (m->runtime_dirfd, vm->uuid, &error))
    ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "%s, ignoring", error->message);
}

void
ifb_lifecycle_restore (IfbManager *m, GPtrArray *saved, int *fds, char **names, guint n_fds)
{
  g_autoptr (GHashTable) by_name = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GPtrArray) kept = g_ptr_array_new ();
  GHashTableIter it;
  gpointer k, v;
  gboolean changed;

  for (guint i = 0; i < n_fds; i++) {
    if (g_hash_table_contains (by_name, names[i])) {
      g_message ("fd store: duplicate entry '%s', closing it", names[i]);
      ifb_close (fds[i]);
      continue;
    }
    g_hash_table_insert (by_name, g_strdup (names[i]), GINT_TO_POINTER (fds[i] + 1));
  }

  /* 1. give each saved guest its fds back */
  for (guint i = 0; i < saved->len; i++) {
    IfbVm *vm = g_steal_pointer (&g_ptr_array_index (saved, i));
    g_autofree char *ctx_name = ifb_vm_fdname_iommufd (vm);

    gboolean bound = vm->options.handoff == IFB_VM_HANDOFF_BOUND;

    vm->iommufd = take_fd (by_name, ctx_name);
    /* An unbound guest's context is an empty /dev/iommu: whole whenever it is there. */
    if (bound && vm->iommufd >= 0 && !vm->ioas_id) {
      /* A pending guest whose realize stored its context but crashed before the commit: the
       * registry says pending, so this context is half-made. Drop it; the next realize redoes it. */
      ifb_notify_fdstore_remove (ctx_name);
      vm->iommufd = ifb_close (vm->iommufd);
    }
    if (vm->iommufd < 0 && vm->ioas_id) {
      ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "Guest '%s': its IOMMUFD context is not in the fd store; dropping the guest",
                  vm->name);
      forget_state (m, vm);
      for (guint j = 0; j < vm->devices->len; j++) {
        g_autofree char *dn = ifb_vm_fdname_device (vm, g_ptr_array_index (vm->devices, j));
        int dfd = take_fd (by_name, dn);
        /* Out of the store too: the manager's copy would keep the device bound for ever. */
        if (dfd >= 0)
          ifb_notify_fdstore_remove (dn);
        ifb_close (dfd);
      }
      ifb_vm_free (vm);
      continue;
    }
    changed = FALSE;
    for (guint j = 0; j < vm->devices->len;) {
      IfbVmDevice *d = g_ptr_array_index (vm->devices, j);
      g_autofree char *dn = ifb_vm_fdname_device (vm, d);
      d->fd = take_fd (by_name, dn);
      if (!bound && d->fd >= 0) {
        /* The broker keeps no fd of an unbound guest's device: a copy would keep it bound. */
        ifb_notify_fdstore_remove (dn);
        d->fd = ifb_close (d->fd);
      }
      if (bound && d->state == IFB_VM_DEVICE_READY && d->fd < 0) {
        ifb_log_vm (G_LOG_LEVEL_WARNING, vm, d->bdf, "Device %s of guest '%s' lost its fd; detaching it", d->bdf, vm->name);
        if (vm->iommufd >= 0 && d->hwpt_id)
          ifb_uapi_destroy (m->backend, vm->iommufd, d->hwpt_id);
        g_ptr_array_remove_index (vm->devices, j);
        changed = TRUE;
        continue;
      }
      if (d->state == IFB_VM_DEVICE_RESERVED && d->fd >= 0) {
        /* Stored by a realize that crashed before its commit: drop it from the store as well,
         * or the manager's copy keeps the device bound and the next realize fails. */
        ifb_notify_fdstore_remove (dn);
        d->fd = ifb_close (d->fd);
      }
      j++;
    }
    if (changed) {
      g_autoptr (GError) error = NULL;
      if (!ifb_state_save_vm (m->runtime_dirfd, vm, &error))
        ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "%s, ignoring", error->message);
    }
    g_ptr_array_add (kept, vm);
  }

  /* 2. whatever is left matches nothing: close it (unbinding such devices) */
  g_hash_table_iter_init (&it, by_name);
  while (g_hash_table_iter_next (&it, &k, &v)) {
    g_message ("fd store: entry '%s' matches no guest in the registry; closing it", (const char *) k);
    ifb_notify_fdstore_remove (k);
    ifb_close (GPOINTER_TO_INT (v) - 1);
  }

  /* 3. tidy each context and register the guest */
  for (guint i = 0; i < kept->len; i++) {
    IfbVm *vm = g_ptr_array_index (kept, i);
    g_autoptr (GError) error = NULL;

    /* Tidying a context (emulated backend) maps it and checks its devices: done after READY=1
     * in the background, or first thing when a client touches the guest (ifb_lifecycle_get()),
     * so a restart with thousands of guests is not held up by it. */
    vm->needs_tidy = ifb_uapi_backend_is_emulated (m->backend);
    if (!ifb_registry_add (m->registry, vm, &error)) {
      ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "Guest '%s' not restored: %s", vm->name, error->message);
      forget_state (m, vm);
      ifb_vm_free (vm);
      continue;
    }
    m->n_restored_vms++;
    ifb_holders_restore (m, vm);
    ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Guest '%s' restored with %u devices", vm->name, vm->devices->len);
  }
}
