/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The broker's counters: what the dispatcher and the worker code count as they go. Rendered as
 * text by metrics-text.c.
 */
#pragma once

#include <glib.h>

#include "errors.h"

#define IFB_METRICS_MAX_BUCKETS 16

typedef struct {
  guint64 count;
  guint64 bucket[IFB_METRICS_MAX_BUCKETS];   /* observations in (bound[i-1], bound[i]] */
  double sum;                   /* seconds */
} IfbHistogram;

typedef struct {
  guint n;
  const double *bound;
  const char *const *text;      /* the same bounds as le="" label values */
} IfbBuckets;

extern const IfbBuckets ifb_metrics_rpc_buckets;
extern const IfbBuckets ifb_metrics_worker_buckets;

typedef struct {
  guint64 calls;
  guint64 errors[_IFB_ERROR_MAX];
  IfbHistogram duration;
} IfbMethodStats;

typedef struct {
  guint64 spawns;
  guint64 failures;
  IfbHistogram duration;
} IfbWorkerStats;

/* One RPC call of method (a name from the method table) done in usec; error is NULL on success. */
void ifb_metrics_rpc_observe (const char *method, const GError *error, gint64 usec);
/* One worker spawned with strategy ("vfork") that ran for usec; ok: it did its job. */
void ifb_metrics_worker_observe (const char *strategy, gboolean ok, gint64 usec);

/* What was counted for method; NULL when it was never called. */
const IfbMethodStats *ifb_metrics_method (const char *method);
/* The spawn strategies, 0 .. n-1: the name, and its stats in *ret_stats. */
guint ifb_metrics_n_strategies (void);
const char *ifb_metrics_strategy (guint i, const IfbWorkerStats **ret_stats);
