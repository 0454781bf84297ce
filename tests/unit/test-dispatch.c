/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of daemon/rpc/dispatch.c through ifb_dispatch_line() with a manager that was created but
 * never started (default config, empty registry, no backend): JSON-RPC 2.0 request validation,
 * ids echoed byte for byte, notifications (alone and in batches) answered with nothing, batches,
 * the -32700/-32600/-32601/-32602 and server error shapes, access checks, max-batch, max-depth,
 * and fds that come with a line being closed unless a method takes them.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dispatch.h"
#include "errors.h"
#include "json.h"
#include "core.h"
#include "util.h"

typedef struct {
  IfbCore *m;
  IfbPeer root;
  IfbPeer user;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  IfbConfig *c = ifb_config_load (NULL, FALSE, &error);

  g_assert_no_error (error);
  c->max_batch = 4;
  c->max_depth = 6;
  f->m = ifb_core_new (c);
  g_assert_no_error (error);
  f->root = (IfbPeer) { .pid = getpid (), .uid = 0, .gid = 0, .pidfd = -1 };
  f->user = (IfbPeer) { .pid = getpid (), .uid = 4242, .gid = 4242, .pidfd = -1 };
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  f->m = ifb_core_free (f->m);
}

/* Dispatch text as root; returns the reply line (NULL for no reply). */
static char *
dispatch_as (Fixture *f, const IfbPeer *peer, const char *text, IfbFdList *fds)
{
  g_autoptr (json_object) reply = NULL;
  g_autoptr (IfbFdList) out_fds = NULL;
  const char *line;
  size_t len;

  ifb_dispatch_line (f->m, NULL, peer, text, strlen (text), fds, &reply, &out_fds);
  if (!reply) {
    g_assert_null (out_fds);
    return NULL;
  }
  line = ifb_json_to_line (reply, &len);
  g_assert_null (memchr (line, '\n', len));
  return g_strndup (line, len);
}

static char *
dispatch (Fixture *f, const char *text)
{
  return dispatch_as (f, &f->root, text, NULL);
}

static json_object *
parse_reply (const char *line)
{
  g_autoptr (GError) error = NULL;
  json_object *o;
  g_assert_nonnull (line);
  o = ifb_json_parse (line, strlen (line), 64, &error);
  g_assert_no_error (error);
  return o;
}

/* Check one response object: jsonrpc 2.0, exactly one of result/error, and the error's code. */
static void
check_response (json_object *r, int want_code)
{
  json_object *err = ifb_json_get (r, "error");

  g_assert_true (json_object_is_type (r, json_type_object));
  g_assert_cmpstr (ifb_json_get_string (r, "jsonrpc"), ==, "2.0");
  g_assert_true (json_object_object_get_ex (r, "id", NULL));
  if (want_code == 0) {
    g_assert_null (err);
    g_assert_true (json_object_object_get_ex (r, "result", NULL));
    return;
  }
  g_assert_false (json_object_object_get_ex (r, "result", NULL));
  g_assert_nonnull (err);
  {
    gint64 code = 0;
    g_assert_true (ifb_json_get_int (err, "code", &code));
    g_assert_cmpint (code, ==, want_code);
    g_assert_nonnull (ifb_json_get_string (err, "message"));
    g_assert_nonnull (ifb_json_get_string (ifb_json_get (err, "data"), "name"));
  }
}

/* Expect an error reply; returns its message for further checks. */
static char *
expect_error (Fixture *f, const char *text, int code, const char *id_text)
{
  g_autofree char *line = dispatch (f, text);
  g_autoptr (json_object) r = NULL;
  g_autofree char *want_id = g_strdup_printf ("\"id\":%s", id_text);

  if (!line)
    g_error ("no reply to %s", text);
  r = parse_reply (line);
  check_response (r, code);
  if (!strstr (line, want_id))
    g_error ("reply to %s: %s lacks %s", text, line, want_id);
  return g_strdup (ifb_json_get_string (ifb_json_get (r, "error"), "message"));
}

static void
test_success (Fixture *f, gconstpointer data)
{
  g_autofree char *line = dispatch (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":1}");
  g_autoptr (json_object) r = parse_reply (line);
  json_object *vms;

  check_response (r, 0);
  g_assert_cmpstr (line, ==, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"vms\":[]}}");
  vms = ifb_json_get (ifb_json_get (r, "result"), "vms");
  g_assert_cmpuint (json_object_array_length (vms), ==, 0);
}

/* ids: string, number (big, negative, float in its original spelling) and null come back exactly. */
static void
test_ids_echoed (Fixture *f, gconstpointer data)
{
  const char *ids[] = {
    "\"abc\"", "\"\"", "\"\\u00e9 \\\"q\\\"\"", "0", "-1", "9223372036854775807", "-9223372036854775808",
    "1.50", "2.0", "1e3", "-0.000001", "null",
  };
  for (size_t i = 0; i < G_N_ELEMENTS (ids); i++) {
    g_autofree char *req = g_strdup_printf ("{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":%s}", ids[i]);
    g_autofree char *line = dispatch (f, req);
    g_autoptr (json_object) r = parse_reply (line);
    g_autofree char *want = NULL;
    check_response (r, 0);
    /* strings are re-serialized by json-c; compare those after a parse */
    if (ids[i][0] == '"') {
      g_autoptr (json_object) id = parse_reply (ids[i]);
      g_assert_cmpstr (ifb_json_get_string (r, "id"), ==, json_object_get_string (id));
      continue;
    }
    want = g_strdup_printf ("\"id\":%s,", ids[i]);
    if (!strstr (line, want))
      g_error ("id %s not echoed exactly: %s", ids[i], line);
  }
  /* the same for error replies */
  g_free (expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":1.50}", -32601, "1.50"));
  g_free (expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":\"x\"}", -32601, "\"x\""));
}

/* An id json-c would change cannot be echoed: a string with a lone surrogate escape is answered
 * -32600 with id null, as any other id that cannot be echoed; paired surrogates, an escaped
 * backslash before "ud800" and a real U+FFFD still come back as sent. */
static void
test_id_lone_surrogate (Fixture *f, gconstpointer data)
{
  const char *bad[] = { "\"\\ud800\"", "\"\\udc00\"", "\"a\\ud800b\"", "\"\\ud800\\u0041\"", "\"\\ude00\\ud83d\"" };
  const char *good[] = { "\"\\ud83d\\ude00\"", "\"\\\\ud800\"", "\"\\ufffd\"", "\"\xef\xbf\xbd\"" };

  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *req = g_strdup_printf ("{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":%s}", bad[i]);
    g_autofree char *m = expect_error (f, req, -32600, "null");
    g_assert_nonnull (strstr (m, "surrogate"));
  }
  for (size_t i = 0; i < G_N_ELEMENTS (good); i++) {
    g_autofree char *req = g_strdup_printf ("{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":%s}", good[i]);
    g_autofree char *line = dispatch (f, req);
    g_autoptr (json_object) r = parse_reply (line);
    g_autoptr (json_object) id = parse_reply (good[i]);
    check_response (r, 0);
    g_assert_cmpstr (ifb_json_get_string (r, "id"), ==, json_object_get_string (id));
  }
  /* in a batch, the one request is refused and its neighbour runs */
  {
    g_autofree char *line = dispatch (f, "[{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":\"\\ud800\"},"
                                         "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":2}]");
    g_autoptr (json_object) r = parse_reply (line);
    g_assert_cmpuint (json_object_array_length (r), ==, 2);
    check_response (json_object_array_get_idx (r, 0), -32600);
    g_assert_null (ifb_json_get (json_object_array_get_idx (r, 0), "id"));
    check_response (json_object_array_get_idx (r, 1), 0);
  }
}

static void
test_invalid_requests (Fixture *f, gconstpointer data)
{
  g_autofree char *m = NULL;

  /* "jsonrpc" must be exactly the string "2.0"; the id is echoed when it could be read */
  m = expect_error (f, "{\"method\":\"vm.list\",\"id\":7}", -32600, "7");
  g_assert_nonnull (strstr (m, "jsonrpc"));
  g_free (expect_error (f, "{\"jsonrpc\":\"1.0\",\"method\":\"vm.list\",\"id\":7}", -32600, "7"));
  g_free (expect_error (f, "{\"jsonrpc\":2.0,\"method\":\"vm.list\",\"id\":7}", -32600, "7"));
  g_free (expect_error (f, "{\"jsonrpc\":null,\"method\":\"vm.list\",\"id\":7}", -32600, "7"));
  g_free (expect_error (f, "{\"jsonrpc\":\"2.0 \",\"method\":\"vm.list\",\"id\":7}", -32600, "7"));
  /* method must be a string */
  g_free (expect_error (f, "{\"jsonrpc\":\"2.0\",\"id\":7}", -32600, "7"));
  g_free (expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":1,\"id\":7}", -32600, "7"));
  g_free (expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":null,\"id\":7}", -32600, "7"));
  /* params must be structured */
  g_free (expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"params\":1,\"id\":7}", -32600, "7"));
  g_free (expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"params\":\"x\",\"id\":7}", -32600, "7"));
  g_free (expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"params\":null,\"id\":7}", -32600, "7"));
  /* an invalid id cannot be echoed: null */
  g_free (expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":{}}", -32600, "null"));
  g_free (expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":[1]}", -32600, "null"));
  g_free (expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":true}", -32600, "null"));
  /* unknown request members are named */
  g_free (m);
  m = expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":7,\"extra\":1}", -32600, "7");
  g_assert_nonnull (strstr (m, "'extra'"));
  /* well-formed JSON that is not a request: -32600 with id null, not a parse error */
  g_free (expect_error (f, "1", -32600, "null"));
  g_free (expect_error (f, "\"vm.list\"", -32600, "null"));
  g_free (expect_error (f, "true", -32600, "null"));
  g_free (expect_error (f, "null", -32600, "null"));
  /* an invalid request without id is not a notification: it is answered */
  g_free (expect_error (f, "{\"jsonrpc\":\"1.0\",\"method\":\"vm.list\"}", -32600, "null"));
}

static void
test_parse_error (Fixture *f, gconstpointer data)
{
  const char *bad[] = {
    "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":1",
    "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":1}}",
    "{'jsonrpc':'2.0'}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":NaN}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":1,\"id\":2}",
    "[{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":1},",
  };
  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *line = dispatch (f, bad[i]);
    g_autoptr (json_object) r = parse_reply (line);
    check_response (r, -32700);
    g_assert_true (json_object_is_type (r, json_type_object));
    g_assert_null (ifb_json_get (r, "id"));
    g_assert_true (strstr (line, "\"id\":null") != NULL);
    g_assert_cmpstr (ifb_json_get_string (ifb_json_get (ifb_json_get (r, "error"), "data"), "name"), ==, "parse-error");
  }
}

static void
test_method_not_found (Fixture *f, gconstpointer data)
{
  g_autofree char *m = expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.explode\",\"id\":3}", -32601, "3");
  g_assert_nonnull (strstr (m, "'vm.explode'"));
}

static void
test_invalid_params (Fixture *f, gconstpointer data)
{
  g_autofree char *m1 = expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.show\",\"params\":{\"vm\":\"a\",\"colour\":1},\"id\":3}", -32602, "3");
  g_autofree char *m2 = expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.show\",\"params\":{},\"id\":3}", -32602, "3");
  g_autofree char *m3 = expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.show\",\"params\":[\"a\"],\"id\":3}", -32602, "3");
  g_autofree char *m4 = expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.show\",\"params\":{\"vm\":1},\"id\":3}", -32602, "3");
  g_autofree char *m5 = expect_error (f, "{\"jsonrpc\":\"2.0\",\"method\":\"rpc.discover\",\"params\":{\"x\":1},\"id\":3}", -32602, "3");

  g_assert_nonnull (strstr (m1, "'colour'"));
  g_assert_nonnull (strstr (m2, "'vm'"));
  g_assert_nonnull (strstr (m3, "'params'"));
  g_assert_nonnull (strstr (m4, "'vm'"));
  g_assert_nonnull (strstr (m5, "'x'"));
}

/* Server errors: a code in -32000..-32099 and data.name from the one table. */
static void
test_server_error (Fixture *f, gconstpointer data)
{
  g_autofree char *line = dispatch (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.show\",\"params\":{\"vm\":\"ghost\"},\"id\":\"s\"}");
  g_autoptr (json_object) r = parse_reply (line);
  json_object *err = ifb_json_get (r, "error");
  gint64 code = 0;

  g_assert_true (ifb_json_get_int (err, "code", &code));
  g_assert_cmpint (code, <=, -32000);
  g_assert_cmpint (code, >=, -32099);
  g_assert_cmpint (code, ==, ifb_error_to_code (IFB_ERROR_NO_SUCH_VM));
  g_assert_cmpstr (ifb_json_get_string (ifb_json_get (err, "data"), "name"), ==, "no-such-vm");
  g_assert_nonnull (strstr (ifb_json_get_string (err, "message"), "ghost"));
  g_assert_cmpstr (ifb_json_get_string (r, "id"), ==, "s");
}

/* Access is checked on every call, also inside batches; rpc.discover is open to anyone. */
static void
test_access (Fixture *f, gconstpointer data)
{
  g_autofree char *l1 = dispatch_as (f, &f->user, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":1}", NULL);
  g_autofree char *l2 = dispatch_as (f, &f->user, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.destroy\",\"params\":{\"vm\":\"x\"},\"id\":2}", NULL);
  g_autofree char *l3 = dispatch_as (f, &f->user, "[{\"jsonrpc\":\"2.0\",\"method\":\"rpc.discover\",\"id\":3},"
                                                  "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":4}]", NULL);
  g_autoptr (json_object) r1 = parse_reply (l1), r2 = parse_reply (l2), r3 = parse_reply (l3);

  check_response (r1, ifb_error_to_code (IFB_ERROR_PERMISSION_DENIED));
  g_assert_cmpstr (ifb_json_get_string (ifb_json_get (ifb_json_get (r1, "error"), "data"), "name"), ==, "permission-denied");
  check_response (r2, ifb_error_to_code (IFB_ERROR_PERMISSION_DENIED));
  g_assert_cmpuint (json_object_array_length (r3), ==, 2);
  check_response (json_object_array_get_idx (r3, 0), 0);
  check_response (json_object_array_get_idx (r3, 1), ifb_error_to_code (IFB_ERROR_PERMISSION_DENIED));
}

/* Notifications get no reply: success, failure, unknown method, bad params, alike. */
static void
test_notifications (Fixture *f, gconstpointer data)
{
  const char *notes[] = {
    "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\"}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"params\":{}}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"no.such.method\"}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"vm.show\",\"params\":{\"bogus\":1}}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"vm.show\",\"params\":{\"vm\":\"ghost\"}}",
  };
  for (size_t i = 0; i < G_N_ELEMENTS (notes); i++) {
    g_autofree char *line = dispatch (f, notes[i]);
    if (line)
      g_error ("notification %s was answered: %s", notes[i], line);
  }
  {
    g_autofree char *line = dispatch_as (f, &f->user, notes[0], NULL);
    g_assert_null (line);   /* not even a permission error */
  }
}

static void
test_batches (Fixture *f, gconstpointer data)
{
  /* empty batch: one -32600 object, not an array */
  {
    g_autofree char *line = dispatch (f, "[]");
    g_autoptr (json_object) r = parse_reply (line);
    g_assert_true (json_object_is_type (r, json_type_object));
    check_response (r, -32600);
    g_assert_null (ifb_json_get (r, "id"));
  }
  /* [1,2,3]: an array of three -32600 errors with id null */
  {
    g_autofree char *line = dispatch (f, "[1,2,3]");
    g_autoptr (json_object) r = parse_reply (line);
    g_assert_true (json_object_is_type (r, json_type_array));
    g_assert_cmpuint (json_object_array_length (r), ==, 3);
    for (size_t i = 0; i < 3; i++) {
      check_response (json_object_array_get_idx (r, i), -32600);
      g_assert_null (ifb_json_get (json_object_array_get_idx (r, i), "id"));
    }
  }
  /* all notifications: nothing at all */
  {
    g_autofree char *line = dispatch (f, "[{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\"},"
                                         "{\"jsonrpc\":\"2.0\",\"method\":\"nope\"}]");
    g_assert_null (line);
  }
  /* mixed: replies in request order, notifications skipped, invalid entries answered */
  {
    g_autofree char *line = dispatch (f, "[{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":\"a\"},"
                                         "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\"},"
                                         "{\"foo\":\"boo\"},"
                                         "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":\"c\"}]");
    g_autoptr (json_object) r = parse_reply (line);
    g_assert_cmpuint (json_object_array_length (r), ==, 3);
    check_response (json_object_array_get_idx (r, 0), 0);
    g_assert_cmpstr (ifb_json_get_string (json_object_array_get_idx (r, 0), "id"), ==, "a");
    check_response (json_object_array_get_idx (r, 1), -32600);
    check_response (json_object_array_get_idx (r, 2), -32601);
    g_assert_cmpstr (ifb_json_get_string (json_object_array_get_idx (r, 2), "id"), ==, "c");
  }
  /* a batch inside a batch is an invalid request, not a nested batch */
  {
    g_autofree char *line = dispatch (f, "[[{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":1}]]");
    g_autoptr (json_object) r = parse_reply (line);
    g_assert_cmpuint (json_object_array_length (r), ==, 1);
    check_response (json_object_array_get_idx (r, 0), -32600);
  }
}

/* max-batch (4 here): 4 requests are answered, 5 are refused as a whole with limit-exceeded. */
static void
test_max_batch (Fixture *f, gconstpointer data)
{
  GString *s = g_string_new ("[");
  for (int i = 0; i < 5; i++)
    g_string_append_printf (s, "%s{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":%d}", i ? "," : "", i);
  g_string_append (s, "]");
  {
    g_autofree char *line = dispatch (f, s->str);
    g_autoptr (json_object) r = parse_reply (line);
    g_assert_true (json_object_is_type (r, json_type_object));
    check_response (r, ifb_error_to_code (IFB_ERROR_LIMIT_EXCEEDED));
    g_assert_nonnull (strstr (ifb_json_get_string (ifb_json_get (r, "error"), "message"), "max-batch"));
  }
  {
    /* drop the last element: exactly max_batch */
    char *last = strrchr (s->str, '{');
    g_string_truncate (s, last - s->str - 1);
    g_string_append (s, "]");
    g_autofree char *line = dispatch (f, s->str);
    g_autoptr (json_object) r = parse_reply (line);
    g_assert_cmpuint (json_object_array_length (r), ==, 4);
    for (int i = 0; i < 4; i++) {
      gint64 id = -1;
      check_response (json_object_array_get_idx (r, i), 0);
      g_assert_true (ifb_json_get_int (json_object_array_get_idx (r, i), "id", &id));
      g_assert_cmpint (id, ==, i);
    }
  }
  g_string_free (s, TRUE);
}

/* max-depth (6 here) from the config applies to whole messages. */
static void
test_max_depth (Fixture *f, gconstpointer data)
{
  /* request object (1) > params (2) > a (3) > b (4) > c (5) > d (6) */
  g_autofree char *ok = dispatch (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.show\",\"params\":{\"vm\":\"x\",\"a\":[[[[1]]]]},\"id\":1}");
  g_autofree char *deep = dispatch (f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.show\",\"params\":{\"vm\":\"x\",\"a\":[[[[[1]]]]]},\"id\":1}");
  g_autoptr (json_object) r1 = parse_reply (ok), r2 = parse_reply (deep);

  check_response (r1, -32602);   /* parsed; then 'a' is an unknown member */
  check_response (r2, -32700);
  g_assert_nonnull (strstr (ifb_json_get_string (ifb_json_get (r2, "error"), "message"), "too deep"));
}

static int
open_count (void)
{
  g_autoptr (GDir) d = g_dir_open ("/proc/self/fd", 0, NULL);
  int n = 0;
  while (g_dir_read_name (d))
    n++;
  return n;
}

/* fds sent with a method that takes none, with a batch, or with a failing line are closed. */
static void
test_fds_closed (Fixture *f, gconstpointer data)
{
  const char *lines[] = {
    "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":1}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\"}",
    "[{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":1}]",
    "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\",\"id\":1",
    "{\"jsonrpc\":\"2.0\",\"method\":\"vm.create\",\"params\":{\"bogus\":1},\"id\":1}",
  };
  for (size_t i = 0; i < G_N_ELEMENTS (lines); i++) {
    int p[2], before;
    IfbFdList *fds = ifb_fd_list_new ();
    g_autofree char *line = NULL;

    g_assert_no_errno (pipe2 (p, O_CLOEXEC));
    before = open_count ();
    ifb_fd_list_push (fds, p[0]);
    ifb_fd_list_push (fds, p[1]);
    line = dispatch_as (f, &f->root, lines[i], fds);
    g_assert_cmpint (open_count (), ==, before - 2);
    g_assert_cmpint (fcntl (p[0], F_GETFD), ==, -1);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL);
#define T(path, fn) g_test_add ("/ifb/dispatch/" path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  T ("success", test_success);
  T ("ids-echoed", test_ids_echoed);
  T ("id-lone-surrogate", test_id_lone_surrogate);
  T ("invalid-requests", test_invalid_requests);
  T ("parse-error", test_parse_error);
  T ("method-not-found", test_method_not_found);
  T ("invalid-params", test_invalid_params);
  T ("server-error", test_server_error);
  T ("access", test_access);
  T ("notifications", test_notifications);
  T ("batches", test_batches);
  T ("max-batch", test_max_batch);
  T ("max-depth", test_max_depth);
  T ("fds-closed", test_fds_closed);
  return g_test_run ();
}
