/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Log lines about a guest carry structured fields for the journal: IFB_VM=, IFB_VM_UUID= and,
 * where one is concerned, IFB_DEVICE=, so `journalctl IFB_VM=web1` shows one guest's history.
 */
#pragma once

#include <sys/types.h>
#include <glib.h>

#include "vm.h"

/* Log to the journal natively (every field kept) when stderr is the journal's stream: checked
 * by $JOURNAL_STREAM as systemd documents it, or as GLib does. Call once, early in main(). */
void ifb_log_init (void);

void ifb_log_vm (GLogLevelFlags level, const IfbVm *vm, const char *device, const char *fmt, ...) G_GNUC_PRINTF (4, 5);

/*
 * A refused call (or connection) of uid, at G_LOG_LEVEL_MESSAGE: at most max lines per uid per
 * IFB_LOG_REFUSAL_INTERVAL_S seconds; the rest are counted, and the next line logged for that
 * uid says how many were not. A peer that is refused in a loop cannot flood the journal (whose
 * own rate limit would then hide everything else the daemon says).
 */
#define IFB_LOG_REFUSAL_INTERVAL_S 10
void ifb_log_refusal (uid_t uid, guint max, const char *fmt, ...) G_GNUC_PRINTF (3, 4);
/* The same for a call that names a guest: the line carries IFB_VM= and IFB_VM_UUID= with what
 * is known of it (either may be NULL), so `journalctl IFB_VM=NAME` shows its refusals too. */
void ifb_log_refusal_vm (uid_t uid, guint max, const char *vm, const char *uuid, const char *fmt, ...)
  G_GNUC_PRINTF (5, 6);
