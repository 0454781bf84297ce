/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbVm: one guest as the broker holds it — its IOMMUFD context (fd + IOAS), its devices with
 * their bound fds and HWPTs, its cgroup, options, and the audit trail of where each object was
 * allocated. Plain data plus (de)serialisation; the lifecycle lives in lifecycle.c.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <glib.h>
#include <json-c/json.h>

#include "handoff.h"
#include "uapi.h"

typedef enum {
  IFB_VM_DEVICE_RESERVED,       /* owned, not yet bound (the guest's cgroup does not exist yet) */
  IFB_VM_DEVICE_READY,          /* bound: bound, HWPT allocated and attached; unbound: checked, its
                                 * cdev verified against sysfs (no fd kept) */
  _IFB_VM_DEVICE_STATE_MAX,
  IFB_VM_DEVICE_STATE_INVALID = -1,
} IfbVmDeviceState;

const char *ifb_vm_device_state_to_string (IfbVmDeviceState s);
IfbVmDeviceState ifb_vm_device_state_from_string (const char *s);

typedef struct {
  char *bdf;
  char *cdev;                   /* "vfio3" */
  guint index;                  /* lowest free per guest, names the fd in the fd store */
  IfbVmDeviceState state;
  int fd;                       /* bound device fd, -1 while reserved */
  uint32_t dev_id;
  uint32_t hwpt_id;
  uint32_t hwpt_flags;          /* IfbHwptFlags the HWPT really has */
  IfbHwInfo hw;
  char *cgroup;                 /* where the worker that allocated the HWPT ran */
  pid_t worker_pid;
  uint32_t kind_object_id;      /* its device kind's own uAPI object, 0 when none (device-kind.h) */
  bool has_virt_id;             /* the guest's vIOMMU knows it by virt_id (vm.attach's virt_id) */
  uint64_t virt_id;
  uint32_t vdev_id;             /* its vDEVICE in the guest's vIOMMU, 0 when none */
  bool managed;                 /* the broker took it from its host driver and gives it back */
  char *host_driver;            /* managed: the driver it came from ("": none; that driver is the
                                 * VMs' own when it was there before: it stays there) */
} IfbVmDevice;


/* A process holding a guest's fds (a vm.fds caller, the VMM the libvirt hook names): its pid and
 * start time (/proc/PID/stat field 22) identify it across a broker restart; pidfd watches it. */
typedef struct {
  pid_t pid;
  guint64 start_time;
  int pidfd;                    /* -1 when not watched (restored, not yet looked at) */
  guint watch;                  /* fdwatch id of the pidfd watch, 0 when none */
  gpointer watch_data;          /* the watch's callback data, freed with the watch */
} IfbVmHolder;

typedef struct {
  int fd;                       /* a bound device fd, closed last (on hardware: the reset) */
  uint32_t hwpt_id;             /* detached and destroyed first, 0 when none */
  uint32_t vdev_id;             /* its vDEVICE, destroyed before anything else, 0 when none */
} IfbVmRelease;

typedef struct {
  IfbHandoff handoff;
  bool nest_parent;             /* allocate HWPTs as NEST_PARENT (default true) */
  bool allow_plain;             /* NEST_PARENT refused -> a plain HWPT, reported as such */
  bool dirty_tracking;          /* where the IOMMU supports it */
  bool defer;                   /* the cgroup may not exist yet: allocate when it does */
  guint64 memory_mib;           /* the guest's memory, for its VMM's RLIMIT_MEMLOCK; 0: unknown */
  int viommu;                   /* IfbViommuType of the guest's vIOMMU (bound), IFB_VIOMMU_TYPE_INVALID: none */
  guint veventq_depth;          /* a vEVENTQ of this depth with the vIOMMU, 0: none */
} IfbVmOptions;

typedef struct {
  char *name;
  char *uuid;
  char *cgroup;                 /* guest cgroup, relative to the cgroup2 mount */
  guint slot;                   /* lowest free per broker, names the fds in the fd store */
  IfbVmOptions options;
  bool rlimit_per_process;
  int iommufd;                  /* -1 until realized */
  uint32_t ioas_id;             /* 0 until realized */
  char *ioas_cgroup;
  /* the guest's vIOMMU (options.viommu): made with its first device, on that device's
   * NEST_PARENT HWPT, which it keeps busy; every device then has a vDEVICE in it */
  uint32_t viommu_id;           /* 0 when none */
  uint32_t viommu_hwpt_id;      /* the NEST_PARENT it sits on */
  char *viommu_cgroup;          /* where the worker that made it ran */
  uint32_t veventq_id;          /* its vEVENTQ, made with it; 0 when none */
  int veventq_fd;               /* the vEVENTQ's fd (in the fd store; to the VMM by vm.fds), -1 when none */
  pid_t vmm_pid;                /* the latest holder of its fds (vm.fds caller, "started" hook), 0 when none */
  GArray *holders;              /* of IfbVmHolder: processes holding its fds, watched */
  guint64 vmm_exits;            /* contexts replaced because the last holder exited */
  gint64 created_usec;          /* wall clock */
  GPtrArray *devices;           /* of IfbVmDevice* */
  char *list_json;              /* cache of ifb_vm_to_json (vm, FALSE) as text; see ifb_vm_changed() */
  bool needs_tidy;              /* restored: its context may hold an interrupted attach's HWPT */
  /* one operation at a time (lifecycle.c) */
  bool busy;                    /* a worker is running for it */
  bool gone;                    /* destroyed (or its creation failed) while someone held a reference */
  GQueue waiters;               /* what waits for it to be idle, in arrival order */
  /* given up, for a release worker (lifecycle.c): devices (fd + HWPT) and maybe the context */
  GArray *releasing;            /* of IfbVmRelease */
  int releasing_ctx;            /* a context given up, -1 when none */
  uint32_t releasing_ioas;      /* its IOAS, 0 when none */
  uint32_t releasing_viommu;    /* a vIOMMU given up (destroyed after the vDEVICEs, before the HWPTs), 0 when none */
  uint32_t releasing_veventq;   /* its vEVENTQ, destroyed first (the daemon's fd closed), 0 when none */
  bool destroying;              /* vm.destroy under way: only its releases are left */
  gint ref;
} IfbVm;

IfbVm *ifb_vm_new (const char *name, const char *uuid, const char *cgroup);
IfbVm *ifb_vm_ref (IfbVm *vm);
/* Drop a reference; the last closes every fd it holds and frees it. Returns NULL. */
IfbVm *ifb_vm_free (IfbVm *vm);

IfbVmDevice *ifb_vm_device_new (const char *bdf, const char *cdev);
IfbVmDevice *ifb_vm_device_free (IfbVmDevice *d);
IfbVmDevice *ifb_vm_find_device (IfbVm *vm, const char *bdf);
/* Forget every holder (removes their watches, closes their pidfds). */
void ifb_vm_clear_holders (IfbVm *vm);

/*
 * One operation per guest at a time: while a worker runs for it the guest is busy, and what must
 * wait (a parked request, a reclaim) is queued to run, in arrival order, when it is idle again.
 */
gboolean ifb_vm_is_busy (IfbVm *vm);
void ifb_vm_when_idle (IfbVm *vm, void (*fn) (gpointer data), gpointer data);
/* What waited runs, in order, while the guest stays idle (a waiter may start an operation); if
 * it is gone by then, the rest is handed on. ifb_vm_set_idle(): not busy, then the same. */
void ifb_vm_run_waiters (IfbVm *vm);
void ifb_vm_set_idle (IfbVm *vm);

/* A host driver's name as a managed device records it: [A-Za-z0-9_.-]{0,31}. */
gboolean ifb_vm_driver_name_valid (const char *name);

/* Names: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. */
gboolean ifb_vm_name_validate (const char *name, GError **error);

/* JSON for vm.show / vm.list (verbose = objects and hw info) and for the state file. */
json_object *ifb_vm_to_json (const IfbVm *vm, gboolean verbose);
json_object *ifb_hw_info_to_json (const IfbHwInfo *hw);
/* The summary JSON text of vm.list for this guest, rendered once until the guest changes:
 * listing thousands of guests then costs a string copy each, not a json-c tree. */
const char *ifb_vm_list_json (IfbVm *vm);
/* Forget cached renderings; ifb_core_persist() calls it after every change. */
void ifb_vm_changed (IfbVm *vm);
/* Rebuild from the state file; fds stay -1 (they come back from the fd store). */
IfbVm *ifb_vm_from_json (json_object *o, GError **error);

/*
 * fd store names, as short as they can be: systemd hands every stored fd's name back in one
 * environment variable, LISTEN_FDNAMES, and the kernel refuses any single environment string over
 * 128 KiB (MAX_ARG_STRLEN) — with uuid-based names a thousand guests would not restart. So:
 * "c<slot>" for a context, "d<index><slot>" for a device, slot and index in a 64-character
 * alphabet (index: 1 character; slot: 1-3): at most 6 bytes per fd with its ':' separator.
 */
#define IFB_VM_MAX_SLOTS (64 * 64 * 64)
#define IFB_VM_MAX_DEVICE_INDEX 64
char *ifb_vm_fdname_iommufd (const IfbVm *vm);
char *ifb_vm_fdname_device (const IfbVm *vm, const IfbVmDevice *d);
char *ifb_vm_fdname_veventq (const IfbVm *vm);   /* "e<slot>" */

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbVm, ifb_vm_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbVmDevice, ifb_vm_device_free)
