/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The broker's error contract.
 *
 * Below the GError layer, thin syscall and uAPI wrappers return -errno. Everything above returns
 * gboolean + GError in the IFB_ERROR domain, converted from -errno in exactly one place,
 * ifb_error_set_errno(). Only the RPC dispatcher turns a GError into a JSON-RPC error, through
 * the one table in errors.c that maps each IfbError to a stable wire name and code.
 */
#pragma once

#include <glib.h>

#define IFB_ERROR (ifb_error_quark ())
GQuark ifb_error_quark (void);

typedef enum {
  /* JSON-RPC 2.0 protocol errors */
  IFB_ERROR_PARSE,              /* -32700 */
  IFB_ERROR_INVALID_REQUEST,    /* -32600 */
  IFB_ERROR_METHOD_NOT_FOUND,   /* -32601 */
  IFB_ERROR_INVALID_PARAMS,     /* -32602 */
  IFB_ERROR_INTERNAL,           /* -32603 */
  /* server errors, -32000..-32099 */
  IFB_ERROR_FAILED,             /* generic, carries an errno */
  IFB_ERROR_PERMISSION_DENIED,
  IFB_ERROR_LIMIT_EXCEEDED,
  IFB_ERROR_NO_SUCH_VM,
  IFB_ERROR_VM_EXISTS,
  IFB_ERROR_NO_SUCH_DEVICE,
  IFB_ERROR_DEVICE_NOT_VFIO,    /* not bound to vfio-pci or no vfio cdev */
  IFB_ERROR_DEVICE_BUSY,        /* owned by another guest */
  IFB_ERROR_NOT_ATTACHED,
  IFB_ERROR_NEST_UNSUPPORTED,   /* the IOMMU cannot be a nesting parent */
  IFB_ERROR_CGROUP_INVALID,
  IFB_ERROR_WORKER_FAILED,
  IFB_ERROR_KERNEL,             /* an ioctl failed; errno in data */
  IFB_ERROR_UNAVAILABLE,        /* feature off or backend lacks it */
  IFB_ERROR_INVALID_ARGUMENT,   /* generic bad value that is not a JSON-RPC param error */
  IFB_ERROR_WORKER_KILLED,      /* a signal (or the daemon, at its deadline) ended a worker */
  IFB_ERROR_RESOURCE_EXHAUSTED, /* the daemon (or the host) is out of fds: EMFILE, ENFILE */
  _IFB_ERROR_MAX,
} IfbError;

/* Stable wire name of an error ("nest-unsupported"), never NULL. */
const char *ifb_error_to_name (IfbError e);
/* JSON-RPC code of an error. */
int ifb_error_to_code (IfbError e);
/* Reverse lookup for clients; -1 when unknown. */
int ifb_error_from_name (const char *name);

/* Symbolic errno name ("EBUSY"); NULL when unknown. */
const char *ifb_errno_to_name (int errnum);
/* errno value of a name; 0 when unknown. */
int ifb_errno_from_name (const char *name);

/*
 * The one -errno -> GError conversion. Picks IfbError from the errno (EPERM/EACCES -> permission,
 * EMFILE/ENFILE -> resource-exhausted, everything else -> code), records the errno so the wire carries it, and formats the message as
 * "<context>: <strerror>". Always returns FALSE so callers can `return ifb_error_set_errno (...)`.
 */
gboolean ifb_error_set_errno (GError **error, IfbError code, int negerrno, const char *fmt, ...) G_GNUC_PRINTF (4, 5);

/* errno recorded on an IFB_ERROR by ifb_error_set_errno(); 0 when none. */
int ifb_error_get_errno (const GError *error);

/* Set an IFB_ERROR with a literal message and an errno (0 for none); for clients rebuilding a
 * server error. Returns FALSE. */
gboolean ifb_error_set_literal_errno (GError **error, IfbError code, int errnum, const char *message);
