/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iommufdctl: the operator's command line for iommufd-broker. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "errors.h"
#include "ifb-config.h"
#include "json.h"
#include "util.h"

static const IfbCtlCommand commands[] = {
  { "status", "", "Broker version, backend, accounting, counts and limits", ifb_ctl_cmd_status },
  { "devices", "", "PCI devices, their IOMMU, whether they can nest, and their owner", ifb_ctl_cmd_devices },
  { "vm", "list|show|create|attach|detach|destroy|fds ...", "Manage guests (iommufdctl vm --help)", ifb_ctl_cmd_vm },
  { "events", "", "Follow guest and device events until interrupted", ifb_ctl_cmd_events },
  { "exec", "--vm NAME -- CMD [ARGS...]", "Run a VMM with the guest's fds (placeholders %{iommufd}, %{dev:BDF})", ifb_ctl_cmd_exec },
  { NULL },
};

static GPtrArray *text_pool;

static void
usage (FILE *f)
{
  fprintf (f, "Usage: iommufdctl [--socket PATH] [--json] COMMAND [ARGS...]\n\n"
              "  --socket PATH  the broker's socket (default $IOMMUFD_BROKER_SOCKET or %s)\n"
              "  --json         print results as JSON\n\nCommands:\n", IFB_DEFAULT_SOCKET);
  for (const IfbCtlCommand *c = commands; c->name; c++)
    fprintf (f, "  %-8s %-42s %s\n", c->name, c->args, c->help);
  fprintf (f, "\nExit status: 0 ok, 1 the call failed, 2 usage error.\n");
}

int
ifb_ctl_usage_error (const char *fmt, ...)
{
  va_list ap;
  fputs ("iommufdctl: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputs ("\n", stderr);
  return IFB_EXIT_USAGE;
}

IfbRpcClient *
ifb_ctl_connect (IfbCtl *ctl)
{
  g_autoptr (GError) error = NULL;
  IfbRpcClient *c = ifb_rpc_client_connect (ctl->socket_path, &error);
  if (!c)
    fprintf (stderr, "iommufdctl: %s\n", error->message);
  return c;
}

gboolean
ifb_ctl_call (IfbCtl *ctl, IfbRpcClient *c, const char *method, json_object *params,
              json_object **ret_result, IfbFdList **ret_fds)
{
  g_autoptr (GError) error = NULL;
  if (ifb_rpc_client_call (c, method, params, NULL, ret_result, ret_fds, &error))
    return TRUE;
  {
    int errnum = ifb_error_get_errno (error);
    const char *en = errnum ? ifb_errno_to_name (errnum) : NULL;
    fprintf (stderr, "iommufdctl: %s: %s [%s%s%s]\n", method, error->message,
             error->domain == IFB_ERROR ? ifb_error_to_name (error->code) : "failed", en ? ", " : "", en ? en : "");
  }
  return FALSE;
}

void
ifb_ctl_print_json (json_object *o)
{
  printf ("%s\n", json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE));
}

const char *
ifb_ctl_text (json_object *o, const char *key)
{
  json_object *v = ifb_json_get (o, key);
  char *s;
  if (!v)
    return "-";
  if (json_object_is_type (v, json_type_boolean))
    return json_object_get_boolean (v) ? "yes" : "no";
  s = g_strdup (json_object_get_string (v));
  if (!text_pool)
    text_pool = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (text_pool, s);
  return s;
}

int
main (int argc, char **argv)
{
  IfbCtl ctl = { .socket_path = g_getenv ("IOMMUFD_BROKER_SOCKET") };
  int i = 1, r;

  if (!ctl.socket_path || !*ctl.socket_path)
    ctl.socket_path = IFB_DEFAULT_SOCKET;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp (argv[i], "--json") == 0)
      ctl.json = TRUE;
    else if (strcmp (argv[i], "--socket") == 0 && i + 1 < argc)
      ctl.socket_path = argv[++i];
    else if (g_str_has_prefix (argv[i], "--socket="))
      ctl.socket_path = argv[i] + 9;
    else if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0) {
      usage (stdout);
      return IFB_EXIT_OK;
    } else if (strcmp (argv[i], "--version") == 0) {
      printf ("iommufdctl %s\n", IFB_VERSION);
      return IFB_EXIT_OK;
    } else {
      usage (stderr);
      return ifb_ctl_usage_error ("unknown option '%s'", argv[i]);
    }
  }
  if (i >= argc) {
    usage (stderr);
    return IFB_EXIT_USAGE;
  }
  for (const IfbCtlCommand *c = commands; c->name; c++) {
    if (strcmp (c->name, argv[i]) == 0) {
      r = c->func (&ctl, argc - i, argv + i);
      g_clear_pointer (&text_pool, g_ptr_array_unref);
      return r;
    }
  }
  usage (stderr);
  return ifb_ctl_usage_error ("unknown command '%s'", argv[i]);
}
