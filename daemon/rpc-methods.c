/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one table of the broker's RPC surface. "expensive" methods count against [limits]
 * expensive-calls-per-second of their uid (root and the admin group are not counted). proto/openrpc.json must describe exactly these
 * (tests/unit/test-openrpc.c checks both directions). */
#include "rpc.h"

const IfbMethod ifb_methods[] = {
  { "rpc.discover",     IFB_ACCESS_ANY,    FALSE, ifb_rpc_discover, .expensive = TRUE },
  { "broker.info",      IFB_ACCESS_READ,   FALSE, ifb_rpc_broker_info },
  { "device.list",      IFB_ACCESS_READ,   FALSE, ifb_rpc_device_list, .expensive = TRUE },
  { "metrics",          IFB_ACCESS_READ,   FALSE, ifb_rpc_metrics, .expensive = TRUE },
  { "vm.create",        IFB_ACCESS_ADMIN,  TRUE,  ifb_rpc_vm_create },
  { "vm.attach",        IFB_ACCESS_ADMIN,  FALSE, ifb_rpc_vm_attach },
  { "vm.detach",        IFB_ACCESS_ADMIN,  FALSE, ifb_rpc_vm_detach },
  { "vm.destroy",       IFB_ACCESS_ADMIN,  FALSE, ifb_rpc_vm_destroy },
  { "vm.list",          IFB_ACCESS_READ,   FALSE, ifb_rpc_vm_list, .expensive = TRUE },
  { "vm.show",          IFB_ACCESS_READ,   FALSE, ifb_rpc_vm_show },
  { "vm.fds",           IFB_ACCESS_VM_FDS, FALSE, ifb_rpc_vm_fds },
  { "vm.started",       IFB_ACCESS_ADMIN,  FALSE, ifb_rpc_vm_started },
  { "events.subscribe", IFB_ACCESS_READ,   FALSE, ifb_rpc_events_subscribe },
  { NULL },
};
