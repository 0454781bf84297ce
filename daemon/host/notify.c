/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define G_LOG_DOMAIN "ifb-notify"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "fault.h"
#include "notify.h"

bool
ifb_notify_enabled (void)
{
  const char *s = getenv ("NOTIFY_SOCKET");
  return s && *s;
}

void
ifb_notify_ready (const char *status)
{
  sd_notifyf (0, "READY=1\nSTATUS=%s", status);
}

void
ifb_notify_status (const char *status)
{
  sd_notifyf (0, "STATUS=%s", status);
}

void
ifb_notify_stopping (void)
{
  sd_notify (0, "STOPPING=1\nSTATUS=Shutting down");
}

static gboolean
watchdog_tick (gpointer data)
{
  sd_notify (0, "WATCHDOG=1");
  return G_SOURCE_CONTINUE;
}

void
ifb_notify_watchdog_start (void)
{
  uint64_t usec = 0;
  if (sd_watchdog_enabled (0, &usec) > 0 && usec > 0)
    g_timeout_add ((guint) MAX (usec / 2000, 1), watchdog_tick, NULL);
}

bool
ifb_notify_fdname_valid (const char *name)
{
  size_t n = strlen (name);
  if (n == 0 || n > 255)
    return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char) name[i] <= ' ' || (unsigned char) name[i] >= 0x7f || name[i] == ':')
      return false;
  return true;
}

int
ifb_notify_fdstore_add (const char *name, int fd)
{
  g_autofree char *msg = NULL;
  int r;

  if ((r = ifb_fault_check ("fdstore")))
    return r;
  if (!ifb_notify_enabled ())
    return 0;
  if (!ifb_notify_fdname_valid (name))
    return -EINVAL;
  msg = g_strdup_printf ("FDSTORE=1\nFDNAME=%s\nFDPOLL=0", name);
  r = sd_pid_notify_with_fds (0, 0, msg, &fd, 1);
  if (r >= 0 && ifb_fault_check ("crash-after-fdstore") < 0)
    raise (SIGKILL);   /* tests: the daemon dies between storing an fd and writing the state */
  return r < 0 ? r : 0;
}

int
ifb_notify_fdstore_remove (const char *name)
{
  g_autofree char *msg = NULL;
  int r;

  if (!ifb_notify_enabled ())
    return 0;
  msg = g_strdup_printf ("FDSTOREREMOVE=1\nFDNAME=%s", name);
  r = sd_notify (0, msg);
  return r < 0 ? r : 0;
}

int
ifb_notify_barrier_start (int *ret_fd)
{
  int p[2], r;

  if (!ifb_notify_enabled ())
    return -ENOTCONN;
  if (pipe2 (p, O_CLOEXEC | O_NONBLOCK) < 0)
    return -errno;
  r = sd_pid_notify_with_fds (0, 0, "BARRIER=1", &p[1], 1);
  close (p[1]);
  if (r <= 0) {
    close (p[0]);
    return r < 0 ? r : -ENOTCONN;
  }
  *ret_fd = p[0];
  return 0;
}
