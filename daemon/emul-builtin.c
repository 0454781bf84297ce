/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Writing the built-in emulated device set (emul-builtin.h) into a runtime directory. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emul-builtin.h"
#include "emul-root.h"

static int
write_file (int dfd, const IfbEmulBuiltinEntry *e)
{
  size_t off = 0;
  int fd, r = 0;

  fd = openat (dfd, e->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, (e->mode & 0777) | 0600);
  if (fd < 0)
    return -errno;
  while (off < e->len) {
    ssize_t n = write (fd, e->data + off, e->len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      r = n < 0 ? -errno : -EIO;
      break;
    }
    off += (size_t) n;
  }
  if (close (fd) < 0 && r == 0)
    r = -errno;
  return r;
}

static int
write_tree (int dfd, void *data)
{
  size_t i;
  int r = 0;

  for (i = 0; r == 0 && ifb_emul_builtin_entries[i].kind; i++) {
    const IfbEmulBuiltinEntry *e = &ifb_emul_builtin_entries[i];
    switch (e->kind) {
    case 'd':
      r = mkdirat (dfd, e->path, e->mode & 0777) < 0 ? -errno : 0;
      break;
    case 'l': {
      char target[PATH_MAX];
      if (e->len >= sizeof target)
        return -ENAMETOOLONG;
      memcpy (target, e->data, e->len);
      target[e->len] = '\0';
      r = symlinkat (target, dfd, e->path) < 0 ? -errno : 0;
      break;
    }
    case 'f':
      r = write_file (dfd, e);
      break;
    default:
      r = -EINVAL;
    }
  }
  return r;
}

int
ifb_emul_builtin_prepare (int runtime_dirfd, const char *name, int *ret_rootfd)
{
  return ifb_emul_root_prepare_with (runtime_dirfd, name, write_tree, NULL, ret_rootfd);
}
