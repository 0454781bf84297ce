/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The registry on disk: one file per guest, <runtime-dir>/guests/<uuid>.json, versioned, each
 * replaced atomically (temp file, fsync, rename, fsync of the directory) whenever that guest
 * changes. A crash leaves every guest's old or new state and never a torn one, and a change
 * costs the same with 4 guests or 4096.
 */
#pragma once

#include <glib.h>

#include "vm.h"

#define IFB_STATE_VERSION 1
#define IFB_STATE_DIR "guests"

/* Write (or replace) the state of one guest. */
gboolean ifb_state_save_vm (int runtime_dirfd, const IfbVm *vm, GError **error);
/* Forget a guest's state; a missing file is fine. */
gboolean ifb_state_remove_vm (int runtime_dirfd, const char *uuid, GError **error);
/* Load every saved guest (fds all -1), sorted by name. No directory yet is an empty list. A file
 * that cannot be read or parsed fails the load, naming it: guessing would lose a guest. */
gboolean ifb_state_load (int runtime_dirfd, GPtrArray **ret_vms, GError **error);
