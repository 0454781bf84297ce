/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iommufdctl status, devices, events, metrics. */
#include <signal.h>
#include <stdio.h>

#include "ctl.h"
#include "json.h"
#include "table.h"
#include "util.h"

int
ifb_ctl_cmd_status (IfbCtl *ctl, int argc, char **argv)
{
  g_autoptr (IfbRpcClient) c = NULL;
  g_autoptr (json_object) r = NULL;
  json_object *acct, *counts, *workers, *limits;

  if (argc != 1)
    return ifb_ctl_usage_fail ("status", "status takes no arguments");
  if (!(c = ifb_ctl_connect (ctl)) || !ifb_ctl_call (ctl, c, "broker.info", NULL, &r, NULL))
    return IFB_EXIT_FAILED;
  if (ctl->json) {
    ifb_ctl_print_json (r);
    return IFB_EXIT_OK;
  }
  acct = ifb_json_get (r, "accounting");
  counts = ifb_json_get (r, "counts");
  workers = ifb_json_get (r, "workers");
  limits = ifb_json_get (r, "limits");
  printf ("Version:        %s\n", ifb_ctl_text (r, "version"));
  printf ("Backend:        %s (%s)\n", ifb_ctl_text (r, "backend"), ifb_ctl_text (r, "backend_reason"));
  printf ("Guests:         %s (devices %s, connections %s)\n", ifb_ctl_text (counts, "vms"),
          ifb_ctl_text (counts, "devices"), ifb_ctl_text (counts, "connections"));
  printf ("Hand-off:       %s by default\n", ifb_ctl_text (ifb_json_get (r, "defaults"), "handoff"));
  printf ("Workers:        %s, %s spawned\n", ifb_ctl_text (workers, "placement"), ifb_ctl_text (workers, "spawned"));
  printf ("cgroup2:        %s (daemon in %s)\n", ifb_ctl_text (acct, "cgroup2_mount"), ifb_ctl_text (acct, "daemon_cgroup"));
  printf ("Accounting:     %s\n", ifb_ctl_text (acct, "note"));
  printf ("Limits:         %s guests, %s devices/guest, frame %s bytes, %s connections (%s per uid)\n",
          ifb_ctl_text (limits, "max_vms"), ifb_ctl_text (limits, "max_devices_per_vm"), ifb_ctl_text (limits, "max_frame"),
          ifb_ctl_text (limits, "max_connections"), ifb_ctl_text (limits, "max_connections_per_uid"));
  printf ("libvirt:        %s\n", ifb_json_get (r, "libvirt") ? ifb_ctl_text (r, "libvirt") : "not watched");
  return IFB_EXIT_OK;
}

int
ifb_ctl_cmd_devices (IfbCtl *ctl, int argc, char **argv)
{
  g_autoptr (IfbRpcClient) c = NULL;
  g_autoptr (json_object) r = NULL;
  g_autoptr (IfbTable) t = NULL;
  json_object *devs;

  if (argc != 1)
    return ifb_ctl_usage_fail ("devices", "devices takes no arguments");
  if (!(c = ifb_ctl_connect (ctl)) || !ifb_ctl_call (ctl, c, "device.list", NULL, &r, NULL))
    return IFB_EXIT_FAILED;
  if (ctl->json) {
    ifb_ctl_print_json (r);
    return IFB_EXIT_OK;
  }
  t = ifb_table_new ("DEVICE", "DRIVER", "CDEV", "GROUP", "IOMMU", "NEST", "DIRTY", "OWNER", "RETURNS-TO", NULL);
  devs = ifb_json_get (r, "devices");
  for (size_t i = 0; devs && i < json_object_array_length (devs); i++) {
    json_object *d = json_object_array_get_idx (devs, i);
    json_object *hw = ifb_json_get (d, "hw_info");
    json_object *m = ifb_json_get (d, "managed");
    /* a managed device: the driver it goes back to, and where it is on its way */
    g_autofree char *returns = m ? g_strdup_printf ("%s (%s)", *ifb_ctl_text (m, "driver") ? ifb_ctl_text (m, "driver")
                                                                                          : "no driver",
                                                    ifb_ctl_text (m, "state"))
                                 : g_strdup ("-");
    ifb_table_add_row (t, ifb_ctl_text (d, "device"), ifb_ctl_text (d, "driver"), ifb_ctl_text (d, "cdev"),
                       ifb_ctl_text (d, "iommu_group"), ifb_ctl_text (d, "iommu"), ifb_ctl_text (d, "nest_parent_capable"),
                       hw ? ifb_ctl_text (hw, "dirty_tracking") : "-", ifb_ctl_text (d, "owner"), returns);
  }
  ifb_table_print (t);
  return IFB_EXIT_OK;
}

int
ifb_ctl_cmd_events (IfbCtl *ctl, int argc, char **argv)
{
  g_autoptr (IfbRpcClient) c = NULL;
  g_autoptr (json_object) r = NULL;

  if (argc != 1)
    return ifb_ctl_usage_fail ("events", "events takes no arguments");
  if (!(c = ifb_ctl_connect (ctl)) || !ifb_ctl_call (ctl, c, "events.subscribe", NULL, &r, NULL))
    return IFB_EXIT_FAILED;
  setvbuf (stdout, NULL, _IOLBF, 0);
  for (;;) {
    g_autoptr (json_object) n = NULL;
    g_autoptr (GError) error = NULL;
    json_object *p;

    if (!ifb_rpc_client_next (c, &n, &error)) {
      fprintf (stderr, "iommufdctl: events: %s\n", error->message);
      return IFB_EXIT_FAILED;
    }
    p = ifb_json_get (n, "params");
    if (ctl->json) {
      printf ("%s\n", json_object_to_json_string_ext (p, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
      continue;
    }
    {
      g_autoptr (GDateTime) now = g_date_time_new_now_local ();
      g_autofree char *ts = g_date_time_format (now, "%H:%M:%S");
      const char *vm = ifb_json_get_string (p, "vm");
      printf ("%s %-16s vm=%s%s%s\n", ts, ifb_ctl_text (p, "event"),
              vm ? vm : ifb_ctl_text (p, "name"),
              ifb_json_get (p, "device") ? " device=" : "", ifb_json_get (p, "device") ? ifb_ctl_text (p, "device") : "");
    }
  }
}

int
ifb_ctl_cmd_metrics (IfbCtl *ctl, int argc, char **argv)
{
  g_autoptr (IfbRpcClient) c = NULL;
  g_autoptr (json_object) r = NULL;
  const char *text;

  if (argc != 1)
    return ifb_ctl_usage_fail ("metrics", "metrics takes no arguments");
  if (!(c = ifb_ctl_connect (ctl)) || !ifb_ctl_call (ctl, c, "metrics", NULL, &r, NULL))
    return IFB_EXIT_FAILED;
  if (ctl->json) {
    ifb_ctl_print_json (r);
    return IFB_EXIT_OK;
  }
  if (!(text = ifb_json_get_string (r, "text"))) {
    fprintf (stderr, "iommufdctl: metrics: the broker's reply has no 'text'\n");
    return IFB_EXIT_FAILED;
  }
  fputs (text, stdout);
  return IFB_EXIT_OK;
}
