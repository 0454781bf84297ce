/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of proto/params.c: table-driven parameters. Every failure is IFB_ERROR_INVALID_PARAMS
 * (-32602 on the wire) and names the member at fault; on success each field holds its value and
 * absent optional members leave their field untouched.
 */
#include <stddef.h>
#include <string.h>

#include "errors.h"
#include "json.h"
#include "params.h"
#include "util.h"

typedef struct {
  const char *name;
  gint64 count;
  gboolean flag;
  json_object *options;
  json_object *list;
} Args;

static const IfbParamSpec specs[] = {
  { "name", IFB_PARAM_STRING, offsetof (Args, name), IFB_PARAM_REQUIRED },
  { "count", IFB_PARAM_INT, offsetof (Args, count), 0 },
  { "flag", IFB_PARAM_BOOL, offsetof (Args, flag), 0 },
  { "options", IFB_PARAM_OBJECT, offsetof (Args, options), 0 },
  { "list", IFB_PARAM_ARRAY, offsetof (Args, list), 0 },
  { NULL },
};

static json_object *
parse (const char *text)
{
  g_autoptr (GError) error = NULL;
  json_object *o = ifb_json_parse (text, strlen (text), 16, &error);
  g_assert_no_error (error);
  return o;
}

/* Parse params text against specs; expect failure whose message contains want. */
static void
expect_error (const char *text, const char *want)
{
  g_autoptr (json_object) p = text ? parse (text) : NULL;
  g_autoptr (GError) error = NULL;
  Args a = { .count = -7 };

  g_assert_false (ifb_params_parse (p, specs, &a, &error));
  g_assert_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS);
  if (!strstr (error->message, want))
    g_error ("params %s: message '%s' does not contain '%s'", text, error->message, want);
  g_assert_cmpint (ifb_error_to_code (IFB_ERROR_INVALID_PARAMS), ==, -32602);
}

static void
test_all_types (void)
{
  g_autoptr (json_object) p = parse ("{\"name\":\"vm1\",\"count\":-9223372036854775808,\"flag\":true,"
                                     "\"options\":{\"x\":1},\"list\":[1,2]}");
  g_autoptr (GError) error = NULL;
  Args a = { 0 };

  g_assert_true (ifb_params_parse (p, specs, &a, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (a.name, ==, "vm1");
  g_assert_cmpint (a.count, ==, G_MININT64);
  g_assert_true (a.flag);
  g_assert_nonnull (ifb_json_get (a.options, "x"));
  g_assert_cmpuint (json_object_array_length (a.list), ==, 2);
}

/* Absent optional members leave defaults alone. */
static void
test_optional_untouched (void)
{
  g_autoptr (json_object) p = parse ("{\"name\":\"x\"}");
  g_autoptr (GError) error = NULL;
  Args a = { .count = 42, .flag = TRUE };

  g_assert_true (ifb_params_parse (p, specs, &a, &error));
  g_assert_cmpint (a.count, ==, 42);
  g_assert_true (a.flag);
  g_assert_null (a.options);
}

static void
test_unknown_member (void)
{
  expect_error ("{\"name\":\"x\",\"bogus\":1}", "unknown member 'bogus'");
  expect_error ("{\"Name\":\"x\"}", "unknown member 'Name'");
  /* a method without params refuses any member */
  {
    static const IfbParamSpec none[] = { { NULL } };
    g_autoptr (json_object) p = parse ("{\"verbose\":true}");
    g_autoptr (json_object) empty = parse ("{}");
    g_autoptr (GError) error = NULL;
    g_assert_false (ifb_params_parse (p, none, NULL, &error));
    g_assert_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS);
    g_assert_nonnull (strstr (error->message, "'verbose'"));
    g_clear_error (&error);
    g_assert_true (ifb_params_parse (empty, none, NULL, &error));
    g_assert_true (ifb_params_parse (NULL, none, NULL, &error));
    g_assert_no_error (error);
  }
}

static void
test_missing_required (void)
{
  expect_error ("{}", "missing required member 'name'");
  expect_error ("{\"count\":1}", "missing required member 'name'");
  expect_error (NULL, "missing required member 'name'");   /* absent params count as {} */
}

static void
test_wrong_type (void)
{
  expect_error ("{\"name\":1}", "member 'name' must be a string");
  expect_error ("{\"name\":null}", "member 'name' must be a string");
  expect_error ("{\"name\":\"x\",\"count\":\"1\"}", "member 'count' must be an integer");
  expect_error ("{\"name\":\"x\",\"count\":1.5}", "member 'count' must be an integer");
  expect_error ("{\"name\":\"x\",\"flag\":1}", "member 'flag' must be a boolean");
  expect_error ("{\"name\":\"x\",\"options\":[]}", "member 'options' must be an object");
  expect_error ("{\"name\":\"x\",\"list\":{}}", "member 'list' must be an array");
}

/* By-position params (an array) are not supported: the error says params must be an object. */
static void
test_params_array (void)
{
  expect_error ("[\"vm1\"]", "'params' must be an object");
  expect_error ("[]", "'params' must be an object");
  expect_error ("\"vm1\"", "'params' must be an object");
}

typedef struct {
  const char *mode;
  gint64 level;
  gboolean fast;
} Inner;

typedef struct {
  const char *name;
  Inner inner;
} Outer;

static const IfbParamSpec inner_specs[] = {
  { "mode", IFB_PARAM_STRING, offsetof (Inner, mode), IFB_PARAM_REQUIRED },
  { "level", IFB_PARAM_INT, offsetof (Inner, level) },
  { "fast", IFB_PARAM_BOOL, offsetof (Inner, fast) },
  { NULL },
};

static const IfbParamSpec outer_specs[] = {
  { "name", IFB_PARAM_STRING, offsetof (Outer, name) },
  { "inner", IFB_PARAM_OBJECT, offsetof (Outer, inner), .members = inner_specs },
  { NULL },
};

/* Parse text into *o (inner level starting at -1); on failure return the message. *ret_params
 * keeps the parsed text alive, which o's strings borrow. */
static char *
parse_outer (const char *text, Outer *o, json_object **ret_params)
{
  g_autoptr (GError) error = NULL;

  *ret_params = parse (text);
  *o = (Outer) { .inner = { .level = -1 } };
  if (ifb_params_parse (*ret_params, outer_specs, o, &error))
    return NULL;
  g_assert_error (error, IFB_ERROR, IFB_ERROR_INVALID_PARAMS);
  return g_strdup (error->message);
}

/*
 * An object member with a table of its own parses into the struct embedded at its offset, by
 * the same rules, a failure inside it saying which object; when the object is absent, its
 * struct keeps its defaults and its required members are not asked for.
 */
static void
test_nested_members (void)
{
  static const struct {
    const char *params, *error;
  } bad[] = {
    { "{\"inner\":{\"mode\":\"m\",\"turbo\":1}}", "In 'inner': Invalid params: unknown member 'turbo'" },
    { "{\"inner\":{\"mode\":\"m\",\"level\":true}}", "In 'inner': Invalid params: member 'level' must be an integer" },
    { "{\"inner\":{}}", "In 'inner': Invalid params: missing required member 'mode'" },
    { "{\"inner\":[]}", "Invalid params: member 'inner' must be an object" },
  };
  Outer o;

  {
    g_autoptr (json_object) p = NULL;
    g_assert_null (parse_outer ("{\"name\":\"a\",\"inner\":{\"mode\":\"m\",\"fast\":true}}", &o, &p));
    g_assert_cmpstr (o.name, ==, "a");
    g_assert_cmpstr (o.inner.mode, ==, "m");
    g_assert_cmpint (o.inner.level, ==, -1);
    g_assert_true (o.inner.fast);
  }
  {
    g_autoptr (json_object) p = NULL;
    g_assert_null (parse_outer ("{\"name\":\"a\"}", &o, &p));
    g_assert_null (o.inner.mode);
    g_assert_cmpint (o.inner.level, ==, -1);
  }
  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (json_object) p = NULL;
    g_autofree char *msg = parse_outer (bad[i].params, &o, &p);
    g_assert_cmpstr (msg, ==, bad[i].error);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ifb/params/all-types", test_all_types);
  g_test_add_func ("/ifb/params/optional-untouched", test_optional_untouched);
  g_test_add_func ("/ifb/params/unknown-member", test_unknown_member);
  g_test_add_func ("/ifb/params/missing-required", test_missing_required);
  g_test_add_func ("/ifb/params/wrong-type", test_wrong_type);
  g_test_add_func ("/ifb/params/params-array", test_params_array);
  g_test_add_func ("/ifb/params/nested-members", test_nested_members);
  return g_test_run ();
}
