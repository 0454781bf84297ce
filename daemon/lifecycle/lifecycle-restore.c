/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * After a restart the saved guests (state.c) meet the fds the service manager hands back (the
 * fd store, LISTEN_FDS). ifb_lifecycle_restore() gives each guest its context and device fds by
 * their fd-store names and settles what a crash can leave half-made, following the order of
 * effects lifecycle.c keeps (allocate, fd store, state, reply): a context or device fd stored
 * by a realize that never committed is dropped, a guest whose context is gone is dropped, fds
 * that match no guest are closed (which unbinds their devices). The holders of each guest's fds
 * are looked up again (holders.c).
 *
 * Tidying a restored context — where the backend can list a context's objects (the emulated
 * one), destroying paging HWPTs nobody references, left by a crash between a worker's allocation
 * and its commit — is done after READY=1, a few guests per main-loop turn, or first thing when
 * a client touches the guest.
 */
#define G_LOG_DOMAIN "ifb-lifecycle"

#include <string.h>

#include "holders.h"
#include "lifecycle-private.h"
#include "log.h"
#include "notify.h"
#include "util.h"

static int
take_fd (GHashTable *by_name, const char *name)
{
  gpointer v;
  if (!g_hash_table_steal_extended (by_name, name, NULL, &v))
    return -1;
  return GPOINTER_TO_INT (v) - 1;
}

/* Does the registry reference this object of vm's context? */
static gboolean
known_object (IfbVm *vm, const IfbUapiObject *o)
{
  if (o->type == IFB_UAPI_OBJ_VIOMMU)
    return o->id == vm->viommu_id;
  if (o->type == IFB_UAPI_OBJ_VEVENTQ)
    return o->id == vm->veventq_id;
  for (guint j = 0; j < vm->devices->len; j++) {
    const IfbVmDevice *d = g_ptr_array_index (vm->devices, j);
    if ((o->type == IFB_UAPI_OBJ_VDEVICE ? d->vdev_id : d->hwpt_id) == o->id)
      return TRUE;
  }
  return FALSE;
}

/* Where the backend can list a context's objects: destroy the vEVENTQs, vDEVICEs, vIOMMUs and paging HWPTs
 * on the guest's IOAS that the registry does not reference and nothing uses (left by a crash
 * between allocation and commit), in that order: the kernel refuses a HWPT a vIOMMU uses. */
static void
reap_orphans (IfbCore *core, IfbVm *vm)
{
  static const IfbUapiObjType order[] = { IFB_UAPI_OBJ_VEVENTQ, IFB_UAPI_OBJ_VDEVICE, IFB_UAPI_OBJ_VIOMMU,
                                          IFB_UAPI_OBJ_HWPT_PAGING };
  static const char *const what[] = { "vEVENTQ", "vDEVICE", "vIOMMU", "HWPT" };
  IfbUapiObject objs[256];
  size_t n = 0;

  if (vm->iommufd < 0 || ifb_uapi_list_objects (core->backend, vm->iommufd, objs, G_N_ELEMENTS (objs), &n) < 0)
    return;
  for (size_t k = 0; k < G_N_ELEMENTS (order); k++)
    for (size_t i = 0; i < MIN (n, G_N_ELEMENTS (objs)); i++) {
      if (objs[i].type != order[k] || (order[k] == IFB_UAPI_OBJ_HWPT_PAGING && objs[i].parent_id != vm->ioas_id))
        continue;
      if (!known_object (vm, &objs[i]) && ifb_uapi_destroy (core->backend, vm->iommufd, objs[i].id) == 0)
        ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Destroyed orphaned %s %u of guest '%s' (interrupted attach)",
                    what[k], objs[i].id, vm->name);
    }
}

static void
tidy (IfbCore *core, IfbVm *vm)
{
  if (!vm->needs_tidy || core->restore_releasing)
    return;
  vm->needs_tidy = false;
  reap_orphans (core, vm);
}

IfbVm *
ifb_lifecycle_get (IfbCore *core, const char *key, GError **error)
{
  IfbVm *vm = ifb_registry_get (core->registry, key, error);
  if (vm)
    tidy (core, vm);
  return vm;
}

void
ifb_lifecycle_touch (IfbCore *core, IfbVm *vm)
{
  tidy (core, vm);
}

typedef struct {
  IfbCore *core;
  GPtrArray *uuids;             /* of char*, left to tidy */
} TidyJob;

static gboolean
tidy_some (gpointer data)
{
  TidyJob *job = data;

  for (int n = 0; n < 64 && job->uuids->len > 0; n++) {
    g_autofree char *uuid = g_ptr_array_steal_index_fast (job->uuids, job->uuids->len - 1);
    IfbVm *vm = ifb_registry_lookup (job->core->registry, uuid);
    if (vm)
      tidy (job->core, vm);
  }
  if (job->uuids->len > 0)
    return G_SOURCE_CONTINUE;
  g_ptr_array_unref (job->uuids);
  g_free (job);
  return G_SOURCE_REMOVE;
}

void
ifb_lifecycle_tidy_in_background (IfbCore *core)
{
  g_autoptr (GPtrArray) vms = NULL;
  TidyJob *job;

  if (core->restore_releasing)   /* once the fds of no guest are closed (on_orphans_released()) */
    return;
  vms = ifb_registry_list (core->registry);
  job = g_new0 (TidyJob, 1);

  job->core = core;
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

static void
on_orphans_released (IfbCore *core, gpointer data)
{
  /* Always after the start-up asked for the tidy (READY=1 comes first: workers end only in the
   * main loop), which then found the releases under way. */
  core->restore_releasing = FALSE;
  ifb_lifecycle_managed_restore (core);   /* their devices closed: free to move between drivers */
  ifb_lifecycle_tidy_in_background (core);
}

/* Restore changed what was saved: say so on disk (failures are logged; the next change retries). */
static void
forget_state (IfbCore *core, IfbVm *vm)
{
  g_autoptr (GError) error = NULL;
  if (!ifb_core_forget (core, vm, &error))
    ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "%s, ignoring", error->message);
}

void
ifb_lifecycle_restore (IfbCore *core, GPtrArray *saved, int *fds, char **names, guint n_fds)
{
  g_autoptr (GHashTable) by_name = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GPtrArray) kept = g_ptr_array_new ();
  GArray *orphan_ctx = g_array_new (FALSE, FALSE, sizeof (int));   /* fds of no guest: released below */
  GArray *orphan_dev = g_array_new (FALSE, FALSE, sizeof (int));
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

    gboolean bound = vm->options.handoff == IFB_HANDOFF_BOUND;

    vm->iommufd = take_fd (by_name, ctx_name);
    /* An unbound guest's context is an empty /dev/iommu: whole whenever it is there. */
    if (bound && vm->iommufd >= 0 && !vm->ioas_id) {
      /* A pending guest whose realize stored its context but crashed before the commit: the
       * registry says pending, so this context is half-made. Drop it; the next realize redoes it. */
      ifb_notify_fdstore_remove (ctx_name);
      g_array_append_val (orphan_ctx, vm->iommufd);
      vm->iommufd = -1;
    }
    if (vm->iommufd < 0 && vm->ioas_id) {
      ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "Guest '%s': its IOMMUFD context is not in the fd store; dropping the guest",
                  vm->name);
      forget_state (core, vm);
      for (guint j = 0; j < vm->devices->len; j++) {
        g_autofree char *dn = ifb_vm_fdname_device (vm, g_ptr_array_index (vm->devices, j));
        int dfd = take_fd (by_name, dn);
        /* Out of the store too: the manager's copy would keep the device bound for ever. */
        if (dfd >= 0) {
          ifb_notify_fdstore_remove (dn);
          g_array_append_val (orphan_dev, dfd);
        }
      }
      ifb_vm_free (vm);
      continue;
    }
    if (vm->iommufd >= 0) {
      /* the vEVENTQ's fd, made with the vIOMMU; one the state does not know is closed below */
      g_autofree char *qn = ifb_vm_fdname_veventq (vm);
      if (vm->veventq_id)
        vm->veventq_fd = take_fd (by_name, qn);
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
          ifb_uapi_destroy (core->backend, vm->iommufd, d->hwpt_id);
        g_ptr_array_remove_index (vm->devices, j);
        changed = TRUE;
        continue;
      }
      if (d->state == IFB_VM_DEVICE_RESERVED && d->fd >= 0) {
        /* Stored by a realize that crashed before its commit: drop it from the store as well,
         * or the manager's copy keeps the device bound and the next realize fails. */
        ifb_notify_fdstore_remove (dn);
        g_array_append_val (orphan_dev, d->fd);
        d->fd = -1;
      }
      j++;
    }
    if (changed) {
      g_autoptr (GError) error = NULL;
      if (!ifb_core_persist (core, vm, &error))
        ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "%s, ignoring", error->message);
    }
    g_ptr_array_add (kept, vm);
  }

  /* 2. whatever is left matches nothing: close it (unbinding such devices) */
  g_hash_table_iter_init (&it, by_name);
  while (g_hash_table_iter_next (&it, &k, &v)) {
    int fd = GPOINTER_TO_INT (v) - 1;
    g_message ("fd store: entry '%s' matches no guest in the registry; closing it", (const char *) k);
    ifb_notify_fdstore_remove (k);
    if (((const char *) k)[0] == 'e')   /* a vEVENTQ: no device, nothing to reset */
      ifb_close (fd);
    else
      g_array_append_val (((const char *) k)[0] == 'c' ? orphan_ctx : orphan_dev, fd);
  }

  /* 3. tidy each context and register the guest */
  for (guint i = 0; i < kept->len; i++) {
    IfbVm *vm = g_ptr_array_index (kept, i);
    g_autoptr (GError) error = NULL;

    /* Tidying a context (listing its objects: the emulated backend maps it and checks its
     * devices) is done after READY=1 in the background, or first thing when a client touches the
     * guest (ifb_lifecycle_get()), so a restart with thousands of guests is not held up by it. */
    vm->needs_tidy = vm->iommufd >= 0;
    if (!ifb_registry_add (core->registry, vm, &error)) {
      ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "Guest '%s' not restored: %s", vm->name, error->message);
      forget_state (core, vm);
      ifb_vm_free (vm);
      continue;
    }
    core->gauges.restored_vms++;
    ifb_holders_restore (core, vm);
    ifb_log_vm (G_LOG_LEVEL_MESSAGE, vm, NULL, "Guest '%s' restored with %u devices", vm->name, vm->devices->len);
  }

  /* 4. the fds of no guest go to release workers (a bound device's last close resets it); a
   * context's orphaned HWPTs are free to destroy only once their devices are closed, so tidying
   * waits for that */
  if (orphan_ctx->len + orphan_dev->len == 0) {
    g_array_unref (orphan_ctx);
    g_array_unref (orphan_dev);
    ifb_lifecycle_managed_restore (core);
    return;
  }
  g_message ("fd store: %u contexts and %u device fds of no guest are closed by release workers",
             orphan_ctx->len, orphan_dev->len);
  core->restore_releasing = TRUE;
  ifb_lifecycle_release_fds (core, orphan_ctx, orphan_dev, on_orphans_released, NULL);
}
