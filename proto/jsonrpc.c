/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "errors.h"
#include "util.h"
#include "json.h"
#include "jsonrpc.h"

static json_object *
envelope (json_object *id)
{
  json_object *msg = json_object_new_object ();
  json_object_object_add (msg, "jsonrpc", json_object_new_string ("2.0"));
  json_object_object_add (msg, "id", id ? json_object_get (id) : NULL);
  return msg;
}

json_object *
ifb_jsonrpc_result_new (json_object *id, json_object *result)
{
  json_object *msg = envelope (id);
  json_object_object_add (msg, "result", result ? result : json_object_new_object ());
  return msg;
}

json_object *
ifb_jsonrpc_error_new (json_object *id, const GError *error)
{
  json_object *msg = envelope (id);
  json_object *err = json_object_new_object ();
  json_object *data = json_object_new_object ();
  IfbError code = error->domain == IFB_ERROR ? (IfbError) error->code : IFB_ERROR_FAILED;
  int errnum = ifb_error_get_errno (error);
  const char *errname = errnum ? ifb_errno_to_name (errnum) : NULL;

  json_object_object_add (err, "code", json_object_new_int (ifb_error_to_code (code)));
  json_object_object_add (err, "message", json_object_new_string (error->message));
  json_object_object_add (data, "name", json_object_new_string (ifb_error_to_name (code)));
  if (errname)
    json_object_object_add (data, "errno", json_object_new_string (errname));
  json_object_object_add (err, "data", data);
  json_object_object_add (msg, "error", err);
  return msg;
}

json_object *
ifb_jsonrpc_request_new (const char *method, json_object *params, gint64 id)
{
  json_object *msg = json_object_new_object ();
  json_object_object_add (msg, "jsonrpc", json_object_new_string ("2.0"));
  json_object_object_add (msg, "method", json_object_new_string (method));
  if (params)
    json_object_object_add (msg, "params", params);
  if (id >= 0)
    json_object_object_add (msg, "id", json_object_new_int64 (id));
  return msg;
}

gboolean
ifb_jsonrpc_error_to_gerror (json_object *error_obj, GError **error)
{
  json_object *data = ifb_json_get (error_obj, "data");
  const char *message = ifb_json_get_string (error_obj, "message");
  const char *name = ifb_json_get_string (data, "name");
  const char *errname = ifb_json_get_string (data, "errno");
  int code = ifb_error_from_name (name);

  if (code < 0)
    code = IFB_ERROR_FAILED;
  return ifb_error_set_literal_errno (error, (IfbError) code, ifb_errno_from_name (errname),
                                      message ? message : "unknown error");
}
