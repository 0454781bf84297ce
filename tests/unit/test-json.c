/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of proto/json.c: every json-c 0.16 leniency that the strict parser closes is
 * rejected with IFB_ERROR_PARSE, valid JSON (RFC 8259) is accepted, the depth limit holds at its
 * boundary, and numbers (ids) survive a parse/serialize round trip byte for byte.
 */
#include <string.h>

#include "errors.h"
#include "json.h"
#include "util.h"

static json_object *
parse_n (const char *text, size_t len, int depth, GError **error)
{
  return ifb_json_parse (text, len, depth, error);
}

static void
assert_rejected_n (const char *text, size_t len, const char *why)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (json_object) o = parse_n (text, len, IFB_JSON_DEFAULT_DEPTH, &error);

  if (o)
    g_error ("accepted %s: '%.*s' -> %s", why, (int) len, text, json_object_to_json_string (o));
  g_assert_error (error, IFB_ERROR, IFB_ERROR_PARSE);
  g_assert_true (g_str_has_prefix (error->message, "Parse error: "));
}

static void
assert_rejected (const char *text, const char *why)
{
  assert_rejected_n (text, strlen (text), why);
}

static json_object *
assert_accepted (const char *text)
{
  g_autoptr (GError) error = NULL;
  json_object *o = parse_n (text, strlen (text), IFB_JSON_DEFAULT_DEPTH, &error);
  if (!o && error)
    g_error ("rejected valid JSON '%s': %s", text, error->message);
  g_assert_no_error (error);
  return o;
}

/* Parse, serialize compactly, compare with the expected text. */
static void
assert_roundtrip (const char *text, const char *want)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (json_object) o = parse_n (text, strlen (text), IFB_JSON_DEFAULT_DEPTH, &error);
  size_t len = 0;
  const char *out;

  g_assert_no_error (error);
  out = ifb_json_to_line (o, &len);
  g_assert_cmpstr (out, ==, want);
  g_assert_cmpuint (len, ==, strlen (want));
  g_assert_null (memchr (out, '\n', len));
}

/* Bytes that are not UTF-8 by GLib's strict definition: invalid, overlong, surrogate, > U+10FFFF. */
static void
test_utf8 (void)
{
  assert_rejected ("\"\xff\"", "an invalid byte");
  assert_rejected ("\"\xc3\"", "a truncated sequence");
  assert_rejected ("\"\xc0\xaf\"", "an overlong '/'");
  assert_rejected ("\"\xe0\x80\xaf\"", "a 3-byte overlong");
  assert_rejected ("\"\xc1\xbf\"", "an overlong");
  assert_rejected ("\"\xed\xa0\x80\"", "an encoded surrogate");
  assert_rejected ("\"\xf4\x90\x80\x80\"", "a code point above U+10FFFF");
  assert_rejected ("{\"k\xc0\x80\":1}", "an overlong NUL in a key");
  g_autoptr (json_object) o = assert_accepted ("\"gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80\"");
  g_assert_cmpstr (json_object_get_string (o), ==, "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80");
}

/* Raw control characters (U+0000..U+001F) inside strings must be escaped. */
static void
test_control_chars (void)
{
  assert_rejected ("\"a\tb\"", "a raw tab in a string");
  assert_rejected ("\"a\nb\"", "a raw newline in a string");
  assert_rejected ("{\"a\x01\":1}", "a raw U+0001 in a key");
  assert_rejected ("[\"\x1f\"]", "a raw U+001F");
  {
    g_autoptr (json_object) o = assert_accepted ("\"a\\tb\\u0001\\n\"");
    g_assert_cmpstr (json_object_get_string (o), ==, "a\tb\001\n");
  }
  {
    g_autoptr (json_object) o = assert_accepted ("\"\x7f\"");   /* DEL is not a control char in JSON */
    g_assert_cmpstr (json_object_get_string (o), ==, "\x7f");
  }
}

static void
test_single_quotes (void)
{
  assert_rejected ("'a'", "a single-quoted string");
  assert_rejected ("{'a':1}", "a single-quoted key");
  assert_rejected ("{\"a\":'b'}", "a single-quoted value");
  {
    g_autoptr (json_object) o = assert_accepted ("{\"it's\":\"don't\"}");
    g_assert_cmpstr (ifb_json_get_string (o, "it's"), ==, "don't");
  }
}

static void
test_bare_words (void)
{
  assert_rejected ("NaN", "NaN");
  assert_rejected ("[NaN]", "NaN in an array");
  assert_rejected ("Infinity", "Infinity");
  assert_rejected ("-Infinity", "-Infinity");
  assert_rejected ("{\"a\":-Infinity}", "-Infinity as a value");
  assert_rejected ("nan", "nan");
  assert_rejected ("inf", "inf");
  assert_rejected ("True", "True");
  assert_rejected ("NULL", "NULL");
  assert_rejected ("nul", "a truncated null");
  assert_rejected ("{a:1}", "an unquoted key");
  assert_rejected ("[undefined]", "undefined");
  assert_rejected ("[truex]", "truex");
  {
    g_autoptr (json_object) o = assert_accepted ("[true,false,null]");
    g_assert_cmpuint (json_object_array_length (o), ==, 3);
    g_assert_true (json_object_get_boolean (json_object_array_get_idx (o, 0)));
    g_assert_false (json_object_get_boolean (json_object_array_get_idx (o, 1)));
    g_assert_null (json_object_array_get_idx (o, 2));
  }
}

/* Integers outside int64 are refused rather than clamped. */
static void
test_int_range (void)
{
  assert_rejected ("9223372036854775808", "INT64_MAX + 1");
  assert_rejected ("-9223372036854775809", "INT64_MIN - 1");
  assert_rejected ("{\"id\":18446744073709551616}", "2^64");
  assert_rejected ("[123456789012345678901234567890]", "a 30-digit integer");
  {
    g_autoptr (json_object) o = assert_accepted ("[9223372036854775807,-9223372036854775808]");
    g_assert_cmpint (json_object_get_int64 (json_object_array_get_idx (o, 0)), ==, G_MAXINT64);
    g_assert_cmpint (json_object_get_int64 (json_object_array_get_idx (o, 1)), ==, G_MININT64);
  }
}

static void
test_embedded_nul (void)
{
  assert_rejected_n ("{}\0garbage", 10, "a NUL after the text");
  assert_rejected_n ("{\"a\":\"b\0c\"}", 11, "a NUL inside a string");
  assert_rejected_n ("[1,\0 2]", 7, "a NUL between tokens");
  assert_rejected_n ("\0", 1, "a lone NUL");
}

static void
test_trailing_data (void)
{
  assert_rejected ("{} {}", "two texts");
  assert_rejected ("{}x", "a trailing word");
  assert_rejected ("{}]", "a trailing bracket");
  assert_rejected ("[1]2", "a trailing number");
  assert_rejected ("{\"a\":1},", "a trailing comma");
  {
    g_autoptr (json_object) o = assert_accepted (" \t{\"a\":1} \t\r");
    g_assert_nonnull (ifb_json_get (o, "a"));
  }
}

static void
test_incomplete (void)
{
  assert_rejected ("", "nothing");
  assert_rejected ("   ", "only blanks");
  assert_rejected ("{\"a\":1", "an unclosed object");
  assert_rejected ("[1,2", "an unclosed array");
  assert_rejected ("\"abc", "an unterminated string");
  assert_rejected ("\"abc\\", "a string ending in a backslash");
  assert_rejected ("{\"a\":}", "a missing value");
  assert_rejected ("[1,]", "a trailing comma in an array");
  assert_rejected ("{\"a\":1,}", "a trailing comma in an object");
  assert_rejected ("/* c */ {}", "a comment");
  assert_rejected ("{} // c", "a line comment");
  assert_rejected ("01", "a leading zero");
  assert_rejected ("[.5]", "a number without integer part");
  assert_rejected ("[+1]", "a plus sign");
  assert_rejected ("[0x10]", "a hex number");
  assert_rejected ("\"\\x41\"", "a \\x escape");
  assert_rejected ("\f{}", "a form feed (not JSON whitespace)");
  assert_rejected ("{\"a\":\v1}", "a vertical tab (not JSON whitespace)");
}

/* Duplicate keys are refused at any depth; equal keys in different objects are fine. */
static void
test_duplicate_keys (void)
{
  assert_rejected ("{\"a\":1,\"a\":2}", "a duplicate key");
  assert_rejected ("{\"a\":1,\"b\":2,\"a\":1}", "a duplicate with an equal value");
  assert_rejected ("{\"x\":{\"a\":{},\"a\":{}}}", "a nested duplicate");
  assert_rejected ("[{\"a\":1},{\"b\":1,\"b\":2}]", "a duplicate in the second array element");
  assert_rejected ("{\"a\":{\"y\":1},\"b\":2,\"a\":3}", "a duplicate dropping an object");
  assert_rejected ("{\"params\":{\"vm\":\"a\",\"vm\":\"b\"},\"jsonrpc\":\"2.0\"}", "a duplicate in params");
  {
    g_autoptr (json_object) o = assert_accepted ("{\"a\":{\"a\":{\"a\":1}},\"b\":[{\"a\":1},{\"a\":2}],\"c\":\"{\\\"a\\\":1,\\\"a\\\":2}\"}");
    g_assert_cmpuint (json_object_object_length (o), ==, 3);
  }
  {
    /* more objects than the lexer's counts hold before they move to the heap */
    g_autoptr (GString) many = g_string_new ("[");
    g_autoptr (GString) dup = NULL;
    for (int i = 0; i < 200; i++)
      g_string_append_printf (many, "%s{\"a\":%d,\"b\":{}}", i ? "," : "", i);
    g_string_append_c (many, ']');
    dup = g_string_new (many->str);
    g_string_replace (dup, "{\"a\":150,\"b\":{}}", "{\"a\":150,\"a\":{}}", 1);
    json_object_put (assert_accepted (many->str));
    assert_rejected (dup->str, "a duplicate in the 151st of 200 objects");
  }
  {
    /* ':' and braces inside strings are not structure */
    g_autoptr (json_object) o = assert_accepted ("{\"k:1\":\"v:{}:\",\"k2\":{\"x\":\"}\"}}");
    g_assert_cmpstr (ifb_json_get_string (o, "k:1"), ==, "v:{}:");
  }
}

/* depth levels of arrays ([[[]]]) or objects ({"a":{"a":1}}). */
static char *
nested (int depth, gboolean objects)
{
  GString *s = g_string_new (NULL);
  for (int i = 0; i < depth; i++)
    g_string_append (s, objects ? "{\"a\":" : "[");
  if (objects)
    g_string_append (s, "1");
  for (int i = 0; i < depth; i++)
    g_string_append_c (s, objects ? '}' : ']');
  return g_string_free (s, FALSE);
}

/* A document nested exactly max_depth deep parses; one level more fails and says why. */
static void
test_depth (void)
{
  for (int depth = 4; depth <= 64; depth *= 2) {
    for (int kind = 0; kind < 2; kind++) {
      g_autofree char *ok = nested (depth, kind);
      g_autofree char *deep = nested (depth + 1, kind);
      g_autoptr (GError) error = NULL;
      g_autoptr (json_object) o1 = parse_n (ok, strlen (ok), depth, &error);
      g_autoptr (json_object) o2 = NULL;

      g_assert_no_error (error);
      g_assert_nonnull (o1);
      o2 = parse_n (deep, strlen (deep), depth, &error);
      g_assert_null (o2);
      g_assert_error (error, IFB_ERROR, IFB_ERROR_PARSE);
      g_assert_nonnull (strstr (error->message, "too deep"));
    }
  }
  /* Far past the limit does not crash or recurse unbounded. */
  {
    g_autofree char *huge = nested (100000, FALSE);
    g_autoptr (GError) error = NULL;
    g_assert_null (parse_n (huge, strlen (huge), 16, &error));
    g_assert_error (error, IFB_ERROR, IFB_ERROR_PARSE);
  }
}

static void
test_valid (void)
{
  const char *valid[] = {
    "{}", "[]", "0", "-0", "7", "1.5e10", "-1E-3", "\"\"", "true", "false",
    "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"a\":[1,2.5,\"x\",null,true,{}]},\"id\":\"abc\"}",
    "[{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}]",
    "  [ 1 , 2 ]  ",
    "{\"\":0}",
  };
  for (size_t i = 0; i < G_N_ELEMENTS (valid); i++) {
    g_autoptr (json_object) o = assert_accepted (valid[i]);
    (void) o;
  }
  /* A bare null is well-formed but not a message: not a parse error (dispatch answers -32600). */
  {
    g_autoptr (GError) error = NULL;
    g_assert_null (parse_n ("null", 4, 16, &error));
    g_assert_error (error, IFB_ERROR, IFB_ERROR_INVALID_REQUEST);
    g_clear_error (&error);
    g_assert_null (parse_n (" null ", 6, 16, &error));
    g_assert_error (error, IFB_ERROR, IFB_ERROR_INVALID_REQUEST);
  }
  {
    g_autoptr (json_object) o = assert_accepted ("7");
    g_assert_cmpint (json_object_get_int64 (o), ==, 7);
  }
  {
    g_autoptr (json_object) o = assert_accepted ("[\"\\u00e9\\ud83d\\ude00\"]");
    g_assert_cmpstr (json_object_get_string (json_object_array_get_idx (o, 0)), ==, "\xc3\xa9\xf0\x9f\x98\x80");
  }
}

/* ids (and all numbers) are echoed exactly: big integers, and floats in their original spelling. */
static void
test_numbers_exact (void)
{
  assert_roundtrip ("{\"id\":9223372036854775807}", "{\"id\":9223372036854775807}");
  assert_roundtrip ("{\"id\":-9223372036854775808}", "{\"id\":-9223372036854775808}");
  assert_roundtrip ("{\"id\":1.50}", "{\"id\":1.50}");
  assert_roundtrip ("{\"id\":0.1}", "{\"id\":0.1}");
  assert_roundtrip ("{\"id\":1e3}", "{\"id\":1e3}");
  assert_roundtrip ("{\"id\":-2.5E-7}", "{\"id\":-2.5E-7}");
  assert_roundtrip ("{\"id\":12345678901234567890.0}", "{\"id\":12345678901234567890.0}");
  assert_roundtrip ("{\"id\":\"a/b \\u00e9\"}", "{\"id\":\"a/b \xc3\xa9\"}");
  assert_roundtrip ("[ 1 , { \"a\" : null } ]", "[1,{\"a\":null}]");
}

/* The getters never abort on absent members or other types. */
static void
test_getters (void)
{
  g_autoptr (json_object) o = assert_accepted ("{\"s\":\"x\",\"i\":7,\"d\":1.5,\"n\":null}");
  gint64 v = 0;

  g_assert_cmpstr (ifb_json_get_string (o, "s"), ==, "x");
  g_assert_null (ifb_json_get_string (o, "i"));
  g_assert_null (ifb_json_get_string (o, "missing"));
  g_assert_true (ifb_json_get_int (o, "i", &v));
  g_assert_cmpint (v, ==, 7);
  g_assert_false (ifb_json_get_int (o, "d", &v));
  g_assert_false (ifb_json_get_int (o, "s", &v));
  g_assert_false (ifb_json_get_int (o, "n", &v));
  g_assert_null (ifb_json_get (o, "n"));
  g_assert_null (ifb_json_get (NULL, "s"));
}

/* Numbers follow RFC 8259's grammar exactly: json-c alone takes "00" and "1." (and the broker
 * then echoed "1." back as an id, which is not JSON). */
static void
test_number_grammar (void)
{
  const char *bad[] = { "00", "01", "-01", "1.", "-", "1e", "1e+", ".5", "1.e3", "+1", "0x10", "1..2", "1e2e3", "--1" };
  const char *good[] = { "0", "-0", "10", "1.5", "0.25", "-0.5e-3", "1E10", "1e+2", "9007199254740993" };

  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *text = g_strdup_printf ("{\"id\":%s}", bad[i]);
    assert_rejected (text, "a malformed number");
  }
  for (size_t i = 0; i < G_N_ELEMENTS (good); i++) {
    g_autofree char *text = g_strdup_printf ("{\"id\":%s}", good[i]);
    g_autoptr (GError) error = NULL;
    g_autoptr (json_object) o = ifb_json_parse (text, strlen (text), IFB_JSON_DEFAULT_DEPTH, &error);
    if (!o)
      g_error ("rejected '%s': %s", text, error->message);
  }
}

/* What json-c takes without its strict mode — which the broker does not use, since json-c 0.18's
 * strict mode refuses non-ASCII strings — is refused by the broker's own lexical pass, and
 * non-ASCII text in strings, keys and ids is accepted. Run against json-c 0.16 and 0.18
 * (tests/json-c/run.sh). */
static void
test_own_strictness (void)
{
  static const char *const bad[] = {
    "[1,]", "{\"a\":1,}", "[1 , ]", "{\"a\":1,\n}", "/* c */{}", "{}// c", "{\"a\"/**/:1}", "{\"a\":1}#",
    "[TRUE]", "[Null]", "[NaN]", "[-Infinity]", "[\f1]", "[1\v]", "{\"a\":1e999}", "[-1e400]", "[@]", "[1;2]",
  };
  static const struct { const char *text, *key, *value; } good[] = {
    { "{\"name\":\"gr\u00fc\u00df gott\"}", "name", "gr\u00fc\u00df gott" },
    { "{\"name\":\"\xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x96\xa5\"}", "name", "\xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x96\xa5" },
    { "{\"\xc3\xa4\":\"x\"}", "\xc3\xa4", "x" },
    { "{\"v\":\"a,]\"}", "v", "a,]" },
    { "{\"v\":\"/* not a comment */\"}", "v", "/* not a comment */" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    assert_rejected (bad[i], "what json-c takes outside its strict mode");
  for (gsize i = 0; i < G_N_ELEMENTS (good); i++) {
    g_autoptr (json_object) o = assert_accepted (good[i].text);
    g_assert_cmpstr (ifb_json_get_string (o, good[i].key), ==, good[i].value);
  }
  {
    g_autoptr (json_object) o = assert_accepted ("[1.5e300, -0.0, 1E-400]");   /* finite, and underflow to 0 */
    g_assert_cmpint (json_object_array_length (o), ==, 3);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ifb/json/utf8", test_utf8);
  g_test_add_func ("/ifb/json/control-chars", test_control_chars);
  g_test_add_func ("/ifb/json/single-quotes", test_single_quotes);
  g_test_add_func ("/ifb/json/bare-words", test_bare_words);
  g_test_add_func ("/ifb/json/int-range", test_int_range);
  g_test_add_func ("/ifb/json/embedded-nul", test_embedded_nul);
  g_test_add_func ("/ifb/json/trailing-data", test_trailing_data);
  g_test_add_func ("/ifb/json/incomplete-and-invalid", test_incomplete);
  g_test_add_func ("/ifb/json/duplicate-keys", test_duplicate_keys);
  g_test_add_func ("/ifb/json/depth", test_depth);
  g_test_add_func ("/ifb/json/valid", test_valid);
  g_test_add_func ("/ifb/json/numbers-exact", test_numbers_exact);
  g_test_add_func ("/ifb/json/getters", test_getters);
  g_test_add_func ("/ifb/json/number-grammar", test_number_grammar);
  g_test_add_func ("/ifb/json/own-strictness", test_own_strictness);
  return g_test_run ();
}
