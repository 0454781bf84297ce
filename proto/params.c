/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "errors.h"
#include "params.h"

static const char *const type_names[] = {
  [IFB_PARAM_STRING] = "a string",
  [IFB_PARAM_INT] = "an integer",
  [IFB_PARAM_BOOL] = "a boolean",
  [IFB_PARAM_OBJECT] = "an object",
  [IFB_PARAM_ARRAY] = "an array",
};

static const json_type json_types[] = {
  [IFB_PARAM_STRING] = json_type_string,
  [IFB_PARAM_INT] = json_type_int,
  [IFB_PARAM_BOOL] = json_type_boolean,
  [IFB_PARAM_OBJECT] = json_type_object,
  [IFB_PARAM_ARRAY] = json_type_array,
};

gboolean
ifb_params_parse (json_object *params, const IfbParamSpec *specs, void *out, GError **error)
{
  if (params && !json_object_is_type (params, json_type_object))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                        "Invalid params: 'params' must be an object"), FALSE;

  if (params) {
    json_object_object_foreach (params, key, val) {
      (void) val;
      const IfbParamSpec *s = specs;
      while (s->name && g_strcmp0 (s->name, key) != 0)
        s++;
      if (!s->name)
        return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                            "Invalid params: unknown member '%s'", key), FALSE;
    }
  }

  for (const IfbParamSpec *s = specs; s->name; s++) {
    json_object *v = NULL;
    char *field = (char *) out + s->offset;

    if (!params || !json_object_object_get_ex (params, s->name, &v)) {
      if (s->flags & IFB_PARAM_REQUIRED)
        return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                            "Invalid params: missing required member '%s'", s->name), FALSE;
      continue;
    }
    if (!v || !json_object_is_type (v, json_types[s->type]))
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS,
                          "Invalid params: member '%s' must be %s", s->name, type_names[s->type]), FALSE;
    switch (s->type) {
    case IFB_PARAM_STRING:
      *(const char **) field = json_object_get_string (v);
      break;
    case IFB_PARAM_INT:
      *(gint64 *) field = json_object_get_int64 (v);
      break;
    case IFB_PARAM_BOOL:
      *(gboolean *) field = json_object_get_boolean (v);
      break;
    case IFB_PARAM_OBJECT:
      if (!s->members) {
        *(json_object **) field = v;
      } else if (!ifb_params_parse (v, s->members, field, error)) {
        g_prefix_error (error, "In '%s': ", s->name);
        return FALSE;
      }
      break;
    case IFB_PARAM_ARRAY:
      *(json_object **) field = v;
      break;
    }
  }
  return TRUE;
}
