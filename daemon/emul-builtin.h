/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The emulated backend's default device set, built into the daemon at build time from
 * tests/fixtures/emulated (daemon/gen-emulated.py), so the daemon runs from its build tree or a
 * package without a data file. [broker] emulated-template= or --emulated-template DIR still
 * picks a tree on disk instead.
 */
#pragma once

#include <stddef.h>

typedef struct {
  char kind;                    /* 'd' directory, 'f' file, 'l' symlink; 0 ends the table */
  const char *path;             /* relative, parents listed before children */
  const char *data;             /* file content or link target */
  size_t len;
  unsigned mode;
} IfbEmulBuiltinEntry;

extern const IfbEmulBuiltinEntry ifb_emul_builtin_entries[];

/*
 * As ifb_emul_root_prepare() (uapi/emul-root.h), from the built-in set: make runtime_dirfd/name
 * unless it exists (it persists across restarts, holding the emulator's live state), built under
 * a temporary name and renamed into place. Returns 0 or -errno; *ret_rootfd untouched on failure.
 */
int ifb_emul_builtin_prepare (int runtime_dirfd, const char *name, int *ret_rootfd);
