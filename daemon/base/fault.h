/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Failure injection for tests: IFB_FAULT=<step>[@N][,...] in the daemon's environment makes
 * each named step fail with EIO (or only its N-th time), so a test can prove that nothing
 * half-made stays behind.
 * Steps: open-iommufd, rlimit, ioas-alloc, open-device, bind, hw-info, hwpt-alloc, attach,
 * worker-spawn, state-write, fdstore.
 */
#pragma once

#include <stdbool.h>

/* Read IFB_FAULT once (call from main before anything else). */
void ifb_fault_init (void);
/* -EIO if step was asked to fail, else 0. Async-signal-safe. */
int ifb_fault_check (const char *step);
