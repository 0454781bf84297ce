/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The broker's view of the IOMMUFD and VFIO-cdev uAPI.
 *
 * This directory is the only code that knows ioctl numbers and uAPI structs (iommufd-defs.h).
 * Two backends sit behind one constant table of operations:
 *   - kernel:   ioctl(2) on real /dev/iommu and /dev/vfio/devices/vfioN fds;
 *   - emulated: the same ioctl numbers and structs, validated as the kernel does, on a memfd
 *               holding a fixed-layout object table (emul.c), so any process holding the fd (a
 *               worker in another cgroup, a VMM, the daemon after a restart) sees one state.
 * Callers above pick a backend once (ifb_uapi_backend_*()) and hold no #ifdefs; a process that
 * only received fds (a VMM) finds the backend with ifb_uapi_backend_for_fd().
 *
 * Contract: every function returns 0 or -errno, leaves ret_* untouched on failure, and makes
 * every fd close-on-exec. The operations call no malloc, no stdio and no GLib: the worker program
 * (daemon/workers/worker-main.c), started once per request, links this layer without GLib.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend-kernel.h"
#include "emul.h"
#include "hw-info.h"
#include "uapi-types.h"
#include "uapi-viommu.h"

/* The backends: ifb_uapi_backend_kernel() (backend-kernel.h), ifb_uapi_backend_emulated() (emul.h). */
/* The backend an fd belongs to (an emulated context or device fd, or else the kernel). */
const IfbUapiBackend *ifb_uapi_backend_for_fd (int fd);
const char *ifb_uapi_backend_name (const IfbUapiBackend *b);   /* "kernel" / "emulated" */
/* The backend of that name, or NULL (a worker finds its daemon's backend so). */
const IfbUapiBackend *ifb_uapi_backend_by_name (const char *name);
bool ifb_uapi_backend_is_emulated (const IfbUapiBackend *b);

/*
 * Opening. dev_dirfd is the directory fd standing for /dev (the real /dev, or the emulated
 * root's dev/ directory). The emulated iommufd is a fresh memfd; dev_dirfd is only checked.
 */
int ifb_uapi_open_iommufd (const IfbUapiBackend *b, int dev_dirfd, int *ret_fd);
int ifb_uapi_open_device (const IfbUapiBackend *b, int dev_dirfd, const char *cdev_name, int *ret_fd);

/* The device number of an opened device cdev (st_rdev; an emulated cdev's profile says rdev=MAJ:MIN),
 * to check the node is the device sysfs names. -ENODEV when the fd is no device cdev. */
int ifb_uapi_device_rdev (const IfbUapiBackend *b, int device_fd, uint64_t *ret_rdev);

/* The raw entry point: ioctl(2) semantics with the kernel's request numbers and structs. */
int ifb_uapi_ioctl (const IfbUapiBackend *b, int fd, unsigned long request, void *arg);

/* Typed operations, built on ifb_uapi_ioctl(). */
int ifb_uapi_ioas_alloc (const IfbUapiBackend *b, int iommufd, uint32_t *ret_ioas_id);
int ifb_uapi_destroy (const IfbUapiBackend *b, int iommufd, uint32_t id);
int ifb_uapi_set_rlimit_mode (const IfbUapiBackend *b, int iommufd, bool per_process);
int ifb_uapi_get_rlimit_mode (const IfbUapiBackend *b, int iommufd, bool *ret_per_process);
int ifb_uapi_device_bind (const IfbUapiBackend *b, int device_fd, int iommufd, uint32_t *ret_dev_id);
int ifb_uapi_device_attach (const IfbUapiBackend *b, int device_fd, uint32_t pt_id);
int ifb_uapi_device_detach (const IfbUapiBackend *b, int device_fd);
int ifb_uapi_get_hw_info (const IfbUapiBackend *b, int iommufd, uint32_t dev_id, IfbHwInfo *ret_info);
/* A paging HWPT on an IOAS (pt_id), flags from IfbHwptFlags. */
int ifb_uapi_hwpt_alloc (const IfbUapiBackend *b, int iommufd, uint32_t dev_id, uint32_t pt_id,
                         uint32_t flags, uint32_t *ret_hwpt_id);
/* A nested stage-1 HWPT on a NEST_PARENT (parent_id), with driver data (VT-d: stage-1 table). */
int ifb_uapi_hwpt_alloc_nested (const IfbUapiBackend *b, int iommufd, uint32_t dev_id, uint32_t parent_id,
                                uint32_t *ret_hwpt_id);
int ifb_uapi_ioas_map (const IfbUapiBackend *b, int iommufd, uint32_t ioas_id, void *va, uint64_t length,
                       uint64_t *iova_inout, bool fixed_iova);
int ifb_uapi_ioas_unmap (const IfbUapiBackend *b, int iommufd, uint32_t ioas_id, uint64_t iova, uint64_t length);

/* The vIOMMU, vDEVICE and vEVENTQ operations: uapi-viommu.h. */

/* Fill up to max objects; *ret_n = number of live objects (may exceed max). -EOPNOTSUPP where the
 * backend cannot list them (the kernel has no such ioctl). */
int ifb_uapi_list_objects (const IfbUapiBackend *b, int iommufd, IfbUapiObject *objs, size_t max, size_t *ret_n);
/* A worker's batch of ioctls: from _begin() to _end() a backend may keep per-context state (the
 * emulated one keeps each table mapped); no fd may be closed and reused in between. */
void ifb_uapi_batch_begin (const IfbUapiBackend *b);
void ifb_uapi_batch_end (const IfbUapiBackend *b);
/* What a device reset costs, for a backend that models it (the emulated one: every device bind
 * and last close sleeps ms in the calling process, as vfio-pci's reset takes on real hardware;
 * the kernel's resets take what they take). */
void ifb_uapi_set_device_reset_ms (const IfbUapiBackend *b, unsigned ms);

/* Write value to a sysfs attribute (attr relative to sys_dirfd, e.g. a device's driver_override):
 * what binding a device to a host driver takes. The emulated backend models what the kernel does
 * on such writes in its fixture tree (emul-root.c): driver links, driver_override, probing by the
 * drivers' ids, and the VFIO cdev appearing while a device is on vfio-pci. */
int ifb_uapi_sysfs_write (const IfbUapiBackend *b, int sys_dirfd, const char *attr, const char *value);
/* Close a device fd. On real hardware closing the last reference of a bound device resets it
 * (100 ms and more) in the closing process; the emulated backend sleeps its reset time then. */
void ifb_uapi_device_close (const IfbUapiBackend *b, int device_fd);

/*
 * Kernel tier only: the IOMMUFD_TEST mock device (IOMMU_TEST_CMD / IOMMU_TEST_OP_MOCK_DOMAIN),
 * attached to ioas_id. Returns the selftest device object (destroy it to unbind), the auto HWPT
 * and the iommufd device id usable as dev_id. -ENOTTY without CONFIG_IOMMUFD_TEST and on the
 * emulated backend.
 */
int ifb_uapi_mock_domain (const IfbUapiBackend *b, int iommufd, uint32_t ioas_id,
                                   uint32_t *ret_stdev_id, uint32_t *ret_hwpt_id, uint32_t *ret_dev_id);
/* Move the mock device (stdev_id) to another HWPT or IOAS (IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE);
 * as iommufd_device_replace(), the old auto-HWPT goes away with its last user. */
int ifb_uapi_mock_domain_replace (const IfbUapiBackend *b, int iommufd, uint32_t stdev_id, uint32_t pt_id);
/* Does this backend's kernel offer IOMMU_TEST_CMD? Asks a scratch context (an unknown IOAS id:
 * a kernel with IOMMUFD_TEST answers ENOENT, one without ENOTTY). 1 yes, 0 no, or -errno when
 * /dev/iommu cannot be opened. Always 0 on the emulated backend. */
int ifb_uapi_selftest_probe (const IfbUapiBackend *b, int dev_dirfd);
