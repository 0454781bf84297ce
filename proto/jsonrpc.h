/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * JSON-RPC 2.0 message objects: building responses and requests, turning a GError into an
 * error object (the only place that does) and an error object back into a GError.
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

/* {"jsonrpc":"2.0","id":id,"result":result}; id borrowed (NULL -> null), result taken. */
json_object *ifb_jsonrpc_result_new (json_object *id, json_object *result);
/* {"jsonrpc":"2.0","id":id,"error":{code,message,data:{name,errno?}}} from an IFB_ERROR. */
json_object *ifb_jsonrpc_error_new (json_object *id, const GError *error);
/* {"jsonrpc":"2.0","method":m,"params":p[,"id":id]}; id < 0 makes a notification. */
json_object *ifb_jsonrpc_request_new (const char *method, json_object *params, gint64 id);
/* Rebuild a GError from a response's "error" member. Returns FALSE always. */
gboolean ifb_jsonrpc_error_to_gerror (json_object *error_obj, GError **error);
