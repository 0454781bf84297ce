/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* metrics: the OpenMetrics text (metrics-text.h) in a JSON-RPC reply. */
#define G_LOG_DOMAIN "ifb-rpc"

#include "metrics-text.h"
#include "rpc.h"

gboolean
ifb_rpc_metrics (IfbCall *call, const void *args, json_object **ret, GError **error)
{
  g_autofree char *text = NULL;
  json_object *o;

  text = ifb_metrics_render (call->core, IFB_METRICS_OPENMETRICS);
  o = json_object_new_object ();
  json_object_object_add (o, "content_type", json_object_new_string (IFB_METRICS_OPENMETRICS_CONTENT_TYPE));
  json_object_object_add (o, "text", json_object_new_string (text));
  *ret = o;
  return TRUE;
}
