/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>

#include "table.h"

struct IfbTable {
  guint n_cols;
  GPtrArray *rows;   /* of GStrv; row 0 = headers */
};

IfbTable *
ifb_table_new (const char *first_header, ...)
{
  IfbTable *t = g_new0 (IfbTable, 1);
  GPtrArray *h = g_ptr_array_new ();
  va_list ap;

  t->rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  va_start (ap, first_header);
  for (const char *s = first_header; s; s = va_arg (ap, const char *))
    g_ptr_array_add (h, g_strdup (s));
  va_end (ap);
  t->n_cols = h->len;
  g_ptr_array_add (h, NULL);
  g_ptr_array_add (t->rows, g_ptr_array_free (h, FALSE));
  return t;
}

IfbTable *
ifb_table_free (IfbTable *t)
{
  if (!t)
    return NULL;
  g_ptr_array_unref (t->rows);
  g_free (t);
  return NULL;
}

void
ifb_table_add_row (IfbTable *t, ...)
{
  char **row = g_new0 (char *, t->n_cols + 1);
  va_list ap;

  va_start (ap, t);
  for (guint i = 0; i < t->n_cols; i++) {
    const char *s = va_arg (ap, const char *);
    row[i] = g_strdup (s ? s : "-");
  }
  va_end (ap);
  g_ptr_array_add (t->rows, row);
}

void
ifb_table_print (IfbTable *t)
{
  g_autofree guint *width = g_new0 (guint, t->n_cols);

  for (guint r = 0; r < t->rows->len; r++) {
    char **row = g_ptr_array_index (t->rows, r);
    for (guint c = 0; c < t->n_cols; c++)
      width[c] = MAX (width[c], (guint) g_utf8_strlen (row[c], -1));
  }
  for (guint r = 0; r < t->rows->len; r++) {
    char **row = g_ptr_array_index (t->rows, r);
    for (guint c = 0; c < t->n_cols; c++) {
      if (c + 1 == t->n_cols)
        printf ("%s\n", row[c]);
      else
        printf ("%-*s  ", (int) width[c], row[c]);
    }
  }
}
