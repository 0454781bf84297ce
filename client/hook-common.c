/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What both halves of the libvirt hook share (hook-front.c, hook.c): stdin, the socket, calls. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "hook-common.h"
#include "ifb-config.h"
#include "json.h"
#include "util.h"

#define MAX_XML (16u << 20)

char *
ifb_hook_read_stdin (size_t *ret_len, GError **error)
{
  g_autoptr (GString) s = g_string_new (NULL);
  char buf[65536];
  ssize_t n;

  while ((n = read (STDIN_FILENO, buf, sizeof (buf))) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Reading the domain XML from stdin"), NULL;
    }
    /* Refused, never cut: a truncated XML passed on (migrate, restore) would be a different domain. */
    if (s->len + (size_t) n > MAX_XML)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED,
                          "The domain XML on stdin is larger than %u MiB, which this hook refuses", MAX_XML >> 20), NULL;
    g_string_append_len (s, buf, n);
  }
  *ret_len = s->len;
  return g_string_free (g_steal_pointer (&s), FALSE);
}

char *
ifb_hook_domain_uuid (const char *xml, size_t len)
{
  /* libvirt writes <name> and <uuid> first in <domain>, before any element a user can fill. */
  const char *start = g_strstr_len (xml, (gssize) len, "<uuid>");
  const char *end;
  g_autofree char *uuid = NULL;

  if (!start)
    return NULL;
  start += strlen ("<uuid>");
  end = g_strstr_len (start, (gssize) (len - (size_t) (start - xml)), "</uuid>");
  if (!end)
    return NULL;
  uuid = g_strstrip (g_strndup (start, (size_t) (end - start)));
  return g_uuid_string_is_valid (uuid) ? g_steal_pointer (&uuid) : NULL;
}

const char *
ifb_hook_config_path (void)
{
  const char *conf = g_getenv ("IOMMUFD_BROKER_CONFIG");
  return conf && *conf ? conf : IFB_CONFIG_FILE;
}

char *
ifb_hook_config_get (const char *group, const char *key)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  char *s;

  if (g_key_file_load_from_file (kf, ifb_hook_config_path (), G_KEY_FILE_NONE, NULL) &&
      (s = g_key_file_get_string (kf, group, key, NULL))) {
    if (*s)
      return s;
    g_free (s);
  }
  return NULL;
}

char *
ifb_hook_socket_path (void)
{
  const char *env = g_getenv ("IOMMUFD_BROKER_SOCKET");
  char *s;

  if (env && *env)
    return g_strdup (env);
  if ((s = ifb_hook_config_get ("broker", "socket")))
    return s;
  return g_strdup (IFB_DEFAULT_SOCKET);
}

int
ifb_hook_fail (const char *what, const GError *error)
{
  fprintf (stderr, IFB_HOOK_PREFIX "%s%s%s\n", what ? what : "", what ? ": " : "", error->message);
  return 1;
}

gboolean
ifb_hook_call (IfbRpcClient *c, const char *method, json_object *params, json_object **ret, GError **error)
{
  g_autoptr (json_object) r = NULL;
  if (!ifb_rpc_client_call (c, method, params, NULL, &r, NULL, error))
    return FALSE;
  if (ret)
    *ret = g_steal_pointer (&r);
  return TRUE;
}

json_object *
ifb_hook_vm_param (const char *name, const char *uuid)
{
  json_object *p = json_object_new_object ();
  json_object_object_add (p, "vm", json_object_new_string (name));
  if (uuid)
    json_object_object_add (p, "uuid", json_object_new_string (uuid));
  return p;
}

static gboolean
read_pid (const char *name, gint64 *ret_pid, GError **error)
{
  const char *dir = g_getenv ("IFB_HOOK_LIBVIRT_QEMU_RUN_DIR");
  g_autofree char *path = g_strdup_printf ("%s/%s.pid", dir && *dir ? dir : "/run/libvirt/qemu", name);
  g_autofree char *text = NULL;
  g_autoptr (GError) local = NULL;
  char *end;
  gint64 pid;

  if (!g_file_get_contents (path, &text, NULL, &local))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_FAILED, "Reading QEMU's pid: %s", local->message), FALSE;
  pid = g_ascii_strtoll (g_strstrip (text), &end, 10);
  if (*end || pid <= 0 || pid > G_MAXINT32)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_FAILED, "%s does not hold a pid", path), FALSE;
  *ret_pid = pid;
  return TRUE;
}

gboolean
ifb_hook_started (IfbRpcClient *c, const char *name, const char *uuid, GError **error)
{
  json_object *p;
  gint64 pid;

  if (!read_pid (name, &pid, error))
    return FALSE;
  p = ifb_hook_vm_param (name, uuid);
  json_object_object_add (p, "pid", json_object_new_int64 (pid));
  return ifb_hook_call (c, "vm.started", p, NULL, error);
}

int
ifb_hook_release (IfbRpcClient *c, const char *name, const char *uuid)
{
  g_autoptr (GError) error = NULL;

  if (ifb_hook_call (c, "vm.destroy", ifb_hook_vm_param (name, uuid), NULL, &error) ||
      g_error_matches (error, IFB_ERROR, IFB_ERROR_NO_SUCH_VM))
    return 0;
  ifb_hook_fail (name, error);
  return 0;   /* nothing to abort at release; the watcher reconciles */
}

