/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iommufdctl's shared pieces: the global options, the command table type, and calling the
 * broker with errors printed the same way everywhere. Exit codes: 0 ok, 1 the call failed,
 * 2 usage.
 */
#pragma once

#include <stdio.h>
#include <glib.h>
#include <json-c/json.h>

#include "fdlist.h"
#include "rpc-client.h"

#define IFB_EXIT_OK 0
#define IFB_EXIT_FAILED 1
#define IFB_EXIT_USAGE 2

typedef struct {
  const char *socket_path;
  gboolean socket_chosen;       /* by --socket or IOMMUFD_BROKER_SOCKET, not the default */
  gboolean json;
} IfbCtl;

typedef int (*IfbCtlFunc) (IfbCtl *ctl, int argc, char **argv);

typedef struct {
  const char *name;
  const char *args;
  const char *help;
  IfbCtlFunc func;
  const char *usage;            /* what `iommufdctl help NAME` prints */
} IfbCtlCommand;

/* Print "iommufdctl: <msg>" on stderr and return IFB_EXIT_USAGE. */
int ifb_ctl_usage_error (const char *fmt, ...) G_GNUC_PRINTF (1, 2);
/* The same, then the usage of command on stderr (the error first, so it is not scrolled away). */
int ifb_ctl_usage_fail (const char *command, const char *fmt, ...) G_GNUC_PRINTF (2, 3);
/* Print command's usage text (the table's) to f. */
void ifb_ctl_command_usage (FILE *f, const char *command);
/* Connect; on failure print the error and return NULL. */
IfbRpcClient *ifb_ctl_connect (IfbCtl *ctl);
/* Call method; on failure print "iommufdctl: <method>: <message> [name, errno]" and return FALSE. */
gboolean ifb_ctl_call (IfbCtl *ctl, IfbRpcClient *c, const char *method, json_object *params,
                       json_object **ret_result, IfbFdList **ret_fds);
/* Print a result as pretty JSON (for --json). */
void ifb_ctl_print_json (json_object *o);
/* A JSON value as display text ("-" for null/absent). Returned string is owned by a static pool
 * freed at exit: convenient for tables. */
const char *ifb_ctl_text (json_object *o, const char *key);

/* {"vm": NAME}, or {"uuid": UUID} for "uuid:UUID" (a name never stands for a UUID). */
json_object *ifb_ctl_vm_param (const char *vm);

int ifb_ctl_cmd_status (IfbCtl *ctl, int argc, char **argv);
int ifb_ctl_cmd_devices (IfbCtl *ctl, int argc, char **argv);
int ifb_ctl_cmd_events (IfbCtl *ctl, int argc, char **argv);
int ifb_ctl_cmd_metrics (IfbCtl *ctl, int argc, char **argv);
int ifb_ctl_cmd_vm (IfbCtl *ctl, int argc, char **argv);
int ifb_ctl_cmd_exec (IfbCtl *ctl, int argc, char **argv);
int ifb_ctl_cmd_libvirt_start (IfbCtl *ctl, int argc, char **argv);
