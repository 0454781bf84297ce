/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The worker's rebind batch: devices moved between host drivers through sysfs (rebind.c). */
#pragma once

#include "uapi.h"
#include "worker.h"

/* Carry out every rebind of b, in order, each to its end or its first failure (r->err). */
void ifb_rebind_run (const IfbUapiBackend *backend, IfbWorkerBatch *b);
