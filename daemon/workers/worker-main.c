/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iommufd-broker-worker: the process that carries out one request's allocations inside a guest's
 * cgroup (see worker.c for how the daemon starts and watches it).
 *
 *   iommufd-broker-worker BATCH_FD GO_FD DAEMON_PID
 *
 * A rebind batch moves devices between host drivers through sysfs (rebind.c).
 * A release batch only closes the device fds it names: on real hardware the last close of a
 * bound device resets it (100 ms and more), which is why the daemon does not close them itself.
 *
 * BATCH_FD is a memfd holding the IfbWorkerBatch (worker.h): what to do, with the numbers of the
 * context and device fds this process inherited, and where the results go. GO_FD, when not -1,
 * is a pipe to wait on until the daemon has moved this process into the guest's cgroup (it is
 * started where the daemon is; see worker.c). The worker runs the batch — IOAS, then per device BIND,
 * GET_HW_INFO, HWPT_ALLOC, ATTACH, and for a guest with a vIOMMU the vIOMMU (once, on the first
 * device's NEST_PARENT) and the device's vDEVICE in it — undoes its own work when a step fails (binding is undone by
 * the daemon closing the device fds), writes what happened into the batch and exits 0. Any other
 * end (a signal, a non-zero exit) tells the daemon the batch did not complete.
 *
 * Being a program of its own, it starts with default signal handlers and shares nothing with
 * the daemon but the batch and the fds it was given: a signal sent to the guest's cgroup kills
 * the worker, never the daemon. It dies with the daemon (PR_SET_PDEATHSIG): a worker left
 * running after a crash would go on allocating in a context the restarted daemon has already
 * reconciled.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault.h"
#include "proc-cgroup.h"
#include "rebind.h"
#include "uapi.h"
#include "worker.h"

static const IfbUapiBackend *backend;
/* The vEVENTQ made with the guest's vIOMMU: its fd exists only in this process until it is sent
 * to the daemon (send_veventq()); -1 when none. */
static int veventq_fd = -1;

/* Each step goes through the fault hook first (and then is not carried out), so tests can fail
 * any one of them. */
#define STEP(name, call) (ifb_fault_check (name) ?: (call))

static void
undo (IfbWorkerBatch *b, size_t upto, bool ioas_is_new)
{
  /* Dependency order: the vEVENTQ (its last fd first: an open one keeps it busy), the vDEVICEs,
   * the vIOMMU, then what they sat on. */
  if (b->veventq_id) {
    close (veventq_fd);
    veventq_fd = -1;
    ifb_uapi_destroy (backend, b->iommufd, b->veventq_id);
    b->veventq_id = 0;
  }
  for (size_t i = 0; i < b->n_devices; i++)
    if (b->devices[i].vdev_id) {
      ifb_uapi_destroy (backend, b->iommufd, b->devices[i].vdev_id);
      b->devices[i].vdev_id = 0;
    }
  if (b->viommu_new && b->viommu_id) {
    ifb_uapi_destroy (backend, b->iommufd, b->viommu_id);
    b->viommu_id = 0;
    b->viommu_new = false;
  }
  for (size_t i = 0; i < upto; i++) {
    IfbWorkerDevice *d = &b->devices[i];
    if (d->mock && d->mock_id) {
      /* A mock has no fd whose close unbinds it: destroying it detaches and unbinds. */
      ifb_uapi_destroy (backend, b->iommufd, d->mock_id);
      d->mock_id = 0;
    } else if (d->hwpt_id) {
      ifb_uapi_device_detach (backend, d->device_fd);
    }
    if (d->hwpt_id) {
      ifb_uapi_destroy (backend, b->iommufd, d->hwpt_id);
      d->hwpt_id = 0;
    }
  }
  if (ioas_is_new && b->ioas_id) {
    ifb_uapi_destroy (backend, b->iommufd, b->ioas_id);
    b->ioas_id = 0;
  }
}

/*
 * A guest with a vIOMMU: made once, by the first device to get here, on its HWPT (which must be
 * a NEST_PARENT: a plain HWPT, allowed by allow_plain, cannot carry one), then the device's
 * vDEVICE with the virtual id the guest knows it by.
 */
static int
viommu_steps (IfbWorkerBatch *b, IfbWorkerDevice *d, uint32_t flags)
{
  int r = 0;

  if (!b->viommu_id) {
    d->failed_step = IFB_WORKER_STEP_VIOMMU_ALLOC;
    if (!(flags & IFB_HWPT_NEST_PARENT))
      return -EOPNOTSUPP;
    r = STEP ("viommu-alloc", ifb_uapi_viommu_alloc (backend, b->iommufd, d->dev_id, d->hwpt_id,
                                                     (IfbViommuType) b->viommu_type, &b->viommu_id));
    if (r < 0)
      return r;
    b->viommu_new = true;
    b->viommu_hwpt_id = d->hwpt_id;
    if (b->veventq_depth) {
      d->failed_step = IFB_WORKER_STEP_VEVENTQ_ALLOC;
      r = STEP ("veventq-alloc", ifb_uapi_veventq_alloc (backend, b->iommufd, b->viommu_id, (IfbViommuType) b->viommu_type,
                                                         b->veventq_depth, &b->veventq_id, &veventq_fd));
      if (r < 0)
        return r;
    }
  }
  if (d->want_vdev) {
    d->failed_step = IFB_WORKER_STEP_VDEVICE_ALLOC;
    r = STEP ("vdevice-alloc", ifb_uapi_vdevice_alloc (backend, b->iommufd, b->viommu_id, d->dev_id, d->virt_id,
                                                       &d->vdev_id));
  }
  return r;
}

/* The vEVENTQ's fd to the daemon (SCM_RIGHTS over reply_fd); the daemon takes it when this
 * process has exited. */
static int
send_veventq (IfbWorkerBatch *b)
{
  char byte = 'q', cbuf[CMSG_SPACE (sizeof (int))];
  struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);

  memset (cbuf, 0, sizeof cbuf);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN (sizeof (int));
  memcpy (CMSG_DATA (cm), &veventq_fd, sizeof (int));
  return sendmsg (b->reply_fd, &msg, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

/* The worker's body: the allocations of one request. */
static void
worker_steps (IfbWorkerBatch *b)
{
  ifb_proc_cgroup_self (b->cgroup, sizeof (b->cgroup));

  if (b->alloc_ioas) {
    b->ioas_err = ifb_fault_check ("ioas-alloc");
    if (!b->ioas_err)
      b->ioas_err = ifb_uapi_ioas_alloc (backend, b->iommufd, &b->ioas_id);
    if (b->ioas_err)
      return;
  }

  for (size_t i = 0; i < b->n_devices; i++) {
    IfbWorkerDevice *d = &b->devices[i];
    uint32_t flags = d->want_flags;
    int r;

    d->failed_step = IFB_WORKER_STEP_BIND;
    if (d->mock)   /* MOCK_DOMAIN: the mock, bound and attached to an automatic HWPT on the IOAS */
      r = STEP ("bind", ifb_uapi_mock_domain (backend, b->iommufd, b->ioas_id, &d->mock_id, NULL, &d->dev_id));
    else
      r = STEP ("bind", ifb_uapi_device_bind (backend, d->device_fd, b->iommufd, &d->dev_id));
    if (r == 0) {
      d->failed_step = IFB_WORKER_STEP_HW_INFO;
      r = STEP ("hw-info", ifb_uapi_get_hw_info (backend, b->iommufd, d->dev_id, &d->info));
    }
    if (r == 0) {
      d->failed_step = IFB_WORKER_STEP_HWPT_ALLOC;
      if ((flags & IFB_HWPT_DIRTY_TRACKING) && !d->info.dirty_tracking)
        flags &= ~IFB_HWPT_DIRTY_TRACKING;   /* asked for "where supported" */
      r = STEP ("hwpt-alloc", ifb_uapi_hwpt_alloc (backend, b->iommufd, d->dev_id, b->ioas_id, flags, &d->hwpt_id));
      if (r == -EOPNOTSUPP && (flags & IFB_HWPT_NEST_PARENT) && d->allow_plain) {
        flags &= ~IFB_HWPT_NEST_PARENT;
        r = ifb_uapi_hwpt_alloc (backend, b->iommufd, d->dev_id, b->ioas_id, flags, &d->hwpt_id);
      }
    }
    if (r == 0) {
      d->hwpt_flags = flags;
      d->failed_step = IFB_WORKER_STEP_ATTACH;
      r = STEP ("attach", d->mock ? ifb_uapi_mock_domain_replace (backend, b->iommufd, d->mock_id, d->hwpt_id)
                                      : ifb_uapi_device_attach (backend, d->device_fd, d->hwpt_id));
      if (r < 0) {
        ifb_uapi_destroy (backend, b->iommufd, d->hwpt_id);
        d->hwpt_id = 0;
      }
    }
    if (r == 0 && b->viommu_type != IFB_VIOMMU_TYPE_INVALID)
      r = viommu_steps (b, d, flags);
    if (r < 0) {
      d->err = r;
      if (d->mock && d->mock_id) {
        ifb_uapi_destroy (backend, b->iommufd, d->mock_id);
        d->mock_id = 0;
      }
      b->failed_index = (int) i;
      /* past ATTACH this device's HWPT is attached: undone with the others, after the vIOMMU */
      undo (b, d->failed_step >= IFB_WORKER_STEP_VIOMMU_ALLOC ? i + 1 : i, b->alloc_ioas);
      return;
    }
    d->failed_step = IFB_WORKER_STEP_NONE;
  }
  if (veventq_fd >= 0) {
    int r = b->reply_fd >= 0 ? send_veventq (b) : -EBADF;
    if (r < 0) {
      size_t last = b->n_devices - 1;
      b->devices[last].err = r;
      b->devices[last].failed_step = IFB_WORKER_STEP_VEVENTQ_ALLOC;
      b->failed_index = (int) last;
      undo (b, b->n_devices, b->alloc_ioas);
      return;
    }
    close (veventq_fd);
    veventq_fd = -1;
  }
}


/* Kernel order: the vEVENTQ, the vDEVICEs, the vIOMMU, each device detached and its HWPT
 * destroyed, then the devices closed (the last close of a bound device resets it, here), then the
 * IOAS (unpinning what it maps), then the context. */
static void
release (IfbWorkerBatch *b)
{
  ifb_uapi_batch_begin (backend);
  if (b->veventq_id && b->iommufd >= 0)   /* busy (EBUSY) while a VMM still holds its fd */
    ifb_uapi_destroy (backend, b->iommufd, b->veventq_id);
  for (size_t i = 0; i < b->n_devices; i++)
    if (b->devices[i].vdev_id && b->iommufd >= 0)
      ifb_uapi_destroy (backend, b->iommufd, b->devices[i].vdev_id);
  if (b->viommu_id && b->iommufd >= 0)
    ifb_uapi_destroy (backend, b->iommufd, b->viommu_id);
  for (size_t i = 0; i < b->n_devices; i++)
    if (b->devices[i].hwpt_id && b->iommufd >= 0) {
      ifb_uapi_device_detach (backend, b->devices[i].device_fd);
      ifb_uapi_destroy (backend, b->iommufd, b->devices[i].hwpt_id);
    }
  ifb_uapi_batch_end (backend);
  for (size_t i = 0; i < b->n_devices; i++)
    ifb_uapi_device_close (backend, b->devices[i].device_fd);
  if (b->iommufd >= 0 && b->ioas_id)
    ifb_uapi_destroy (backend, b->iommufd, b->ioas_id);
  if (b->iommufd >= 0)
    close (b->iommufd);
}

/* What the IOMMU behind each device can do: bind it to the scratch context, ask, and close it
 * (the device's reset, on real hardware, is this process's). */
static void
probe (IfbWorkerBatch *b)
{
  for (size_t i = 0; i < b->n_devices; i++) {
    IfbWorkerDevice *d = &b->devices[i];
    int r = STEP ("bind", ifb_uapi_device_bind (backend, d->device_fd, b->iommufd, &d->dev_id));
    if (r == 0)
      r = STEP ("hw-info", ifb_uapi_get_hw_info (backend, b->iommufd, d->dev_id, &d->info));
    d->err = r;
    d->failed_step = r == 0 ? IFB_WORKER_STEP_NONE : d->dev_id ? IFB_WORKER_STEP_HW_INFO : IFB_WORKER_STEP_BIND;
  }
  for (size_t i = 0; i < b->n_devices; i++)
    ifb_uapi_device_close (backend, b->devices[i].device_fd);
  close (b->iommufd);
}

int
main (int argc, char **argv)
{
  IfbWorkerBatch *b;
  int batch_fd, procs_fd;
  pid_t daemon_pid;

  if (argc != 4)
    return 2;
  batch_fd = atoi (argv[1]);
  procs_fd = atoi (argv[2]);   /* the guest cgroup's cgroup.procs; -1: stay where the daemon is */
  daemon_pid = (pid_t) atoi (argv[3]);
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (getppid () != daemon_pid)   /* the daemon died before we asked */
    return 4;
  b = mmap (NULL, sizeof (IfbWorkerBatch), PROT_READ | PROT_WRITE, MAP_SHARED, batch_fd, 0);
  if (b == MAP_FAILED)
    return 5;
  close (batch_fd);
  if (procs_fd >= 0) {
    /* Into the guest's cgroup before anything else: from here on the kernel charges the guest
     * for what this process allocates. Moving a task waits for an RCU grace period (the cgroup
     * threadgroup lock); this process waits it out, not the daemon's main loop. */
    if (write (procs_fd, "0\n", 2) != 2) {
      b->place_err = -errno;
      return 7;
    }
    close (procs_fd);
  }
  ifb_fault_init ();
  if (!(backend = ifb_uapi_backend_by_name (b->backend)))
    return 6;   /* a daemon of another build */
  ifb_uapi_set_device_reset_ms (backend, b->device_reset_ms);
  if (b->rebind) {
    ifb_rebind_run (backend, b);
    b->finished = true;
    return 0;
  }
  if (b->release || b->probe) {
    if (b->release)
      release (b);
    else
      probe (b);
    b->finished = true;
    return 0;
  }
  ifb_uapi_batch_begin (backend);
  worker_steps (b);
  ifb_uapi_batch_end (backend);
  b->finished = true;
  return 0;
}
