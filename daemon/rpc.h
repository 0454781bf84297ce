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

/* The OpenRPC document, embedded at build time from proto/openrpc.json. */
extern const char ifb_openrpc_json[];
