/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The RPC handlers, one file per method family: rpc-broker.c (rpc.discover, broker.info),
 * rpc-device.c (device.list), rpc-metrics.c (metrics), rpc-vm.c (vm.*, and events.subscribe,
 * whose events are the guests'), rpc-lookup.c (finding the guest a vm.* call names). The table
 * that names them is rpc-methods.c.
 */
#pragma once

#include "dispatch.h"

/*
 * What the handlers get as args: their params, parsed by the dispatcher against the method's
 * table entry (rpc-methods.c, which also holds the defaults). Strings and arrays are borrowed
 * from the request. Methods that take no params get NULL.
 */

/* vm.create */
typedef struct {
  const char *handoff, *viommu;
  gboolean nest_parent, allow_plain, dirty_tracking, defer, allow_caller_cgroup;
  gboolean rlimit_per_process;          /* -1: not given (the configured default) */
  gint64 memory_mib;                    /* the guest's memory; G_MININT64: not given */
  gint64 veventq_depth;                 /* 0: no vEVENTQ */
} IfbRpcVmCreateOptions;

/* A vEVENTQ holds at most this many events (what it holds is charged to the guest's cgroup). */
#define IFB_VEVENTQ_MAX_DEPTH 65536

typedef struct {
  const char *name, *uuid, *cgroup;
  gint64 pid, pidfd;                    /* G_MININT64, -1: not given */
  IfbRpcVmCreateOptions options;
} IfbRpcVmCreateArgs;

/* vm.attach ('device' or 'devices', 'managed') and vm.detach ('device') */
typedef struct {
  const char *vm, *uuid, *device;
  json_object *devices;
  gint64 virt_id;                       /* vm.attach; G_MININT64: not given */
  gboolean managed;
} IfbRpcVmDeviceArgs;

/* vm.destroy, vm.show, vm.fds, vm.started (with 'pid') and vm.place (with 'cgroup') */
typedef struct {
  const char *vm, *uuid;
  gint64 pid;
  const char *cgroup;
} IfbRpcVmArgs;

gboolean ifb_rpc_discover (IfbCall *call, const void *args, json_object **ret, GError **error);
gboolean ifb_rpc_broker_info (IfbCall *call, const void *args, json_object **ret, GError **error);
gboolean ifb_rpc_device_list (IfbCall *call, const void *args, json_object **ret, GError **error);
gboolean ifb_rpc_metrics (IfbCall *call, const void *args, json_object **ret, GError **error);
gboolean ifb_rpc_vm_create (IfbCall *call, const void *args, json_object **ret, GError **error);
gboolean ifb_rpc_vm_attach (IfbCall *call, const void *args, json_object **ret, GError **error);
gboolean ifb_rpc_vm_detach (IfbCall *call, const void *args, json_object **ret, GError **error);
gboolean ifb_rpc_vm_destroy (IfbCall *call, const void *args, json_object **ret, GError **error);
gboolean ifb_rpc_vm_list (IfbCall *call, const void *args, json_object **ret, GError **error);
gboolean ifb_rpc_vm_show (IfbCall *call, const void *args, json_object **ret, GError **error);
gboolean ifb_rpc_vm_fds (IfbCall *call, const void *args, json_object **ret, GError **error);
gboolean ifb_rpc_vm_started (IfbCall *call, const void *args, json_object **ret, GError **error);
gboolean ifb_rpc_vm_place (IfbCall *call, const void *args, json_object **ret, GError **error);
gboolean ifb_rpc_events_subscribe (IfbCall *call, const void *args, json_object **ret, GError **error);

/* The guest a vm.* call names by 'vm' (name), 'uuid', or both (rpc-lookup.c). */
IfbVm *ifb_rpc_lookup_vm (IfbCall *call, const char *name, const char *uuid, GError **error);

/* vm.fds refused: for a peer without a role the error is rewritten to say no more than that
 * (not whether the guest exists, nor its cgroup). Returns FALSE. */
gboolean ifb_rpc_fds_refused (IfbCall *call, GError **error);

/* The OpenRPC document, embedded at build time from proto/openrpc.json. */
extern const char ifb_openrpc_json[];
