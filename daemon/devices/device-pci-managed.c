/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Managed PCI devices: taken from their host driver for a guest (bound to vfio-pci) and given
 * back to it when the guest no longer has them, the way libvirt's managed hostdevs are.
 *
 * Theory of operation
 *
 * Checks (managed_check): the operator offered the device ([devices] allow, by address or by
 * vendor:device ids); it exists and is no bridge; its IOMMU group is viable — every other
 * endpoint in it is on no driver, vfio-pci or pci-stub, or is taken managed for the same guest
 * (in the same request or before), and belongs to no other guest (the kernel gives a group's
 * DMA to one owner); and, unless its address itself is in the allow-list, it is not the host's
 * way out (a network interface that is up with an address).
 *
 * The ledger (device-pci-ledger.c): every device taken from a host driver other than vfio-pci,
 * with that driver, from before its first sysfs write until it is back — written to the runtime
 * directory (managed-devices.json) on every change, and shown by device.list (managed), so a crash at any point leaves a record of what to
 * give back. Its entries are held (a guest has it), taking or returning (a worker is moving it;
 * whoever wants it waits, see when_free), or waiting (giving it back failed; tried again every
 * [devices] return-retry-ms, each failure a journal line). A device in the ledger is nobody
 * else's to attach until it is back, except managed, which takes it again.
 *
 * The sysfs writes and the waits run in a worker (rebind.c): a driver's probe or remove can take
 * seconds on real hardware, and the main loop never waits. A take that fails — a step refused, or
 * the driver or the VFIO cdev not there within [devices] bind-timeout-ms — gives every device of
 * the take back before the caller hears of it, so a refused attach leaves the devices where they
 * were. A device that was on vfio-pci before is never moved, and stays there after.
 *
 * After a restart (managed_restore) the ledger is read back: what a restored guest holds stays
 * held, the rest is given back.
 */
#define G_LOG_DOMAIN "ifb-device"

#include <errno.h>
#include <string.h>

#include "device-kind-private.h"
#include "device-pci-ledger.h"
#include "errors.h"
#include "fault.h"
#include "json.h"
#include "pci-device.h"
#include "util.h"
#include "worker.h"

/* One daemon per process: the retry timer, and who waits for a device in flight. */
static guint retry_source;
static GQueue flight_waiters = G_QUEUE_INIT;

typedef struct {
  void (*fn) (gpointer data);
  gpointer data;
} Waiter;

static void
run_flight_waiters (void)
{
  GQueue q = flight_waiters;
  g_queue_init (&flight_waiters);
  for (Waiter *w; (w = g_queue_pop_head (&q));) {
    w->fn (w->data);
    g_free (w);
  }
}

/* ---- checks ------------------------------------------------------------------------------- */

static gboolean
name_in (const char *name, const char *const *list, guint n)
{
  for (guint i = 0; i < n; i++)
    if (strcmp (list[i], name) == 0)
      return TRUE;
  return FALSE;
}

/* Every other endpoint of the group is on no host driver, or goes to the same guest managed. */
static gboolean
check_group (IfbCore *core, IfbVm *vm, const IfbPciDevice *dev, const char *const *with, guint n_with, GError **error)
{
  const char *name = ifb_pci_device_get_bdf (dev);
  int group = ifb_pci_device_get_iommu_group (dev);
  g_autoptr (GPtrArray) members = NULL;
  g_autoptr (GError) local = NULL;

  if (group < 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                        "Device %s has no IOMMU group (no IOMMU, or it is off): it cannot be given to a guest", name), FALSE;
  if (!(members = ifb_pci_group_devices (core->sys_dirfd, group, &local)))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "Device %s: IOMMU group %d is not viable: %s",
                        name, group, local->message), FALSE;
  for (guint i = 0; i < members->len; i++) {
    const char *m = g_ptr_array_index (members, i);
    g_autoptr (IfbPciDevice) md = NULL;
    IfbVm *owner;
    IfbVmDevice *vd;
    const char *drv;

    if (strcmp (m, name) == 0 || !ifb_pci_device_lookup (core->sys_dirfd, m, &md, NULL) || ifb_pci_device_is_bridge (md))
      continue;
    owner = ifb_registry_device_owner (core->registry, m);
    if (owner && owner != vm)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_BUSY,
                          "Device %s shares IOMMU group %d with %s, which belongs to guest '%s': a group goes to one guest",
                          name, group, m, owner->name), FALSE;
    drv = ifb_pci_device_get_driver (md);
    vd = owner ? ifb_vm_find_device (owner, m) : NULL;
    if (!drv || strcmp (drv, "vfio-pci") == 0 || strcmp (drv, "pci-stub") == 0 || name_in (m, with, n_with) ||
        (vd && vd->managed))
      continue;
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_BUSY,
                        "Device %s shares IOMMU group %d with %s, which is on host driver '%s': the group is not viable; "
                        "give %s to the guest managed too, or unbind it", name, group, m, drv, m), FALSE;
  }
  return TRUE;
}

static gboolean
managed_check (IfbCore *core, IfbVm *vm, const char *name, const char *const *with, guint n_with, char **ret_driver,
               GError **error)
{
  g_autoptr (IfbPciDevice) dev = NULL;
  g_autofree char *netdev = NULL;
  IfbLedgerEntry *e;
  gboolean by_address = FALSE;

  if (!ifb_pci_device_lookup (core->sys_dirfd, name, &dev, error))
    return FALSE;
  if (ifb_pci_device_is_bridge (dev))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                        "Device %s is a PCI bridge (class 0x%06x): not a device a guest can be given", name,
                        ifb_pci_device_get_class (dev)), FALSE;
  if (!ifb_config_device_allowed (core->config, name, ifb_pci_device_get_vendor (dev), ifb_pci_device_get_device (dev),
                                  &by_address))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_PERMISSION_DENIED,
                        "Device %s (%04x:%04x) is not in [devices] allow: the broker takes from its host driver only "
                        "the devices the operator offers", name, ifb_pci_device_get_vendor (dev),
                        ifb_pci_device_get_device (dev)), FALSE;
  if (!check_group (core, vm, dev, with, n_with, error))
    return FALSE;
  if (!by_address && (netdev = ifb_pci_device_route_out (core->sys_dirfd, name)))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_PERMISSION_DENIED,
                        "Device %s carries %s which may be the host's way out: taking it could cut the host "
                        "off; only an entry naming %s itself in [devices] allow allows that",
                        name, netdev, name), FALSE;
  e = ifb_ledger_get (name);
  if (e && (e->state == IFB_LEDGER_TAKING || e->state == IFB_LEDGER_RETURNING))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_BUSY, "Device %s is being moved between host drivers", name), FALSE;
  /* one that waits to be given back is still on vfio-pci: where it came from is the ledger's */
  *ret_driver = g_strdup (e ? e->driver : ifb_pci_device_get_driver (dev) ? ifb_pci_device_get_driver (dev) : "");
  return TRUE;
}

/* For pci_check: a device in the ledger but not held is on its way between drivers. */
gboolean
ifb_pci_managed_check_free (const char *name, GError **error)
{
  IfbLedgerEntry *e = ifb_ledger_get (name);

  if (!e || e->state == IFB_LEDGER_HELD)
    return TRUE;
  if (e->state == IFB_LEDGER_WAITING)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_BUSY,
                        "Device %s waits to be given back to its driver '%s' (giving it back failed; it is tried again); "
                        "attach it managed to take it again", name, e->driver), FALSE;
  return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_BUSY, "Device %s is being moved between host drivers", name), FALSE;
}

gboolean
ifb_pci_managed_when_free (const char *name, void (*fn) (gpointer data), gpointer data)
{
  IfbLedgerEntry *e = ifb_ledger_get (name);
  Waiter *w;

  if (!e || (e->state != IFB_LEDGER_TAKING && e->state != IFB_LEDGER_RETURNING))
    return FALSE;
  w = g_new0 (Waiter, 1);
  w->fn = fn;
  w->data = data;
  g_queue_push_tail (&flight_waiters, w);
  return TRUE;
}

/* ---- moving devices: one worker per batch -------------------------------------------------- */

typedef void (*MoveDone) (IfbCore *core, IfbWorkerBatch *b, const GError *error, gpointer data);

typedef struct {
  IfbCore *core;
  MoveDone done;
  gpointer data;
} MoveJob;

static void
on_moved (IfbWorkerBatch *b, const GError *error, gpointer data)
{
  MoveJob *j = data;
  j->done (j->core, b, error, j->data);
  ifb_worker_batch_free (b);
  g_free (j);
}

/* Move names[i] to drivers[i] in one worker; done (with the batch's results) from the main loop. */
static void
move_devices (IfbCore *core, const char *const *names, const char *const *drivers, guint n, MoveDone done, gpointer data)
{
  g_autoptr (GError) error = NULL;
  IfbWorkerBatch *b = ifb_worker_batch_new (core->backend);
  MoveJob *j = g_new0 (MoveJob, 1);

  j->core = core;
  j->done = done;
  j->data = data;
  if (!b) {
    ifb_error_set_errno (&error, IFB_ERROR_FAILED, -errno, "Mapping a worker batch");
    done (core, NULL, error, data);
    g_free (j);
    return;
  }
  b->rebind = true;
  b->sys_dirfd = core->sys_dirfd;
  b->dev_dirfd = core->dev_dirfd;
  b->rebind_wait_ms = core->config->bind_timeout_ms;
  b->n_rebinds = MIN (n, IFB_WORKER_MAX_DEVICES);
  for (guint i = 0; i < b->n_rebinds; i++) {
    g_strlcpy (b->rebinds[i].name, names[i], sizeof b->rebinds[i].name);
    g_strlcpy (b->rebinds[i].driver, drivers[i], sizeof b->rebinds[i].driver);
  }
  ifb_worker_start (b, -1, core->config->worker_timeout_ms + core->config->bind_timeout_ms * (guint) b->n_rebinds,
                    on_moved, j);
}

/* ---- giving back ------------------------------------------------------------------------- */

typedef struct {
  GPtrArray *names;             /* of char*, what this return moves */
  void (*then) (IfbCore *core, gpointer data);
  gpointer data;
} Return;

static void give_back_now (IfbCore *core, GPtrArray *names, void (*then) (IfbCore *core, gpointer data), gpointer data);

static gboolean
on_retry (gpointer data)
{
  IfbCore *core = data;
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter it;
  gpointer k, v;

  retry_source = 0;
  g_hash_table_iter_init (&it, ifb_ledger_table ());
  while (g_hash_table_iter_next (&it, &k, &v))
    if (((IfbLedgerEntry *) v)->state == IFB_LEDGER_WAITING && names->len < IFB_WORKER_MAX_DEVICES)
      g_ptr_array_add (names, g_strdup (k));
  if (names->len > 0)
    give_back_now (core, g_steal_pointer (&names), NULL, NULL);
  return G_SOURCE_REMOVE;
}

static void
schedule_retry (IfbCore *core)
{
  if (!retry_source)
    retry_source = g_timeout_add (core->config->return_retry_ms, on_retry, core);
}

static void
on_returned (IfbCore *core, IfbWorkerBatch *b, const GError *error, gpointer data)
{
  Return *r = data;
  g_autoptr (GPtrArray) events = g_ptr_array_new ();

  for (guint i = 0; i < r->names->len; i++) {
    const char *name = g_ptr_array_index (r->names, i);
    IfbLedgerEntry *e = ifb_ledger_get (name);
    const IfbWorkerRebind *rb = b && i < b->n_rebinds ? &b->rebinds[i] : NULL;
    g_autofree char *driver = NULL;
    json_object *ev;

    if (!e)
      continue;
    driver = g_strdup (e->driver);
    if (error || !b || !b->finished || !rb || rb->err < 0) {
      g_autofree char *why = error ? g_strdup (error->message)
                             : !b || !b->finished || !rb ? g_strdup ("the worker did not finish")
                             : g_strdup_printf ("%s: %s", rb->step, g_strerror (-rb->err));
      e->state = IFB_LEDGER_WAITING;
      g_warning ("Giving device %s back to its driver '%s' failed (%s); trying again in %u ms", name, driver, why,
                 core->config->return_retry_ms);
      schedule_retry (core);
      continue;
    }
    ifb_ledger_remove (name);
    g_message ("Device %s is back on its driver %s%s%s", name, *driver ? "'" : "(none: it came from no driver)",
               driver, *driver ? "'" : "");
    ev = json_object_new_object ();
    json_object_object_add (ev, "device", json_object_new_string (name));
    json_object_object_add (ev, "driver", json_object_new_string (driver));
    g_ptr_array_add (events, ev);
  }
  ifb_ledger_save (core);   /* before anyone hears of it */
  for (guint i = 0; i < events->len; i++)
    ifb_core_emit (core, "device.returned", g_ptr_array_index (events, i));
  if (r->then)
    r->then (core, r->data);
  g_ptr_array_unref (r->names);
  g_free (r);
  run_flight_waiters ();
}

/* Give the ledger's names (taken) back to their drivers in one worker; then (maybe NULL) runs
 * from the main loop once this attempt ended, failed or not. */
static void
give_back_now (IfbCore *core, GPtrArray *names, void (*then) (IfbCore *core, gpointer data), gpointer data)
{
  g_autoptr (GPtrArray) drivers = g_ptr_array_new ();
  Return *r = g_new0 (Return, 1);
  int f;

  r->names = names;
  r->then = then;
  r->data = data;
  for (guint i = 0; i < names->len; i++) {
    IfbLedgerEntry *e = ifb_ledger_get (g_ptr_array_index (names, i));
    e->state = IFB_LEDGER_RETURNING;
    g_ptr_array_add (drivers, e->driver);
  }
  ifb_ledger_save (core);
  if ((f = ifb_fault_check ("give-back")) < 0) {
    g_autoptr (GError) error = NULL;
    ifb_error_set_errno (&error, IFB_ERROR_FAILED, f, "Injected failure");
    on_returned (core, NULL, error, r);
    return;
  }
  move_devices (core, (const char *const *) names->pdata, (const char *const *) drivers->pdata, names->len,
                on_returned, r);
}

static void
managed_give_back (IfbCore *core, const char *name, const char *driver)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);

  if (!driver || strcmp (driver, "vfio-pci") == 0) {
    /* it was on vfio-pci before: it stays there */
    if (ifb_ledger_remove (name))
      ifb_ledger_save (core);
    return;
  }
  ifb_ledger_set (name, driver, IFB_LEDGER_RETURNING);
  g_ptr_array_add (names, g_strdup (name));
  give_back_now (core, g_steal_pointer (&names), NULL, NULL);
}

/* ---- taking -------------------------------------------------------------------------------- */

typedef struct {
  GPtrArray *names;             /* of char*: the devices this take moves */
  IfbDeviceKindDone done;
  gpointer data;
  GError *error;
} Take;

static void
take_end (IfbCore *core, gpointer data)
{
  Take *t = data;

  t->done (core, t->error, t->data);
  g_clear_error (&t->error);
  g_ptr_array_unref (t->names);
  g_free (t);
  run_flight_waiters ();
}

static void
on_taken (IfbCore *core, IfbWorkerBatch *b, const GError *error, gpointer data)
{
  Take *t = data;
  g_autoptr (GPtrArray) back = NULL;

  for (guint i = 0; !error && b && i < b->n_rebinds; i++) {
    const IfbWorkerRebind *rb = &b->rebinds[i];
    if (rb->err == -ETIMEDOUT)
      ifb_error_set_errno (&t->error, IFB_ERROR_KERNEL, rb->err,
                           "Device %s did not come up on vfio-pci with its VFIO cdev within %u ms ([devices] "
                           "bind-timeout-ms); it goes back to its driver", rb->name, core->config->bind_timeout_ms);
    else if (rb->err < 0)
      ifb_error_set_errno (&t->error, IFB_ERROR_KERNEL, rb->err,
                           "Device %s: binding it to vfio-pci failed at %s; it goes back to its driver", rb->name, rb->step);
    if (t->error)
      break;
  }
  if (error) {
    t->error = g_error_copy (error);
    g_prefix_error (&t->error, "Binding devices to vfio-pci: ");
  }
  if (!t->error) {
    for (guint i = 0; i < t->names->len; i++)
      ifb_ledger_get (g_ptr_array_index (t->names, i))->state = IFB_LEDGER_HELD;
    take_end (core, t);
    return;
  }
  /* every device of the take goes back where it was before the caller hears of it */
  back = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < t->names->len; i++)
    g_ptr_array_add (back, g_strdup (g_ptr_array_index (t->names, i)));
  give_back_now (core, g_steal_pointer (&back), take_end, t);
}

static void
managed_take (IfbCore *core, const char *const *names, const char *const *drivers, guint n, IfbDeviceKindDone done,
              gpointer data)
{
  Take *t = g_new0 (Take, 1);
  g_autoptr (GPtrArray) vfio = g_ptr_array_new ();

  t->names = g_ptr_array_new_with_free_func (g_free);
  t->done = done;
  t->data = data;
  for (guint i = 0; i < n; i++) {
    if (strcmp (drivers[i], "vfio-pci") == 0)
      continue;   /* on vfio-pci already: nothing to move, nothing to give back */
    ifb_ledger_set (names[i], drivers[i], IFB_LEDGER_TAKING);   /* recorded before the first write */
    g_ptr_array_add (t->names, g_strdup (names[i]));
    g_ptr_array_add (vfio, (gpointer) "vfio-pci");
  }
  if (t->names->len == 0) {
    take_end (core, t);
    return;
  }
  ifb_ledger_save (core);
  move_devices (core, (const char *const *) t->names->pdata, (const char *const *) vfio->pdata, t->names->len,
                on_taken, t);
}

static char *
managed_driver (IfbCore *core, const char *name)
{
  g_autoptr (IfbPciDevice) dev = NULL;

  if (!ifb_pci_device_lookup (core->sys_dirfd, name, &dev, NULL))
    return NULL;
  return g_strdup (ifb_pci_device_get_driver (dev) ? ifb_pci_device_get_driver (dev) : "");
}

/* ---- after a restart ------------------------------------------------------------------------- */

static void
managed_restore (IfbCore *core)
{
  g_autoptr (GPtrArray) vms = ifb_registry_list (core->registry);
  g_autoptr (GPtrArray) back = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter it;
  gpointer k, v;
  guint waiting = 0;

  ifb_ledger_load (core);
  g_hash_table_iter_init (&it, ifb_ledger_table ());
  while (g_hash_table_iter_next (&it, &k, &v))
    if (ifb_registry_device_owner (core->registry, k))
      ((IfbLedgerEntry *) v)->state = IFB_LEDGER_HELD;
  /* what a restored guest holds stays held (its state file names the driver, should the ledger
   * have lost it) */
  for (guint i = 0; i < vms->len; i++) {
    IfbVm *vm = g_ptr_array_index (vms, i);
    for (guint j = 0; j < vm->devices->len; j++) {
      IfbVmDevice *d = g_ptr_array_index (vm->devices, j);
      if (d->managed && ifb_device_kind_of (d->bdf) == &ifb_device_kind_pci && g_strcmp0 (d->host_driver, "vfio-pci") != 0)
        ifb_ledger_set (d->bdf, d->host_driver ? d->host_driver : "", IFB_LEDGER_HELD);
    }
  }
  g_hash_table_iter_init (&it, ifb_ledger_table ());
  while (g_hash_table_iter_next (&it, &k, &v))
    if (((IfbLedgerEntry *) v)->state == IFB_LEDGER_WAITING) {
      waiting++;
      g_message ("Device %s belongs to no guest after the restart: giving it back to its driver '%s'", (char *) k,
                 ((IfbLedgerEntry *) v)->driver);
      if (back->len < IFB_WORKER_MAX_DEVICES)
        g_ptr_array_add (back, g_strdup (k));
    }
  ifb_ledger_save (core);
  if (back->len > 0)
    give_back_now (core, g_steal_pointer (&back), NULL, NULL);
  if (waiting > IFB_WORKER_MAX_DEVICES)
    schedule_retry (core);   /* more than one worker's worth: the rest on the timer */
}

const IfbDeviceKindManaged ifb_device_pci_managed = {
  .check = managed_check,
  .take = managed_take,
  .give_back = managed_give_back,
  .driver = managed_driver,
  .restore = managed_restore,
};
