/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The broker's counters, bumped as things happen (the daemon's main thread): every RPC call by
 * method, with its errors by wire name and its duration (the dispatcher, dispatch.c: from the
 * request's arrival to its answer, however long it was parked or its worker ran), and every
 * worker by spawn strategy with its duration (worker.c). Method names come only from the method
 * table and strategies from the table below, never from what a peer sent, so the number of
 * series is bounded. metrics-text.c renders them.
 */
#define G_LOG_DOMAIN "ifb-metrics"

#include <string.h>

#include "errors.h"
#include "metrics.h"

static const double rpc_bound[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 };
static const char *const rpc_text[] = { "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
                                        "0.05", "0.1", "0.25", "0.5", "1.0", "2.5" };
const IfbBuckets ifb_metrics_rpc_buckets = { G_N_ELEMENTS (rpc_bound), rpc_bound, rpc_text };

static const double worker_bound[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
static const char *const worker_text[] = { "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                                           "0.25", "0.5", "1.0", "2.5", "5.0", "10.0" };
const IfbBuckets ifb_metrics_worker_buckets = { G_N_ELEMENTS (worker_bound), worker_bound, worker_text };

G_STATIC_ASSERT (G_N_ELEMENTS (rpc_bound) == G_N_ELEMENTS (rpc_text) && G_N_ELEMENTS (rpc_bound) <= IFB_METRICS_MAX_BUCKETS);
G_STATIC_ASSERT (G_N_ELEMENTS (worker_bound) == G_N_ELEMENTS (worker_text) && G_N_ELEMENTS (worker_bound) <= IFB_METRICS_MAX_BUCKETS);

/* How workers are started (worker.c); a table so a new way is one more label, not new code. */
static const char *const strategies[] = { "vfork" };

static GHashTable *method_stats;   /* method name (the method table's string) -> IfbMethodStats */
static IfbWorkerStats worker_stats[G_N_ELEMENTS (strategies)];

static void
observe (IfbHistogram *h, const IfbBuckets *b, gint64 usec)
{
  double s = (double) MAX (usec, 0) / G_USEC_PER_SEC;
  h->count++;
  h->sum += s;
  for (guint i = 0; i < b->n; i++) {
    if (s <= b->bound[i]) {
      h->bucket[i]++;
      break;
    }
  }
}

static IfbMethodStats *
method_stats_of (const char *method)
{
  IfbMethodStats *s;

  if (!method)
    return NULL;
  if (!method_stats)
    method_stats = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (!(s = g_hash_table_lookup (method_stats, method))) {
    s = g_new0 (IfbMethodStats, 1);
    g_hash_table_insert (method_stats, g_strdup (method), s);
  }
  return s;
}

void
ifb_metrics_rpc_observe (const char *method, const GError *error, gint64 usec)
{
  IfbMethodStats *s = method_stats_of (method);
  if (!s)
    return;
  s->calls++;
  if (error)
    s->errors[error->domain == IFB_ERROR && (unsigned) error->code < _IFB_ERROR_MAX ? error->code : IFB_ERROR_FAILED]++;
  observe (&s->duration, &ifb_metrics_rpc_buckets, usec);
}

void
ifb_metrics_worker_observe (const char *strategy, gboolean ok, gint64 usec)
{
  for (guint i = 0; i < G_N_ELEMENTS (strategies); i++) {
    if (strcmp (strategies[i], strategy) == 0) {
      worker_stats[i].spawns++;
      worker_stats[i].failures += !ok;
      observe (&worker_stats[i].duration, &ifb_metrics_worker_buckets, usec);
      return;
    }
  }
}

const IfbMethodStats *
ifb_metrics_method (const char *method)
{
  return method_stats ? g_hash_table_lookup (method_stats, method) : NULL;
}

guint
ifb_metrics_n_strategies (void)
{
  return G_N_ELEMENTS (strategies);
}

const char *
ifb_metrics_strategy (guint i, const IfbWorkerStats **ret_stats)
{
  *ret_stats = &worker_stats[i];
  return strategies[i];
}
