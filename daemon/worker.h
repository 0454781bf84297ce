/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbWorkerBatch: the allocations of one request, carried out by one short-lived process
 * placed in the guest's cgroup so the kernel charges the guest for the memory (GFP_KERNEL_ACCOUNT
 * follows the allocating task's memory cgroup).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <glib.h>

#include "uapi.h"

#define IFB_WORKER_MAX_DEVICES 64

typedef enum {
  IFB_WORKER_STEP_NONE,
  IFB_WORKER_STEP_IOAS_ALLOC,
  IFB_WORKER_STEP_BIND,
  IFB_WORKER_STEP_HW_INFO,
  IFB_WORKER_STEP_HWPT_ALLOC,
  IFB_WORKER_STEP_ATTACH,
  _IFB_WORKER_STEP_MAX,
} IfbWorkerStep;

const char *ifb_worker_step_to_string (IfbWorkerStep s);

typedef enum {
  IFB_WORKER_MODE_AUTO,         /* clone3(CLONE_INTO_CGROUP), fork + move on ENOSYS */
  IFB_WORKER_MODE_FORK,         /* always fork + move (what runs under RestrictNamespaces=) */
} IfbWorkerMode;

typedef struct {
  /* in */
  int device_fd;
  uint32_t want_flags;          /* IfbHwptFlags */
  bool allow_plain;             /* NEST_PARENT refused -> plain paging HWPT instead */
  bool selftest;                /* the IOMMUFD_TEST mock instead of device_fd (selftest-device.h) */
  /* out */
  uint32_t stdev_id;            /* selftest: the mock's object (destroying it unbinds it) */
  int err;                      /* -errno of failed_step */
  IfbWorkerStep failed_step;
  uint32_t dev_id;
  uint32_t hwpt_id;
  uint32_t hwpt_flags;          /* flags the HWPT really got */
  IfbHwInfo info;
} IfbWorkerDevice;

typedef struct {
  const IfbUapiBackend *backend;
  int iommufd;
  bool alloc_ioas;              /* in: allocate the IOAS first */
  uint32_t ioas_id;             /* in (when !alloc_ioas) / out */
  int ioas_err;
  size_t n_devices;
  IfbWorkerDevice devices[IFB_WORKER_MAX_DEVICES];
  /* out */
  int failed_index;             /* device index that failed, -1 for none/the IOAS */
  char cgroup[256];             /* where the worker really ran, from its /proc/self/cgroup */
  pid_t pid;
  bool used_fallback;           /* fork + cgroup.procs instead of clone3 */
} IfbWorkerBatch;

/* A batch lives in a shared anonymous mapping so the worker's results reach us. */
IfbWorkerBatch *ifb_worker_batch_new (void);
IfbWorkerBatch *ifb_worker_batch_free (IfbWorkerBatch *b);

/*
 * Run the batch in a worker in the cgroup cgroup_dirfd. The worker undoes its own work when a
 * step fails (the caller closes the device fds, which unbinds them). Returns FALSE only when the
 * worker could not run or died; per-step failures are reported in the batch with TRUE.
 */
gboolean ifb_worker_run (IfbWorkerBatch *b, int cgroup_dirfd, IfbWorkerMode mode, guint timeout_ms, GError **error);

/* Workers spawned so far (for broker.info and benchmarks). */
guint64 ifb_worker_count (void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbWorkerBatch, ifb_worker_batch_free)
