/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ledger of managed PCI devices: in memory for the daemon's life, and in the runtime directory
 * (managed-devices.json, {"version": 1, "devices": {address: driver}}) from before a device's
 * first sysfs write until it is back, so a crash at any point leaves a record of what to give
 * back. Only the address and the driver are written: after a restart every entry starts out
 * waiting, and managed_restore (device-pci-managed.c) decides what a restored guest holds. */
#define G_LOG_DOMAIN "ifb-device"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "device-pci-ledger.h"
#include "json.h"
#include "pci-device.h"
#include "util.h"
#include "vm.h"

#define LEDGER_FILE "managed-devices.json"
#define LEDGER_MAX 4096
#define LEDGER_FILE_MAX (1u << 20)

static GHashTable *ledger;      /* one daemon per process */

static const char *const state_names[] = {
  [IFB_LEDGER_HELD] = "held",
  [IFB_LEDGER_TAKING] = "taking",
  [IFB_LEDGER_RETURNING] = "returning",
  [IFB_LEDGER_WAITING] = "waiting",
};

static void
entry_free (gpointer p)
{
  IfbLedgerEntry *e = p;
  g_free (e->driver);
  g_free (e);
}

GHashTable *
ifb_ledger_table (void)
{
  if (!ledger)
    ledger = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, entry_free);
  return ledger;
}

IfbLedgerEntry *
ifb_ledger_get (const char *name)
{
  return ledger ? g_hash_table_lookup (ledger, name) : NULL;
}

void
ifb_ledger_set (const char *name, const char *driver, IfbLedgerState state)
{
  IfbLedgerEntry *e = g_new0 (IfbLedgerEntry, 1);
  e->driver = g_strdup (driver);
  e->state = state;
  g_hash_table_replace (ifb_ledger_table (), g_strdup (name), e);
}

gboolean
ifb_ledger_remove (const char *name)
{
  return ledger && g_hash_table_remove (ledger, name);
}

void
ifb_ledger_save (IfbCore *core)
{
  g_autoptr (json_object) root = json_object_new_object ();
  json_object *devs = json_object_new_object ();
  GHashTableIter it;
  gpointer k, v;
  const char *text;
  ifb_autofd int fd = -1;

  g_hash_table_iter_init (&it, ifb_ledger_table ());
  while (g_hash_table_iter_next (&it, &k, &v))
    json_object_object_add (devs, k, json_object_new_string (((IfbLedgerEntry *) v)->driver));
  json_object_object_add (root, "version", json_object_new_int (1));
  json_object_object_add (root, "devices", devs);
  text = json_object_to_json_string_ext (root, JSON_C_TO_STRING_PLAIN);
  fd = openat (core->runtime_dirfd, LEDGER_FILE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 || write (fd, text, strlen (text)) != (ssize_t) strlen (text) || fsync (fd) < 0 ||
      renameat (core->runtime_dirfd, LEDGER_FILE ".tmp", core->runtime_dirfd, LEDGER_FILE) < 0)
    g_warning ("Writing %s (the devices to give back to their drivers): %s, ignoring", LEDGER_FILE, g_strerror (errno));
}

void
ifb_ledger_load (IfbCore *core)
{
  g_autofree char *text = NULL;
  g_autoptr (json_object) root = NULL;
  g_autoptr (GError) error = NULL;
  ifb_autofd int fd = openat (core->runtime_dirfd, LEDGER_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  json_object *devs;
  char buf[4096];
  GString *s;
  ssize_t n;

  if (fd < 0)
    return;
  s = g_string_new (NULL);
  while (s->len <= LEDGER_FILE_MAX && (n = read (fd, buf, sizeof buf)) > 0)
    g_string_append_len (s, buf, n);
  text = g_string_free (s, FALSE);
  root = ifb_json_parse (text, strlen (text), 4, &error);
  devs = root ? ifb_json_get (root, "devices") : NULL;
  if (!devs || !json_object_is_type (devs, json_type_object)) {
    g_warning ("%s is not a ledger of devices (%s); what it names is not given back", LEDGER_FILE,
               error ? error->message : "no 'devices' object");
    return;
  }
  json_object_object_foreach (devs, name, v) {
    const char *driver = json_object_is_type (v, json_type_string) ? json_object_get_string (v) : NULL;
    if (!ifb_pci_bdf_is_valid (name) || !ifb_vm_driver_name_valid (driver) || g_hash_table_size (ifb_ledger_table ()) >= LEDGER_MAX) {
      g_warning ("%s: entry '%s' is not a device and a driver, ignoring", LEDGER_FILE, name);
      continue;
    }
    ifb_ledger_set (name, driver, IFB_LEDGER_WAITING);
  }
}

json_object *
ifb_ledger_describe (const char *name)
{
  IfbLedgerEntry *e = ifb_ledger_get (name);
  json_object *o;

  if (!e)
    return NULL;
  o = json_object_new_object ();
  json_object_object_add (o, "state", json_object_new_string (state_names[e->state]));
  json_object_object_add (o, "driver", json_object_new_string (e->driver));
  return o;
}
