/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The broker's metrics: counters the dispatcher and the worker code bump as they go, and the
 * rendering of those plus the registry's state into the OpenMetrics text format (the `metrics`
 * method) or the Prometheus text format 0.0.4 (the [metrics] textfile for node_exporter's
 * textfile collector, whose parser predates OpenMetrics).
 */
#pragma once

#include <glib.h>

#include "manager.h"

typedef enum {
  IFB_METRICS_OPENMETRICS,      /* application/openmetrics-text; version=1.0.0 */
  IFB_METRICS_PROMETHEUS_TEXT,  /* text/plain; version=0.0.4 */
} IfbMetricsFormat;

#define IFB_METRICS_OPENMETRICS_CONTENT_TYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* One RPC call of method (a name from the method table) done in usec; error is NULL on success. */
void ifb_metrics_rpc_observe (const char *method, const GError *error, gint64 usec);
/* One worker spawned with strategy ("vfork") that ran for usec; ok: it did its job. */
void ifb_metrics_worker_observe (const char *strategy, gboolean ok, gint64 usec);

/* Everything, as text in format. */
char *ifb_metrics_render (IfbManager *m, IfbMetricsFormat format);

/*
 * [metrics] textfile=PATH: write the Prometheus text now and every interval-sec seconds,
 * atomically (a temporary file in the same directory renamed over PATH). No-op without a path.
 */
void ifb_metrics_textfile_start (IfbManager *m);
void ifb_metrics_textfile_stop (void);
/* Write the text file once; FALSE with error when it could not be written. */
gboolean ifb_metrics_textfile_write (IfbManager *m, GError **error);
