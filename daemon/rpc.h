/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The RPC handlers, one file per method family: rpc-broker.c, rpc-device.c, rpc-metrics.c,
 * rpc-vm.c, rpc-events.c. The table that names them is rpc-methods.c.
 */
#pragma once

#include "dispatch.h"

gboolean ifb_rpc_discover (IfbCall *call, json_object *params, json_object **ret, GError **error);
gboolean ifb_rpc_broker_info (IfbCall *call, json_object *params, json_object **ret, GError **error);
gboolean ifb_rpc_device_list (IfbCall *call, json_object *params, json_object **ret, GError **error);
gboolean ifb_rpc_metrics (IfbCall *call, json_object *params, json_object **ret, GError **error);
gboolean ifb_rpc_vm_create (IfbCall *call, json_object *params, json_object **ret, GError **error);
gboolean ifb_rpc_vm_attach (IfbCall *call, json_object *params, json_object **ret, GError **error);
gboolean ifb_rpc_vm_detach (IfbCall *call, json_object *params, json_object **ret, GError **error);
gboolean ifb_rpc_vm_destroy (IfbCall *call, json_object *params, json_object **ret, GError **error);
gboolean ifb_rpc_vm_list (IfbCall *call, json_object *params, json_object **ret, GError **error);
gboolean ifb_rpc_vm_show (IfbCall *call, json_object *params, json_object **ret, GError **error);
gboolean ifb_rpc_vm_fds (IfbCall *call, json_object *params, json_object **ret, GError **error);
gboolean ifb_rpc_vm_started (IfbCall *call, json_object *params, json_object **ret, GError **error);
gboolean ifb_rpc_events_subscribe (IfbCall *call, json_object *params, json_object **ret, GError **error);

/* The guest a vm.* call names by 'vm' (name), 'uuid', or both (rpc-lookup.c). */
IfbVm *ifb_rpc_lookup_vm (IfbCall *call, const char *name, const char *uuid, GError **error);

/* vm.fds refused: for a peer without a role the error is rewritten to say no more than that
 * (not whether the guest exists, nor its cgroup). Returns FALSE. */
gboolean ifb_rpc_fds_refused (IfbCall *call, GError **error);

/* The OpenRPC document, embedded at build time from proto/openrpc.json. */
extern const char ifb_openrpc_json[];
