/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * proto/openrpc.json against the one method table (daemon/rpc/rpc-methods.c): every dispatched method
 * is documented and every documented method is dispatched; the embedded copy the daemon serves
 * is the file; rpc.discover returns it; x-access and x-takes-fds agree with the table; every
 * method's params as its table entry declares them are the document's, both ways, with the same
 * types and required flags, members of declared objects included; and through the dispatcher,
 * every documented parameter is one the method knows (never "unknown member").
 */
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dispatch.h"
#include "errors.h"
#include "json.h"
#include "core.h"
#include "rpc.h"
#include "util.h"

static json_object *
load_doc (void)
{
  const char *path = g_getenv ("IFB_OPENRPC_JSON");
  g_autofree char *text = NULL;
  g_autoptr (GError) error = NULL;
  size_t len = 0;
  json_object *doc;

  g_assert_nonnull (path);
  g_assert_true (g_file_get_contents (path, &text, &len, &error));
  doc = ifb_json_parse (text, len, 64, &error);
  g_assert_no_error (error);
  return doc;
}

static json_object *
doc_methods (json_object *doc)
{
  json_object *methods = ifb_json_get (doc, "methods");
  g_assert_nonnull (methods);
  g_assert_true (json_object_is_type (methods, json_type_array));
  return methods;
}

static json_object *
doc_find (json_object *doc, const char *name)
{
  json_object *methods = doc_methods (doc);
  for (size_t i = 0; i < json_object_array_length (methods); i++)
    if (g_strcmp0 (ifb_json_get_string (json_object_array_get_idx (methods, i), "name"), name) == 0)
      return json_object_array_get_idx (methods, i);
  return NULL;
}

/* Both directions, and no method listed twice on either side. */
static void
test_methods_match_table (void)
{
  g_autoptr (json_object) doc = load_doc ();
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  json_object *methods = doc_methods (doc);
  guint n_table = 0;

  for (const IfbMethod *m = ifb_methods; m->name; m++, n_table++) {
    if (!doc_find (doc, m->name))
      g_error ("method '%s' is dispatched (daemon/rpc/rpc-methods.c) but missing from proto/openrpc.json", m->name);
    g_assert_true (g_hash_table_add (seen, (gpointer) m->name));   /* FALSE: duplicate in the table */
  }
  g_hash_table_remove_all (seen);
  for (size_t i = 0; i < json_object_array_length (methods); i++) {
    const char *name = ifb_json_get_string (json_object_array_get_idx (methods, i), "name");
    g_assert_nonnull (name);
    if (!ifb_method_lookup (name))
      g_error ("proto/openrpc.json lists '%s', which is not dispatched (daemon/rpc/rpc-methods.c)", name);
    if (!g_hash_table_add (seen, (gpointer) name))
      g_error ("proto/openrpc.json lists '%s' twice", name);
  }
  g_assert_cmpuint (json_object_array_length (methods), ==, n_table);
  g_assert_cmpuint (n_table, >=, 3);
}

/* The document compiled into the daemon is the file in proto/. */
static void
test_embedded_is_file (void)
{
  g_autoptr (json_object) doc = load_doc ();
  g_autoptr (GError) error = NULL;
  g_autoptr (json_object) embedded = ifb_json_parse (ifb_openrpc_json, strlen (ifb_openrpc_json), 64, &error);

  g_assert_no_error (error);
  g_assert_true (json_object_equal (doc, embedded));
  g_assert_cmpstr (ifb_json_get_string (doc, "openrpc"), !=, NULL);
  g_assert_nonnull (ifb_json_get_string (ifb_json_get (doc, "info"), "version"));
}

static IfbAccess
access_from_doc (const char *s)
{
  if (g_strcmp0 (s, "any") == 0)
    return IFB_ACCESS_ANY;
  if (g_strcmp0 (s, "read") == 0)
    return IFB_ACCESS_READ;
  if (g_strcmp0 (s, "admin") == 0)
    return IFB_ACCESS_ADMIN;
  if (s && g_str_has_prefix (s, "admin or peer"))
    return IFB_ACCESS_VM_FDS;
  g_error ("unknown x-access '%s'", s);
}

static void
test_access_and_fds (void)
{
  g_autoptr (json_object) doc = load_doc ();

  for (const IfbMethod *m = ifb_methods; m->name; m++) {
    json_object *d = doc_find (doc, m->name);
    json_object *takes = ifb_json_get (d, "x-takes-fds");
    if (access_from_doc (ifb_json_get_string (d, "x-access")) != m->access)
      g_error ("%s: x-access '%s' does not match the method table", m->name, ifb_json_get_string (d, "x-access"));
    if ((takes && json_object_get_boolean (takes)) != m->takes_fds)
      g_error ("%s: x-takes-fds disagrees with the method table (%d)", m->name, m->takes_fds);
    g_assert_nonnull (ifb_json_get (d, "result"));
    g_assert_true (json_object_is_type (ifb_json_get (d, "params"), json_type_array));
  }
}

static const char *
param_type_name (IfbParamType t)
{
  switch (t) {
  case IFB_PARAM_STRING: return "string";
  case IFB_PARAM_INT: return "integer";
  case IFB_PARAM_BOOL: return "boolean";
  case IFB_PARAM_OBJECT: return "object";
  case IFB_PARAM_ARRAY: return "array";
  }
  g_assert_not_reached ();
}

static size_t
param_field_size (const IfbParamSpec *s)
{
  switch (s->type) {
  case IFB_PARAM_STRING: return sizeof (const char *);
  case IFB_PARAM_INT: return sizeof (gint64);
  case IFB_PARAM_BOOL: return sizeof (gboolean);
  case IFB_PARAM_OBJECT: return s->members ? 0 : sizeof (json_object *);   /* embedded: checked member by member */
  case IFB_PARAM_ARRAY: return sizeof (json_object *);
  }
  g_assert_not_reached ();
}

static const IfbParamSpec *
spec_find (const IfbParamSpec *specs, const char *name)
{
  for (const IfbParamSpec *s = specs; s && s->name; s++)
    if (g_strcmp0 (s->name, name) == 0)
      return s;
  return NULL;
}

/* A member as the document describes it: name, JSON Schema, required. */
typedef struct {
  const char *name;
  json_object *schema;
  gboolean required;
} DocMember;

/* The document's members of an object schema (its "properties" and "required"). */
static GArray *
schema_members (const char *where, json_object *schema)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (DocMember));
  json_object *props = ifb_json_get (schema, "properties");
  json_object *req = ifb_json_get (schema, "required");
  json_object *extra = ifb_json_get (schema, "additionalProperties");

  if (!props)
    return out;
  g_assert_true (json_object_is_type (props, json_type_object));
  if (!extra || !json_object_is_type (extra, json_type_boolean) || json_object_get_boolean (extra))
    g_error ("%s: the parser refuses unknown members, but the document's schema does not say "
             "\"additionalProperties\": false", where);
  json_object_object_foreach (props, key, val) {
    DocMember d = { key, val, FALSE };
    for (size_t i = 0; req && i < json_object_array_length (req); i++)
      if (g_strcmp0 (json_object_get_string (json_object_array_get_idx (req, i)), key) == 0)
        d.required = TRUE;
    g_array_append_val (out, d);
  }
  return out;
}

/*
 * One object's members, the table's (specs; fields at base + offset, within the size bytes of
 * the method's args struct) against the document's, both ways. where: the object, for messages.
 */
static void
check_members (const char *where, const IfbParamSpec *specs, size_t base, size_t size,
               const DocMember *doc, size_t n_doc)
{
  /* table -> document */
  for (const IfbParamSpec *s = specs; s && s->name; s++) {
    g_autofree char *at = g_strdup_printf ("%s: member '%s'", where, s->name);
    const DocMember *d = NULL;
    const char *doc_type;

    for (size_t i = 0; i < n_doc; i++)
      if (g_strcmp0 (doc[i].name, s->name) == 0)
        d = &doc[i];
    if (!d)
      g_error ("%s is declared in the method table (daemon/rpc/rpc-methods.c) but not in proto/openrpc.json", at);
    doc_type = ifb_json_get_string (d->schema, "type");
    if (g_strcmp0 (doc_type, param_type_name (s->type)) != 0)
      g_error ("%s: the table declares %s, proto/openrpc.json says %s", at, param_type_name (s->type), doc_type);
    if (!!(s->flags & IFB_PARAM_REQUIRED) != d->required)
      g_error ("%s: required in the %s only", at, d->required ? "document" : "table");
    if (base + s->offset + param_field_size (s) > size)
      g_error ("%s: offset %zu lies outside the method's args struct (%zu bytes)", at, base + s->offset, size);
    if (s->type == IFB_PARAM_OBJECT) {
      g_autoptr (GArray) sub = schema_members (at, d->schema);
      if (!s->members && sub->len)
        g_error ("%s: proto/openrpc.json lists its members, the table does not declare them", at);
      if (s->members)
        check_members (at, s->members, base + s->offset, size, (DocMember *) sub->data, sub->len);
    }
  }
  /* document -> table */
  for (size_t i = 0; i < n_doc; i++)
    if (!spec_find (specs, doc[i].name))
      g_error ("%s: member '%s' is in proto/openrpc.json but not declared in the method table "
               "(daemon/rpc/rpc-methods.c)", where, doc[i].name);
}

/* Each method's declared params are the document's, and the other way round. */
static void
test_params_match_table (void)
{
  g_autoptr (json_object) doc = load_doc ();
  guint n_members = 0;

  for (const IfbMethod *m = ifb_methods; m->name; m++) {
    json_object *params = ifb_json_get (doc_find (doc, m->name), "params");
    g_autoptr (GArray) members = g_array_new (FALSE, FALSE, sizeof (DocMember));

    g_assert_true (json_object_is_type (params, json_type_array));
    for (size_t i = 0; i < json_object_array_length (params); i++) {
      json_object *p = json_object_array_get_idx (params, i);
      json_object *req = ifb_json_get (p, "required");
      DocMember d = { ifb_json_get_string (p, "name"), ifb_json_get (p, "schema"), req && json_object_get_boolean (req) };
      g_assert_nonnull (d.name);
      g_assert_nonnull (d.schema);
      g_array_append_val (members, d);
    }
    g_assert_true ((m->params != NULL) == (m->args_size > 0));   /* params parse into something */
    if (!m->params)
      g_assert_null (m->args_defaults);
    check_members (m->name, m->params, 0, m->args_size, (DocMember *) members->data, members->len);
    n_members += members->len;
  }
  g_assert_cmpuint (n_members, >=, 10);
}

typedef struct {
  IfbCore *m;
  IfbPeer root;
} Daemon;

static void
daemon_init (Daemon *d)
{
  g_autoptr (GError) error = NULL;
  IfbConfig *c = ifb_config_load (NULL, FALSE, &error);
  g_assert_no_error (error);
  d->m = ifb_core_new (c);
  g_assert_no_error (error);
  d->root = (IfbPeer) { .pid = getpid (), .uid = 0, .gid = 0, .pidfd = -1 };
}

static json_object *
call (Daemon *d, const char *method, json_object *params)
{
  g_autoptr (json_object) req = json_object_new_object ();
  g_autoptr (json_object) reply = NULL;
  g_autoptr (IfbFdList) fds = NULL;
  const char *line;
  size_t len;

  json_object_object_add (req, "jsonrpc", json_object_new_string ("2.0"));
  json_object_object_add (req, "method", json_object_new_string (method));
  if (params)
    json_object_object_add (req, "params", params);
  json_object_object_add (req, "id", json_object_new_int (1));
  line = ifb_json_to_line (req, &len);
  ifb_dispatch_line (d->m, NULL, &d->root, line, len, NULL, &reply, &fds);
  g_assert_nonnull (reply);
  return g_steal_pointer (&reply);
}

/* rpc.discover answers with exactly the document. */
static void
test_discover (void)
{
  Daemon d;
  g_autoptr (json_object) doc = load_doc ();
  g_autoptr (json_object) reply = NULL;
  g_autoptr (json_object) sent = NULL;

  daemon_init (&d);
  reply = call (&d, "rpc.discover", NULL);
  /* The result is rendered once and only ever serialized: compare what goes on the wire. */
  sent = json_tokener_parse (json_object_to_json_string_ext (reply, JSON_C_TO_STRING_PLAIN));
  g_assert_nonnull (sent);
  if (!json_object_equal (ifb_json_get (sent, "result"), doc))
    g_error ("rpc.discover did not return proto/openrpc.json: %.300s", json_object_to_json_string (reply));
  ifb_core_free (d.m);
}

/* A value of the wrong JSON type for a documented parameter type. */
static json_object *
wrong_value (const char *type)
{
  if (g_strcmp0 (type, "string") == 0)
    return json_object_new_int (12345);
  return json_object_new_string ("not-of-type");
}

/*
 * Each documented parameter, sent with a value of the wrong type, is rejected as -32602 for its
 * type or for a required member missing, never as an unknown member: handler and document agree
 * on the names. Parameter checks come before any action, so nothing happens to the manager.
 */
static void
test_documented_params_known (void)
{
  g_autoptr (json_object) doc = load_doc ();
  json_object *methods = doc_methods (doc);
  Daemon d;

  daemon_init (&d);
  for (size_t i = 0; i < json_object_array_length (methods); i++) {
    json_object *m = json_object_array_get_idx (methods, i);
    const char *name = ifb_json_get_string (m, "name");
    json_object *params = ifb_json_get (m, "params");

    for (size_t j = 0; j < json_object_array_length (params); j++) {
      json_object *p = json_object_array_get_idx (params, j);
      const char *pname = ifb_json_get_string (p, "name");
      const char *type = ifb_json_get_string (ifb_json_get (p, "schema"), "type");
      json_object *args = json_object_new_object ();
      g_autoptr (json_object) reply = NULL;
      g_autofree char *unknown = g_strdup_printf ("unknown member '%s'", pname);
      const char *msg;
      gint64 code = 0;

      g_assert_nonnull (pname);
      json_object_object_add (args, pname, wrong_value (type));
      reply = call (&d, name, args);
      g_assert_true (ifb_json_get_int (ifb_json_get (reply, "error"), "code", &code));
      msg = ifb_json_get_string (ifb_json_get (reply, "error"), "message");
      if (code != -32602 || strstr (msg, unknown))
        g_error ("%s: documented param '%s' -> %" G_GINT64_FORMAT " %s", name, pname, code, msg);
    }
    /* With no params, the first missing member named is documented as required. */
    for (size_t j = 0; j < json_object_array_length (params); j++) {
      json_object *p = json_object_array_get_idx (params, j);
      json_object *req = ifb_json_get (p, "required");
      if (req && json_object_get_boolean (req)) {
        g_autoptr (json_object) reply = call (&d, name, json_object_new_object ());
        const char *msg = ifb_json_get_string (ifb_json_get (reply, "error"), "message");
        g_autofree char *quoted = NULL;
        const char *q;
        g_assert_nonnull (msg);
        q = strstr (msg, "missing required member '");
        if (!q)
          g_error ("%s with no params: %s", name, msg);
        quoted = g_strndup (q + 25, strcspn (q + 25, "'"));
        {
          json_object *dp = NULL;
          for (size_t k = 0; k < json_object_array_length (params); k++)
            if (g_strcmp0 (ifb_json_get_string (json_object_array_get_idx (params, k), "name"), quoted) == 0)
              dp = json_object_array_get_idx (params, k);
          if (!dp || !json_object_get_boolean (ifb_json_get (dp, "required")))
            g_error ("%s requires '%s', which the document does not mark required", name, quoted);
        }
        break;
      }
    }
  }
  ifb_core_free (d.m);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ifb/openrpc/methods-match-table", test_methods_match_table);
  g_test_add_func ("/ifb/openrpc/embedded-is-file", test_embedded_is_file);
  g_test_add_func ("/ifb/openrpc/access-and-fds", test_access_and_fds);
  g_test_add_func ("/ifb/openrpc/params-match-table", test_params_match_table);
  g_test_add_func ("/ifb/openrpc/discover", test_discover);
  g_test_add_func ("/ifb/openrpc/documented-params-known", test_documented_params_known);
  return g_test_run ();
}
