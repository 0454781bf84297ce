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

typedef struct {
  gint64 window_start;
  guint logged;
  guint64 suppressed;
} RefusalWindow;

static GHashTable *refusals;   /* uid -> RefusalWindow* (one manager per process) */

void
ifb_log_refusal (uid_t uid, guint max, const char *fmt, ...)
{
  gint64 now = g_get_monotonic_time ();
  RefusalWindow *w;
  g_autofree char *msg = NULL;
  va_list ap;

  if (!refusals)
    refusals = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, g_free);
  w = g_hash_table_lookup (refusals, GUINT_TO_POINTER (uid));
  if (!w) {
    /* Forget the uids whose window is over rather than grow without bound. */
    if (g_hash_table_size (refusals) >= 4096)
      g_hash_table_remove_all (refusals);
    w = g_new0 (RefusalWindow, 1);
    w->window_start = now;
    g_hash_table_insert (refusals, GUINT_TO_POINTER (uid), w);
  }
  if (now - w->window_start >= IFB_LOG_REFUSAL_INTERVAL_S * G_USEC_PER_SEC) {
    if (w->suppressed > 0)
      g_message ("%" G_GUINT64_FORMAT " more refusals of uid %u in %d s were not logged ([limits] max-refusals-logged=%u)",
                 w->suppressed, (unsigned) uid, IFB_LOG_REFUSAL_INTERVAL_S, max);
    w->window_start = now;
    w->logged = 0;
    w->suppressed = 0;
  }
  if (w->logged >= max) {
    w->suppressed++;
    return;
  }
  w->logged++;
  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_message ("%s", msg);
}
