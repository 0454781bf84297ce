/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The processes holding a guest's fds (its VMM), watched through pidfds: when the last one exits
 * the guest's context is replaced, so nothing a VMM allocated or pinned outlives it.
 */
#pragma once

#include <glib.h>

#include "core.h"
#include "vm.h"

/* May process pid take guest vm's fds? Under the unbound hand-off only while no other process
 * holds them (the kernel binds a device once); always under bound. */
gboolean ifb_holders_admit (IfbVm *vm, pid_t pid, GError **error);
/* Record and watch pid (pidfd: the peer's, borrowed; -1 to open one) as holding vm's fds. */
gboolean ifb_holders_add (IfbCore *core, IfbVm *vm, pid_t pid, int pidfd, GError **error);
/* After a restart: watch the saved holders still alive (same pid and start time), drop the rest,
 * and reclaim the guest from the main loop when none is left. */
void ifb_holders_restore (IfbCore *core, IfbVm *vm);
