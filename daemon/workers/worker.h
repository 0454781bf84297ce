/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbWorkerBatch: the allocations of one request, carried out by a short-lived process
 * (iommufd-broker-worker, worker-main.c) placed in the guest's cgroup so the kernel charges the
 * guest for the memory (GFP_KERNEL_ACCOUNT follows the allocating task's memory cgroup). The
 * daemon starts it and goes on; it learns of the end through the worker's pidfd.
 */
#pragma once

#include <limits.h>
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
  IFB_WORKER_STEP_VIOMMU_ALLOC,
  IFB_WORKER_STEP_VDEVICE_ALLOC,
  IFB_WORKER_STEP_VEVENTQ_ALLOC,
  _IFB_WORKER_STEP_MAX,
} IfbWorkerStep;

const char *ifb_worker_step_to_string (IfbWorkerStep s);


typedef struct {
  /* in */
  int device_fd;                /* the same number in the worker, which inherits it */
  uint32_t want_flags;          /* IfbHwptFlags */
  bool allow_plain;             /* NEST_PARENT refused -> plain paging HWPT instead */
  bool mock;                    /* IOMMUFD_TEST's mock device, made on the IOAS (IOMMU_TEST_OP_MOCK_DOMAIN)
                                 * instead of binding device_fd, and moved onto the HWPT */
  bool want_vdev;               /* a vDEVICE with virt_id in the batch's vIOMMU */
  uint64_t virt_id;
  /* out */
  uint32_t vdev_id;             /* release: in (destroyed first) */
  uint32_t mock_id;             /* mock: its object (destroying it unbinds it) */
  int err;                      /* -errno of failed_step */
  IfbWorkerStep failed_step;
  uint32_t dev_id;
  uint32_t hwpt_id;
  uint32_t hwpt_flags;          /* flags the HWPT really got */
  IfbHwInfo info;
} IfbWorkerDevice;

/* A device moved from one host driver to another through sysfs (a rebind batch). */
typedef struct {
  /* in */
  char name[16];                /* its address, "0000:00:19.0" */
  char driver[32];              /* where it must end: "vfio-pci", or the driver it came from ("": none) */
  /* out */
  int err;                      /* -errno of step; -ETIMEDOUT when the driver (or the VFIO cdev) never came */
  char step[24];                /* "driver_override", "unbind", "drivers_probe", "wait" */
} IfbWorkerRebind;

/* Lives in a memfd shared with the worker, which maps it: plain data, fd numbers, no pointers. */
typedef struct {
  /* in */
  char backend[16];             /* the backend's name (ifb_uapi_backend_by_name()) */
  bool release;                 /* only close the device fds (the last close resets a device) */
  bool probe;                   /* bind each device to iommufd (a scratch context), read its hardware
                                 * info, then close them all like a release (each bind and close resets) */
  guint device_reset_ms;        /* what a device reset costs, where the backend models it */
  bool rebind;                  /* only move the rebinds between host drivers (driver_override, unbind,
                                 * drivers_probe, then wait up to rebind_wait_ms each for the driver) */
  int sys_dirfd, dev_dirfd;     /* rebind: /sys and /dev (or the emulated root's), the daemon's */
  guint rebind_wait_ms;
  size_t n_rebinds;
  IfbWorkerRebind rebinds[IFB_WORKER_MAX_DEVICES];
  int iommufd;
  bool alloc_ioas;              /* allocate the IOAS first */
  uint32_t ioas_id;             /* in (when !alloc_ioas) / out */
  int viommu_type;              /* IfbViommuType of the guest's vIOMMU; IFB_VIOMMU_TYPE_INVALID: none */
  uint32_t viommu_id;           /* in: the guest's (0: make it on the first device's NEST_PARENT) / out;
                                 * release: in, destroyed after the vDEVICEs and before the HWPTs */
  uint32_t viommu_hwpt_id;      /* out: the HWPT a vIOMMU made here sits on */
  bool viommu_new;              /* out: made by this batch */
  uint32_t veventq_depth;       /* a vEVENTQ of this depth with a vIOMMU made here; 0: none */
  uint32_t veventq_id;          /* out (its fd goes over reply_fd); release: in, destroyed first */
  int reply_fd;                 /* the worker's end of a socket for the vEVENTQ fd, -1 when none */
  size_t n_devices;
  IfbWorkerDevice devices[IFB_WORKER_MAX_DEVICES];
  /* out */
  bool finished;                /* the worker ran the batch to its end */
  int place_err;                /* -errno: the worker could not move itself into the cgroup */
  int ioas_err;
  int failed_index;             /* device index that failed, -1 for none/the IOAS */
  char cgroup[PATH_MAX];        /* where the worker ran (/proc/self/cgroup); "" when unreadable */
  pid_t pid;
  /* the daemon's own */
  int memfd;
  int reply_daemon_fd;          /* the other end of reply_fd */
} IfbWorkerBatch;

/* A batch for backend (its name goes to the worker). */
IfbWorkerBatch *ifb_worker_batch_new (const IfbUapiBackend *backend);
IfbWorkerBatch *ifb_worker_batch_free (IfbWorkerBatch *b);

/* Find the worker program next to the daemon's own executable (the build tree and the install
 * share that layout) and keep it open; the bound on workers running at once. */
gboolean ifb_worker_init (guint max_running, GError **error);

/*
 * Called once per started batch, from the main loop: error is NULL when the worker ran the batch
 * to its end (per-step failures are in the batch), or says how it ended otherwise (killed by a
 * signal: IFB_ERROR_WORKER_KILLED; at its deadline; could not start). The worker undid its own
 * work when a step failed; the caller closes the device fds, which unbinds them.
 */
typedef void (*IfbWorkerDone) (IfbWorkerBatch *b, const GError *error, gpointer data);

/*
 * Run b in a worker that moves itself into the cgroup cgroup_dirfd (taken; -1: it stays where
 * the daemon is, for a release or a probe), killed by the daemon after timeout_ms. At most
 * max_running workers run at once; later ones wait their turn in order. done() is always called,
 * never from inside this function.
 */
void ifb_worker_start (IfbWorkerBatch *b, int cgroup_dirfd, guint timeout_ms,
                       IfbWorkerDone done, gpointer data);

/* Workers spawned so far, running now, waiting for a slot (broker.info, benchmarks). */
guint64 ifb_worker_count (void);
guint ifb_worker_n_running (void);
guint ifb_worker_n_waiting (void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbWorkerBatch, ifb_worker_batch_free)
