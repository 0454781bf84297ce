/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The /proc/PID/cgroup parser (see proc-cgroup.h): no GLib, no allocation. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "proc-cgroup.h"

static int
fail (char *buf, size_t size, int r)
{
  if (size > 0)
    buf[0] = '\0';
  return r;
}

int
ifb_proc_cgroup_parse (const char *text, size_t len, char *buf, size_t size)
{
  const char *end = text + len;

  for (const char *line = text; line < end;) {
    const char *nl = memchr (line, '\n', (size_t) (end - line));
    if ((size_t) (end - line) >= 3 && memcmp (line, "0::", 3) == 0) {
      const char *path = line + 3;
      size_t n;
      if (!nl || memchr (path, '\0', (size_t) (nl - path)) || nl == path || path[0] != '/')
        return fail (buf, size, -EINVAL);
      n = (size_t) (nl - path);
      if (n >= size)
        return fail (buf, size, -ENAMETOOLONG);
      memcpy (buf, path, n);
      buf[n] = '\0';
      return 0;
    }
    if (!nl)
      break;
    line = nl + 1;
  }
  return fail (buf, size, -ENOENT);
}

int
ifb_proc_cgroup_read (int fd, char *buf, size_t size)
{
  char text[IFB_PROC_CGROUP_FILE_MAX + 1];
  size_t len = 0;

  /* one byte more than we take, to tell a file that fills the buffer from a longer one */
  while (len < sizeof text) {
    ssize_t n = read (fd, text + len, sizeof text - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail (buf, size, -errno);
    if (n == 0)
      return ifb_proc_cgroup_parse (text, len, buf, size);
    len += (size_t) n;
  }
  return fail (buf, size, -EFBIG);
}

int
ifb_proc_cgroup_self (char *buf, size_t size)
{
  int fd = open ("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
  int r;

  if (fd < 0)
    return fail (buf, size, -errno);
  r = ifb_proc_cgroup_read (fd, buf, size);
  close (fd);
  return r;
}
