/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The parts of the libvirt hook that need no XML parser: stdin, the socket, calls, started and
 * release. hook-front.c uses only these, so the common operations never load libxml2. */
#pragma once

#include <glib.h>
#include <json-c/json.h>

#include "rpc-client.h"

#define IFB_HOOK_PREFIX "iommufd-broker: "

/* All of stdin; more than 16 MiB is an error (never a truncated XML). */
char *ifb_hook_read_stdin (size_t *ret_len, GError **error);
/* The domain's UUID from its XML (the first <uuid>, which libvirt writes before anything a user
 * fills), or NULL. Needs no XML parser. */
char *ifb_hook_domain_uuid (const char *xml, size_t len);
/* The broker's config file: $IOMMUFD_BROKER_CONFIG, else IFB_CONFIG_FILE. */
const char *ifb_hook_config_path (void);
/* A non-empty value from it, or NULL (no file, no key, empty). */
char *ifb_hook_config_get (const char *group, const char *key);
/* $IOMMUFD_BROKER_SOCKET, else [broker] socket of the broker's config file, else the default. */
char *ifb_hook_socket_path (void);
/* "iommufd-broker: WHAT: message" on stderr; returns 1. */
int ifb_hook_fail (const char *what, const GError *error);
gboolean ifb_hook_call (IfbRpcClient *c, const char *method, json_object *params, json_object **ret, GError **error);
/* {"vm": name, "uuid": uuid}: the broker's guest must have both (uuid NULL: the name alone). */
json_object *ifb_hook_vm_param (const char *name, const char *uuid);
/* vm.started with QEMU's pid from /run/libvirt/qemu/NAME.pid. */
gboolean ifb_hook_started (IfbRpcClient *c, const char *name, const char *uuid, GError **error);
/* vm.destroy, a guest the broker does not know being fine. Always 0: nothing to abort. */
int ifb_hook_release (IfbRpcClient *c, const char *name, const char *uuid);
