/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The broker's metrics as text: the counters (metrics.h) and the state of guests, devices and
 * connections, in the OpenMetrics text format (the `metrics` method) or the Prometheus text
 * format 0.0.4 (the [metrics] textfile for node_exporter's textfile collector, whose parser
 * predates OpenMetrics).
 */
#pragma once

#include <glib.h>

#include "core.h"

typedef enum {
  IFB_METRICS_OPENMETRICS,      /* application/openmetrics-text; version=1.0.0 */
  IFB_METRICS_PROMETHEUS_TEXT,  /* text/plain; version=0.0.4 */
} IfbMetricsFormat;

#define IFB_METRICS_OPENMETRICS_CONTENT_TYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* Everything, as text in format. */
char *ifb_metrics_render (IfbCore *core, IfbMetricsFormat format);

/*
 * [metrics] textfile=PATH: write the Prometheus text now and every interval-sec seconds,
 * atomically (a temporary file in the same directory renamed over PATH). No-op without a path.
 */
void ifb_metrics_textfile_start (IfbCore *core);
void ifb_metrics_textfile_stop (void);
/* Write the text file once; FALSE with error when it could not be written. */
gboolean ifb_metrics_textfile_write (IfbCore *core, GError **error);
