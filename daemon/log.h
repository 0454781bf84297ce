/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Log lines about a guest carry structured fields for the journal: IFB_VM=, IFB_VM_UUID= and,
 * where one is concerned, IFB_DEVICE=, so `journalctl IFB_VM=web1` shows one guest's history.
 */
#pragma once

#include <glib.h>

#include "vm.h"

void ifb_log_vm (GLogLevelFlags level, const IfbVm *vm, const char *device, const char *fmt, ...) G_GNUC_PRINTF (4, 5);
