/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Moving a device between host drivers, in the worker program (never the daemon: on real
 * hardware a driver's probe or remove can take seconds, and vfio-pci's probe resets the device).
 * The way libvirt does it, through sysfs:
 *   1. driver_override := the driver it must end on (vfio-pci), or cleared ("\n") to give it back;
 *   2. unbind it from the driver it is on, if any (bus/pci/devices/BDF/driver/unbind);
 *   3. drivers_probe: the kernel binds it to the override, or to whichever driver's ids match;
 *   4. wait, up to rebind_wait_ms, until it is on the driver wanted — on vfio-pci also until its
 *      VFIO cdev is there, in sysfs (vfio-dev/vfioN) and under /dev (udev or devtmpfs makes it).
 * A failure stops that device there; the daemon decides what comes next (it gives a device that
 * did not reach vfio-pci back to its driver). The writes go through the backend, so on the
 * emulated one its fixture sysfs answers them as the kernel would (emul-root.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "rebind.h"

static void
sleep_ms (long ms)
{
  struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
  while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
    ;
}

static long long
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The driver the device is on (last component of its driver link); "" when none. */
static void
current_driver (int sys_dirfd, const char *name, char *buf, size_t size)
{
  char path[64], target[PATH_MAX];
  const char *base;
  ssize_t n;

  snprintf (path, sizeof path, "bus/pci/devices/%s/driver", name);
  n = readlinkat (sys_dirfd, path, target, sizeof target - 1);
  buf[0] = '\0';
  if (n <= 0)
    return;
  target[n] = '\0';
  base = strrchr (target, '/') ? strrchr (target, '/') + 1 : target;
  if (strlen (base) < size)
    memcpy (buf, base, strlen (base) + 1);
}

/* Its VFIO cdev is there: vfio-dev/vfioN in sysfs and vfio/devices/vfioN under /dev. */
static int
has_cdev (int sys_dirfd, int dev_dirfd, const char *name)
{
  char path[64];
  struct dirent *de;
  DIR *d;
  int fd, found = 0;

  snprintf (path, sizeof path, "bus/pci/devices/%s/vfio-dev", name);
  fd = openat (sys_dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || !(d = fdopendir (fd))) {
    if (fd >= 0)
      close (fd);
    return 0;
  }
  while (!found && (de = readdir (d)))
    if (strncmp (de->d_name, "vfio", 4) == 0 && de->d_name[4] && strlen (de->d_name) < 16) {
      snprintf (path, sizeof path, "vfio/devices/%s", de->d_name);
      found = faccessat (dev_dirfd, path, F_OK, 0) == 0;
    }
  closedir (d);
  return found;
}

static int
step (IfbWorkerRebind *r, const char *what, int err)
{
  if (err < 0) {
    r->err = err;
    strncpy (r->step, what, sizeof r->step - 1);
  }
  return err;
}

static void
rebind_one (const IfbUapiBackend *backend, const IfbWorkerBatch *b, IfbWorkerRebind *r)
{
  int want_vfio = strcmp (r->driver, "vfio-pci") == 0;
  char attr[96], driver[64];
  long long deadline;

  snprintf (attr, sizeof attr, "bus/pci/devices/%s/driver_override", r->name);
  if (step (r, "driver_override", ifb_fault_check ("driver-override") ?:
            ifb_uapi_sysfs_write (backend, b->sys_dirfd, attr, want_vfio ? "vfio-pci" : "\n")) < 0)
    return;
  current_driver (b->sys_dirfd, r->name, driver, sizeof driver);
  if (driver[0]) {
    if (strcmp (driver, r->driver) == 0 && (!want_vfio || has_cdev (b->sys_dirfd, b->dev_dirfd, r->name)))
      return;   /* there already */
    snprintf (attr, sizeof attr, "bus/pci/devices/%s/driver/unbind", r->name);
    if (step (r, "unbind", ifb_uapi_sysfs_write (backend, b->sys_dirfd, attr, r->name)) < 0)
      return;
  }
  /* "vfio-probe-stall" plays a vfio-pci probe that never completes: the wait below runs out. */
  if (!(want_vfio && ifb_fault_check ("vfio-probe-stall")))
    ifb_uapi_sysfs_write (backend, b->sys_dirfd, "bus/pci/drivers_probe", r->name);   /* the wait says if it took */
  if (!r->driver[0])
    return;   /* it was on no driver: whichever takes it (if any) is right */
  deadline = now_ms () + b->rebind_wait_ms;
  for (;;) {
    current_driver (b->sys_dirfd, r->name, driver, sizeof driver);
    if (strcmp (driver, r->driver) == 0 && (!want_vfio || has_cdev (b->sys_dirfd, b->dev_dirfd, r->name)))
      return;
    if (now_ms () >= deadline) {
      step (r, "wait", -ETIMEDOUT);
      return;
    }
    sleep_ms (10);
  }
}

void
ifb_rebind_run (const IfbUapiBackend *backend, IfbWorkerBatch *b)
{
  for (size_t i = 0; i < b->n_rebinds && i < IFB_WORKER_MAX_DEVICES; i++) {
    IfbWorkerRebind *r = &b->rebinds[i];
    r->name[sizeof r->name - 1] = '\0';
    r->driver[sizeof r->driver - 1] = '\0';
    r->err = 0;
    rebind_one (backend, b, r);
  }
}
