/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small helpers every part of iommufd-broker shares: the one fd cleanup idiom
 * (GLib 2.74 has no g_autofd), visible fd hand-offs, and the json-c autoptr.
 */
#pragma once

#include <errno.h>
#include <unistd.h>
#include <glib.h>
#include <json-c/json.h>

/* Close fd if it is valid, keeping errno; always returns -1 so `fd = ifb_close(fd);` is safe. */
static inline int
ifb_close (int fd)
{
  if (fd >= 0) {
    int saved = errno;
    close (fd);
    errno = saved;
  }
  return -1;
}

static inline void
ifb_closep (int *fd)
{
  *fd = ifb_close (*fd);
}

/* Take ownership of *fd, leaving -1 behind: `*ret_fd = ifb_steal_fd (&fd);` */
static inline int
ifb_steal_fd (int *fd)
{
  int r = *fd;
  *fd = -1;
  return r;
}

#define ifb_autofd __attribute__((cleanup (ifb_closep)))

G_DEFINE_AUTOPTR_CLEANUP_FUNC (json_object, json_object_put)
