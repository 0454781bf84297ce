/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define G_LOG_DOMAIN "ifb"

#include <stdarg.h>

#include "log.h"

void
ifb_log_vm (GLogLevelFlags level, const IfbVm *vm, const char *device, const char *fmt, ...)
{
  g_autofree char *msg = NULL;
  va_list ap;
  GLogField fields[7];
  const char *priority = (level & G_LOG_LEVEL_CRITICAL) ? "3" : (level & G_LOG_LEVEL_WARNING) ? "4" :
                         (level & G_LOG_LEVEL_MESSAGE) ? "5" : (level & G_LOG_LEVEL_INFO) ? "6" : "7";
  gsize n = 0;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);

  fields[n++] = (GLogField) { "MESSAGE", msg, -1 };
  fields[n++] = (GLogField) { "PRIORITY", priority, -1 };
  fields[n++] = (GLogField) { "GLIB_DOMAIN", G_LOG_DOMAIN, -1 };
  fields[n++] = (GLogField) { "IFB_VM", vm->name, -1 };
  fields[n++] = (GLogField) { "IFB_VM_UUID", vm->uuid, -1 };
  if (device)
    fields[n++] = (GLogField) { "IFB_DEVICE", device, -1 };
  g_log_structured_array (level, fields, n);
}
