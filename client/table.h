/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Aligned text tables for iommufdctl. */
#pragma once

#include <glib.h>

typedef struct IfbTable IfbTable;

IfbTable *ifb_table_new (const char *first_header, ...) G_GNUC_NULL_TERMINATED;
IfbTable *ifb_table_free (IfbTable *t);
/* Add a row of exactly as many cells as headers (NULL prints "-"). */
void ifb_table_add_row (IfbTable *t, ...);
void ifb_table_print (IfbTable *t);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbTable, ifb_table_free)
