/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define G_LOG_DOMAIN "ifb-vm"

#include <string.h>

#include "errors.h"
#include "fdwatch.h"
#include "json.h"
#include "util.h"
#include "vm.h"

static const char *const device_state_names[_IFB_VM_DEVICE_STATE_MAX] = {
  [IFB_VM_DEVICE_RESERVED] = "reserved",
  [IFB_VM_DEVICE_READY] = "ready",
};

const char *
ifb_vm_device_state_to_string (IfbVmDeviceState s)
{
  return (unsigned) s < _IFB_VM_DEVICE_STATE_MAX ? device_state_names[s] : NULL;
}

IfbVmDeviceState
ifb_vm_device_state_from_string (const char *s)
{
  for (int i = 0; s && i < _IFB_VM_DEVICE_STATE_MAX; i++)
    if (strcmp (device_state_names[i], s) == 0)
      return (IfbVmDeviceState) i;
  return IFB_VM_DEVICE_STATE_INVALID;
}

static void
holder_clear (IfbVmHolder *h)
{
  ifb_fd_watch_remove (h->watch);   /* before the close: epoll tracks the open file */
  h->watch = 0;
  g_clear_pointer (&h->watch_data, g_free);
  h->pidfd = ifb_close (h->pidfd);
}

void
ifb_vm_clear_holders (IfbVm *vm)
{
  g_array_set_size (vm->holders, 0);   /* the clear func closes and unwatches */
}

IfbVm *
ifb_vm_new (const char *name, const char *uuid, const char *cgroup)
{
  IfbVm *vm = g_new0 (IfbVm, 1);
  vm->name = g_strdup (name);
  vm->uuid = g_strdup (uuid);
  vm->cgroup = g_strdup (cgroup);
  vm->options.nest_parent = true;
  vm->options.viommu = IFB_VIOMMU_TYPE_INVALID;
  vm->rlimit_per_process = true;
  vm->iommufd = -1;
  vm->veventq_fd = -1;
  vm->created_usec = g_get_real_time ();
  vm->devices = g_ptr_array_new_with_free_func ((GDestroyNotify) ifb_vm_device_free);
  vm->ref = 1;
  g_queue_init (&vm->waiters);
  vm->releasing = g_array_new (FALSE, FALSE, sizeof (IfbVmRelease));
  vm->releasing_ctx = -1;
  vm->holders = g_array_new (FALSE, TRUE, sizeof (IfbVmHolder));
  g_array_set_clear_func (vm->holders, (GDestroyNotify) holder_clear);
  return vm;
}

IfbVm *
ifb_vm_ref (IfbVm *vm)
{
  vm->ref++;
  return vm;
}

IfbVm *
ifb_vm_free (IfbVm *vm)
{
  if (!vm || --vm->ref > 0)
    return NULL;
  g_warn_if_fail (g_queue_is_empty (&vm->waiters));
  g_array_unref (vm->holders);
  for (guint i = 0; i < vm->releasing->len; i++)
    ifb_close (g_array_index (vm->releasing, IfbVmRelease, i).fd);
  g_array_unref (vm->releasing);
  ifb_close (vm->releasing_ctx);
  g_ptr_array_unref (vm->devices);   /* device fds first: they are bound to the context */
  ifb_close (vm->veventq_fd);
  ifb_close (vm->iommufd);
  g_free (vm->name);
  g_free (vm->uuid);
  g_free (vm->cgroup);
  g_free (vm->ioas_cgroup);
  g_free (vm->viommu_cgroup);
  g_free (vm->list_json);
  g_free (vm);
  return NULL;
}

IfbVmDevice *
ifb_vm_device_new (const char *bdf, const char *cdev)
{
  IfbVmDevice *d = g_new0 (IfbVmDevice, 1);
  d->bdf = g_strdup (bdf);
  d->cdev = g_strdup (cdev);
  d->state = IFB_VM_DEVICE_RESERVED;
  d->fd = -1;
  return d;
}

IfbVmDevice *
ifb_vm_device_free (IfbVmDevice *d)
{
  if (!d)
    return NULL;
  ifb_close (d->fd);
  g_free (d->bdf);
  g_free (d->cdev);
  g_free (d->cgroup);
  g_free (d->host_driver);
  g_free (d);
  return NULL;
}

gboolean
ifb_vm_driver_name_valid (const char *name)
{
  if (!name || strlen (name) > 31)
    return FALSE;
  for (const char *p = name; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '_' && *p != '-' && *p != '.')
      return FALSE;
  return strcmp (name, ".") != 0 && strcmp (name, "..") != 0;
}

IfbVmDevice *
ifb_vm_find_device (IfbVm *vm, const char *bdf)
{
  for (guint i = 0; i < vm->devices->len; i++) {
    IfbVmDevice *d = g_ptr_array_index (vm->devices, i);
    if (strcmp (d->bdf, bdf) == 0)
      return d;
  }
  return NULL;
}

gboolean
ifb_vm_name_validate (const char *name, GError **error)
{
  size_t n = name ? strlen (name) : 0;
  if (n == 0 || n > 64 || !g_ascii_isalnum (name[0]))
    goto bad;
  for (size_t i = 0; i < n; i++)
    if (!g_ascii_isalnum (name[i]) && !strchr ("._-", name[i]))
      goto bad;
  return TRUE;
bad:
  return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                      "Invalid params: member 'name' must be 1-64 characters of A-Z a-z 0-9 . _ - "
                      "starting with a letter or digit"), FALSE;
}

json_object *
ifb_hw_info_to_json (const IfbHwInfo *hw)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "iommu", json_object_new_string (ifb_iommu_type_to_string (hw->type)));
  json_object_object_add (o, "nest_parent_capable", json_object_new_boolean (hw->can_nest));
  json_object_object_add (o, "dirty_tracking", json_object_new_boolean (hw->dirty_tracking));
  json_object_object_add (o, "capabilities", json_object_new_int64 ((int64_t) hw->capabilities));
  if (hw->type == IFB_IOMMU_TYPE_INTEL_VTD) {
    char buf[32];
    g_snprintf (buf, sizeof (buf), "0x%016" G_GINT64_MODIFIER "x", (guint64) hw->raw.vtd.cap_reg);
    json_object_object_add (o, "cap_reg", json_object_new_string (buf));
    g_snprintf (buf, sizeof (buf), "0x%016" G_GINT64_MODIFIER "x", (guint64) hw->raw.vtd.ecap_reg);
    json_object_object_add (o, "ecap_reg", json_object_new_string (buf));
  } else if (hw->type == IFB_IOMMU_TYPE_ARM_SMMUV3) {
    json_object *idr = json_object_new_array ();
    for (int i = 0; i < 6; i++)
      json_object_array_add (idr, json_object_new_int64 (hw->raw.smmuv3.idr[i]));
    json_object_object_add (o, "idr", idr);
    json_object_object_add (o, "iidr", json_object_new_int64 (hw->raw.smmuv3.iidr));
    json_object_object_add (o, "aidr", json_object_new_int64 (hw->raw.smmuv3.aidr));
  }
  return o;
}

static void
hw_info_from_json (json_object *o, IfbHwInfo *hw)
{
  const char *s;
  json_object *a;
  gint64 v;

  memset (hw, 0, sizeof (*hw));
  hw->type = ifb_iommu_type_from_string (ifb_json_get_string (o, "iommu"));
  if (hw->type == IFB_IOMMU_TYPE_INVALID)
    hw->type = IFB_IOMMU_TYPE_NONE;
  hw->can_nest = json_object_get_boolean (ifb_json_get (o, "nest_parent_capable"));
  hw->dirty_tracking = json_object_get_boolean (ifb_json_get (o, "dirty_tracking"));
  if (ifb_json_get_int (o, "capabilities", &v))
    hw->capabilities = (uint64_t) v;
  if ((s = ifb_json_get_string (o, "cap_reg")))
    hw->raw.vtd.cap_reg = g_ascii_strtoull (s, NULL, 16);
  if ((s = ifb_json_get_string (o, "ecap_reg")))
    hw->raw.vtd.ecap_reg = g_ascii_strtoull (s, NULL, 16);
  if ((a = ifb_json_get (o, "idr")) && json_object_is_type (a, json_type_array))
    for (size_t i = 0; i < 6 && i < json_object_array_length (a); i++)
      hw->raw.smmuv3.idr[i] = (uint32_t) json_object_get_int64 (json_object_array_get_idx (a, i));
  if (ifb_json_get_int (o, "iidr", &v))
    hw->raw.smmuv3.iidr = (uint32_t) v;
  if (ifb_json_get_int (o, "aidr", &v))
    hw->raw.smmuv3.aidr = (uint32_t) v;
}

static json_object *
string_take (char *s)
{
  json_object *o = json_object_new_string (s);
  g_free (s);
  return o;
}

static json_object *
string_or_null (const char *s)
{
  return s ? json_object_new_string (s) : NULL;
}

static json_object *
device_to_json (const IfbVm *vm, const IfbVmDevice *d, gboolean verbose)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "device", json_object_new_string (d->bdf));
  json_object_object_add (o, "cdev", json_object_new_string (d->cdev));
  json_object_object_add (o, "index", json_object_new_int64 (d->index));
  json_object_object_add (o, "fdname", string_take (ifb_vm_fdname_device (vm, d)));
  json_object_object_add (o, "state", json_object_new_string (ifb_vm_device_state_to_string (d->state)));
  if (d->has_virt_id)
    json_object_object_add (o, "virt_id", json_object_new_int64 ((gint64) d->virt_id));
  if (d->vdev_id)
    json_object_object_add (o, "vdev_id", json_object_new_int64 (d->vdev_id));
  json_object_object_add (o, "managed", json_object_new_boolean (d->managed));
  if (d->managed)
    json_object_object_add (o, "host_driver", json_object_new_string (d->host_driver ? d->host_driver : ""));
  if (d->state == IFB_VM_DEVICE_READY && vm->options.handoff == IFB_HANDOFF_BOUND) {
    json_object_object_add (o, "dev_id", json_object_new_int64 (d->dev_id));
    json_object_object_add (o, "hwpt_id", json_object_new_int64 (d->hwpt_id));
    json_object_object_add (o, "nest_parent", json_object_new_boolean (d->hwpt_flags & IFB_HWPT_NEST_PARENT));
    json_object_object_add (o, "dirty_tracking", json_object_new_boolean (d->hwpt_flags & IFB_HWPT_DIRTY_TRACKING));
    json_object_object_add (o, "hwpt_kind", json_object_new_string (d->hwpt_flags & IFB_HWPT_NEST_PARENT ? "nest-parent" : "plain"));
    json_object_object_add (o, "cgroup", string_or_null (d->cgroup));
    json_object_object_add (o, "worker_pid", json_object_new_int64 (d->worker_pid));
    if (verbose)
      json_object_object_add (o, "hw_info", ifb_hw_info_to_json (&d->hw));
  }
  return o;
}

json_object *
ifb_vm_to_json (const IfbVm *vm, gboolean verbose)
{
  json_object *o = json_object_new_object ();
  json_object *opts = json_object_new_object ();
  json_object *devs = json_object_new_array ();

  json_object_object_add (o, "name", json_object_new_string (vm->name));
  json_object_object_add (o, "uuid", json_object_new_string (vm->uuid));
  json_object_object_add (o, "cgroup", string_or_null (vm->cgroup));
  json_object_object_add (o, "slot", json_object_new_int64 (vm->slot));
  json_object_object_add (o, "fdname", string_take (ifb_vm_fdname_iommufd (vm)));
  json_object_object_add (o, "state", json_object_new_string (vm->destroying ? "destroying" :
                                                              vm->iommufd >= 0 ? "ready" : "pending"));
  json_object_object_add (o, "ioas_id", json_object_new_int64 (vm->ioas_id));
  json_object_object_add (o, "ioas_cgroup", string_or_null (vm->ioas_cgroup));
  if (vm->options.viommu != IFB_VIOMMU_TYPE_INVALID) {
    json_object *vj = json_object_new_object ();
    json_object_object_add (vj, "type", json_object_new_string (ifb_viommu_type_to_string (vm->options.viommu)));
    json_object_object_add (vj, "id", json_object_new_int64 (vm->viommu_id));
    json_object_object_add (vj, "hwpt_id", json_object_new_int64 (vm->viommu_hwpt_id));
    json_object_object_add (vj, "cgroup", string_or_null (vm->viommu_cgroup));
    if (vm->options.veventq_depth) {
      json_object_object_add (vj, "veventq_id", json_object_new_int64 (vm->veventq_id));
      json_object_object_add (vj, "veventq_fdname", string_take (ifb_vm_fdname_veventq (vm)));
    }
    json_object_object_add (o, "viommu", vj);
  }
  json_object_object_add (o, "vmm_pid", json_object_new_int64 (vm->vmm_pid));
  {
    json_object *hs = json_object_new_array ();
    for (guint i = 0; i < vm->holders->len; i++) {
      const IfbVmHolder *h = &g_array_index (vm->holders, IfbVmHolder, i);
      json_object *hj = json_object_new_object ();
      json_object_object_add (hj, "pid", json_object_new_int64 (h->pid));
      json_object_object_add (hj, "start_time", json_object_new_int64 ((gint64) h->start_time));
      json_object_array_add (hs, hj);
    }
    json_object_object_add (o, "holders", hs);
  }
  json_object_object_add (o, "vmm_exits", json_object_new_int64 ((gint64) vm->vmm_exits));
  if (verbose)   /* vm.list's cached text would go stale: a worker's start and end are no commits */
    json_object_object_add (o, "busy", json_object_new_boolean (vm->busy));
  json_object_object_add (o, "created_usec", json_object_new_int64 (vm->created_usec));
  json_object_object_add (opts, "handoff", json_object_new_string (ifb_handoff_to_string (vm->options.handoff)));
  json_object_object_add (opts, "nest_parent", json_object_new_boolean (vm->options.nest_parent));
  json_object_object_add (opts, "allow_plain", json_object_new_boolean (vm->options.allow_plain));
  json_object_object_add (opts, "dirty_tracking", json_object_new_boolean (vm->options.dirty_tracking));
  json_object_object_add (opts, "defer", json_object_new_boolean (vm->options.defer));
  json_object_object_add (opts, "viommu", string_or_null (ifb_viommu_type_to_string (vm->options.viommu)));
  json_object_object_add (opts, "veventq_depth", json_object_new_int64 (vm->options.veventq_depth));
  json_object_object_add (opts, "rlimit_per_process", json_object_new_boolean (vm->rlimit_per_process));
  if (vm->options.memory_mib)
    json_object_object_add (opts, "memory_mib", json_object_new_int64 ((gint64) vm->options.memory_mib));
  json_object_object_add (o, "options", opts);
  for (guint i = 0; i < vm->devices->len; i++)
    json_object_array_add (devs, device_to_json (vm, g_ptr_array_index (vm->devices, i), verbose));
  json_object_object_add (o, "devices", devs);
  return o;
}

const char *
ifb_vm_list_json (IfbVm *vm)
{
  if (!vm->list_json) {
    g_autoptr (json_object) o = ifb_vm_to_json (vm, FALSE);
    vm->list_json = g_strdup (json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
  }
  return vm->list_json;
}

void
ifb_vm_changed (IfbVm *vm)
{
  g_clear_pointer (&vm->list_json, g_free);
}

static gboolean
get_bool (json_object *o, const char *key)
{
  json_object *v = ifb_json_get (o, key);
  return v && json_object_get_boolean (v);
}

IfbVm *
ifb_vm_from_json (json_object *o, GError **error)
{
  const char *name = ifb_json_get_string (o, "name");
  const char *uuid = ifb_json_get_string (o, "uuid");
  json_object *opts = ifb_json_get (o, "options");
  json_object *devs = ifb_json_get (o, "devices");
  g_autoptr (IfbVm) vm = NULL;
  gint64 v;

  if (!name || !uuid || !devs || !json_object_is_type (devs, json_type_array))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "State entry lacks name, uuid or devices"), NULL;
  vm = ifb_vm_new (name, uuid, ifb_json_get_string (o, "cgroup"));
  if (!ifb_json_get_int (o, "slot", &v) || v < 0 || v >= IFB_VM_MAX_SLOTS)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "State entry of '%s' has no valid slot", name), NULL;
  vm->slot = (guint) v;
  /* Guests saved before hand-offs existed were all bound. */
  vm->options.handoff = ifb_json_get (opts, "handoff") ? ifb_handoff_from_string (ifb_json_get_string (opts, "handoff"))
                                                      : IFB_HANDOFF_BOUND;
  if (vm->options.handoff == IFB_HANDOFF_INVALID)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "State entry of '%s' has no valid hand-off", name), NULL;
  vm->options.nest_parent = get_bool (opts, "nest_parent");
  vm->options.allow_plain = get_bool (opts, "allow_plain");
  vm->options.dirty_tracking = get_bool (opts, "dirty_tracking");
  vm->options.defer = get_bool (opts, "defer");
  if (ifb_json_get_string (opts, "viommu") &&
      (vm->options.viommu = ifb_viommu_type_from_string (ifb_json_get_string (opts, "viommu"))) == IFB_VIOMMU_TYPE_INVALID)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "State entry of '%s' has no valid vIOMMU type", name), NULL;
  {
    json_object *vj = ifb_json_get (o, "viommu");
    if (vj && ifb_json_get_int (vj, "id", &v))
      vm->viommu_id = (uint32_t) v;
    if (vj && ifb_json_get_int (vj, "hwpt_id", &v))
      vm->viommu_hwpt_id = (uint32_t) v;
    if (vj && ifb_json_get_int (vj, "veventq_id", &v))
      vm->veventq_id = (uint32_t) v;
    if (ifb_json_get_int (opts, "veventq_depth", &v) && v > 0 && v <= G_MAXUINT32)
      vm->options.veventq_depth = (guint) v;
    vm->viommu_cgroup = vj ? g_strdup (ifb_json_get_string (vj, "cgroup")) : NULL;
  }
  vm->rlimit_per_process = get_bool (opts, "rlimit_per_process");
  if (ifb_json_get (opts, "memory_mib")) {
    if (!ifb_json_get_int (opts, "memory_mib", &v) || v <= 0 || v > G_MAXUINT32)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "State entry of '%s' has no valid memory_mib",
                          name), NULL;
    vm->options.memory_mib = (guint64) v;
  }
  if (ifb_json_get_int (o, "ioas_id", &v))
    vm->ioas_id = (uint32_t) v;
  vm->ioas_cgroup = g_strdup (ifb_json_get_string (o, "ioas_cgroup"));
  if (ifb_json_get_int (o, "vmm_pid", &v))
    vm->vmm_pid = (pid_t) v;
  if (ifb_json_get_int (o, "created_usec", &v))
    vm->created_usec = v;
  if (ifb_json_get_int (o, "vmm_exits", &v) && v >= 0)
    vm->vmm_exits = (guint64) v;
  {
    json_object *hs = ifb_json_get (o, "holders");
    for (size_t i = 0; hs && json_object_is_type (hs, json_type_array) && i < json_object_array_length (hs) && i < 64; i++) {
      json_object *hj = json_object_array_get_idx (hs, i);
      IfbVmHolder h = { .pidfd = -1 };
      gint64 st;
      if (!ifb_json_get_int (hj, "pid", &v) || v <= 0 || v > G_MAXINT32 || !ifb_json_get_int (hj, "start_time", &st) || st < 0)
        return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "State entry of '%s' has an invalid holder", name), NULL;
      h.pid = (pid_t) v;
      h.start_time = (guint64) st;
      g_array_append_val (vm->holders, h);
    }
  }
  for (size_t i = 0; i < json_object_array_length (devs); i++) {
    json_object *d = json_object_array_get_idx (devs, i);
    const char *bdf = ifb_json_get_string (d, "device");
    const char *cdev = ifb_json_get_string (d, "cdev");
    IfbVmDevice *dev;

    if (!bdf || !cdev)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "State entry of '%s' has a device without bdf/cdev", name), NULL;
    dev = ifb_vm_device_new (bdf, cdev);
    if (!ifb_json_get_int (d, "index", &v) || v < 0 || v >= IFB_VM_MAX_DEVICE_INDEX) {
      ifb_vm_device_free (dev);
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "State entry of '%s' has a device without a valid index", name), NULL;
    }
    dev->index = (guint) v;
    dev->state = ifb_vm_device_state_from_string (ifb_json_get_string (d, "state"));
    if (dev->state == IFB_VM_DEVICE_STATE_INVALID)
      dev->state = IFB_VM_DEVICE_RESERVED;
    if (ifb_json_get_int (d, "dev_id", &v))
      dev->dev_id = (uint32_t) v;
    if (ifb_json_get_int (d, "hwpt_id", &v))
      dev->hwpt_id = (uint32_t) v;
    dev->hwpt_flags = (get_bool (d, "nest_parent") ? IFB_HWPT_NEST_PARENT : 0) |
                      (get_bool (d, "dirty_tracking") ? IFB_HWPT_DIRTY_TRACKING : 0);
    dev->cgroup = g_strdup (ifb_json_get_string (d, "cgroup"));
    if ((dev->has_virt_id = ifb_json_get_int (d, "virt_id", &v)))
      dev->virt_id = (uint64_t) v;
    if (ifb_json_get_int (d, "vdev_id", &v))
      dev->vdev_id = (uint32_t) v;
    dev->managed = get_bool (d, "managed");
    if (dev->managed)
      dev->host_driver = g_strdup (ifb_json_get_string (d, "host_driver") ? ifb_json_get_string (d, "host_driver") : "");
    if (ifb_json_get_int (d, "worker_pid", &v))
      dev->worker_pid = (pid_t) v;
    if (ifb_json_get (d, "hw_info"))
      hw_info_from_json (ifb_json_get (d, "hw_info"), &dev->hw);
    g_ptr_array_add (vm->devices, dev);
  }
  return g_steal_pointer (&vm);
}

static const char fdname_alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-";

static void
append_base64 (GString *s, guint v)
{
  char buf[8];
  int n = 0;
  do {
    buf[n++] = fdname_alphabet[v % 64];
    v /= 64;
  } while (v && n < (int) sizeof (buf));
  while (n > 0)
    g_string_append_c (s, buf[--n]);
}

char *
ifb_vm_fdname_iommufd (const IfbVm *vm)
{
  GString *s = g_string_new ("c");
  append_base64 (s, vm->slot);
  return g_string_free (s, FALSE);
}

char *
ifb_vm_fdname_device (const IfbVm *vm, const IfbVmDevice *d)
{
  GString *s = g_string_new ("d");
  g_string_append_c (s, fdname_alphabet[d->index % 64]);
  append_base64 (s, vm->slot);
  return g_string_free (s, FALSE);
}

char *
ifb_vm_fdname_veventq (const IfbVm *vm)
{
  GString *s = g_string_new ("e");
  append_base64 (s, vm->slot);
  return g_string_free (s, FALSE);
}

/* ---- one operation at a time --------------------------------------------------------- */

typedef struct {
  void (*fn) (gpointer data);
  gpointer data;
} Waiter;

gboolean
ifb_vm_is_busy (IfbVm *vm)
{
  return vm->busy;
}

void
ifb_vm_when_idle (IfbVm *vm, void (*fn) (gpointer data), gpointer data)
{
  Waiter *w = g_new0 (Waiter, 1);
  w->fn = fn;
  w->data = data;
  g_queue_push_tail (&vm->waiters, w);
}

static gboolean
run_waiter (gpointer data)
{
  g_autofree Waiter *w = data;
  w->fn (w->data);
  return G_SOURCE_REMOVE;
}

/* The guest is gone: what waited for it runs from the main loop and finds it gone (or a new
 * guest of the same name, which then is the one meant: requests run in arrival order). */
static void
hand_on_waiters (IfbVm *vm)
{
  for (Waiter *w; (w = g_queue_pop_head (&vm->waiters));)
    g_idle_add (run_waiter, w);
}

void
ifb_vm_set_idle (IfbVm *vm)
{
  vm->busy = false;
  ifb_vm_run_waiters (vm);
}

void
ifb_vm_run_waiters (IfbVm *vm)
{
  ifb_vm_ref (vm);
  while (!vm->busy && !vm->gone && !g_queue_is_empty (&vm->waiters))
    run_waiter (g_queue_pop_head (&vm->waiters));
  if (vm->gone)
    hand_on_waiters (vm);
  ifb_vm_free (vm);
}
