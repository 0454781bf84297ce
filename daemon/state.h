/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The registry on disk: <runtime-dir>/registry.json, versioned, replaced atomically (temp file,
 * fsync, rename, fsync of the directory) on every change, so a crash leaves the old or the new
 * state and never a torn one.
 */
#pragma once

#include <glib.h>

#include "registry.h"

#define IFB_STATE_VERSION 1

gboolean ifb_state_save (IfbRegistry *r, int runtime_dirfd, GError **error);
/* Load the saved guests (fds all -1). A missing file is an empty list. */
gboolean ifb_state_load (int runtime_dirfd, GPtrArray **ret_vms, GError **error);
