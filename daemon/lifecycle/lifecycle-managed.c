/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Managed devices in a guest's life: an attach with `managed` first takes its devices from their
 * host drivers (the device kind's managed operations, device-kind.h: checks, then a worker that
 * rebinds them) while the guest is busy, then attaches them as any other; a failed attach gives
 * them back. Whenever a managed device leaves its guest (detach, destroy, a restart finding it on
 * another driver) it goes back to the driver it came from; one that was on the VMs' driver before
 * stays there. Each device records where it came from (IfbVmDevice.host_driver, in the state).
 */
#define G_LOG_DOMAIN "ifb-lifecycle"

#include <string.h>

#include "device-kind.h"
#include "errors.h"
#include "lifecycle-private.h"
#include "log.h"

typedef struct {
  IfbVm *vm;                    /* a reference */
  GPtrArray *names;             /* of char* */
  GPtrArray *drivers;           /* of char*: where each came from */
  gint64 virt_id;               /* the attach's, passed on */
  const IfbDeviceKindManaged *m;
  IfbLifecycleDone done;
  gpointer data;
} ManagedAttach;

static void
managed_attach_free (ManagedAttach *a)
{
  ifb_vm_free (a->vm);
  g_ptr_array_unref (a->names);
  g_ptr_array_unref (a->drivers);
  g_free (a);
}

/* The attach ended: on failure what it took goes back (its release worker has closed them). */
static void
managed_attach_done (IfbCore *core, IfbVm *vm, const GError *error, gpointer data)
{
  ManagedAttach *a = data;

  for (guint i = 0; error && i < a->names->len; i++)
    a->m->give_back (core, g_ptr_array_index (a->names, i), g_ptr_array_index (a->drivers, i));
  a->done (core, vm, error, a->data);
  managed_attach_free (a);
}

static void
managed_taken (IfbCore *core, const GError *error, gpointer data)
{
  ManagedAttach *a = data;
  IfbVm *vm = a->vm;

  vm->busy = false;   /* the attach proper makes it busy again, or ends the operation */
  if (error || vm->gone) {
    g_autoptr (GError) gone = NULL;
    if (!error)
      error = gone = g_error_new (IFB_ERROR, IFB_ERROR_NO_SUCH_VM, "Guest '%s' is gone", vm->name);
    /* the take gave its devices back already */
    ifb_lifecycle_op_done (core, vm, error, a->done, a->data);
    managed_attach_free (a);
    return;
  }
  ifb_lifecycle_attach_checked (core, vm, (const char *const *) a->names->pdata, a->names->len, a->virt_id,
                                (const char *const *) a->drivers->pdata, managed_attach_done, a);
}

void
ifb_lifecycle_attach (IfbCore *core, IfbVm *vm, const char *const *bdfs, guint n, gint64 virt_id, gboolean managed,
                      IfbLifecycleDone done, gpointer data)
{
  g_autoptr (GError) error = NULL;
  ManagedAttach *a;

  if (!managed || n == 0) {
    ifb_lifecycle_attach_checked (core, vm, bdfs, n, virt_id, NULL, done, data);
    return;
  }
  a = g_new0 (ManagedAttach, 1);
  a->vm = ifb_vm_ref (vm);
  a->names = g_ptr_array_new_with_free_func (g_free);
  a->drivers = g_ptr_array_new_with_free_func (g_free);
  a->done = done;
  a->data = data;
  a->virt_id = virt_id;
  if (vm->devices->len + n > core->config->max_devices_per_vm) {
    g_set_error (&error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED,
                 "Limit reached: guest '%s' may have at most %u devices ([limits] max-devices-per-vm)",
                 vm->name, core->config->max_devices_per_vm);
    goto refuse;
  }
  for (guint i = 0; i < n; i++) {
    const IfbDeviceKind *kind = ifb_device_kind_of (bdfs[i]);
    IfbVm *owner = ifb_registry_device_owner (core->registry, bdfs[i]);
    char *driver = NULL;

    for (guint j = 0; j < i; j++)
      if (strcmp (bdfs[i], bdfs[j]) == 0) {
        g_set_error (&error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS, "Invalid params: device %s is listed twice", bdfs[i]);
        goto refuse;
      }
    if (!kind->managed || (a->m && a->m != kind->managed)) {
      g_set_error (&error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                   "Device %s cannot be managed: a %s device has no host driver to take it from", bdfs[i], kind->name);
      goto refuse;
    }
    a->m = kind->managed;
    /* before anything moves: a device another guest has is never taken from under it */
    if (owner) {
      g_set_error (&error, IFB_ERROR, IFB_ERROR_DEVICE_BUSY, owner == vm ? "Device %s is attached to guest '%s' already"
                                                                         : "Device %s belongs to guest '%s'",
                   bdfs[i], owner->name);
      goto refuse;
    }
    if (!a->m->check (core, vm, bdfs[i], bdfs, n, &driver, &error))
      goto refuse;
    g_ptr_array_add (a->names, g_strdup (bdfs[i]));
    g_ptr_array_add (a->drivers, driver);
  }
  vm->busy = true;
  a->m->take (core, (const char *const *) a->names->pdata, (const char *const *) a->drivers->pdata, a->names->len,
              managed_taken, a);
  return;

refuse:
  managed_attach_free (a);
  ifb_lifecycle_op_done (core, vm, error, done, data);
}

void
ifb_lifecycle_give_back (IfbCore *core, const char *bdf, const char *host_driver)
{
  const IfbDeviceKind *kind = ifb_device_kind_of (bdf);

  if (kind->managed)
    kind->managed->give_back (core, bdf, host_driver);
}

void
ifb_lifecycle_managed_restore (IfbCore *core)
{
  g_autoptr (GPtrArray) vms = ifb_registry_list (core->registry);

  ifb_device_kinds_managed_restore (core);
  /* The state never says a device is the guest's on the VMs' driver when the host shows it on
   * another: such a device leaves its guest and goes back where it came from. */
  for (guint i = 0; i < vms->len; i++) {
    IfbVm *vm = g_ptr_array_index (vms, i);
    gboolean changed = FALSE;

    for (guint j = 0; j < vm->devices->len;) {
      IfbVmDevice *d = g_ptr_array_index (vm->devices, j);
      const IfbDeviceKind *kind = ifb_device_kind_of (d->bdf);
      g_autofree char *driver = d->managed && kind->managed && d->fd < 0 ? kind->managed->driver (core, d->bdf) : NULL;
      g_autofree char *host_driver = NULL;

      if (!driver || strcmp (driver, "vfio-pci") == 0) {
        j++;
        continue;
      }
      ifb_log_vm (G_LOG_LEVEL_WARNING, vm, d->bdf, "Device %s of guest '%s' is on driver '%s', not vfio-pci, after the "
                  "restart: it leaves the guest and goes back to '%s'", d->bdf, vm->name, *driver ? driver : "(none)",
                  d->host_driver);
      host_driver = g_strdup (d->host_driver);
      ifb_registry_release_device (core->registry, d->bdf);
      ifb_lifecycle_give_back (core, d->bdf, host_driver);
      g_ptr_array_remove_index (vm->devices, j);
      changed = TRUE;
    }
    if (changed) {
      g_autoptr (GError) error = NULL;
      if (!ifb_core_persist (core, vm, &error))
        ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "%s, ignoring", error->message);
    }
  }
}
