/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define G_LOG_DOMAIN "ifb-core"

#include "core.h"
#include "util.h"

IfbCore *
ifb_core_new (IfbConfig *config)
{
  IfbCore *core = g_new0 (IfbCore, 1);
  core->config = config;
  core->dev_dirfd = core->sys_dirfd = core->runtime_dirfd = -1;
  core->registry = ifb_registry_new (config->max_vms);
  core->hw_cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  core->hw_errors = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  core->started_usec = g_get_monotonic_time ();
  return core;
}

IfbCore *
ifb_core_free (IfbCore *core)
{
  if (!core)
    return NULL;
  ifb_registry_free (core->registry);
  g_hash_table_unref (core->hw_cache);
  g_hash_table_unref (core->hw_errors);
  ifb_cgroup_root_free (core->cgroups);
  ifb_close (core->dev_dirfd);
  ifb_close (core->sys_dirfd);
  ifb_close (core->runtime_dirfd);
  g_free (core->emulated_root);
  g_free (core->backend_reason);
  g_free (core->self_cgroup);
  ifb_config_free (core->config);
  g_free (core);
  return NULL;
}

gboolean
ifb_core_persist (IfbCore *core, IfbVm *vm, GError **error)
{
  if (vm)
    ifb_vm_changed (vm);
  return !core->hooks.persist || core->hooks.persist (vm, error, core->hooks.data);
}

gboolean
ifb_core_forget (IfbCore *core, const IfbVm *vm, GError **error)
{
  return !core->hooks.forget || core->hooks.forget (vm, error, core->hooks.data);
}

void
ifb_core_emit (IfbCore *core, const char *type, json_object *params)
{
  if (core->hooks.emit)
    core->hooks.emit (type, params, core->hooks.data);
  else
    json_object_put (params);
}
