/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iommufdctl vm list|show|create|attach|detach|destroy|fds */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "json.h"
#include "table.h"
#include "util.h"

static int
print_or_json (IfbCtl *ctl, json_object *r, void (*print) (json_object *))
{
  if (ctl->json)
    ifb_ctl_print_json (r);
  else
    print (r);
  return IFB_EXIT_OK;
}

static void
print_list (json_object *r)
{
  g_autoptr (IfbTable) t = ifb_table_new ("NAME", "UUID", "STATE", "CGROUP", "IOAS", "DEVICES", NULL);
  json_object *vms = ifb_json_get (r, "vms");
  for (size_t i = 0; vms && i < json_object_array_length (vms); i++) {
    json_object *v = json_object_array_get_idx (vms, i);
    json_object *devs = ifb_json_get (v, "devices");
    g_autofree char *n = g_strdup_printf ("%zu", devs ? json_object_array_length (devs) : 0);
    ifb_table_add_row (t, ifb_ctl_text (v, "name"), ifb_ctl_text (v, "uuid"), ifb_ctl_text (v, "state"),
                       ifb_ctl_text (v, "cgroup"), ifb_ctl_text (v, "ioas_id"), n);
  }
  ifb_table_print (t);
}

static void
print_vm (json_object *v)
{
  json_object *opts = ifb_json_get (v, "options");
  json_object *devs = ifb_json_get (v, "devices");
  json_object *objs = ifb_json_get (v, "context_objects");

  printf ("Name:      %s\n", ifb_ctl_text (v, "name"));
  printf ("UUID:      %s\n", ifb_ctl_text (v, "uuid"));
  printf ("State:     %s\n", ifb_ctl_text (v, "state"));
  printf ("Cgroup:    %s\n", ifb_ctl_text (v, "cgroup"));
  printf ("IOAS:      %s (allocated in %s)\n", ifb_ctl_text (v, "ioas_id"), ifb_ctl_text (v, "ioas_cgroup"));
  printf ("Hand-off:  %s\n", ifb_ctl_text (opts, "handoff"));
  printf ("VMM:       pid %s, %s exits reclaimed\n", ifb_ctl_text (v, "vmm_pid"), ifb_ctl_text (v, "vmm_exits"));
  printf ("Options:   nest_parent=%s allow_plain=%s dirty_tracking=%s defer=%s rlimit_per_process=%s\n",
          ifb_ctl_text (opts, "nest_parent"), ifb_ctl_text (opts, "allow_plain"), ifb_ctl_text (opts, "dirty_tracking"),
          ifb_ctl_text (opts, "defer"), ifb_ctl_text (opts, "rlimit_per_process"));
  if (ifb_json_get (v, "viommu")) {
    json_object *vi = ifb_json_get (v, "viommu");
    printf ("vIOMMU:    %s, id %s on HWPT %s (allocated in %s)\n", ifb_ctl_text (vi, "type"), ifb_ctl_text (vi, "id"),
            ifb_ctl_text (vi, "hwpt_id"), ifb_ctl_text (vi, "cgroup"));
    if (ifb_json_get (vi, "veventq_id"))
      printf ("vEVENTQ:   id %s, depth %s\n", ifb_ctl_text (vi, "veventq_id"), ifb_ctl_text (opts, "veventq_depth"));
    for (size_t i = 0; devs && i < json_object_array_length (devs); i++) {
      json_object *d = json_object_array_get_idx (devs, i);
      printf ("vDEVICE:   %s: id %s, virtual id %s\n", ifb_ctl_text (d, "device"), ifb_ctl_text (d, "vdev_id"),
              ifb_ctl_text (d, "virt_id"));
    }
  }
  if (devs && json_object_array_length (devs) > 0) {
    g_autoptr (IfbTable) t = ifb_table_new ("DEVICE", "STATE", "DEV_ID", "HWPT_ID", "HWPT", "DIRTY", "IOMMU", "ALLOCATED IN",
                                            "MANAGED (FROM)", NULL);
    printf ("\n");
    for (size_t i = 0; i < json_object_array_length (devs); i++) {
      json_object *d = json_object_array_get_idx (devs, i);
      json_object *hd = ifb_json_get (d, "host_driver");
      g_autofree char *managed = !hd ? g_strdup ("no")
                               : g_strdup_printf ("yes (%s)", *json_object_get_string (hd) ? json_object_get_string (hd) : "no driver");
      ifb_table_add_row (t, ifb_ctl_text (d, "device"), ifb_ctl_text (d, "state"), ifb_ctl_text (d, "dev_id"),
                         ifb_ctl_text (d, "hwpt_id"), ifb_ctl_text (d, "hwpt_kind"), ifb_ctl_text (d, "dirty_tracking"),
                         ifb_ctl_text (ifb_json_get (d, "hw_info"), "iommu"), ifb_ctl_text (d, "cgroup"), managed);
    }
    ifb_table_print (t);
  }
  if (objs && json_object_array_length (objs) > 0) {
    g_autoptr (IfbTable) t = ifb_table_new ("OBJECT", "TYPE", "PARENT", "CREATOR PID", "CGROUP (recorded by the context)", NULL);
    printf ("\n");
    for (size_t i = 0; i < json_object_array_length (objs); i++) {
      json_object *o = json_object_array_get_idx (objs, i);
      ifb_table_add_row (t, ifb_ctl_text (o, "id"), ifb_ctl_text (o, "type"), ifb_ctl_text (o, "parent_id"),
                         ifb_ctl_text (o, "creator_pid"), ifb_ctl_text (o, "cgroup"));
    }
    ifb_table_print (t);
  }
}

static int
simple_call (IfbCtl *ctl, const char *method, json_object *params, void (*print) (json_object *))
{
  g_autoptr (IfbRpcClient) c = ifb_ctl_connect (ctl);
  g_autoptr (json_object) r = NULL;
  if (!c) {
    json_object_put (params);
    return IFB_EXIT_FAILED;
  }
  if (!ifb_ctl_call (ctl, c, method, params, &r, NULL))
    return IFB_EXIT_FAILED;
  return print_or_json (ctl, r, print);
}

json_object *
ifb_ctl_vm_param (const char *vm)
{
  json_object *p = json_object_new_object ();
  if (g_str_has_prefix (vm, "uuid:"))
    json_object_object_add (p, "uuid", json_object_new_string (vm + 5));
  else
    json_object_object_add (p, "vm", json_object_new_string (vm));
  return p;
}

static void
print_destroyed (json_object *r)
{
  printf ("Destroyed guest '%s' (%s device(s) freed)\n", ifb_ctl_text (r, "name"), ifb_ctl_text (r, "devices_freed"));
}

static int
cmd_create (IfbCtl *ctl, int argc, char **argv)
{
  json_object *p, *o;
  const char *name = NULL;

  p = json_object_new_object ();
  o = json_object_new_object ();
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if ((strcmp (a, "--cgroup") == 0 || strcmp (a, "--uuid") == 0 || strcmp (a, "--pid") == 0) && i + 1 < argc) {
      if (strcmp (a, "--pid") == 0) {
        char *end;
        long pid = strtol (argv[i + 1], &end, 10);
        if (*end || pid <= 0) {
          json_object_put (p), json_object_put (o);
          return ifb_ctl_usage_fail ("vm", "vm create: --pid needs a process id, not '%s'", argv[i + 1]);
        }
        json_object_object_add (p, "pid", json_object_new_int64 (pid));
      } else {
        json_object_object_add (p, a + 2, json_object_new_string (argv[i + 1]));
      }
      i++;
    } else if (strcmp (a, "--handoff") == 0 && i + 1 < argc) {
      json_object_object_add (o, "handoff", json_object_new_string (argv[++i]));
    } else if (g_str_has_prefix (a, "--handoff=")) {
      json_object_object_add (o, "handoff", json_object_new_string (a + 10));
    } else if (strcmp (a, "--no-nest-parent") == 0) {
      json_object_object_add (o, "nest_parent", json_object_new_boolean (FALSE));
    } else if (strcmp (a, "--allow-plain") == 0) {
      json_object_object_add (o, "allow_plain", json_object_new_boolean (TRUE));
    } else if (strcmp (a, "--dirty-tracking") == 0) {
      json_object_object_add (o, "dirty_tracking", json_object_new_boolean (TRUE));
    } else if (strcmp (a, "--viommu") == 0 && i + 1 < argc) {
      json_object_object_add (o, "viommu", json_object_new_string (argv[++i]));
    } else if (g_str_has_prefix (a, "--viommu=")) {
      json_object_object_add (o, "viommu", json_object_new_string (a + 9));
    } else if (strcmp (a, "--veventq-depth") == 0 && i + 1 < argc) {
      char *end;
      gint64 depth = g_ascii_strtoll (argv[++i], &end, 10);
      if (*end || end == argv[i]) {
        json_object_put (p), json_object_put (o);
        return ifb_ctl_usage_fail ("vm", "vm create: --veventq-depth needs a number, not '%s'", argv[i]);
      }
      json_object_object_add (o, "veventq_depth", json_object_new_int64 (depth));
    } else if (strcmp (a, "--defer") == 0) {
      json_object_object_add (o, "defer", json_object_new_boolean (TRUE));
    } else if (strcmp (a, "--memory-mib") == 0 && i + 1 < argc) {
      char *end;
      gint64 mib = g_ascii_strtoll (argv[i + 1], &end, 10);
      if (*end || !g_ascii_isdigit (argv[i + 1][0]) || mib <= 0) {
        json_object_put (p), json_object_put (o);
        return ifb_ctl_usage_fail ("vm", "vm create: --memory-mib needs a positive number of MiB, not '%s'", argv[i + 1]);
      }
      json_object_object_add (o, "memory_mib", json_object_new_int64 (mib));
      i++;
    } else if (g_str_has_prefix (a, "--rlimit-per-process=")) {
      json_object_object_add (o, "rlimit_per_process", json_object_new_boolean (strcmp (a + 21, "yes") == 0));
    } else if (a[0] != '-' && !name) {
      name = a;
    } else {
      json_object_put (p), json_object_put (o);
      return ifb_ctl_usage_fail ("vm", "vm create: unexpected argument '%s'", a);
    }
  }
  if (!name) {
    json_object_put (p), json_object_put (o);
    return ifb_ctl_usage_fail ("vm", "vm create: missing NAME");
  }
  json_object_object_add (p, "name", json_object_new_string (name));
  json_object_object_add (p, "options", o);
  return simple_call (ctl, "vm.create", p, print_vm);
}

static int
cmd_fds (IfbCtl *ctl, const char *vm)
{
  g_autoptr (IfbRpcClient) c = ifb_ctl_connect (ctl);
  g_autoptr (json_object) r = NULL;
  g_autoptr (IfbFdList) fds = NULL;
  g_autoptr (IfbTable) t = NULL;
  json_object *devs;
  gint64 idx;

  if (!c || !ifb_ctl_call (ctl, c, "vm.fds", ifb_ctl_vm_param (vm), &r, &fds))
    return IFB_EXIT_FAILED;
  if (ctl->json)
    return print_or_json (ctl, r, NULL);
  t = ifb_table_new ("OBJECT", "FD", "POINTS TO", "DEV_ID", "HWPT_ID", "NEST_PARENT", NULL);
  if (ifb_json_get_int (r, "iommufd", &idx)) {
    g_autofree char *fdtext = g_strdup_printf ("%d", ifb_fd_list_get (fds, (guint) idx));
    g_autofree char *link = g_strdup_printf ("/proc/self/fd/%d", ifb_fd_list_get (fds, (guint) idx));
    g_autofree char *target = g_file_read_link (link, NULL);
    g_autofree char *ioas = g_strdup_printf ("ioas %s", ifb_ctl_text (r, "ioas_id"));
    ifb_table_add_row (t, "iommufd", fdtext, target, ioas, NULL, NULL);
  }
  devs = ifb_json_get (r, "devices");
  for (size_t i = 0; devs && i < json_object_array_length (devs); i++) {
    json_object *d = json_object_array_get_idx (devs, i);
    int fd = ifb_json_get_int (d, "fd", &idx) ? ifb_fd_list_get (fds, (guint) idx) : -1;
    g_autofree char *fdtext = g_strdup_printf ("%d", fd);
    g_autofree char *link = g_strdup_printf ("/proc/self/fd/%d", fd);
    g_autofree char *target = g_file_read_link (link, NULL);
    ifb_table_add_row (t, ifb_ctl_text (d, "device"), fdtext, target, ifb_ctl_text (d, "dev_id"),
                       ifb_ctl_text (d, "hwpt_id"), ifb_ctl_text (d, "nest_parent"));
  }
  printf ("Received %u fds over SCM_RIGHTS for guest '%s' (backend %s):\n", ifb_fd_list_len (fds), vm,
          ifb_ctl_text (r, "backend"));
  ifb_table_print (t);
  return IFB_EXIT_OK;
}

int
ifb_ctl_cmd_vm (IfbCtl *ctl, int argc, char **argv)
{
  const char *sub = argc > 1 ? argv[1] : NULL;

  if (!sub)
    return ifb_ctl_usage_fail ("vm", "vm: missing subcommand");
  if (strcmp (sub, "list") == 0 && argc == 2)
    return simple_call (ctl, "vm.list", NULL, print_list);
  if (strcmp (sub, "show") == 0 && argc == 3)
    return simple_call (ctl, "vm.show", ifb_ctl_vm_param (argv[2]), print_vm);
  if (strcmp (sub, "destroy") == 0 && argc == 3)
    return simple_call (ctl, "vm.destroy", ifb_ctl_vm_param (argv[2]), print_destroyed);
  if (strcmp (sub, "fds") == 0 && argc == 3)
    return cmd_fds (ctl, argv[2]);
  if (strcmp (sub, "create") == 0)
    return cmd_create (ctl, argc - 1, argv + 1);
  if (strcmp (sub, "attach") == 0 && argc == 6 && strcmp (argv[4], "--virt-id") == 0) {
    /* one device with its virtual id in the guest's vIOMMU */
    json_object *p = ifb_ctl_vm_param (argv[2]);
    char *end;
    gint64 virt = g_ascii_strtoll (argv[5], &end, 0);
    if (*end || end == argv[5] || virt < 0) {
      json_object_put (p);
      return ifb_ctl_usage_fail ("vm", "vm attach: --virt-id needs a non-negative number, not '%s'", argv[5]);
    }
    json_object_object_add (p, "device", json_object_new_string (argv[3]));
    json_object_object_add (p, "virt_id", json_object_new_int64 (virt));
    return simple_call (ctl, "vm.attach", p, print_vm);
  }
  if (strcmp (sub, "attach") == 0 && argc >= 4) {
    json_object *p = ifb_ctl_vm_param (argv[2]);
    json_object *a = json_object_new_array ();
    gboolean managed = FALSE;
    for (int i = 3; i < argc; i++) {
      if (strcmp (argv[i], "--managed") == 0) {
        managed = TRUE;
      } else if (argv[i][0] == '-') {
        json_object_put (p), json_object_put (a);
        return ifb_ctl_usage_fail ("vm", "vm attach: unknown option '%s'", argv[i]);
      } else {
        json_object_array_add (a, json_object_new_string (argv[i]));
      }
    }
    if (json_object_array_length (a) == 0) {
      json_object_put (p), json_object_put (a);
      return ifb_ctl_usage_fail ("vm", "vm attach: missing BDF");
    }
    json_object_object_add (p, "devices", a);
    if (managed)
      json_object_object_add (p, "managed", json_object_new_boolean (TRUE));
    return simple_call (ctl, "vm.attach", p, print_vm);
  }
  if (strcmp (sub, "detach") == 0 && argc == 4) {
    json_object *p = ifb_ctl_vm_param (argv[2]);
    json_object_object_add (p, "device", json_object_new_string (argv[3]));
    return simple_call (ctl, "vm.detach", p, print_vm);
  }
  if (!g_strv_contains ((const char *const[]) { "list", "show", "destroy", "fds", "create", "attach", "detach", NULL }, sub))
    return ifb_ctl_usage_fail ("vm", "vm: unknown subcommand '%s'", sub);
  return ifb_ctl_usage_fail ("vm", "vm %s: wrong arguments", sub);
}
