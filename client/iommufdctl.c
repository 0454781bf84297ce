/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iommufdctl: the operator's command line for iommufd-broker.
 *
 * Theory of operation
 *
 * The global options (--json, --socket PATH, --help, --version) may stand anywhere on the line,
 * as with systemctl or virsh: main() takes them out first and hands the command the rest. Two
 * things end that search, because what follows belongs to someone else: "--", and for `exec` the
 * VMM's command line (its first word that is not one of exec's own options). Usage errors print
 * "iommufdctl: <what was wrong>" on stderr first, then the usage of the command concerned, and
 * exit 2. Every command's usage text lives in the table below; `iommufdctl help CMD` and
 * `CMD --help` print it, and the man page iommufdctl(1) is checked against it by a test.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "errors.h"
#include "ifb-config.h"
#include "json.h"
#include "util.h"

static int cmd_help (IfbCtl *ctl, int argc, char **argv);

static const IfbCtlCommand commands[] = {
  { "status", "", "Broker version, backend, accounting, counts and limits", ifb_ctl_cmd_status,
    "Usage: iommufdctl status\n\n"
    "The broker's version, backend (kernel or emulated, and why), whether the memory controller is\n"
    "on cgroup2, how workers are placed, counts and limits (broker.info).\n" },
  { "devices", "", "PCI devices, their IOMMU, whether they can nest, and their owner", ifb_ctl_cmd_devices,
    "Usage: iommufdctl devices\n\n"
    "Every PCI device the backend's sysfs shows: BDF, driver, vfio cdev, IOMMU group, IOMMU type,\n"
    "whether it can be a nesting parent and track dirty pages, and the guest that owns it (device.list).\n" },
  { "vm", "list|show|create|attach|detach|destroy|fds ...", "Manage guests (iommufdctl help vm)", ifb_ctl_cmd_vm,
    "Usage: iommufdctl vm list\n"
    "       iommufdctl vm show NAME\n"
    "       iommufdctl vm create NAME (--cgroup PATH | --pid PID) [--uuid UUID] [--handoff unbound|bound]\n"
    "                                 [--no-nest-parent] [--allow-plain] [--dirty-tracking] [--defer]\n"
    "                                 [--rlimit-per-process=yes|no] [--memory-mib MIB]\n"
    "                                 [--viommu TYPE [--veventq-depth N]]\n"
    "         --memory-mib the guest's memory: vm fds raises its VMM's RLIMIT_MEMLOCK to it + 1 GiB\n"
    "         --handoff unbound (default): the VMM gets unbound device fds and binds them itself (QEMU,\n"
    "                   libvirt, cloud-hypervisor); bound: the broker binds and allocates the\n"
    "                   NEST_PARENT HWPTs, the VMM gets bound fds plus ids\n"
    "         --viommu  (bound) a vIOMMU of TYPE (arm-smmuv3, tegra241-cmdqv, selftest) on the first\n"
    "                   device's NEST_PARENT, and a vDEVICE per device: attach them one at a time,\n"
    "                   each with its virtual id; --veventq-depth N adds its vEVENTQ\n"
    "       iommufdctl vm attach NAME BDF [BDF...] [--managed]\n"
    "         --managed: take the devices from their host drivers (bound to vfio-pci) and give them back\n"
    "                    when they leave the guest; only devices [devices] allow offers\n"
    "       iommufdctl vm attach NAME BDF --virt-id N   (a guest with a vIOMMU: the device's virtual id)\n"
    "       iommufdctl vm detach NAME BDF\n"
    "       iommufdctl vm destroy NAME\n"
    "       iommufdctl vm fds NAME      receive the guest's fds and show what arrived\n"
    "A guest is named by its NAME, or by its UUID as uuid:UUID.\n" },
  { "events", "", "Follow guest and device events until interrupted", ifb_ctl_cmd_events,
    "Usage: iommufdctl events\n\n"
    "Subscribe to the broker's events (vm.created, vm.ready, vm.reclaimed, vm.destroyed,\n"
    "device.attached, device.detached, device.returned) and print one line each until interrupted; with --json\n"
    "one JSON object each.\n" },
  { "metrics", "", "The broker's metrics in the OpenMetrics text format", ifb_ctl_cmd_metrics,
    "Usage: iommufdctl metrics\n\n"
    "Print the broker's metrics in the OpenMetrics text format (what [metrics] textfile= writes\n"
    "for node_exporter's textfile collector); with --json the reply object that carries them.\n" },
  { "exec", "--vm NAME -- CMD [ARGS...]", "Run a VMM with the guest's fds (placeholders %{iommufd}, %{dev:BDF})", ifb_ctl_cmd_exec,
    "Usage: iommufdctl exec (--vm NAME | --vm-from-argv) [--] CMD [ARGS...]\n\n"
    "Fetch the guest's fds (vm.fds), replace the placeholders in ARGS and exec CMD with those fds open.\n"
    "  --vm NAME        the guest\n"
    "  --vm-from-argv   the guest named by QEMU's -name guest=NAME in ARGS (for a libvirt <emulator>)\n"
    "Placeholders in ARGS: %{iommufd} %{ioas} %{dev:BDF} %{devid:BDF} %{hwpt:BDF} %{viommu} %{vdev:BDF}\n"
    "%{veventq}, %%{ for a literal %{\n" },
  { "libvirt-start", "DOMAIN [--connect URI]", "Start a libvirt >= 12.2 domain on the broker's iommufd", ifb_ctl_cmd_libvirt_start,
    "Usage: iommufdctl libvirt-start DOMAIN [--connect URI]\n\n"
    "Start a libvirt domain whose XML has <iommufd enabled='yes' fdgroup='iommufd-broker'/> (libvirt >= 12.2):\n"
    "create its guest (vm.create), fetch the guest's iommufd (vm.fds), associate it with the domain under\n"
    "the fd group 'iommufd-broker' (virDomainFDAssociate) and start the domain on the same connection;\n"
    "a failed association or start destroys the guest again. The hook then places the guest in the\n"
    "domain's cgroup and reserves its <hostdev>s.\n"
    "  --connect URI   the libvirt connection (default: libvirt's default URI)\n" },
  { "help", "[COMMAND]", "Show the usage of iommufdctl or of one command", cmd_help,
    "Usage: iommufdctl help [COMMAND]\n" },
  { NULL },
};

static GPtrArray *text_pool;

static const IfbCtlCommand *
find_command (const char *name)
{
  for (const IfbCtlCommand *c = commands; c->name; c++)
    if (strcmp (c->name, name) == 0)
      return c;
  return NULL;
}

static void
usage (FILE *f)
{
  fprintf (f, "Usage: iommufdctl [--socket PATH] [--json] COMMAND [ARGS...]\n\n"
              "  --socket PATH  the broker's socket (default $IOMMUFD_BROKER_SOCKET or %s)\n"
              "  --json         print results as JSON\n"
              "  --help, -h     show this help, or with a COMMAND its usage\n"
              "  --version      print the version\n"
              "Global options may stand anywhere on the line (before \"--\").\n\nCommands:\n", IFB_DEFAULT_SOCKET);
  for (const IfbCtlCommand *c = commands; c->name; c++)
    fprintf (f, "  %-8s %-42s %s\n", c->name, c->args, c->help);
  fprintf (f, "\nExit status: 0 ok, 1 the call failed, 2 usage error.\n");
}

void
ifb_ctl_command_usage (FILE *f, const char *name)
{
  const IfbCtlCommand *c = find_command (name);
  if (c)
    fputs (c->usage, f);
  else
    usage (f);
}

static int
verror (const char *command, const char *fmt, va_list ap)
{
  fputs ("iommufdctl: ", stderr);
  vfprintf (stderr, fmt, ap);
  fputs ("\n", stderr);
  if (command) {
    fputs ("\n", stderr);
    ifb_ctl_command_usage (stderr, command);
  }
  return IFB_EXIT_USAGE;
}

int
ifb_ctl_usage_error (const char *fmt, ...)
{
  va_list ap;
  int r;
  va_start (ap, fmt);
  r = verror (NULL, fmt, ap);
  va_end (ap);
  return r;
}

int
ifb_ctl_usage_fail (const char *command, const char *fmt, ...)
{
  va_list ap;
  int r;
  va_start (ap, fmt);
  r = verror (command, fmt, ap);
  va_end (ap);
  return r;
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

static int
cmd_help (IfbCtl *ctl, int argc, char **argv)
{
  if (argc == 1) {
    usage (stdout);
    return IFB_EXIT_OK;
  }
  if (argc > 2)
    return ifb_ctl_usage_fail ("help", "help takes at most one COMMAND");
  if (!find_command (argv[1]))
    return ifb_ctl_usage_fail ("help", "help: unknown command '%s'", argv[1]);
  ifb_ctl_command_usage (stdout, argv[1]);
  return IFB_EXIT_OK;
}

typedef enum { GLOBAL_NONE, GLOBAL_HELP, GLOBAL_VERSION, GLOBAL_BAD } GlobalAction;

/*
 * Take the global options out of argv (anywhere before "--" or exec's CMD); argv keeps the
 * program name, the command and its own arguments in order. *ret_bad is the unknown option
 * found before the command, if any (after the command, unknown options are the command's).
 */
static GlobalAction
take_global_options (IfbCtl *ctl, int *argc, char **argv, const char **ret_bad)
{
  GlobalAction action = GLOBAL_NONE;
  const char *command = NULL;
  gboolean verbatim = FALSE;
  int out = 1;

  for (int i = 1; i < *argc; i++) {
    const char *a = argv[i];

    if (verbatim) {
      argv[out++] = argv[i];
      continue;
    }
    if (strcmp (a, "--") == 0) {
      verbatim = TRUE;
      argv[out++] = argv[i];
      continue;
    }
    if (strcmp (a, "--json") == 0) {
      ctl->json = TRUE;
    } else if (strcmp (a, "--socket") == 0 && i + 1 < *argc) {
      ctl->socket_path = argv[++i];
    } else if (g_str_has_prefix (a, "--socket=")) {
      ctl->socket_path = a + 9;
    } else if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0) {
      if (action == GLOBAL_NONE)
        action = GLOBAL_HELP;
    } else if (strcmp (a, "--version") == 0) {
      if (action == GLOBAL_NONE)
        action = GLOBAL_VERSION;
    } else if (a[0] == '-' && !command) {
      if (action == GLOBAL_NONE) {
        action = GLOBAL_BAD;
        *ret_bad = a;
      }
    } else {
      argv[out++] = argv[i];
      if (!command) {
        command = a;
      } else if (strcmp (command, "exec") == 0) {
        /* exec's own options come first; its first other word starts the VMM's command line */
        if (strcmp (a, "--vm") == 0 && i + 1 < *argc)
          argv[out++] = argv[++i];
        else if (a[0] != '-')
          verbatim = TRUE;
      }
    }
  }
  argv[out] = NULL;
  *argc = out;
  return action;
}

int
main (int argc, char **argv)
{
  IfbCtl ctl = { .socket_path = g_getenv ("IOMMUFD_BROKER_SOCKET") };
  const IfbCtlCommand *c;
  const char *bad = NULL;
  GlobalAction action;
  int r;

  action = take_global_options (&ctl, &argc, argv, &bad);
  ctl.socket_chosen = ctl.socket_path && *ctl.socket_path;
  if (!ctl.socket_chosen)
    ctl.socket_path = IFB_DEFAULT_SOCKET;
  switch (action) {
  case GLOBAL_BAD:
    r = ifb_ctl_usage_error ("unknown option '%s'", bad);
    fputs ("\n", stderr);
    usage (stderr);
    return r;
  case GLOBAL_VERSION:
    printf ("iommufdctl %s\n", IFB_VERSION);
    return IFB_EXIT_OK;
  case GLOBAL_HELP:
    if (argc > 1 && find_command (argv[1]))
      ifb_ctl_command_usage (stdout, argv[1]);
    else
      usage (stdout);
    return IFB_EXIT_OK;
  case GLOBAL_NONE:
    break;
  }
  if (argc < 2) {
    r = ifb_ctl_usage_error ("missing COMMAND");
    fputs ("\n", stderr);
    usage (stderr);
    return r;
  }
  if (!(c = find_command (argv[1]))) {
    r = ifb_ctl_usage_error ("unknown command '%s'", argv[1]);
    fputs ("\n", stderr);
    usage (stderr);
    return r;
  }
  r = c->func (&ctl, argc - 1, argv + 1);
  g_clear_pointer (&text_pool, g_ptr_array_unref);
  return r;
}
