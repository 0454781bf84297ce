/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one table of the broker's RPC surface: each method with its access rule, whether it takes
 * fds, its handler, and the params it accepts. The dispatcher parses params by the method's
 * table (unknown members, missing required ones and wrong types are -32602 naming the member)
 * into the args struct its handler gets (rpc.h), starting from the defaults below; the handler
 * checks only what a table cannot say (ranges, either-or members, enum strings). "expensive"
 * methods count against [limits] expensive-calls-per-second of their uid (root and the admin
 * group are not counted). proto/openrpc.json must describe exactly these methods and params,
 * names, types and required flags (tests/unit/test-openrpc.c checks both directions).
 */
#include <stddef.h>

#include "rpc.h"

/* Each method's params: the table, and the struct it parses into (with its defaults). */
#define ARGS(type, specs) .params = (specs), .args_size = sizeof (type)

static const IfbParamSpec vm_create_options[] = {
  { "handoff", IFB_PARAM_STRING, offsetof (IfbRpcVmCreateOptions, handoff) },
  { "nest_parent", IFB_PARAM_BOOL, offsetof (IfbRpcVmCreateOptions, nest_parent) },
  { "allow_plain", IFB_PARAM_BOOL, offsetof (IfbRpcVmCreateOptions, allow_plain) },
  { "dirty_tracking", IFB_PARAM_BOOL, offsetof (IfbRpcVmCreateOptions, dirty_tracking) },
  { "defer", IFB_PARAM_BOOL, offsetof (IfbRpcVmCreateOptions, defer) },
  { "viommu", IFB_PARAM_STRING, offsetof (IfbRpcVmCreateOptions, viommu) },
  { "veventq_depth", IFB_PARAM_INT, offsetof (IfbRpcVmCreateOptions, veventq_depth) },
  { "rlimit_per_process", IFB_PARAM_BOOL, offsetof (IfbRpcVmCreateOptions, rlimit_per_process) },
  { "allow_caller_cgroup", IFB_PARAM_BOOL, offsetof (IfbRpcVmCreateOptions, allow_caller_cgroup) },
  { "memory_mib", IFB_PARAM_INT, offsetof (IfbRpcVmCreateOptions, memory_mib) },
  { NULL },
};

static const IfbParamSpec vm_create[] = {
  { "name", IFB_PARAM_STRING, offsetof (IfbRpcVmCreateArgs, name), IFB_PARAM_REQUIRED },
  { "uuid", IFB_PARAM_STRING, offsetof (IfbRpcVmCreateArgs, uuid) },
  { "cgroup", IFB_PARAM_STRING, offsetof (IfbRpcVmCreateArgs, cgroup) },
  { "pid", IFB_PARAM_INT, offsetof (IfbRpcVmCreateArgs, pid) },
  { "pidfd", IFB_PARAM_INT, offsetof (IfbRpcVmCreateArgs, pidfd) },
  { "options", IFB_PARAM_OBJECT, offsetof (IfbRpcVmCreateArgs, options), .members = vm_create_options },
  { NULL },
};

static const IfbRpcVmCreateArgs vm_create_defaults = {
  .pid = G_MININT64, .pidfd = -1,
  .options = { .nest_parent = TRUE, .rlimit_per_process = -1, .memory_mib = G_MININT64 },
};

static const IfbParamSpec vm_attach[] = {
  { "vm", IFB_PARAM_STRING, offsetof (IfbRpcVmDeviceArgs, vm) },
  { "uuid", IFB_PARAM_STRING, offsetof (IfbRpcVmDeviceArgs, uuid) },
  { "device", IFB_PARAM_STRING, offsetof (IfbRpcVmDeviceArgs, device) },
  { "devices", IFB_PARAM_ARRAY, offsetof (IfbRpcVmDeviceArgs, devices) },
  { "virt_id", IFB_PARAM_INT, offsetof (IfbRpcVmDeviceArgs, virt_id) },
  { "managed", IFB_PARAM_BOOL, offsetof (IfbRpcVmDeviceArgs, managed) },
  { NULL },
};

static const IfbRpcVmDeviceArgs vm_attach_defaults = { .virt_id = G_MININT64 };

static const IfbParamSpec vm_detach[] = {
  { "vm", IFB_PARAM_STRING, offsetof (IfbRpcVmDeviceArgs, vm) },
  { "uuid", IFB_PARAM_STRING, offsetof (IfbRpcVmDeviceArgs, uuid) },
  { "device", IFB_PARAM_STRING, offsetof (IfbRpcVmDeviceArgs, device), IFB_PARAM_REQUIRED },
  { NULL },
};

/* vm.destroy, vm.show, vm.fds */
static const IfbParamSpec vm_named[] = {
  { "vm", IFB_PARAM_STRING, offsetof (IfbRpcVmArgs, vm) },
  { "uuid", IFB_PARAM_STRING, offsetof (IfbRpcVmArgs, uuid) },
  { NULL },
};

static const IfbParamSpec vm_started[] = {
  { "vm", IFB_PARAM_STRING, offsetof (IfbRpcVmArgs, vm) },
  { "uuid", IFB_PARAM_STRING, offsetof (IfbRpcVmArgs, uuid) },
  { "pid", IFB_PARAM_INT, offsetof (IfbRpcVmArgs, pid), IFB_PARAM_REQUIRED },
  { NULL },
};

static const IfbParamSpec vm_place[] = {
  { "vm", IFB_PARAM_STRING, offsetof (IfbRpcVmArgs, vm) },
  { "uuid", IFB_PARAM_STRING, offsetof (IfbRpcVmArgs, uuid) },
  { "cgroup", IFB_PARAM_STRING, offsetof (IfbRpcVmArgs, cgroup), IFB_PARAM_REQUIRED },
  { NULL },
};

/* No ARGS: the method takes no params. */
const IfbMethod ifb_methods[] = {
  { "rpc.discover",     IFB_ACCESS_ANY,    FALSE, ifb_rpc_discover, .expensive = TRUE },
  { "broker.info",      IFB_ACCESS_READ,   FALSE, ifb_rpc_broker_info },
  { "device.list",      IFB_ACCESS_READ,   FALSE, ifb_rpc_device_list, .expensive = TRUE },
  { "metrics",          IFB_ACCESS_READ,   FALSE, ifb_rpc_metrics, .expensive = TRUE },
  { "vm.create",        IFB_ACCESS_ADMIN,  TRUE,  ifb_rpc_vm_create,
    ARGS (IfbRpcVmCreateArgs, vm_create), .args_defaults = &vm_create_defaults },
  { "vm.attach",        IFB_ACCESS_ADMIN,  FALSE, ifb_rpc_vm_attach, ARGS (IfbRpcVmDeviceArgs, vm_attach),
    .args_defaults = &vm_attach_defaults },
  { "vm.detach",        IFB_ACCESS_ADMIN,  FALSE, ifb_rpc_vm_detach, ARGS (IfbRpcVmDeviceArgs, vm_detach) },
  { "vm.destroy",       IFB_ACCESS_ADMIN,  FALSE, ifb_rpc_vm_destroy, ARGS (IfbRpcVmArgs, vm_named) },
  { "vm.list",          IFB_ACCESS_READ,   FALSE, ifb_rpc_vm_list, .expensive = TRUE },
  { "vm.show",          IFB_ACCESS_READ,   FALSE, ifb_rpc_vm_show, ARGS (IfbRpcVmArgs, vm_named) },
  { "vm.fds",           IFB_ACCESS_VM_FDS, FALSE, ifb_rpc_vm_fds, ARGS (IfbRpcVmArgs, vm_named) },
  { "vm.started",       IFB_ACCESS_ADMIN,  FALSE, ifb_rpc_vm_started, ARGS (IfbRpcVmArgs, vm_started) },
  { "vm.place",         IFB_ACCESS_ADMIN,  FALSE, ifb_rpc_vm_place, ARGS (IfbRpcVmArgs, vm_place) },
  { "events.subscribe", IFB_ACCESS_READ,   FALSE, ifb_rpc_events_subscribe },
  { NULL },
};
