/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A small blocking JSON-RPC client for iommufdctl, the libvirt hook and tests: one call at a
 * time, notifications that arrive in between are queued for ifb_rpc_client_next().
 */
#pragma once

#include <glib.h>
#include <json-c/json.h>

#include "fdlist.h"

typedef struct IfbRpcClient IfbRpcClient;

IfbRpcClient *ifb_rpc_client_connect (const char *socket_path, GError **error);
IfbRpcClient *ifb_rpc_client_free (IfbRpcClient *c);

/*
 * Call method with params (taken; NULL for none) and fds to send (taken; NULL for none). On
 * success *ret_result holds the result and *ret_fds (if asked) the fds that came with it.
 * A server error becomes an IFB_ERROR with the server's name, errno and message.
 */
gboolean ifb_rpc_client_call (IfbRpcClient *c, const char *method, json_object *params, IfbFdList *fds,
                              json_object **ret_result, IfbFdList **ret_fds, GError **error);

/* Wait for the next notification; FALSE with error at EOF. */
gboolean ifb_rpc_client_next (IfbRpcClient *c, json_object **ret_notification, GError **error);

int ifb_rpc_client_get_fd (IfbRpcClient *c);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbRpcClient, ifb_rpc_client_free)
