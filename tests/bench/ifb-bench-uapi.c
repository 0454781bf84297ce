/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ifb-bench-uapi: the guest-setup row's second floor (tests/bench/run). The broker's vm.create
 * and vm.attach end in ioctls on the uAPI backend; on the emulated backend those ioctls are
 * themselves work (a memfd table, OFD locks on device files), which on a host is the kernel's.
 * This program issues the same calls as one setup, in the same two batches, with no broker,
 * no JSON and no worker:
 *
 *   ifb-bench-uapi TEMPLATE WORKDIR N CDEV...
 *
 * copies the emulated template into WORKDIR/emulated (once), then N times (after N/10 warm-up
 * ones): open the iommufd, IOAS_ALLOC (the vm.create batch); open each device cdev, BIND,
 * GET_HW_INFO, HWPT_ALLOC with NEST_PARENT on the IOAS, ATTACH (the vm.attach batch); timed
 * together, then everything is closed (not timed, as vm.destroy is not). Prints
 * "median_ns p99_ns".
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench-stats.h"
#include "emul-root.h"
#include "uapi.h"

#define MAX_DEVICES 16

static void
check (int r, const char *what)
{
  if (r < 0) {
    fprintf (stderr, "ifb-bench-uapi: %s: %s\n", what, strerror (-r));
    exit (1);
  }
}

/* fds[0] the iommufd, fds[1..n_dev] the devices */
static void
one_setup (const IfbUapiBackend *b, int devfd, char **cdevs, int n_dev, int *fds)
{
  int iommufd;
  uint32_t ioas, dev_id, hwpt;
  IfbHwInfo info;

  ifb_uapi_emul_batch_begin ();
  check (ifb_uapi_open_iommufd (b, devfd, &iommufd), "open iommufd");
  check (ifb_uapi_ioas_alloc (b, iommufd, &ioas), "IOAS_ALLOC");
  ifb_uapi_emul_batch_end ();

  for (int i = 0; i < n_dev; i++)
    check (ifb_uapi_open_device (b, devfd, cdevs[i], &fds[1 + i]), cdevs[i]);
  ifb_uapi_emul_batch_begin ();
  for (int i = 0; i < n_dev; i++) {
    check (ifb_uapi_device_bind (b, fds[1 + i], iommufd, &dev_id), "BIND_IOMMUFD");
    check (ifb_uapi_get_hw_info (b, iommufd, dev_id, &info), "GET_HW_INFO");
    check (ifb_uapi_hwpt_alloc (b, iommufd, dev_id, ioas, IFB_HWPT_NEST_PARENT, &hwpt), "HWPT_ALLOC");
    check (ifb_uapi_device_attach (b, fds[1 + i], hwpt), "ATTACH_IOMMUFD_PT");
  }
  ifb_uapi_emul_batch_end ();
  fds[0] = iommufd;
}

static void
close_all (int *fds, int n)
{
  for (int i = 0; i < n; i++)
    close (fds[i]);
}

int
main (int argc, char **argv)
{
  const IfbUapiBackend *b = ifb_uapi_backend_emulated ();
  int workfd, rootfd, devfd, n, n_dev;
  uint64_t *v;
  int fds[1 + MAX_DEVICES];

  if (argc < 5 || argc - 4 > MAX_DEVICES) {
    fprintf (stderr, "usage: ifb-bench-uapi TEMPLATE WORKDIR N CDEV... (at most %d)\n", MAX_DEVICES);
    return 2;
  }
  workfd = open (argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (workfd < 0)
    check (-errno, argv[2]);
  check (ifb_emul_root_prepare (argv[1], workfd, "emulated", &rootfd), "preparing the emulated root");
  devfd = openat (rootfd, "dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (devfd < 0)
    check (-errno, "emulated dev/");
  n = atoi (argv[3]);
  n_dev = argc - 4;
  if (n < 1)
    return 2;
  v = calloc ((size_t) n, sizeof *v);
  for (int i = 0; i < n / 10 + 1; i++) {
    one_setup (b, devfd, argv + 4, n_dev, fds);
    close_all (fds, 1 + n_dev);
  }
  for (int i = 0; i < n; i++) {
    uint64_t t0 = now_ns ();
    one_setup (b, devfd, argv + 4, n_dev, fds);
    v[i] = now_ns () - t0;
    close_all (fds, 1 + n_dev);
  }
  print_stats (v, (size_t) n, NULL);
  return 0;
}
