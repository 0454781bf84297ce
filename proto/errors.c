/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one table that maps broker errors to the wire. Codes -32700..-32600 are JSON-RPC's own;
 * server errors count down from -32000 and never change once released: clients match on the
 * name, scripts may match on the code.
 *
 * The errno travelling with an error is GError private data (an "extended" error domain), so
 * g_prefix_error() on the way up keeps it.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "errors.h"

typedef struct {
  int errnum;
} IfbErrorPrivate;

static void
ifb_error_private_init (IfbErrorPrivate *priv)
{
  priv->errnum = 0;
}

static void
ifb_error_private_copy (const IfbErrorPrivate *src, IfbErrorPrivate *dest)
{
  dest->errnum = src->errnum;
}

static void
ifb_error_private_clear (IfbErrorPrivate *priv)
{
  priv->errnum = 0;
}

G_DEFINE_EXTENDED_ERROR (IfbError, ifb_error)

static const struct {
  const char *name;
  int code;
} error_table[_IFB_ERROR_MAX] = {
  [IFB_ERROR_PARSE]             = { "parse-error",        -32700 },
  [IFB_ERROR_INVALID_REQUEST]   = { "invalid-request",    -32600 },
  [IFB_ERROR_METHOD_NOT_FOUND]  = { "method-not-found",   -32601 },
  [IFB_ERROR_INVALID_PARAMS]    = { "invalid-params",     -32602 },
  [IFB_ERROR_INTERNAL]          = { "internal-error",     -32603 },
  [IFB_ERROR_FAILED]            = { "failed",             -32000 },
  [IFB_ERROR_PERMISSION_DENIED] = { "permission-denied",  -32001 },
  [IFB_ERROR_LIMIT_EXCEEDED]    = { "limit-exceeded",     -32002 },
  [IFB_ERROR_NO_SUCH_VM]        = { "no-such-vm",         -32003 },
  [IFB_ERROR_VM_EXISTS]         = { "vm-exists",          -32004 },
  [IFB_ERROR_NO_SUCH_DEVICE]    = { "no-such-device",     -32005 },
  [IFB_ERROR_DEVICE_NOT_VFIO]   = { "device-not-vfio",    -32006 },
  [IFB_ERROR_DEVICE_BUSY]       = { "device-busy",        -32007 },
  [IFB_ERROR_NOT_ATTACHED]      = { "not-attached",       -32008 },
  [IFB_ERROR_NEST_UNSUPPORTED]  = { "nest-unsupported",   -32009 },
  [IFB_ERROR_CGROUP_INVALID]    = { "cgroup-invalid",     -32010 },
  [IFB_ERROR_WORKER_FAILED]     = { "worker-failed",      -32011 },
  [IFB_ERROR_KERNEL]            = { "kernel-error",       -32012 },
  [IFB_ERROR_UNAVAILABLE]       = { "unavailable",        -32013 },
  [IFB_ERROR_INVALID_ARGUMENT]  = { "invalid-argument",   -32014 },
  [IFB_ERROR_WORKER_KILLED]     = { "worker-killed",      -32015 },
  [IFB_ERROR_RESOURCE_EXHAUSTED] = { "resource-exhausted", -32016 },
};

const char *
ifb_error_to_name (IfbError e)
{
  if ((unsigned) e >= _IFB_ERROR_MAX || !error_table[e].name)
    return "failed";
  return error_table[e].name;
}

int
ifb_error_to_code (IfbError e)
{
  if ((unsigned) e >= _IFB_ERROR_MAX || !error_table[e].name)
    return -32000;
  return error_table[e].code;
}

int
ifb_error_from_name (const char *name)
{
  for (int i = 0; name && i < _IFB_ERROR_MAX; i++)
    if (error_table[i].name && strcmp (error_table[i].name, name) == 0)
      return i;
  return -1;
}

#define E(x) [x] = #x
static const char *const errno_names[] = {
  E (EPERM), E (ENOENT), E (ESRCH), E (EINTR), E (EIO), E (ENXIO), E (E2BIG), E (ENOEXEC),
  E (EBADF), E (ECHILD), E (EAGAIN), E (ENOMEM), E (EACCES), E (EFAULT), E (EBUSY),
  E (EEXIST), E (EXDEV), E (ENODEV), E (ENOTDIR), E (EISDIR), E (EINVAL), E (ENFILE),
  E (EMFILE), E (ENOTTY), E (EFBIG), E (ENOSPC), E (ESPIPE), E (EROFS), E (EMLINK), E (EPIPE),
  E (ERANGE), E (ENAMETOOLONG), E (ENOSYS), E (ENOTEMPTY), E (ELOOP), E (ENOMSG),
  E (EOVERFLOW), E (EOPNOTSUPP), E (ETIMEDOUT), E (ECONNREFUSED), E (ECONNRESET),
  E (EPROTO), E (EMSGSIZE), E (ENOTSOCK), E (EADDRINUSE), E (ECANCELED), E (EOWNERDEAD),
  E (EDEADLK), E (ENOLCK), E (EILSEQ), E (ENOBUFS), E (ENOTCONN), E (EALREADY),
};
#undef E

const char *
ifb_errno_to_name (int errnum)
{
  if (errnum < 0)
    errnum = -errnum;
  if ((size_t) errnum >= G_N_ELEMENTS (errno_names))
    return NULL;
  return errno_names[errnum];
}

int
ifb_errno_from_name (const char *name)
{
  for (size_t i = 0; name && i < G_N_ELEMENTS (errno_names); i++)
    if (errno_names[i] && strcmp (errno_names[i], name) == 0)
      return (int) i;
  return 0;
}

gboolean
ifb_error_set_errno (GError **error, IfbError code, int negerrno, const char *fmt, ...)
{
  int errnum = negerrno < 0 ? -negerrno : negerrno;
  g_autofree char *context = NULL;
  va_list ap;

  if (errnum == EPERM || errnum == EACCES)
    code = IFB_ERROR_PERMISSION_DENIED;
  /* Out of fds is never what the call was about (a device without a cdev, a kernel refusal):
   * say so, whatever step ran into it. */
  if (errnum == EMFILE || errnum == ENFILE)
    code = IFB_ERROR_RESOURCE_EXHAUSTED;

  va_start (ap, fmt);
  context = g_strdup_vprintf (fmt, ap);
  va_end (ap);

  if (!error)
    return FALSE;
  g_set_error (error, IFB_ERROR, code, "%s: %s", context, g_strerror (errnum));
  if (*error) {
    IfbErrorPrivate *priv = ifb_error_get_private (*error);
    if (priv)
      priv->errnum = errnum;
  }
  return FALSE;
}

int
ifb_error_get_errno (const GError *error)
{
  IfbErrorPrivate *priv;

  if (!error || error->domain != IFB_ERROR)
    return 0;
  priv = ifb_error_get_private (error);
  return priv ? priv->errnum : 0;
}

gboolean
ifb_error_set_literal_errno (GError **error, IfbError code, int errnum, const char *message)
{
  if (!error)
    return FALSE;
  g_set_error_literal (error, IFB_ERROR, code, message);
  if (*error && errnum > 0) {
    IfbErrorPrivate *priv = ifb_error_get_private (*error);
    if (priv)
      priv->errnum = errnum;
  }
  return FALSE;
}
