/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define G_LOG_DOMAIN "ifb"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Whether stderr is the journal's stream: then every line goes to the journal natively, with
 * its fields. GLib 2.74 recognizes the journal by the peer address of stderr's socket alone;
 * systemd's documented sign is $JOURNAL_STREAM, the device and inode of that stream, which is
 * also what a test can give a daemon whose stderr is a file. */
static gboolean journal_stderr;

static GLogWriterOutput
log_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
  const char *domain = NULL;

  if (!journal_stderr)
    return g_log_writer_default (level, fields, n_fields, data);
  for (gsize i = 0; i < n_fields; i++)
    if (strcmp (fields[i].key, "GLIB_DOMAIN") == 0 && fields[i].length < 0)
      domain = fields[i].value;
  if (g_log_writer_default_would_drop (level, domain))
    return G_LOG_WRITER_HANDLED;
  if (g_log_writer_journald (level, fields, n_fields, data) == G_LOG_WRITER_HANDLED)
    return G_LOG_WRITER_HANDLED;
  return g_log_writer_standard_streams (level, fields, n_fields, data);
}

void
ifb_log_init (void)
{
  const char *e = getenv ("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;

  journal_stderr = e && sscanf (e, "%llu:%llu", &dev, &ino) == 2 && fstat (STDERR_FILENO, &st) == 0 &&
                   (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
  journal_stderr = journal_stderr || g_log_writer_is_journald (STDERR_FILENO);
  g_log_set_writer_func (log_writer, NULL, NULL);
}

typedef struct {
  gint64 window_start;
  guint logged;
  guint64 suppressed;
} RefusalWindow;

static GHashTable *refusals;   /* uid -> RefusalWindow* (one manager per process) */

/* Whether uid may have one more refusal logged now (see ifb_log_refusal()). */
static gboolean
refusal_allowed (uid_t uid, guint max)
{
  gint64 now = g_get_monotonic_time ();
  RefusalWindow *w;

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
    return FALSE;
  }
  w->logged++;
  return TRUE;
}

void
ifb_log_refusal (uid_t uid, guint max, const char *fmt, ...)
{
  g_autofree char *msg = NULL;
  va_list ap;

  if (!refusal_allowed (uid, max))
    return;
  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_message ("%s", msg);
}

void
ifb_log_refusal_vm (uid_t uid, guint max, const char *vm, const char *uuid, const char *fmt, ...)
{
  g_autofree char *msg = NULL;
  GLogField fields[5];
  gsize n = 0;
  va_list ap;

  if (!refusal_allowed (uid, max))
    return;
  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  fields[n++] = (GLogField) { "MESSAGE", msg, -1 };
  fields[n++] = (GLogField) { "PRIORITY", "5", -1 };
  fields[n++] = (GLogField) { "GLIB_DOMAIN", G_LOG_DOMAIN, -1 };
  if (vm)
    fields[n++] = (GLogField) { "IFB_VM", vm, -1 };
  if (uuid)
    fields[n++] = (GLogField) { "IFB_VM_UUID", uuid, -1 };
  g_log_structured_array (G_LOG_LEVEL_MESSAGE, fields, n);
}
