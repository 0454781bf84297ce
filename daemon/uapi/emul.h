/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The emulated IOMMUFD backend as seen from outside it (the theory of operation is at the top
 * of emul.c). -ENOTTY on kernel fds.
 */
#pragma once

#include <stddef.h>

#include "uapi-types.h"

const IfbUapiBackend *ifb_uapi_backend_emulated (void);
/* 1 for an emulated context fd, 2 for an emulated device fd, 0 otherwise. */
int ifb_emul_fd_kind (int fd);

/* The emulated backend's own entry points behind uapi.h's (tests and benchmarks call them directly). */
int ifb_uapi_emul_list_objects (int iommufd, IfbUapiObject *objs, size_t max, size_t *ret_n);
/* Emulated backend: keep each context's table mapped from _begin() to _end() (a worker's batch
 * of ioctls; no fd may be closed and reused in between). Async-signal-safe; no-ops otherwise. */
void ifb_uapi_emul_batch_begin (void);
void ifb_uapi_emul_batch_end (void);
/* Emulated backend: every device bind and release takes ms milliseconds in the calling process,
 * as vfio-pci's device reset does on real hardware. Async-signal-safe. */
void ifb_uapi_emul_set_reset_ms (unsigned ms);

/* Tests only: take the context lock and return without releasing it, to play a worker that
 * dies mid-change (the robust mutex must recover). */
int ifb_emul_debug_lock (int fd);
