/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Method parameters parsed by tables:
 *   { "name", IFB_PARAM_STRING, offsetof (Args, name), IFB_PARAM_REQUIRED },
 * Params must be an object (by-name); absent params count as {}. Unknown members, missing
 * required members and wrong types fail with IFB_ERROR_INVALID_PARAMS naming the member.
 * Strings and objects are borrowed from the params object and live as long as it does.
 */
#pragma once

#include <stddef.h>
#include <glib.h>
#include <json-c/json.h>

typedef enum {
  IFB_PARAM_STRING,     /* const char * */
  IFB_PARAM_INT,        /* gint64 */
  IFB_PARAM_BOOL,       /* gboolean */
  IFB_PARAM_OBJECT,     /* json_object * (borrowed) */
  IFB_PARAM_ARRAY,      /* json_object * (borrowed) */
} IfbParamType;

typedef enum {
  IFB_PARAM_OPTIONAL = 0,
  IFB_PARAM_REQUIRED = 1 << 0,
} IfbParamFlags;

typedef struct {
  const char *name;
  IfbParamType type;
  size_t offset;
  IfbParamFlags flags;
} IfbParamSpec;

/* specs ends with { NULL }. Members not present leave their field untouched. */
gboolean ifb_params_parse (json_object *params, const IfbParamSpec *specs, void *out, GError **error);
