/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * json-c 0.16 (Debian 12) is lenient in ways a protocol must not be, even in strict mode: it
 * accepts single-quoted strings, raw control characters inside strings, NaN and Infinity; it
 * stops at an embedded NUL and reports success; its UTF-8 check lets overlong sequences through;
 * duplicate object keys are silently last-wins; and integers outside int64 clamp without error.
 *
 * Its strict mode is no anchor either: json-c 0.18 (Debian 13) rejects every non-ASCII byte in a
 * string under JSON_TOKENER_STRICT ("invalid utf-8 string" on valid JSON), and what strict means
 * changes from one release to the next by json-c's own warning. So json-c runs with no flags, only
 * to build the tree of a text already known to be JSON, and the strictness is the broker's own.
 *
 * Before json-c sees a line, a small lexical pass checks the text is valid UTF-8 by GLib's
 * definition (no overlongs, no surrogates), has no NUL, no raw control character inside a
 * string, and outside strings nothing but JSON's tokens: its four whitespace characters (not \f
 * or \v), structural characters, numbers by RFC 8259's grammar (no leading zeros, no NaN or
 * Infinity, an integer that fits int64, a finite double), the words true, false and null as
 * written; no single quotes, no comments, no comma before a closing bracket; and no more than
 * max_depth nested objects and arrays. (json-c without strict mode takes comments, trailing
 * commas, any case of true/null/NaN, "1e+" and single quotes; all stop here.) json-c then parses
 * and must consume the whole text (only whitespace may follow). Duplicate keys are found afterwards by walking the tree: json-c keeps
 * one entry per key, so the lexical pass counts members per object and the walk compares (see
 * count_members()).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "util.h"
#include "json.h"

static gboolean
parse_fail (GError **error, const char *what)
{
  g_set_error (error, IFB_ERROR, IFB_ERROR_PARSE, "Parse error: %s", what);
  return FALSE;
}

/* Check an integer literal's magnitude: json-c clamps silently. */
/* The number grammar of RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and nothing else
 * ("00", "1.", "01", "1e" are not numbers; json-c would take them). */
static gboolean
number_is_valid (const char *s, size_t n)
{
  size_t i = 0;

  if (i < n && s[i] == '-')
    i++;
  if (i < n && s[i] == '0')
    i++;
  else if (i < n && s[i] >= '1' && s[i] <= '9')
    while (i < n && g_ascii_isdigit (s[i]))
      i++;
  else
    return FALSE;
  if (i < n && s[i] == '.') {
    size_t d = ++i;
    while (i < n && g_ascii_isdigit (s[i]))
      i++;
    if (i == d)
      return FALSE;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    size_t d;
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-'))
      i++;
    d = i;
    while (i < n && g_ascii_isdigit (s[i]))
      i++;
    if (i == d)
      return FALSE;
  }
  return i == n;
}

/* A double literal json-c would read as inf ("1e999"): not a number JSON can carry here. */
static gboolean
double_literal_finite (const char *p, size_t n)
{
  char buf[64];
  if (n >= sizeof (buf))
    return TRUE;   /* long mantissas are fine; the exponent decides, and strtod sees it below */
  memcpy (buf, p, n);
  buf[n] = 0;
  return isfinite (g_ascii_strtod (buf, NULL));
}

static gboolean
int_literal_fits (const char *p, size_t n)
{
  char buf[32];
  char *end;
  if (n >= sizeof (buf))
    return FALSE;
  memcpy (buf, p, n);
  buf[n] = 0;
  errno = 0;
  (void) strtoll (buf, &end, 10);
  return errno != ERANGE;
}

/* A growable array of guint that lives on the C stack until it outgrows it: the lexical pass
 * needs two per parse, and a small request should cost no heap allocation for them. */
typedef struct {
  guint *v;
  guint len, cap;
  guint inline_v[32];
} UintVec;

static void
uvec_init (UintVec *u)
{
  u->v = u->inline_v;
  u->len = 0;
  u->cap = G_N_ELEMENTS (u->inline_v);
}

static void
uvec_push (UintVec *u, guint x)
{
  if (u->len == u->cap) {
    guint *v = g_new (guint, (gsize) u->cap * 2);
    memcpy (v, u->v, u->len * sizeof (guint));
    if (u->v != u->inline_v)
      g_free (u->v);
    u->v = v;
    u->cap *= 2;
  }
  u->v[u->len++] = x;
}

static void
uvec_clear (UintVec *u)
{
  if (u->v != u->inline_v)
    g_free (u->v);
  uvec_init (u);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (UintVec, uvec_clear)

/*
 * Lexical pre-check. Also records, in object order, how many members each object literal has
 * so duplicates can be detected after json-c collapsed them.
 */
static gboolean
lex_check (const char *s, size_t len, int max_depth, UintVec *member_counts, GError **error)
{
  UintVec stack;   /* index into member_counts, or G_MAXUINT for an array */
  gboolean ok = FALSE;
  size_t i = 0;

  uvec_init (&stack);
  if (!g_utf8_validate_len (s, len, NULL)) {
    parse_fail (error, "invalid UTF-8");
    goto out;
  }

  while (i < len) {
    unsigned char c = (unsigned char) s[i];
    if (c == '"') {
      i++;
      while (i < len && s[i] != '"') {
        if ((unsigned char) s[i] < 0x20) {
          parse_fail (error, "control character inside a string");
          goto out;
        }
        /* json-c turns \u0000 into a NUL inside the string, and every caller reads strings as C
         * strings: "broker.info\u0000x" would run broker.info and a guest named "a\u0000b" would
         * be "a" (tests/integration/test-abuse.py sends both). No protocol string needs a NUL. */
        if (s[i] == '\\' && len - i >= 6 && memcmp (s + i, "\\u0000", 6) == 0) {
          parse_fail (error, "\\u0000 (NUL) inside a string");
          goto out;
        }
        if (s[i] == '\\')
          i++;
        i++;
      }
      if (i >= len) {
        parse_fail (error, "unterminated string");
        goto out;
      }
      i++;
      continue;
    }
    if ((c == '{' || c == '[') && stack.len >= (guint) max_depth) {
      parse_fail (error, "nesting too deep");
      goto out;
    }
    if (c == '{') {
      uvec_push (&stack, member_counts->len);
      uvec_push (member_counts, 0);
    } else if (c == '[') {
      uvec_push (&stack, G_MAXUINT);
    } else if (c == '}' || c == ']') {
      if (stack.len > 0)
        stack.len--;
    } else if (c == ':') {
      if (stack.len > 0) {
        guint idx = stack.v[stack.len - 1];
        if (idx != G_MAXUINT)
          member_counts->v[idx]++;
      }
    } else if (c == '-' || g_ascii_isdigit (c)) {
      size_t start = i;
      gboolean integer = TRUE;
      i++;
      while (i < len && (g_ascii_isdigit (s[i]) || strchr (".eE+-", s[i]))) {
        if (!g_ascii_isdigit (s[i]))
          integer = FALSE;
        i++;
      }
      if (!number_is_valid (s + start, i - start)) {
        parse_fail (error, "invalid number (RFC 8259: no leading zeros, digits after '.' and after an exponent)");
        goto out;
      }
      if (integer && !int_literal_fits (s + start, i - start)) {
        parse_fail (error, "integer out of range");
        goto out;
      }
      if (!integer && !double_literal_finite (s + start, i - start)) {
        parse_fail (error, "number out of range");
        goto out;
      }
      continue;
    } else if (g_ascii_isalpha (c)) {
      size_t start = i;
      while (i < len && g_ascii_isalpha (s[i]))
        i++;
      size_t n = i - start;
      if (!((n == 4 && memcmp (s + start, "true", 4) == 0) ||
            (n == 5 && memcmp (s + start, "false", 5) == 0) ||
            (n == 4 && memcmp (s + start, "null", 4) == 0))) {
        parse_fail (error, "unexpected word (only true, false and null are allowed)");
        goto out;
      }
      continue;
    } else if (c == '\'') {
      parse_fail (error, "single quotes are not JSON");
      goto out;
    } else if (c == 0) {
      parse_fail (error, "NUL byte");
      goto out;
    } else if (c == ',') {
      size_t j = i + 1;
      while (j < len && strchr (" \t\n\r", s[j]) && s[j])
        j++;
      if (j < len && (s[j] == ']' || s[j] == '}')) {
        parse_fail (error, "trailing comma");
        goto out;
      }
    } else if (c == '/') {
      parse_fail (error, "comments are not JSON");
      goto out;
    } else if (!(c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
      parse_fail (error, "unexpected character outside a string");
      goto out;
    }
    i++;
  }
  ok = TRUE;
out:
  uvec_clear (&stack);
  return ok;
}

/* Walk objects in document order, comparing json-c's member count with the literal's. */
static gboolean
count_members (json_object *o, const UintVec *member_counts, guint *next)
{
  if (json_object_is_type (o, json_type_object)) {
    guint idx = (*next)++;
    if (idx >= member_counts->len || (guint) json_object_object_length (o) != member_counts->v[idx])
      return FALSE;
    json_object_object_foreach (o, key, val) {
      (void) key;
      if (!count_members (val, member_counts, next))
        return FALSE;
    }
  } else if (json_object_is_type (o, json_type_array)) {
    size_t n = json_object_array_length (o);
    for (size_t i = 0; i < n; i++)
      if (!count_members (json_object_array_get_idx (o, i), member_counts, next))
        return FALSE;
  }
  return TRUE;
}

/* A json_tokener is a few allocations (its stack, its print buffer), a visible share of a small
 * call's cost when made per parse. Each thread keeps the last one, for one depth, and resets it
 * after every use. */
typedef struct {
  struct json_tokener *tok;
  int depth;
} CachedTokener;

static void
cached_tokener_free (gpointer p)
{
  CachedTokener *c = p;
  json_tokener_free (c->tok);
  g_free (c);
}

static GPrivate tokener_key = G_PRIVATE_INIT (cached_tokener_free);

static struct json_tokener *
tokener_get (int depth)
{
  CachedTokener *c = g_private_get (&tokener_key);

  if (c && c->depth == depth)
    return c->tok;
  c = g_new0 (CachedTokener, 1);
  c->tok = json_tokener_new_ex (depth);
  if (!c->tok) {
    g_free (c);
    return NULL;
  }
  c->depth = depth;
  /* No JSON_TOKENER_STRICT or VALIDATE_UTF8: lex_check() is the broker's strictness (see the top). */
  json_tokener_set_flags (c->tok, 0);
  g_private_replace (&tokener_key, c);
  return c->tok;
}

json_object *
ifb_json_parse (const char *text, size_t len, int max_depth, GError **error)
{
  g_auto (UintVec) member_counts = { 0 };
  struct json_tokener *tok;
  json_object *obj;
  enum json_tokener_error jerr;
  size_t end;
  guint next = 0;

  uvec_init (&member_counts);
  if (!lex_check (text, len, max_depth, &member_counts, error))
    return NULL;

  /* The lexer enforces max_depth as the number of nested objects and arrays. json-c's own count
   * also charges a scalar inside the innermost container one level, so give it room. */
  tok = tokener_get (max_depth + 2);
  if (!tok) {
    parse_fail (error, "out of memory");
    return NULL;
  }
  obj = json_tokener_parse_ex (tok, text, (int) len);
  jerr = json_tokener_get_error (tok);
  end = json_tokener_get_parse_end (tok);
  if (!obj && jerr == json_tokener_continue && end == len && len > 0) {
    /* A top-level number ("1") is a complete JSON text, but json-c waits for more digits until
     * it sees a terminator: feed it the end of input. */
    obj = json_tokener_parse_ex (tok, "", 1);
    jerr = json_tokener_get_error (tok);
    end = len;
  }
  json_tokener_reset (tok);   /* drops what a failed parse left on its stack */

  if (!obj && jerr == json_tokener_success) {
    /* The text was a valid 'null', which json-c represents as NULL: well-formed, but never a
     * message, so no parse error. */
    g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_REQUEST,
                 "Invalid Request: a message must be an object or an array, not null");
    return NULL;
  }
  if (!obj) {
    if (jerr == json_tokener_error_depth)
      parse_fail (error, "nesting too deep");
    else if (jerr == json_tokener_continue || jerr == json_tokener_success)
      parse_fail (error, "incomplete JSON text");
    else
      parse_fail (error, json_tokener_error_desc (jerr));
    return NULL;
  }
  for (; end < len; end++) {
    if (!strchr (" \t\r", text[end])) {
      json_object_put (obj);
      parse_fail (error, "trailing data after the JSON text");
      return NULL;
    }
  }
  /* The lexer counted the object literals outside strings, the ones json-c builds objects for,
   * so the two counts pair up in document order. */
  if (!count_members (obj, &member_counts, &next) || next != member_counts.len) {
    json_object_put (obj);
    parse_fail (error, "duplicate key in object");
    return NULL;
  }
  return obj;
}

const char *
ifb_json_to_line (json_object *obj, size_t *ret_len)
{
  return json_object_to_json_string_length (obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, ret_len);
}

json_object *
ifb_json_get (json_object *obj, const char *key)
{
  json_object *v = NULL;
  if (!obj || !json_object_is_type (obj, json_type_object))
    return NULL;
  if (!json_object_object_get_ex (obj, key, &v))
    return NULL;
  return v;
}

const char *
ifb_json_get_string (json_object *obj, const char *key)
{
  json_object *v = ifb_json_get (obj, key);
  return v && json_object_is_type (v, json_type_string) ? json_object_get_string (v) : NULL;
}

gboolean
ifb_json_get_int (json_object *obj, const char *key, gint64 *ret)
{
  json_object *v = ifb_json_get (obj, key);
  if (!v || !json_object_is_type (v, json_type_int))
    return FALSE;
  *ret = json_object_get_int64 (v);
  return TRUE;
}
