/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbConfig: the broker's settings, from /etc/iommufd-broker/broker.conf (GKeyFile) and then the
 * command line. Every limit on what a peer controls is here, with its key.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <glib.h>

typedef enum {
  IFB_BACKEND_CHOICE_AUTO,
  IFB_BACKEND_CHOICE_KERNEL,
  IFB_BACKEND_CHOICE_EMULATED,
  _IFB_BACKEND_CHOICE_MAX,
  IFB_BACKEND_CHOICE_INVALID = -1,
} IfbBackendChoice;

const char *ifb_backend_choice_to_string (IfbBackendChoice c);
IfbBackendChoice ifb_backend_choice_from_string (const char *s);

typedef struct {
  /* [broker] */
  char *socket_path;
  char *vmm_socket_path;        /* the VMM socket when not socket-activated; NULL: none */
  guint socket_mode;             /* of a socket we bind ourselves (not socket-activated) */
  char *runtime_dir;
  IfbBackendChoice backend;
  char *emulated_template;      /* template tree copied into the runtime dir; NULL: the built-in set */
  char *dev_root;               /* kernel backend: where /dev is (tests may redirect) */
  char *sys_root;               /* kernel backend: where /sys is */
  guint worker_timeout_ms;
  guint max_workers;            /* workers running at once; more wait their turn */
  /* [emulated] */
  guint emulated_device_reset_ms;   /* what an emulated device's reset costs at bind and release */
  /* [limits] */
  guint max_frame;
  guint max_depth;
  guint max_connections;
  guint max_connections_per_uid;
  guint max_pending;            /* unanswered requests per connection before we stop reading */
  guint max_batch;
  guint max_vms;
  guint max_devices_per_vm;
  guint max_queued_bytes;       /* replies and events waiting to be sent, per connection */
  guint max_queued_fds;         /* fds in replies a connection has not received yet */
  guint max_queued_fds_per_uid; /* the same over all connections of one uid */
  guint queued_fds_timeout;     /* seconds a connection may stay over either before it is closed */
  guint reserved_connections;   /* of max_connections, for root and the admin group only */
  guint idle_timeout;           /* seconds without a request before a connection is closed; 0: never */
  guint max_refusals_logged;    /* refused calls logged per uid per 10 s, then counted */
  guint expensive_calls_per_second;  /* per uid (not root, not admins); 0: no budget */
  guint max_guest_memory_mib;   /* vm.create's options.memory_mib at most: what a VMM is let lock */
  /* [access] */
  char *admin_group;
  char *read_group;
  gid_t admin_gid;              /* (gid_t) -1 when unset */
  gid_t read_gid;
  /* [accounting] */
  bool rlimit_per_process;      /* IOMMU_OPTION_RLIMIT_MODE = per-process */
  /* [libvirt] */
  char *libvirt_uri;            /* NULL: no event watching */
  char *libvirt_cgroup_layout;  /* auto, systemd or manual: the hook's (client/hook.c) */
  /* [devices] */
  char **devices_allow;         /* what may be taken from its host driver (managed): "DDDD:BB:DD.F" or
                                 * "vvvv:dddd"; NULL: nothing */
  guint bind_timeout_ms;        /* how long a managed device's driver change may take */
  guint return_retry_ms;        /* between attempts to give a device back to its driver */
  /* [kernel] */
  bool allow_selftest;          /* accept the kernel's IOMMUFD_TEST mock device (test kernels only) */
  /* [metrics] */
  char *metrics_textfile;       /* NULL: none; else the Prometheus text written every interval */
  guint metrics_interval_sec;
} IfbConfig;

/* Defaults, then the file at path if it exists (a missing default file is fine; a missing
 * explicitly given one is an error). Unknown groups or keys are errors naming them. */
IfbConfig *ifb_config_load (const char *path, gboolean path_explicit, GError **error);
/* Parse config text (GKeyFile) on top of the defaults; [access] groups are not resolved. */
IfbConfig *ifb_config_load_data (const char *data, size_t len, GError **error);
IfbConfig *ifb_config_free (IfbConfig *c);
/* An entry of [devices] allow names this device (by address), or its vendor:device ids (any
 * entry). by_address says which matched: TRUE only when the address itself is listed. */
gboolean ifb_config_device_allowed (const IfbConfig *c, const char *address, guint16 vendor, guint16 device,
                                    gboolean *ret_by_address);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbConfig, ifb_config_free)
