/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fdlist.h"
#include "util.h"

struct IfbFdList {
  GArray *fds;
};

IfbFdList *
ifb_fd_list_new (void)
{
  IfbFdList *l = g_new0 (IfbFdList, 1);
  l->fds = g_array_new (FALSE, FALSE, sizeof (int));
  return l;
}

IfbFdList *
ifb_fd_list_free (IfbFdList *l)
{
  if (!l)
    return NULL;
  for (guint i = 0; i < l->fds->len; i++)
    ifb_close (g_array_index (l->fds, int, i));
  g_array_unref (l->fds);
  g_free (l);
  return NULL;
}

void
ifb_fd_list_push (IfbFdList *l, int fd)
{
  g_array_append_val (l->fds, fd);
}

int
ifb_fd_list_push_dup (IfbFdList *l, int fd)
{
  int copy = fcntl (fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0)
    return -errno;
  ifb_fd_list_push (l, copy);
  return (int) l->fds->len - 1;
}

guint
ifb_fd_list_len (const IfbFdList *l)
{
  return l ? l->fds->len : 0;
}

int
ifb_fd_list_get (const IfbFdList *l, guint idx)
{
  if (!l || idx >= l->fds->len)
    return -1;
  return g_array_index (l->fds, int, idx);
}

int
ifb_fd_list_steal (IfbFdList *l, guint idx)
{
  if (!l || idx >= l->fds->len)
    return -1;
  return ifb_steal_fd (&g_array_index (l->fds, int, idx));
}

const int *
ifb_fd_list_data (const IfbFdList *l)
{
  return (const int *) l->fds->data;
}
