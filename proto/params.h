/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Method parameters parsed by tables:
 *   { "name", IFB_PARAM_STRING, offsetof (Args, name), IFB_PARAM_REQUIRED },
 * Params must be an object (by-name); absent params count as {}. Unknown members, missing
 * required members and wrong types fail with IFB_ERROR_INVALID_PARAMS naming the member.
 * Strings and objects are borrowed from the params object and live as long as it does.
 *
 * An object member with a table of its own parses into a struct embedded at its offset:
 *   { "options", IFB_PARAM_OBJECT, offsetof (Args, options), .members = option_specs },
 * by the same rules, a failure inside it prefixed "In 'options': ". Without .members the field
 * is the object itself (json_object *, borrowed).
 */
#pragma once

#include <stddef.h>
#include <glib.h>
#include <json-c/json.h>

typedef enum {
  IFB_PARAM_STRING,     /* const char * */
  IFB_PARAM_INT,        /* gint64 */
  IFB_PARAM_BOOL,       /* gboolean */
  IFB_PARAM_OBJECT,     /* json_object * (borrowed), or the struct .members parses into */
  IFB_PARAM_ARRAY,      /* json_object * (borrowed) */
} IfbParamType;

typedef enum {
  IFB_PARAM_OPTIONAL = 0,
  IFB_PARAM_REQUIRED = 1 << 0,
} IfbParamFlags;

typedef struct IfbParamSpec IfbParamSpec;
struct IfbParamSpec {
  const char *name;
  IfbParamType type;
  size_t offset;
  IfbParamFlags flags;
  const IfbParamSpec *members;  /* IFB_PARAM_OBJECT only: its members' table, offsets within its struct */
};

/* specs ends with { NULL }. Members not present leave their field untouched. */
gboolean ifb_params_parse (json_object *params, const IfbParamSpec *specs, void *out, GError **error);
