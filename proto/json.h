/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Strict JSON in and out, with json-c's known leniencies closed (see json.c).
 */
#pragma once

#include <stddef.h>
#include <glib.h>
#include <json-c/json.h>

#define IFB_JSON_DEFAULT_DEPTH 16

/* Parse exactly one JSON text of len bytes, at most max_depth nested objects/arrays deep. Fails
 * with IFB_ERROR_PARSE naming the problem; a text that is just `null` (json-c has no object for
 * it) fails with IFB_ERROR_INVALID_REQUEST instead, since it is well-formed. */
json_object *ifb_json_parse (const char *text, size_t len, int max_depth, GError **error);

/* Serialize compactly (no newlines, so the result is one protocol line). Owned by obj. */
const char *ifb_json_to_line (json_object *obj, size_t *ret_len);

/* Type-checked getters that never abort: NULL/FALSE when absent or of another type. */
json_object *ifb_json_get (json_object *obj, const char *key);
const char *ifb_json_get_string (json_object *obj, const char *key);
gboolean ifb_json_get_int (json_object *obj, const char *key, gint64 *ret);
