/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copying the emulated root template into a runtime directory.
 *
 * Each daemon (and each parallel test daemon) gets its own copy, because the device files in it
 * carry live state: the bind lock and bind record of the emulator (see emul.c). The copy is
 * built under a temporary name and renamed into place, so a crash mid-copy never leaves a
 * half-populated root that a later start would take for a complete one. Regular files, dirs and
 * symlinks (sysfs' driver and iommu_group links) are copied; anything else is refused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emul-root.h"

static int
copy_file (int sfd, const char *name, int dfd, mode_t mode)
{
  char buf[8192];
  ssize_t n;
  int in, out, r = 0;

  in = openat (sfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0)
    return -errno;
  out = openat (dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, (mode & 0777) | 0600);
  if (out < 0) {
    r = -errno;
    close (in);
    return r;
  }
  while ((n = read (in, buf, sizeof buf)) > 0) {
    if (write (out, buf, (size_t) n) != n) {
      r = -EIO;
      break;
    }
  }
  if (n < 0)
    r = -errno;
  close (in);
  if (close (out) < 0 && r == 0)
    r = -errno;
  return r;
}

static int
copy_tree (int sfd, int dfd)
{
  struct dirent *de;
  DIR *d;
  int r = 0, dup_fd;

  dup_fd = dup (sfd);
  if (dup_fd < 0)
    return -errno;
  d = fdopendir (dup_fd);
  if (!d) {
    r = -errno;
    close (dup_fd);
    return r;
  }
  while (r == 0 && (de = readdir (d))) {
    struct stat st;

    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
      continue;
    if (fstatat (sfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      r = -errno;
      break;
    }
    if (S_ISDIR (st.st_mode)) {
      int s2, d2;
      if (mkdirat (dfd, de->d_name, 0755) < 0) {
        r = -errno;
        break;
      }
      s2 = openat (sfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      d2 = openat (dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      if (s2 < 0 || d2 < 0)
        r = -errno;
      else
        r = copy_tree (s2, d2);
      if (s2 >= 0)
        close (s2);
      if (d2 >= 0)
        close (d2);
    } else if (S_ISLNK (st.st_mode)) {
      char target[PATH_MAX];
      ssize_t n = readlinkat (sfd, de->d_name, target, sizeof target - 1);
      if (n < 0) {
        r = -errno;
        break;
      }
      target[n] = '\0';
      if (symlinkat (target, dfd, de->d_name) < 0)
        r = -errno;
    } else if (S_ISREG (st.st_mode)) {
      r = copy_file (sfd, de->d_name, dfd, st.st_mode);
    } else {
      r = -EINVAL;
    }
  }
  closedir (d);
  return r;
}

static void
remove_tree (int dfd, const char *name)
{
  struct dirent *de;
  DIR *d;
  int fd;

  if (unlinkat (dfd, name, 0) == 0 || errno == ENOENT)
    return;
  fd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return;
  d = fdopendir (fd);
  if (!d) {
    close (fd);
    return;
  }
  while ((de = readdir (d)))
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      remove_tree (dirfd (d), de->d_name);
  closedir (d);
  unlinkat (dfd, name, AT_REMOVEDIR);
}

int
ifb_emul_root_prepare_with (int runtime_dirfd, const char *name, IfbEmulRootFill fill, void *data, int *ret_rootfd)
{
  char tmp[NAME_MAX + 1];
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

  /* Filled under a temporary name and renamed: a root is whole or absent. */
  snprintf (tmp, sizeof tmp, ".%s.tmp-%d", name, (int) getpid ());
  remove_tree (runtime_dirfd, tmp);
  if (mkdirat (runtime_dirfd, tmp, 0755) < 0)
    return -errno;
  dfd = openat (runtime_dirfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  r = dfd < 0 ? -errno : fill (dfd, data);
  if (dfd >= 0)
    close (dfd);
  if (r == 0 && renameat (runtime_dirfd, tmp, runtime_dirfd, name) < 0)
    r = (errno == EEXIST || errno == ENOTEMPTY) ? 0 : -errno;   /* lost a race: use theirs */
  remove_tree (runtime_dirfd, tmp);
  if (r < 0)
    return r;

  rootfd = openat (runtime_dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (rootfd < 0)
    return -errno;
  *ret_rootfd = rootfd;
  return 0;
}

static int
fill_from_template (int dfd, void *data)
{
  return copy_tree (*(int *) data, dfd);
}

int
ifb_emul_root_prepare (const char *template_dir, int runtime_dirfd, const char *name, int *ret_rootfd)
{
  int sfd = open (template_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int r;

  if (sfd < 0)
    return -errno;
  r = ifb_emul_root_prepare_with (runtime_dirfd, name, fill_from_template, &sfd, ret_rootfd);
  close (sfd);
  return r;
}
