/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vm.* methods: checks of their args beyond the method table's (rpc-methods.c), access rules
 * beyond it, and result shapes. The work itself is lifecycle.c. */
#define G_LOG_DOMAIN "ifb-rpc"

#include <fcntl.h>
#include <string.h>

#include "cgroup.h"
#include "device-kind.h"
#include "errors.h"
#include "holders.h"
#include "log.h"
#include "util.h"
#include "json.h"
#include "lifecycle.h"
#include "rpc.h"

/* ---- answers that come when the guest's operation is over ---------------------------- */

static void
answer_vm (IfbCore *core, IfbVm *vm, const GError *error, gpointer data)
{
  if (error)
    ifb_deferred_fail (data, error);
  else
    ifb_deferred_return (data, ifb_vm_to_json (vm, FALSE));
}

static void
answer_vm_verbose (IfbCore *core, IfbVm *vm, const GError *error, gpointer data)
{
  if (error)
    ifb_deferred_fail (data, error);
  else
    ifb_deferred_return (data, ifb_vm_to_json (vm, TRUE));
}

gboolean
ifb_rpc_vm_create (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  const IfbRpcVmCreateArgs *p = args;
  const IfbRpcVmCreateOptions *o = &p->options;
  IfbVmCreateArgs a;
  IfbHandoff handoff = IFB_HANDOFF_UNBOUND;
  IfbViommuType viommu = IFB_VIOMMU_TYPE_INVALID;

  if (o->handoff && (handoff = ifb_handoff_from_string (o->handoff)) == IFB_HANDOFF_INVALID)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                        "Invalid params: In 'options': member 'handoff' must be \"unbound\" or \"bound\", not '%s'",
                        o->handoff), FALSE;
  if (o->memory_mib != G_MININT64 && (o->memory_mib <= 0 || o->memory_mib > G_MAXUINT32))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                        "Invalid params: In 'options': member 'memory_mib' must be a positive number of MiB"), FALSE;
  /* Checked before anything is made: a refused guest leaves nothing behind. */
  if (o->memory_mib > (gint64) call->core->config->max_guest_memory_mib)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED,
                        "Limit reached: guest '%s' has %" G_GINT64_FORMAT " MiB of memory, more than [limits] "
                        "max-guest-memory-mib=%u allows its VMM to lock", p->name, o->memory_mib,
                        call->core->config->max_guest_memory_mib), FALSE;
  if (o->viommu && (viommu = ifb_viommu_type_from_string (o->viommu)) == IFB_VIOMMU_TYPE_INVALID)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS, "Invalid params: In 'options': member 'viommu' "
                        "must be \"arm-smmuv3\", \"tegra241-cmdqv\" or \"selftest\", not '%s'", o->viommu), FALSE;
  if (o->veventq_depth != 0 && (!o->viommu || o->veventq_depth < 0 || o->veventq_depth > IFB_VEVENTQ_MAX_DEPTH))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS, "Invalid params: In 'options': member "
                        "'veventq_depth' must be 1-%d events, with 'viommu'", IFB_VEVENTQ_MAX_DEPTH), FALSE;
  if (o->viommu && (handoff != IFB_HANDOFF_BOUND || !o->nest_parent))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS, "Invalid params: In 'options': a vIOMMU "
                        "('viommu') is the broker's to make only under the bound hand-off with nest_parent"), FALSE;
  if (p->pid != G_MININT64 && (p->pid <= 0 || p->pid > G_MAXINT32))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS, "Invalid params: member 'pid' is out of range"), FALSE;
  if (p->pidfd >= 0 && (p->pidfd >= (gint64) ifb_fd_list_len (call->in_fds) || p->pidfd > G_MAXINT32))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                        "Invalid params: member 'pidfd' is fd index %" G_GINT64_FORMAT " but %u fds came with the request",
                        p->pidfd, ifb_fd_list_len (call->in_fds)), FALSE;
  a = (IfbVmCreateArgs) {
    .name = p->name, .uuid = p->uuid, .cgroup = p->cgroup, .pid = p->pid > 0 ? (pid_t) p->pid : 0,
    .pidfd = p->pidfd >= 0 ? ifb_fd_list_get (call->in_fds, (guint) p->pidfd) : -1,
    .options = { .handoff = handoff, .nest_parent = o->nest_parent, .allow_plain = o->allow_plain,
                 .dirty_tracking = o->dirty_tracking, .defer = o->defer, .viommu = viommu,
                 .memory_mib = o->memory_mib > 0 ? (guint64) o->memory_mib : 0,
                 .veventq_depth = (guint) o->veventq_depth },
    .rlimit_per_process = o->rlimit_per_process == -1 ? -1 : !!o->rlimit_per_process,
    .caller = call->peer, .allow_caller_cgroup = o->allow_caller_cgroup,
  };
  ifb_lifecycle_create (call->core, &a, answer_vm, ifb_call_defer (call));
  return TRUE;
}

typedef struct {
  IfbCore *core;
  GPtrArray *bdfs;
} DeviceWait;

/* A device the broker itself holds for a moment (device.list's probe) is waited for. */
static gboolean
wait_for_devices (void (*resume) (gpointer data), gpointer data, gpointer user)
{
  DeviceWait *w = user;

  for (guint i = 0; i < w->bdfs->len; i++)
    if (ifb_device_kind_when_free (w->core, g_ptr_array_index (w->bdfs, i), resume, data))
      return TRUE;
  return FALSE;
}

gboolean
ifb_rpc_vm_attach (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  const IfbRpcVmDeviceArgs *p = args;
  g_autoptr (GPtrArray) bdfs = g_ptr_array_new ();
  IfbVm *vm;

  if (!!p->device == !!p->devices)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                        "Invalid params: give either 'device' or 'devices'"), FALSE;
  if (p->virt_id != G_MININT64 && (p->virt_id < 0 || !p->device))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS, "Invalid params: member 'virt_id' must be "
                        "a non-negative integer, given with 'device'"), FALSE;
  if (p->device)
    g_ptr_array_add (bdfs, (gpointer) p->device);
  for (size_t i = 0; p->devices && i < json_object_array_length (p->devices); i++) {
    json_object *e = json_object_array_get_idx (p->devices, i);
    if (!json_object_is_type (e, json_type_string))
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                          "Invalid params: member 'devices' must be an array of strings"), FALSE;
    if (bdfs->len >= call->core->config->max_devices_per_vm)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED,
                          "Limit reached: at most %u devices per guest ([limits] max-devices-per-vm)",
                          call->core->config->max_devices_per_vm), FALSE;
    g_ptr_array_add (bdfs, (gpointer) json_object_get_string (e));
  }
  vm = ifb_rpc_lookup_vm (call, p->vm, p->uuid, error);
  if (!vm)
    return FALSE;
  if (ifb_call_park_if_busy (call, vm) || ifb_call_park (call, wait_for_devices, &(DeviceWait) { call->core, bdfs }))
    return TRUE;
  ifb_lifecycle_attach (call->core, vm, (const char *const *) bdfs->pdata, bdfs->len,
                        p->virt_id == G_MININT64 ? -1 : p->virt_id, p->managed, answer_vm_verbose,
                        ifb_call_defer (call));
  return TRUE;
}

gboolean
ifb_rpc_vm_detach (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  const IfbRpcVmDeviceArgs *p = args;
  IfbVm *vm;

  vm = ifb_rpc_lookup_vm (call, p->vm, p->uuid, error);
  if (!vm)
    return FALSE;
  if (!ifb_call_park_if_busy (call, vm))
    ifb_lifecycle_detach (call->core, vm, p->device, answer_vm, ifb_call_defer (call));
  return TRUE;
}

typedef struct {
  IfbDeferred *d;
  json_object *result;
} DestroyCtx;

static void
destroyed (IfbCore *core, IfbVm *vm, const GError *error, gpointer data)
{
  DestroyCtx *c = data;
  ifb_deferred_return (c->d, c->result);
  g_free (c);
}

gboolean
ifb_rpc_vm_destroy (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  const IfbRpcVmArgs *p = args;
  IfbVm *vm;
  json_object *o;
  DestroyCtx *c;

  vm = ifb_rpc_lookup_vm (call, p->vm, p->uuid, error);
  if (!vm)
    return FALSE;
  if (ifb_call_park_if_busy (call, vm))
    return TRUE;
  o = json_object_new_object ();
  json_object_object_add (o, "name", json_object_new_string (vm->name));
  json_object_object_add (o, "uuid", json_object_new_string (vm->uuid));
  json_object_object_add (o, "devices_freed", json_object_new_int (vm->devices->len));
  c = g_new0 (DestroyCtx, 1);
  c->d = ifb_call_defer (call);
  c->result = o;
  ifb_lifecycle_destroy (call->core, vm, destroyed, c);
  return TRUE;
}

/* Serializer of the "vms" array: the guests' cached texts, joined (userdata: a GString). */
static int
serialize_joined (json_object *jso, struct printbuf *pb, int level, int flags)
{
  GString *text = json_object_get_userdata (jso);
  return printbuf_memappend (pb, text->str, (int) text->len);
}

static void
free_joined (json_object *jso, void *userdata)
{
  g_string_free (userdata, TRUE);
}

gboolean
ifb_rpc_vm_list (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  g_autoptr (GPtrArray) vms = NULL;
  GString *text;
  json_object *arr, *o;

  vms = ifb_registry_list (call->core->registry);
  text = g_string_sized_new (64 + vms->len * 512);
  g_string_append_c (text, '[');
  for (guint i = 0; i < vms->len; i++) {
    if (i)
      g_string_append_c (text, ',');
    g_string_append (text, ifb_vm_list_json (g_ptr_array_index (vms, i)));
  }
  g_string_append_c (text, ']');
  /* An array whose text is prerendered from each guest's cached summary (ifb_vm_list_json()):
   * no json-c tree of every guest is built. Only ever serialized, never read back. */
  arr = json_object_new_array ();
  json_object_set_serializer (arr, serialize_joined, text, free_joined);
  o = json_object_new_object ();
  json_object_object_add (o, "vms", arr);
  *ret = o;
  return TRUE;
}

static const char *const obj_type_names[] = {
  [IFB_UAPI_OBJ_IOAS] = "ioas", [IFB_UAPI_OBJ_DEVICE] = "device", [IFB_UAPI_OBJ_HWPT_PAGING] = "hwpt-paging",
  [IFB_UAPI_OBJ_HWPT_NESTED] = "hwpt-nested", [IFB_UAPI_OBJ_VIOMMU] = "viommu", [IFB_UAPI_OBJ_VDEVICE] = "vdevice",
  [IFB_UAPI_OBJ_VEVENTQ] = "veventq",
};

/* The context's own objects, where the backend can list them (the emulated one): each object with
 * the cgroup it was made in. */
static json_object *
context_objects (IfbCore *core, IfbVm *vm)
{
  IfbUapiObject objs[128];
  size_t n = 0;
  json_object *arr;

  if (vm->iommufd < 0 || ifb_uapi_list_objects (core->backend, vm->iommufd, objs, G_N_ELEMENTS (objs), &n) < 0)
    return NULL;
  arr = json_object_new_array ();
  for (size_t i = 0; i < MIN (n, G_N_ELEMENTS (objs)); i++) {
    json_object *o = json_object_new_object ();
    json_object_object_add (o, "id", json_object_new_int64 (objs[i].id));
    json_object_object_add (o, "type", json_object_new_string (
        (size_t) objs[i].type < G_N_ELEMENTS (obj_type_names) && obj_type_names[objs[i].type] ? obj_type_names[objs[i].type] : "unknown"));
    json_object_object_add (o, "parent_id", json_object_new_int64 (objs[i].parent_id));
    if (objs[i].type == IFB_UAPI_OBJ_VDEVICE) {
      json_object_object_add (o, "dev_id", json_object_new_int64 (objs[i].dev_id));
      json_object_object_add (o, "virt_id", json_object_new_int64 ((gint64) objs[i].virt_id));
    }
    json_object_object_add (o, "creator_pid", json_object_new_int64 (objs[i].creator_pid));
    json_object_object_add (o, "cgroup", json_object_new_string (objs[i].cgroup));
    json_object_array_add (arr, o);
  }
  return arr;
}

gboolean
ifb_rpc_vm_show (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  const IfbRpcVmArgs *p = args;
  IfbVm *vm;
  json_object *o, *objs;

  vm = ifb_rpc_lookup_vm (call, p->vm, p->uuid, error);
  if (!vm)
    return FALSE;
  o = ifb_vm_to_json (vm, TRUE);
  if ((objs = context_objects (call->core, vm)))
    json_object_object_add (o, "context_objects", objs);
  *ret = o;
  return TRUE;
}

/* vm.fds is for admins, and for a peer running inside that guest's cgroup (its VMM). */
static gboolean
check_fds_access (IfbCall *call, IfbVm *vm, GError **error)
{
  g_autofree char *peer_cgroup = NULL;

  if (ifb_peer_is_admin (call->peer, call->core->config))
    return TRUE;
  if (!ifb_peer_get_cgroup (call->peer, &peer_cgroup, error))
    return g_prefix_error (error, "Permission denied: vm.fds: "), FALSE;
  if (vm->cgroup && ifb_cgroup_is_within (peer_cgroup, vm->cgroup))
    return TRUE;
  return g_set_error (error, IFB_ERROR, IFB_ERROR_PERMISSION_DENIED,
                      "Permission denied: vm.fds for guest '%s' needs root, the admin group, or a peer inside "
                      "the guest's cgroup %s (peer uid %u pid %d is in %s)",
                      vm->name, vm->cgroup ? vm->cgroup : "(none)", (unsigned) call->peer->uid,
                      (int) call->peer->pid, peer_cgroup), FALSE;
}

/* The VMM pins all guest memory through the iommufd it is given (its IOAS maps), against its
 * own RLIMIT_MEMLOCK in the kernel's per-process mode. libvirt raises that limit only for the
 * <hostdev>s it manages itself, so for a guest whose memory is known the broker does it for a
 * peer inside the guest's cgroup (the launcher, which execs the VMM under the same pid): to the
 * guest's memory plus libvirt's own margin for VFIO, never lowering it. An admin outside the
 * cgroup (iommufdctl vm fds) is no VMM and keeps its limit. A limit that cannot be raised (a
 * broker without CAP_SYS_RESOURCE) does not stop the hand-off: the VMM may need less (no
 * mapping yet, a limit set by its launcher), and the journal says why it may fail. */
#define VFIO_MEMLOCK_MARGIN_MIB 1024

static void
raise_vmm_memlock (IfbVm *vm, const IfbPeer *peer)
{
  g_autofree char *peer_cgroup = NULL;
  g_autoptr (GError) error = NULL;
  guint64 bytes = (vm->options.memory_mib + VFIO_MEMLOCK_MARGIN_MIB) << 20;

  if (!vm->options.memory_mib || !vm->cgroup || !ifb_peer_get_cgroup (peer, &peer_cgroup, NULL) ||
      !ifb_cgroup_is_within (peer_cgroup, vm->cgroup))
    return;
  if (!ifb_peer_raise_memlock (peer, bytes, &error)) {
    ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "%s: the VMM may fail to map guest memory for VFIO (ENOMEM), ignoring",
                error->message);
    return;
  }
  ifb_log_vm (G_LOG_LEVEL_INFO, vm, NULL, "RLIMIT_MEMLOCK of its VMM (pid %d) is now at least %" G_GUINT64_FORMAT
              " MiB: the guest's %" G_GUINT64_FORMAT " MiB and %d MiB for VFIO", (int) peer->pid, bytes >> 20,
              vm->options.memory_mib, VFIO_MEMLOCK_MARGIN_MIB);
}

/* The vm.fds answer for an idle, realized guest: every fd first, so a failure sends none — a
 * copy of the context and, per device, a copy of our bound fd (bound) or a fresh open of its
 * cdev that we keep no copy of (unbound). The caller then holds the guest's fds and is watched. */
static gboolean
fds_answer (IfbCore *core, IfbVm *vm, const IfbPeer *peer, IfbFdList *out_fds, json_object **ret, GError **error)
{
  g_autofree int *fds = NULL;   /* [0] the iommufd, [1 + i] device i; owned until pushed */
  g_autoptr (GError) local = NULL;
  gboolean bound = vm->options.handoff == IFB_HANDOFF_BOUND;
  json_object *o, *devs;

  if (ifb_fd_list_len (out_fds) + 2 + vm->devices->len > 32)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED, "Too many fds for one reply line"), FALSE;
  raise_vmm_memlock (vm, peer);
  fds = g_new (int, 1 + vm->devices->len);
  for (guint i = 0; i <= vm->devices->len; i++) {
    IfbVmDevice *d = i ? g_ptr_array_index (vm->devices, i - 1) : NULL;
    gboolean ok = TRUE;
    if (!d || bound) {
      fds[i] = fcntl (d ? d->fd : vm->iommufd, F_DUPFD_CLOEXEC, 3);
      if (fds[i] < 0)
        ok = ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Guest '%s': duplicating an fd", vm->name);
    } else {
      ok = ifb_lifecycle_open_device (core, vm, d, &fds[i], error);
    }
    if (!ok) {
      for (guint j = 0; j < i; j++)
        ifb_close (fds[j]);
      return FALSE;
    }
  }

  o = json_object_new_object ();
  json_object_object_add (o, "vm", json_object_new_string (vm->name));
  json_object_object_add (o, "handoff", json_object_new_string (ifb_handoff_to_string (vm->options.handoff)));
  json_object_object_add (o, "backend", json_object_new_string (ifb_uapi_backend_name (core->backend)));
  json_object_object_add (o, "iommufd", json_object_new_int ((int) ifb_fd_list_len (out_fds)));
  ifb_fd_list_push (out_fds, fds[0]);
  if (bound)
    json_object_object_add (o, "ioas_id", json_object_new_int64 (vm->ioas_id));
  if (bound && vm->viommu_id)
    json_object_object_add (o, "viommu_id", json_object_new_int64 (vm->viommu_id));
  if (bound && vm->veventq_fd >= 0) {
    int q = fcntl (vm->veventq_fd, F_DUPFD_CLOEXEC, 3);
    if (q >= 0) {   /* failing that the VMM goes without events, as with a kernel before 6.14 */
      json_object_object_add (o, "veventq_id", json_object_new_int64 (vm->veventq_id));
      json_object_object_add (o, "veventq", json_object_new_int ((int) ifb_fd_list_len (out_fds)));
      ifb_fd_list_push (out_fds, q);
    }
  }
  devs = json_object_new_array ();
  for (guint i = 0; i < vm->devices->len; i++) {
    IfbVmDevice *d = g_ptr_array_index (vm->devices, i);
    json_object *dj = json_object_new_object ();
    json_object_object_add (dj, "device", json_object_new_string (d->bdf));
    json_object_object_add (dj, "fd", json_object_new_int ((int) ifb_fd_list_len (out_fds)));
    ifb_fd_list_push (out_fds, fds[1 + i]);
    if (bound) {
      json_object_object_add (dj, "dev_id", json_object_new_int64 (d->dev_id));
      json_object_object_add (dj, "hwpt_id", json_object_new_int64 (d->hwpt_id));
      json_object_object_add (dj, "nest_parent", json_object_new_boolean (d->hwpt_flags & IFB_HWPT_NEST_PARENT));
      json_object_object_add (dj, "iommu", json_object_new_string (ifb_iommu_type_to_string (d->hw.type)));
      /* A kind whose device is an object of the context (the selftest mock): a VMM moves it
       * between HWPTs by this id, having no device fd to attach. */
      if (d->kind_object_id)
        json_object_object_add (dj, "kind_object_id", json_object_new_int64 (d->kind_object_id));
      if (d->vdev_id) {
        json_object_object_add (dj, "vdev_id", json_object_new_int64 (d->vdev_id));
        json_object_object_add (dj, "virt_id", json_object_new_int64 ((gint64) d->virt_id));
      }
    }
    json_object_array_add (devs, dj);
  }
  json_object_object_add (o, "devices", devs);

  /* The caller holds the fds now (the launcher execs the VMM under the same pid): watch it. The
   * state is written only when that changed something: a holder asking again (or a peer
   * calling in a loop) costs no write and no fsync. */
  {
    guint n_before = vm->holders->len;
    pid_t vmm_before = vm->vmm_pid;
    if (!ifb_holders_add (core, vm, peer->pid, peer->pidfd, &local))
      ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "%s: its exit will not free what it allocates, ignoring", local->message);
    else if ((vm->holders->len != n_before || vm->vmm_pid != vmm_before) && !ifb_core_persist (core, vm, &local))
      ifb_log_vm (G_LOG_LEVEL_WARNING, vm, NULL, "%s, ignoring", local->message);
  }
  *ret = o;
  return TRUE;
}

static void
fds_realized (IfbCore *core, IfbVm *vm, const GError *error, gpointer data)
{
  IfbDeferred *d = data;
  g_autoptr (GError) local = NULL;
  const IfbPeer *peer = ifb_deferred_peer (d);
  json_object *o = NULL;

  if (error)
    ifb_deferred_fail (d, error);
  else if (!peer)   /* it hung up meanwhile: nobody to hand the fds to */
    ifb_deferred_return (d, json_object_new_object ());
  else if (!fds_answer (core, vm, peer, ifb_deferred_out_fds (d), &o, &local))
    ifb_deferred_fail (d, local);
  else
    ifb_deferred_return (d, o);
}

gboolean
ifb_rpc_vm_fds (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  const IfbRpcVmArgs *p = args;
  IfbVm *vm;

  vm = ifb_rpc_lookup_vm (call, p->vm, p->uuid, error);
  if (!vm || !check_fds_access (call, vm, error))
    return ifb_rpc_fds_refused (call, error);
  if (ifb_call_park_if_busy (call, vm))
    return TRUE;
  if (!ifb_holders_admit (vm, call->peer->pid, error))
    return FALSE;
  ifb_lifecycle_realize (call->core, vm, fds_realized, ifb_call_defer (call));
  return TRUE;
}

static void
started_realized (IfbCore *core, IfbVm *vm, const GError *error, gpointer data)
{
  g_autoptr (GError) local = NULL;

  if (!error && !ifb_core_persist (core, vm, &local))
    error = local;
  answer_vm (core, vm, error, data);
}

gboolean
ifb_rpc_vm_started (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  const IfbRpcVmArgs *p = args;
  g_autofree char *cgroup = NULL;
  IfbVm *vm;

  if (p->pid <= 0 || p->pid > G_MAXINT32)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS, "Invalid params: member 'pid' is out of range"), FALSE;
  vm = ifb_rpc_lookup_vm (call, p->vm, p->uuid, error);
  if (!vm)
    return FALSE;
  if (ifb_call_park_if_busy (call, vm))
    return TRUE;
  if (!ifb_cgroup_of_pid ((pid_t) p->pid, &cgroup, error))
    return FALSE;
  if (vm->cgroup && !ifb_cgroup_is_within (cgroup, vm->cgroup))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_CGROUP_INVALID,
                        "Process %" G_GINT64_FORMAT " runs in %s, outside guest '%s''s cgroup %s",
                        p->pid, cgroup, vm->name, vm->cgroup), FALSE;
  if (!ifb_holders_add (call->core, vm, (pid_t) p->pid, -1, error))
    return FALSE;
  ifb_lifecycle_realize (call->core, vm, started_realized, ifb_call_defer (call));
  return TRUE;
}

gboolean
ifb_rpc_vm_place (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  const IfbRpcVmArgs *p = args;
  IfbVm *vm;

  vm = ifb_rpc_lookup_vm (call, p->vm, p->uuid, error);
  if (!vm)
    return FALSE;
  if (ifb_call_park_if_busy (call, vm))
    return TRUE;
  if (!ifb_lifecycle_place (call->core, vm, p->cgroup, call->peer, error))
    return FALSE;
  *ret = ifb_vm_to_json (vm, FALSE);
  return TRUE;
}

gboolean
ifb_rpc_events_subscribe (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  json_object *o;

  ifb_call_subscribe (call);
  o = json_object_new_object ();
  json_object_object_add (o, "subscribed", json_object_new_boolean (TRUE));
  *ret = o;
  return TRUE;
}
