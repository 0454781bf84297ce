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
#define IFB_STATE_REJECTED_DIR "rejected"   /* below IFB_STATE_DIR: files restore did not trust */
#define IFB_STATE_MAX_SIZE (1u << 20)       /* a guest with 64 devices takes about 40 KiB */

/* Write (or replace) the state of one guest. */
gboolean ifb_state_save_vm (int runtime_dirfd, const IfbVm *vm, GError **error);
/* Forget a guest's state; a missing file is fine. */
gboolean ifb_state_remove_vm (int runtime_dirfd, const char *uuid, GError **error);
/* Load every saved guest (fds all -1), sorted by name. No directory yet is an empty list. A file
 * that cannot be trusted (state.c) is moved to IFB_STATE_DIR/IFB_STATE_REJECTED_DIR with the
 * reason logged, and the others are loaded; only an unreadable directory fails the load. */
gboolean ifb_state_load (int runtime_dirfd, guint max_vms, GPtrArray **ret_vms, GError **error);
/*
 * What guests may not share, checked across state files as they are admitted oldest first: a
 * name, an fd-store slot, a device, or a cgroup equal to, inside or containing another's; and
 * no more than max_vms of them. ifb_state_set_add() keeps vm (borrowed: it must outlive the set)
 * and returns NULL, or returns why not (owned; the other guest named: for the journal) and
 * leaves the set as it was.
 */
typedef struct IfbStateSet IfbStateSet;
IfbStateSet *ifb_state_set_new (guint max_vms);
IfbStateSet *ifb_state_set_free (IfbStateSet *s);
char *ifb_state_set_add (IfbStateSet *s, IfbVm *vm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbStateSet, ifb_state_set_free)

/* Parse and check one state file's text (expect_uuid: the UUID its file name says, or NULL).
 * What the state fuzzer drives. */
IfbVm *ifb_state_parse (const char *text, size_t len, const char *expect_uuid, GError **error);
