/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PCI device kind: a device bound to vfio-pci with a VFIO device cdev (vfio-dev/vfioN in
 * sysfs, /dev/vfio/devices/vfioN), found through the backend's sysfs (pci-device.c). Opening it
 * checks the node under /dev is the device sysfs names (its device number), so a renamed or
 * rebound cdev is never taken for another device. device.list probes the IOMMU of devices no
 * guest owns by binding each to a scratch context once (cached for the daemon's life: the IOMMU
 * behind a device does not change while it runs).
 */
#define G_LOG_DOMAIN "ifb-device"

#include <errno.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "device-kind-private.h"
#include "device-pci-ledger.h"
#include "errors.h"
#include "fault.h"
#include "worker.h"
#include "pci-device.h"
#include "util.h"

static gboolean
pci_claims (const char *name)
{
  return TRUE;
}

static gboolean
pci_saved_valid (const char *name, const char *cdev)
{
  if (!ifb_pci_bdf_is_valid (name) || !g_str_has_prefix (cdev, "vfio") || !cdev[4] || strlen (cdev) > 14)
    return FALSE;
  for (const char *p = cdev + 4; *p; p++)
    if (!g_ascii_isdigit (*p))
      return FALSE;
  return TRUE;
}

static gboolean
pci_offered (void)
{
  return TRUE;
}

/* The device as sysfs shows it now: on vfio-pci, with a VFIO device cdev. */
static gboolean
lookup_vfio_device (IfbCore *core, const char *bdf, IfbPciDevice **ret_dev, GError **error)
{
  g_autoptr (IfbPciDevice) dev = NULL;
  const char *driver;

  if (!ifb_pci_device_lookup (core->sys_dirfd, bdf, &dev, error))
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

static gboolean
pci_check (IfbCore *core, const char *name, char **ret_cdev, GError **error)
{
  g_autoptr (IfbPciDevice) dev = NULL;

  if (!ifb_pci_managed_check_free (name, error) || !lookup_vfio_device (core, name, &dev, error))
    return FALSE;
  *ret_cdev = g_strdup (ifb_pci_device_get_vfio_cdev (dev));
  return TRUE;
}

static gboolean
pci_open (IfbCore *core, IfbVm *vm, IfbVmDevice *d, int *ret_fd, GError **error)
{
  g_autoptr (IfbPciDevice) dev = NULL;
  ifb_autofd int fd = -1;
  guint64 want, got = 0;
  int r;

  if (!lookup_vfio_device (core, d->bdf, &dev, error))
    return FALSE;
  if (g_strcmp0 (d->cdev, ifb_pci_device_get_vfio_cdev (dev)) != 0) {
    g_free (d->cdev);           /* rebound to vfio-pci since attach: it has a new cdev */
    d->cdev = g_strdup (ifb_pci_device_get_vfio_cdev (dev));
  }
  if ((r = ifb_fault_check ("open-device")) < 0 ||
      (r = ifb_uapi_open_device (core->backend, core->dev_dirfd, d->cdev, &fd)) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_KERNEL, r, "Device %s: opening its cdev %s", d->bdf, d->cdev);
  want = ifb_pci_device_get_vfio_rdev (dev);
  r = ifb_uapi_device_rdev (core->backend, fd, &got);
  if (r < 0 || want == 0 || got != want)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_DEVICE_NOT_VFIO,
                        "Device %s: /dev/vfio/devices/%s is %s%u:%u, but sysfs says its cdev is %u:%u; refusing it",
                        d->bdf, d->cdev, r < 0 ? "no device cdev, " : "device ", r < 0 ? 0 : major (got),
                        r < 0 ? 0 : minor (got), major (want), minor (want)), FALSE;
  *ret_fd = ifb_steal_fd (&fd);
  return TRUE;
}

/*
 * Probing what the IOMMU behind unowned devices can do: bind each to a scratch context, ask
 * GET_HW_INFO, close. On real hardware the bind and the close each reset the device (100 ms and
 * more), so a worker does it (in the daemon's cgroup), up to IFB_WORKER_MAX_DEVICES devices per
 * worker, one worker at a time; device.list calls wait for it. Results are cached for the
 * daemon's life (the IOMMU behind a device does not change), failures until the next probe.
 */
typedef struct {
  void (*done) (gpointer data);
  gpointer data;
} ProbeWaiter;

typedef struct {
  IfbCore *core;
  char *bdfs[IFB_WORKER_MAX_DEVICES];
  guint n;
} ProbeJob;

/* The probe under way (its batch: the devices it holds; NULL when none) and who waits for it:
 * one daemon per process. */
static ProbeJob *probe_job;
static GQueue probe_waiters = G_QUEUE_INIT;

static gboolean probe_next (IfbCore *core);

static void
probe_finished (void)
{
  GQueue waiters = probe_waiters;   /* one that waits for a later probe queues anew */

  g_queue_init (&probe_waiters);
  for (ProbeWaiter *w; (w = g_queue_pop_head (&waiters));) {
    w->done (w->data);
    g_free (w);
  }
}

static void
on_probed (IfbWorkerBatch *b, const GError *error, gpointer data)
{
  ProbeJob *job = data;

  probe_job = NULL;
  for (guint i = 0; i < job->n; i++) {
    const IfbWorkerDevice *wd = &b->devices[i];
    if (!error && b->finished && wd->err == 0) {
      g_hash_table_insert (job->core->hw_cache, g_strdup (job->bdfs[i]), g_memdup2 (&wd->info, sizeof wd->info));
      g_hash_table_remove (job->core->hw_errors, job->bdfs[i]);
    } else {
      g_hash_table_insert (job->core->hw_errors, g_strdup (job->bdfs[i]),
                           error ? g_strdup_printf ("probe failed: %s", error->message)
                                 : g_strdup_printf ("probe failed: %s", g_strerror (-wd->err)));
    }
    g_free (job->bdfs[i]);
  }
  ifb_worker_batch_free (b);
  if (!probe_next (job->core))
    probe_finished ();
  g_free (job);
}

static void
probe_error (IfbCore *core, const char *bdf, int r)
{
  g_hash_table_insert (core->hw_errors, g_strdup (bdf), g_strdup_printf ("probe failed: %s", g_strerror (-r)));
}

/* Start a worker for the next devices that need probing; FALSE when none do (or none can). */
static gboolean
probe_next (IfbCore *core)
{
  g_autoptr (GPtrArray) devs = ifb_pci_device_scan (core->sys_dirfd, NULL);
  g_autoptr (IfbWorkerBatch) b = NULL;
  ifb_autofd int ctx = -1;
  ProbeJob *job;
  int r;

  if (!devs)
    return FALSE;
  job = g_new0 (ProbeJob, 1);
  job->core = core;
  for (guint i = 0; i < devs->len && job->n < IFB_WORKER_MAX_DEVICES; i++) {
    IfbPciDevice *d = g_ptr_array_index (devs, i);
    const char *bdf = ifb_pci_device_get_bdf (d);
    if (ifb_pci_device_is_vfio (d) && !ifb_registry_device_owner (core->registry, bdf) &&
        !g_hash_table_contains (core->hw_cache, bdf) && !g_hash_table_contains (core->hw_errors, bdf))
      job->bdfs[job->n++] = g_strdup (bdf);
  }
  r = job->n == 0 ? 0 : !(b = ifb_worker_batch_new (core->backend)) ? -ENOMEM
                                                                      : ifb_uapi_open_iommufd (core->backend, core->dev_dirfd, &ctx);
  if (job->n == 0 || r < 0) {
    for (guint i = 0; i < job->n; i++) {
      probe_error (core, job->bdfs[i], r);
      g_free (job->bdfs[i]);
    }
    g_free (job);
    return FALSE;
  }
  b->probe = true;
  b->device_reset_ms = core->device_reset_ms;
  for (guint i = 0; i < job->n; i++) {
    g_autoptr (IfbPciDevice) dev = NULL;
    int fd = -1;
    if (!ifb_pci_device_lookup (core->sys_dirfd, job->bdfs[i], &dev, NULL) ||
        (r = ifb_uapi_open_device (core->backend, core->dev_dirfd, ifb_pci_device_get_vfio_cdev (dev), &fd)) < 0)
      fd = -1;   /* gone since the scan: the worker's bind fails on -1 */
    b->devices[b->n_devices++].device_fd = fd;
  }
  b->iommufd = ifb_steal_fd (&ctx);   /* the worker takes these fds */
  probe_job = job;
  ifb_worker_start (g_steal_pointer (&b), -1, core->config->worker_timeout_ms, on_probed, job);
  return TRUE;
}

static void
wait_for_probe (void (*done) (gpointer data), gpointer data)
{
  ProbeWaiter *w = g_new0 (ProbeWaiter, 1);
  w->done = done;
  w->data = data;
  g_queue_push_tail (&probe_waiters, w);
}

/* A device being probed is bound to the probe's scratch context: a guest's bind of it would
 * fail (the kernel binds a device once), so whoever wants it waits for the probe. */
static gboolean
pci_when_free (IfbCore *core, const char *name, void (*fn) (gpointer data), gpointer data)
{
  if (ifb_pci_managed_when_free (name, fn, data))
    return TRUE;
  for (guint i = 0; probe_job && i < probe_job->n; i++)
    if (strcmp (probe_job->bdfs[i], name) == 0) {
      wait_for_probe (fn, data);
      return TRUE;
    }
  return FALSE;
}

static gboolean
pci_refresh (IfbCore *core, void (*done) (gpointer data), gpointer data)
{
  if (!probe_job) {
    /* the devices whose last probe failed are tried again */
    g_hash_table_remove_all (core->hw_errors);
    if (!probe_next (core))
      return FALSE;
  }
  wait_for_probe (done, data);
  return TRUE;
}

static gboolean
pci_list (IfbCore *core, json_object *arr, gboolean *incomplete, GError **error)
{
  g_autoptr (GPtrArray) devs = ifb_pci_device_scan (core->sys_dirfd, error);

  if (!devs)
    return FALSE;
  for (guint i = 0; i < devs->len; i++) {
    IfbPciDevice *d = g_ptr_array_index (devs, i);
    const char *bdf = ifb_pci_device_get_bdf (d);
    const char *driver = ifb_pci_device_get_driver (d);
    const char *cdev = ifb_pci_device_get_vfio_cdev (d);
    IfbVm *owner = ifb_registry_device_owner (core->registry, bdf);
    IfbVmDevice *vd = owner ? ifb_vm_find_device (owner, bdf) : NULL;
    const IfbHwInfo *hw = NULL;
    const char *probe_error;
    /* a device taken from its host driver: which, and where it is on its way back to it */
    json_object *dj = ifb_device_kind_entry_new (bdf, driver, cdev, ifb_pci_device_get_iommu_group (d),
                                                 ifb_pci_device_is_vfio (d), owner, ifb_ledger_describe (bdf));
    char id[8];

    g_snprintf (id, sizeof (id), "%04x", ifb_pci_device_get_vendor (d));
    json_object_object_add (dj, "vendor", json_object_new_string (id));
    g_snprintf (id, sizeof (id), "%04x", ifb_pci_device_get_device (d));
    json_object_object_add (dj, "device_id", json_object_new_string (id));

    if (vd && vd->state == IFB_VM_DEVICE_READY)
      hw = &vd->hw;
    else
      hw = g_hash_table_lookup (core->hw_cache, bdf);
    ifb_device_kind_add_hw (dj, hw);
    if (!hw && !owner && (probe_error = g_hash_table_lookup (core->hw_errors, bdf)))
      json_object_object_add (dj, "hw_info_error", json_object_new_string (probe_error));
    if (!hw && !owner && ifb_pci_device_is_vfio (d))
      *incomplete = TRUE;   /* never probed, or the last probe failed: refresh() tries it */
    json_object_array_add (arr, dj);
  }
  return TRUE;
}

const IfbDeviceKind ifb_device_kind_pci = {
  .name = "pci",
  .has_cdev = TRUE,
  .claims = pci_claims,
  .saved_valid = pci_saved_valid,
  .offered = pci_offered,
  .check = pci_check,
  .open = pci_open,
  .refresh = pci_refresh,
  .when_free = pci_when_free,
  .list = pci_list,
  .managed = &ifb_device_pci_managed,
};
