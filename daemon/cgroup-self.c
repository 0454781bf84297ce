/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The calling process's own cgroup2 path: async-signal-safe and without GLib, for the worker
 * program as well as the daemon. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"

int
ifb_cgroup_self (char *buf, size_t size)
{
  char text[4096];
  ssize_t n;
  int fd = open ("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  n = read (fd, text, sizeof (text) - 1);
  close (fd);
  if (n < 0)
    return -errno;
  text[n] = 0;
  for (char *l = text; l && *l;) {
    char *nl = strchr (l, '\n');
    if (nl)
      *nl = 0;
    if (l[0] == '0' && l[1] == ':' && l[2] == ':') {
      size_t len = strlen (l + 3);
      if (len >= size)
        return -ENAMETOOLONG;
      memcpy (buf, l + 3, len + 1);
      return 0;
    }
    l = nl ? nl + 1 : NULL;
  }
  return -ENOENT;
}
