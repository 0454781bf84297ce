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

/* Remove what the first n entries made, children first (the table lists parents first). */
static void
unwrite (int dfd, size_t n)
{
  while (n-- > 0) {
    const IfbEmulBuiltinEntry *e = &ifb_emul_builtin_entries[n];
    unlinkat (dfd, e->path, e->kind == 'd' ? AT_REMOVEDIR : 0);
  }
}

static int
write_tree (int dfd, size_t *ret_done)
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
        return *ret_done = i, -ENAMETOOLONG;
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
  *ret_done = i;   /* on failure this counts the failed entry too: it may be half made */
  return r;
}

int
ifb_emul_builtin_prepare (int runtime_dirfd, const char *name, int *ret_rootfd)
{
  char tmp[NAME_MAX + 1];
  size_t done = 0;
  int dfd, rootfd, r;

  if (!name || !*name || strchr (name, '/') || strcmp (name, ".") == 0 || strcmp (name, "..") == 0 ||
      strlen (name) > NAME_MAX - 24)
    return -EINVAL;

  rootfd = openat (runtime_dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (rootfd >= 0) {
    *ret_rootfd = rootfd;
    return 0;
  }
  if (errno != ENOENT)
    return -errno;

  snprintf (tmp, sizeof tmp, ".%s.tmp-%d", name, (int) getpid ());
  if (mkdirat (runtime_dirfd, tmp, 0755) < 0)
    return -errno;
  dfd = openat (runtime_dirfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (dfd < 0) {
    r = -errno;
    unlinkat (runtime_dirfd, tmp, AT_REMOVEDIR);
    return r;
  }
  r = write_tree (dfd, &done);
  if (r == 0 && renameat (runtime_dirfd, tmp, runtime_dirfd, name) < 0)
    r = (errno == EEXIST || errno == ENOTEMPTY) ? -EEXIST : -errno;
  if (r < 0) {
    unwrite (dfd, done);
    unlinkat (runtime_dirfd, tmp, AT_REMOVEDIR);
  }
  close (dfd);
  if (r == -EEXIST)     /* lost a race with another daemon on the same dir: use theirs */
    r = 0;
  if (r < 0)
    return r;

  rootfd = openat (runtime_dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (rootfd < 0)
    return -errno;
  *ret_rootfd = rootfd;
  return 0;
}
