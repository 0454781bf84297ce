/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rpc.discover and broker.info. */
#define G_LOG_DOMAIN "ifb-rpc"

#include "device-kind.h"
#include "errors.h"
#include "util.h"
#include "ifb-config.h"
#include "json.h"
#include "params.h"
#include "rpc.h"
#include "worker.h"

/* The document's reply text, rendered once (on one line, as the framing needs). */
static int
serialize_discover (json_object *jso, struct printbuf *pb, int level, int flags)
{
  const GString *text = json_object_get_userdata (jso);
  return printbuf_memappend (pb, text->str, (int) text->len);
}

gboolean
ifb_rpc_discover (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  static GString *text;
  json_object *o;

  if (!text) {
    g_autoptr (json_object) doc = json_tokener_parse (ifb_openrpc_json);
    if (!doc)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INTERNAL, "The embedded OpenRPC document does not parse"), FALSE;
    text = g_string_new (json_object_to_json_string_ext (doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
  }
  /* An object only ever serialized, whose text is the one rendering: each call costs a copy of
   * it, not a parse and a tree (a batch of 64 made 459 KB of replies out of 3.5 KB). */
  o = json_object_new_object ();
  json_object_set_serializer (o, serialize_discover, text, NULL);
  *ret = o;
  return TRUE;
}

static json_object *
limits_json (const IfbConfig *c)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "max_frame", json_object_new_int64 (c->max_frame));
  json_object_object_add (o, "max_depth", json_object_new_int64 (c->max_depth));
  json_object_object_add (o, "max_connections", json_object_new_int64 (c->max_connections));
  json_object_object_add (o, "max_connections_per_uid", json_object_new_int64 (c->max_connections_per_uid));
  json_object_object_add (o, "max_pending", json_object_new_int64 (c->max_pending));
  json_object_object_add (o, "max_batch", json_object_new_int64 (c->max_batch));
  json_object_object_add (o, "max_vms", json_object_new_int64 (c->max_vms));
  json_object_object_add (o, "max_devices_per_vm", json_object_new_int64 (c->max_devices_per_vm));
  json_object_object_add (o, "max_fds_per_message", json_object_new_int64 (32));
  json_object_object_add (o, "max_unclaimed_fds_per_connection", json_object_new_int64 (64));
  json_object_object_add (o, "max_queued_bytes", json_object_new_int64 (c->max_queued_bytes));
  json_object_object_add (o, "reserved_connections", json_object_new_int64 (c->reserved_connections));
  json_object_object_add (o, "idle_timeout", json_object_new_int64 (c->idle_timeout));
  json_object_object_add (o, "max_refusals_logged", json_object_new_int64 (c->max_refusals_logged));
  json_object_object_add (o, "expensive_calls_per_second", json_object_new_int64 (c->expensive_calls_per_second));
  return o;
}

gboolean
ifb_rpc_broker_info (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  IfbCore *core = call->core;
  json_object *o, *counts, *acct, *workers;
  gboolean mem;

  o = json_object_new_object ();
  json_object_object_add (o, "version", json_object_new_string (IFB_VERSION));
  json_object_object_add (o, "backend", json_object_new_string (ifb_uapi_backend_name (core->backend)));
  json_object_object_add (o, "backend_reason", json_object_new_string (core->backend_reason));
  json_object_object_add (o, "emulated_root", core->emulated_root ? json_object_new_string (core->emulated_root) : NULL);
  json_object_object_add (o, "selftest_devices", json_object_new_boolean (ifb_device_kind_offered (ifb_device_kind_by_name ("selftest"))));

  mem = core->cgroups && ifb_cgroup_root_has_memory (core->cgroups);
  acct = json_object_new_object ();
  json_object_object_add (acct, "cgroup2_mount", core->cgroups ? json_object_new_string (ifb_cgroup_root_mount (core->cgroups)) : NULL);
  json_object_object_add (acct, "memory_controller_on_cgroup2", json_object_new_boolean (mem));
  json_object_object_add (acct, "charged_to_guest", json_object_new_boolean (mem));
  json_object_object_add (acct, "note", json_object_new_string (
      !core->cgroups ? "no cgroup2 hierarchy: workers cannot be placed" :
      mem ? "IOMMU page tables are charged to each guest's cgroup" :
            "workers run in each guest's cgroup2 directory, but the memory controller is not on cgroup2 "
            "(hybrid or v1 host): the kernel cannot charge the guest"));
  json_object_object_add (acct, "daemon_cgroup", core->self_cgroup ? json_object_new_string (core->self_cgroup) : NULL);
  json_object_object_add (acct, "rlimit_per_process_default", json_object_new_boolean (core->config->rlimit_per_process));
  json_object_object_add (o, "accounting", acct);

  workers = json_object_new_object ();
  json_object_object_add (workers, "placement", json_object_new_string (
      "vfork+cgroup.procs"));
  json_object_object_add (workers, "spawned", json_object_new_int64 ((int64_t) ifb_worker_count ()));
  json_object_object_add (workers, "running", json_object_new_int64 (ifb_worker_n_running ()));
  json_object_object_add (workers, "waiting", json_object_new_int64 (ifb_worker_n_waiting ()));
  json_object_object_add (workers, "max_running", json_object_new_int64 (core->config->max_workers));
  json_object_object_add (o, "workers", workers);

  counts = json_object_new_object ();
  json_object_object_add (counts, "vms", json_object_new_int64 (ifb_registry_n_vms (core->registry)));
  json_object_object_add (counts, "devices", json_object_new_int64 (ifb_registry_n_devices (core->registry)));
  json_object_object_add (counts, "connections", json_object_new_int64 (core->gauges.connections));
  json_object_object_add (counts, "restored_vms", json_object_new_int64 ((int64_t) core->gauges.restored_vms));
  json_object_object_add (o, "counts", counts);
  json_object_object_add (o, "limits", limits_json (core->config));
  {
    json_object *defaults = json_object_new_object ();
    json_object_object_add (defaults, "handoff", json_object_new_string (ifb_handoff_to_string (IFB_HANDOFF_UNBOUND)));
    json_object_object_add (o, "defaults", defaults);
  }
  json_object_object_add (o, "libvirt", core->config->libvirt_uri ? json_object_new_string (core->config->libvirt_uri) : NULL);
  json_object_object_add (o, "libvirt_connected", json_object_new_boolean (core->gauges.libvirt_connected));
  json_object_object_add (o, "uptime_usec", json_object_new_int64 (g_get_monotonic_time () - core->started_usec));
  *ret = o;
  return TRUE;
}
