/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * A guest goes through: created (context + IOAS, or "pending" when its cgroup will only appear
 * later, as under libvirt where the hook runs before QEMU's cgroup exists), devices attached
 * (each "reserved" by ownership at once, and "ready" once bound with its HWPT), destroyed.
 *
 * Every allocation goes through ifb_lifecycle_run_batch() (lifecycle-work.c): one worker in the
 * guest's cgroup per request (worker.c), which the main loop starts and does not wait for; every
 * teardown through the operation's release worker (ifb_lifecycle_op_done()). While it runs the guest is busy:
 * requests that would change it wait (the dispatcher parks them, ifb_vm_when_idle()) and
 * run in arrival order when it is idle again, while other guests' requests go on. An operation
 * ends by calling its done callback once, then the next waiting request runs (op_done()).
 * The order of effects is chosen so a crash or failure at any point leaves a state that
 * restore() can make whole without guessing:
 *   1. the worker allocates (and undoes its own work if a step fails);
 *   2. the new fds go to the fd store (FDSTORE=1);
 *   3. the guest's state is written (ifb_core_persist());
 *   4. the reply is sent.
 * Destroying goes the other way round: the state is removed first, then fds and objects.
 * A failure in 2 or 3 is undone here (detach, destroy, close, FDSTOREREMOVE). A crash after 2
 * leaves fds in the store that the registry does not know: restore() closes them, which unbinds
 * the devices, and where the backend can list objects destroys the HWPTs nobody references. A crash after 3
 * but before 4 leaves a complete guest the client was not told about; asking again says it
 * exists.
 */
#define G_LOG_DOMAIN "ifb-lifecycle"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
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

/* ---- operations ------------------------------------------------------------------------ */

typedef struct {
  IfbLifecycleDone done;
  gpointer data;
  GPtrArray *added;             /* attach: the devices this request added (borrowed from the guest) */
} OpCtx;

static OpCtx *
op_ctx_new (IfbLifecycleDone done, gpointer data)
{
  OpCtx *c = g_new0 (OpCtx, 1);
  c->done = done;
  c->data = data;
  return c;
}

static void
op_ctx_finish (OpCtx *c, IfbCore *core, IfbVm *vm, const GError *error)
{
  ifb_lifecycle_op_done (core, vm, error, c->done, c->data);
  if (c->added)
    g_ptr_array_unref (c->added);
  g_free (c);
}

/*
 * How an allocating operation (create, attach, realize) ends once run_batch() allocated what it
 * needed and put the fds in the fd store: the guest's state is written (ifb_core_persist()),
 * then the operation is announced and ends. When the worker or the write failed, what the
 * operation added is undone instead and it ends with the error — nothing half-made stays.
 */
typedef struct {
  /* Undo what the operation added; TRUE when that ended the operation too (a failed create). */
  gboolean (*undo) (IfbCore *core, IfbVm *vm, OpCtx *c, const GError *error);
  void (*announce) (IfbCore *core, IfbVm *vm, OpCtx *c);
} OpCommit;

static void
op_commit (IfbCore *core, IfbVm *vm, OpCtx *c, const GError *error, const OpCommit *how)
{
  g_autoptr (GError) local = NULL;

  if (!error && !ifb_core_persist (core, vm, &local))
    error = local;
  if (error) {
    if (!how->undo (core, vm, c, error))
      op_ctx_finish (c, core, vm, error);
    return;
  }
  how->announce (core, vm, c);
  op_ctx_finish (c, core, vm, NULL);
}

static gboolean
resolve_cgroup (IfbCore *core, const IfbVmCreateArgs *a, char **ret_cgroup, GError **error)
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

/* Never seen by anyone but requests that waited for it: they run and find it gone. */
static gboolean
create_undo (IfbCore *core, IfbVm *vm, OpCtx *c, const GError *error)
{
  g_autoptr (IfbVm) removed = ifb_registry_remove (core->registry, vm);

  ifb_lifecycle_release_context (core, vm, TRUE);
  vm->gone = true;
  c->done (core, NULL, error, c->data);
  ifb_vm_set_idle (vm);
  g_free (c);
  return TRUE;
}

static void
create_announce (IfbCore *core, IfbVm *vm, OpCtx *c)
{
  ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Guest '%s' created (cgroup %s, %s)", vm->name, vm->cgroup,
              vm->iommufd >= 0 ? "context ready" : "pending until its cgroup exists");
  ifb_core_emit (core, "vm.created", ifb_vm_to_json (vm, FALSE));
}

static void
create_done (IfbCore *core, IfbVm *vm, const GError *error, gpointer data)
{
  static const OpCommit how = { create_undo, create_announce };
  op_commit (core, vm, data, error, &how);
}

void
ifb_lifecycle_create (IfbCore *core, const IfbVmCreateArgs *a, IfbLifecycleDone done, gpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *cgroup = NULL;
  g_autofree char *uuid = NULL;
  IfbVm *vm, *other;
  gboolean exists;

  if (!ifb_vm_name_validate (a->name, &error))
    goto refuse;
  if (a->uuid && !g_uuid_string_is_valid (a->uuid)) {
    g_set_error (&error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS, "Invalid params: member 'uuid' is not a UUID: '%s'", a->uuid);
    goto refuse;
  }
  uuid = a->uuid ? g_ascii_strdown (a->uuid, -1) : g_uuid_string_random ();
  if (!resolve_cgroup (core, a, &cgroup, &error) ||
      !ifb_peer_check_guest_cgroup (a->caller, cgroup, core->self_cgroup, a->allow_caller_cgroup, &error))
    goto refuse;
  if (ifb_registry_lookup (core->registry, a->name) || ifb_registry_lookup (core->registry, uuid)) {
    g_set_error (&error, IFB_ERROR, IFB_ERROR_VM_EXISTS, "A guest named '%s' or with UUID %s exists already", a->name, uuid);
    goto refuse;
  }
  if ((other = ifb_registry_cgroup_overlap (core->registry, cgroup, NULL))) {
    /* The other guest and its cgroup only to root: to anyone else that a guest is there is
     * already more than vm.list tells a reader. */
    if (a->caller && a->caller->uid == 0)
      g_set_error (&error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID,
                   "Cgroup %s overlaps guest '%s''s cgroup %s (equal, inside or containing it): a process of one "
                   "guest could take the other's fds", cgroup, other->name, other->cgroup);
    else
      g_set_error (&error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID,
                   "Cgroup %s overlaps another guest's cgroup (equal, inside or containing it)", cgroup);
    goto refuse;
  }
  if (ifb_registry_n_vms (core->registry) >= core->config->max_vms) {
    g_set_error (&error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED, "Limit reached: at most %u guests ([limits] max-vms)",
                 core->config->max_vms);
    goto refuse;
  }
  {
    ifb_autofd int fd = -1;
    exists = core->cgroups && ifb_cgroup_open (core->cgroups, cgroup, &fd, &error);
    if (!exists && !a->options.defer) {
      /* Without a cgroup2 hierarchy nothing set the error: say so rather than pass NULL on. */
      if (!error)
        error = g_error_new_literal (IFB_ERROR, IFB_ERROR_UNAVAILABLE, "No cgroup2 hierarchy: cannot place workers");
      g_prefix_error (&error, "Guest '%s': ", a->name);
      goto refuse;
    }
    g_clear_error (&error);
  }

  vm = ifb_vm_new (a->name, uuid, cgroup);
  vm->slot = ifb_registry_free_slot (core->registry);
  vm->options = a->options;
  vm->rlimit_per_process = a->rlimit_per_process < 0 ? core->config->rlimit_per_process : a->rlimit_per_process;
  /* In the registry at once: its name is taken, and requests for it wait until it is made. */
  if (!ifb_registry_add (core->registry, vm, &error)) {
    ifb_vm_free (vm);
    goto refuse;
  }
  if (exists)
    ifb_lifecycle_run_batch (core, vm, NULL, 0, create_done, op_ctx_new (done, data));
  else
    create_done (core, vm, NULL, op_ctx_new (done, data));
  return;

refuse:
  done (core, NULL, error, data);
}

/* Checks of one device for attach; fills *ret_cdev. */
static gboolean
check_device (IfbCore *core, IfbVm *vm, const char *bdf, char **ret_cdev, GError **error)
{
  const IfbDeviceKind *kind = ifb_device_kind_of (bdf);
  IfbVm *owner;

  if (!kind->has_cdev && vm->options.handoff == IFB_HANDOFF_UNBOUND)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                        "Device %s has no cdev to hand out (a %s device lives inside the guest's context): "
                        "%s devices need the bound hand-off", bdf, kind->name, kind->name), FALSE;
  if (!kind->check (core, bdf, ret_cdev, error))
    return FALSE;
  owner = ifb_registry_device_owner (core->registry, bdf);
  if (owner == vm)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_BUSY, "Device %s is attached to guest '%s' already", bdf, vm->name), FALSE;
  if (owner)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_BUSY, "Device %s belongs to guest '%s'", bdf, owner->name), FALSE;
  return TRUE;
}

/* The devices an attach added go again (its allocation or commit failed). */
static void
attach_undo (IfbCore *core, IfbVm *vm, GPtrArray *added)
{
  for (guint i = 0; i < added->len; i++) {
    IfbVmDevice *d = g_ptr_array_index (added, i);
    ifb_lifecycle_release_device (core, vm, d, d->state == IFB_VM_DEVICE_READY);
    ifb_registry_release_device (core->registry, d->bdf);
    g_ptr_array_remove (vm->devices, d);
  }
  g_ptr_array_set_size (added, 0);
}

static gboolean
attach_undo_op (IfbCore *core, IfbVm *vm, OpCtx *c, const GError *error)
{
  attach_undo (core, vm, c->added);
  return FALSE;
}

static void
attach_announce (IfbCore *core, IfbVm *vm, OpCtx *c)
{
  gboolean bound = vm->options.handoff == IFB_HANDOFF_BOUND;

  for (guint i = 0; i < c->added->len; i++) {
    IfbVmDevice *d = g_ptr_array_index (c->added, i);
    json_object *ev = json_object_new_object ();

    ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, d->bdf, "Device %s %s guest '%s'%s", d->bdf,
                d->state == IFB_VM_DEVICE_READY && bound ? "attached to" : "reserved for", vm->name,
                !bound ? " (unbound hand-off: its VMM binds it)" :
                d->state == IFB_VM_DEVICE_READY && !(d->hwpt_flags & IFB_HWPT_NEST_PARENT) && vm->options.nest_parent
                  ? " with a plain HWPT (its IOMMU cannot nest)" : "");
    json_object_object_add (ev, "vm", json_object_new_string (vm->name));
    json_object_object_add (ev, "device", json_object_new_string (d->bdf));
    ifb_core_emit (core, "device.attached", ev);
  }
}

static void
attach_done (IfbCore *core, IfbVm *vm, const GError *error, gpointer data)
{
  static const OpCommit how = { attach_undo_op, attach_announce };
  op_commit (core, vm, data, error, &how);
}

void
ifb_lifecycle_attach_checked (IfbCore *core, IfbVm *vm, const char *const *bdfs, guint n, gint64 virt_id,
                              const char *const *host_drivers, IfbLifecycleDone done, gpointer data)
{
  g_autoptr (GPtrArray) devs = g_ptr_array_new_with_free_func ((GDestroyNotify) ifb_vm_device_free);
  g_autoptr (GError) error = NULL;
  gboolean allocate;
  OpCtx *c;

  if (n == 0) {
    g_set_error (&error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS, "Invalid params: no device given");
    goto refuse;
  }
  if (vm->devices->len + n > core->config->max_devices_per_vm) {
    g_set_error (&error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED,
                 "Limit reached: guest '%s' may have at most %u devices ([limits] max-devices-per-vm)",
                 vm->name, core->config->max_devices_per_vm);
    goto refuse;
  }
  for (guint i = 0; i < n; i++) {
    g_autofree char *cdev = NULL;
    IfbVmDevice *d;
    for (guint j = 0; j < i; j++)
      if (strcmp (bdfs[i], bdfs[j]) == 0) {
        g_set_error (&error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS, "Invalid params: device %s is listed twice", bdfs[i]);
        goto refuse;
      }
    if (!check_device (core, vm, bdfs[i], &cdev, &error) ||
        !ifb_lifecycle_viommu_check_attach (vm, bdfs[i], virt_id >= 0 && n == 1, (guint64) virt_id, &error))
      goto refuse;
    d = ifb_vm_device_new (bdfs[i], cdev);
    d->has_virt_id = virt_id >= 0 && n == 1;
    d->virt_id = d->has_virt_id ? (guint64) virt_id : 0;
    d->managed = host_drivers != NULL;
    d->host_driver = host_drivers ? g_strdup (host_drivers[i]) : NULL;
    g_ptr_array_add (devs, d);
    if (vm->options.handoff == IFB_HANDOFF_UNBOUND) {
      /* No bind will tell: check now that the node under /dev is the device sysfs names. */
      ifb_autofd int fd = -1;
      if (!ifb_lifecycle_open_device (core, vm, d, &fd, &error))
        goto refuse;
    }
    /* the lowest index neither the guest's devices nor this request's earlier ones use */
    for (d->index = 0;; d->index++) {
      gboolean taken = FALSE;
      for (guint j = 0; j < vm->devices->len && !taken; j++)
        taken = ((IfbVmDevice *) g_ptr_array_index (vm->devices, j))->index == d->index;
      for (guint j = 0; j + 1 < devs->len && !taken; j++)
        taken = ((IfbVmDevice *) g_ptr_array_index (devs, j))->index == d->index;
      if (!taken)
        break;
    }
  }

  /* Owned from here on (another guest's attach of the same device is refused), reserved until
   * allocated: a ready guest allocates now, a pending one once its cgroup exists. */
  c = op_ctx_new (done, data);
  c->added = g_ptr_array_new ();
  for (guint i = 0; i < devs->len; i++) {
    IfbVmDevice *d = g_ptr_array_index (devs, i);
    ifb_registry_claim_device (core->registry, d->bdf, vm);
    g_ptr_array_add (c->added, d);
  }
  g_ptr_array_extend_and_steal (vm->devices, g_steal_pointer (&devs));
  allocate = vm->iommufd >= 0;
  if (!allocate && vm->cgroup) {
    ifb_autofd int fd = -1;
    allocate = core->cgroups && ifb_cgroup_open (core->cgroups, vm->cgroup, &fd, NULL);
  }
  if (allocate) {
    /* A pending guest becoming ready takes its earlier reservations along, in the same worker. */
    g_autoptr (GPtrArray) batch = g_ptr_array_new ();
    for (guint i = 0; i < vm->devices->len; i++) {
      IfbVmDevice *d = g_ptr_array_index (vm->devices, i);
      if (vm->iommufd < 0 || g_ptr_array_find (c->added, d, NULL))
        g_ptr_array_add (batch, d);
    }
    ifb_lifecycle_run_batch (core, vm, (IfbVmDevice **) batch->pdata, batch->len, attach_done, c);
  } else {
    attach_done (core, vm, NULL, c);
  }
  return;

refuse:
  ifb_lifecycle_op_done (core, vm, error, done, data);
}

typedef struct {
  IfbLifecycleDone done;
  gpointer data;
  char *bdf;
  gboolean managed;
  char *host_driver;
} DetachCtx;

static void
detach_done (IfbCore *core, IfbVm *vm, const GError *error, gpointer data)
{
  DetachCtx *c = data;
  g_autoptr (GError) local = NULL;
  json_object *ev;

  /* released: now another guest may have it (a managed one once it is back, or taken again) */
  ifb_registry_release_device (core->registry, c->bdf);
  if (c->managed)
    ifb_lifecycle_give_back (core, c->bdf, c->host_driver);
  ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, c->bdf, "Device %s detached from guest '%s'", c->bdf, vm->name);
  if (!ifb_core_persist (core, vm, &local)) {
    c->done (core, vm, local, c->data);   /* the device is free either way; the next commit writes it */
  } else {
    ev = json_object_new_object ();
    json_object_object_add (ev, "vm", json_object_new_string (vm->name));
    json_object_object_add (ev, "device", json_object_new_string (c->bdf));
    ifb_core_emit (core, "device.detached", ev);
    c->done (core, vm, NULL, c->data);
  }
  g_free (c->bdf);
  g_free (c->host_driver);
  g_free (c);
}

void
ifb_lifecycle_detach (IfbCore *core, IfbVm *vm, const char *bdf, IfbLifecycleDone done, gpointer data)
{
  IfbVmDevice *d = ifb_vm_find_device (vm, bdf);
  g_autoptr (GError) error = NULL;
  DetachCtx *c;

  if (!d) {
    g_set_error (&error, IFB_ERROR, IFB_ERROR_NOT_ATTACHED, "Device %s is not attached to guest '%s'", bdf, vm->name);
    ifb_lifecycle_op_done (core, vm, error, done, data);
    return;
  }
  if (!ifb_lifecycle_viommu_check_detach (vm, d, &error)) {
    ifb_lifecycle_op_done (core, vm, error, done, data);
    return;
  }
  c = g_new0 (DetachCtx, 1);
  c->done = done;
  c->data = data;
  c->bdf = g_strdup (bdf);
  c->managed = d->managed;
  c->host_driver = g_strdup (d->host_driver);
  ifb_lifecycle_release_device (core, vm, d, TRUE);
  g_ptr_array_remove (vm->devices, d);
  ifb_lifecycle_op_done (core, vm, NULL, detach_done, c);
}

static void
destroy_done (IfbCore *core, IfbVm *vm, const GError *error, gpointer data)
{
  OpCtx *c = data;
  g_autoptr (IfbVm) removed = ifb_registry_remove (core->registry, vm);   /* its devices are free now */
  json_object *ev;

  vm->gone = true;
  for (guint i = 0; i < vm->devices->len; i++) {
    IfbVmDevice *d = g_ptr_array_index (vm->devices, i);
    if (d->managed)
      ifb_lifecycle_give_back (core, d->bdf, d->host_driver);
  }
  ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Guest '%s' destroyed", vm->name);
  ev = json_object_new_object ();
  json_object_object_add (ev, "vm", json_object_new_string (vm->name));
  json_object_object_add (ev, "uuid", json_object_new_string (vm->uuid));
  ifb_core_emit (core, "vm.destroyed", ev);
  if (c->done)
    c->done (core, vm, NULL, c->data);
  g_free (c);
}

void
ifb_lifecycle_destroy (IfbCore *core, IfbVm *vm, IfbLifecycleDone done, gpointer data)
{
  g_autoptr (GError) error = NULL;

  g_return_if_fail (!vm->busy);
  vm->destroying = true;
  /* The state goes first: a crash after it leaves fds in the store that match no guest, which
   * restore closes (the guest is gone, as asked); a crash before it leaves the guest whole. The
   * other order could leave a guest missing some of its devices. */
  if (!ifb_core_forget (core, vm, &error))
    ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "Forgetting the state of '%s': %s, ignoring", vm->name, error->message);
  ifb_vm_clear_holders (vm);
  /* Kernel order: every HWPT (after detaching its device) before the IOAS they sit on. */
  for (guint i = 0; i < vm->devices->len; i++)
    ifb_lifecycle_release_device (core, vm, g_ptr_array_index (vm->devices, i), TRUE);
  ifb_lifecycle_release_context (core, vm, TRUE);
  ifb_lifecycle_op_done (core, vm, NULL, destroy_done, op_ctx_new (done, data));
}

static void
destroy_quietly (IfbCore *core, IfbVm *vm)
{
  ifb_lifecycle_destroy (core, vm, NULL, NULL);
}

void
ifb_lifecycle_destroy_when_idle (IfbCore *core, IfbVm *vm)
{
  ifb_lifecycle_when_idle_do (core, vm, destroy_quietly);
}

/* The devices go back to reserved (a failed worker left them so already); the guest stays. */
static gboolean
realize_undo (IfbCore *core, IfbVm *vm, OpCtx *c, const GError *error)
{
  for (guint i = 0; i < vm->devices->len; i++) {
    IfbVmDevice *d = g_ptr_array_index (vm->devices, i);
    if (d->state == IFB_VM_DEVICE_READY)
      ifb_lifecycle_release_device (core, vm, d, TRUE);
  }
  return FALSE;
}

static void
realize_announce (IfbCore *core, IfbVm *vm, OpCtx *c)
{
  ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Guest '%s' realized in cgroup %s", vm->name, vm->cgroup);
  ifb_core_emit (core, "vm.ready", ifb_vm_to_json (vm, FALSE));
}

static void
realize_done (IfbCore *core, IfbVm *vm, const GError *error, gpointer data)
{
  static const OpCommit how = { realize_undo, realize_announce };
  op_commit (core, vm, data, error, &how);
}

void
ifb_lifecycle_realize (IfbCore *core, IfbVm *vm, IfbLifecycleDone done, gpointer data)
{
  g_autoptr (GPtrArray) pending = g_ptr_array_new ();

  for (guint i = 0; i < vm->devices->len; i++) {
    IfbVmDevice *d = g_ptr_array_index (vm->devices, i);
    if (d->state == IFB_VM_DEVICE_RESERVED)
      g_ptr_array_add (pending, d);
  }
  if (vm->iommufd >= 0 && pending->len == 0) {
    ifb_lifecycle_op_done (core, vm, NULL, done, data);
    return;
  }
  ifb_lifecycle_run_batch (core, vm, (IfbVmDevice **) pending->pdata, pending->len, realize_done, op_ctx_new (done, data));
}

static void
reclaim_done (IfbCore *core, IfbVm *vm, const GError *error, gpointer data)
{
  g_autoptr (GError) local = NULL;
  json_object *ev;

  if (error) {
    ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "Guest '%s': making its context again after its VMM exited: %s; "
                "the next vm.fds tries again", vm->name, error->message);
    if (!ifb_core_persist (core, vm, &local))
      ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "%s, ignoring", local->message);
  }
  ev = json_object_new_object ();
  json_object_object_add (ev, "vm", json_object_new_string (vm->name));
  json_object_object_add (ev, "uuid", json_object_new_string (vm->uuid));
  json_object_object_add (ev, "vmm_exits", json_object_new_int64 ((gint64) vm->vmm_exits));
  ifb_core_emit (core, "vm.reclaimed", ev);
}

static void
reclaim_released (IfbCore *core, IfbVm *vm, const GError *error, gpointer data)
{
  if (!vm->gone)
    ifb_lifecycle_realize (core, vm, reclaim_done, NULL);
}

static void
reclaim_now (IfbCore *core, IfbVm *vm)
{
  gboolean bound = vm->options.handoff == IFB_HANDOFF_BOUND;

  if (vm->holders->len > 0)
    return;   /* a new VMM took the fds while the guest was busy */
  if (vm->iommufd >= 0) {
    /* Back to pending: our own objects in kernel order, then the context with whatever else is
     * in it; bound devices are unbound by closing our fds (the VMM's copies are gone with it). */
    for (guint i = 0; i < vm->devices->len; i++)
      ifb_lifecycle_release_device (core, vm, g_ptr_array_index (vm->devices, i), bound);
    ifb_lifecycle_release_context (core, vm, TRUE);
    vm->vmm_exits++;
    ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Guest '%s': the last process holding its fds exited; its context is "
                "replaced, freeing what the VMM allocated and pinned", vm->name);
  }
  ifb_lifecycle_op_done (core, vm, NULL, reclaim_released, NULL);   /* the devices released before they are bound again */
}

void
ifb_lifecycle_reclaim (IfbCore *core, IfbVm *vm)
{
  ifb_lifecycle_when_idle_do (core, vm, reclaim_now);
}
