/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ledger of managed PCI devices, for device-pci*.c: every device taken from a host driver,
 * with that driver and where it is on its way (see device-pci-managed.c). */
#pragma once

#include <json.h>

#include "core.h"

typedef enum {
  IFB_LEDGER_HELD,              /* a guest has it; it goes back when it leaves the guest */
  IFB_LEDGER_TAKING,            /* a worker moves it onto vfio-pci */
  IFB_LEDGER_RETURNING,         /* a worker gives it back to its driver */
  IFB_LEDGER_WAITING,           /* giving it back failed; tried again every return-retry-ms */
} IfbLedgerState;

typedef struct {
  char *driver;                 /* where it came from ("": from no driver) */
  IfbLedgerState state;
} IfbLedgerEntry;

/* The ledger (address -> IfbLedgerEntry), made on first use. */
GHashTable *ifb_ledger_table (void);
IfbLedgerEntry *ifb_ledger_get (const char *name);
void ifb_ledger_set (const char *name, const char *driver, IfbLedgerState state);
/* TRUE when name was there. */
gboolean ifb_ledger_remove (const char *name);
/* Written whole to the runtime directory, atomically; a failure is logged (the next change tries again). */
void ifb_ledger_save (IfbCore *core);
/* Read back after a restart: every entry WAITING (managed_restore decides what is held). */
void ifb_ledger_load (IfbCore *core);
/* For device.list: {state, driver} of a device in the ledger, NULL for one that is not. */
json_object *ifb_ledger_describe (const char *name);
