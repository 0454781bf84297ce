/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define G_LOG_DOMAIN "ifb-state"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "errors.h"
#include "fault.h"
#include "json.h"
#include "state.h"
#include "util.h"

#define STATE_FILE "registry.json"
#define STATE_TMP "registry.json.tmp"

gboolean
ifb_state_save (IfbRegistry *r, int runtime_dirfd, GError **error)
{
  g_autoptr (json_object) root = json_object_new_object ();
  g_autoptr (GPtrArray) vms = ifb_registry_list (r);
  json_object *arr = json_object_new_array ();
  ifb_autofd int fd = -1;
  const char *text;
  size_t len, off = 0;
  int f;

  if ((f = ifb_fault_check ("state-write")))
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, f, "Writing the registry");

  json_object_object_add (root, "version", json_object_new_int (IFB_STATE_VERSION));
  for (guint i = 0; i < vms->len; i++)
    json_object_array_add (arr, ifb_vm_to_json (g_ptr_array_index (vms, i), TRUE));
  json_object_object_add (root, "vms", arr);
  text = json_object_to_json_string_length (root, JSON_C_TO_STRING_PLAIN, &len);

  fd = openat (runtime_dirfd, STATE_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Creating %s", STATE_TMP);
  while (off < len) {
    ssize_t n = write (fd, text + off, len - off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Writing %s", STATE_TMP);
    }
    off += (size_t) n;
  }
  if (fsync (fd) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "fsync %s", STATE_TMP);
  if (renameat (runtime_dirfd, STATE_TMP, runtime_dirfd, STATE_FILE) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Replacing %s", STATE_FILE);
  fsync (runtime_dirfd);
  return TRUE;
}

gboolean
ifb_state_load (int runtime_dirfd, GPtrArray **ret_vms, GError **error)
{
  g_autoptr (GPtrArray) vms = g_ptr_array_new_with_free_func ((GDestroyNotify) ifb_vm_free);
  g_autoptr (json_object) root = NULL;
  g_autoptr (GString) text = g_string_new (NULL);
  ifb_autofd int fd = -1;
  json_object *arr;
  gint64 version;
  char buf[65536];
  ssize_t n;

  fd = openat (runtime_dirfd, STATE_FILE, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      *ret_vms = g_steal_pointer (&vms);
      return TRUE;
    }
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Opening %s", STATE_FILE);
  }
  while ((n = read (fd, buf, sizeof (buf))) > 0)
    g_string_append_len (text, buf, n);
  if (n < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Reading %s", STATE_FILE);

  root = ifb_json_parse (text->str, text->len, 16, error);
  if (!root)
    return g_prefix_error (error, "%s: ", STATE_FILE), FALSE;
  if (!ifb_json_get_int (root, "version", &version) || version != IFB_STATE_VERSION)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_FAILED, "%s: unsupported version", STATE_FILE), FALSE;
  arr = ifb_json_get (root, "vms");
  if (!arr || !json_object_is_type (arr, json_type_array))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_FAILED, "%s: no 'vms' array", STATE_FILE), FALSE;
  for (size_t i = 0; i < json_object_array_length (arr); i++) {
    IfbVm *vm = ifb_vm_from_json (json_object_array_get_idx (arr, i), error);
    if (!vm)
      return g_prefix_error (error, "%s: ", STATE_FILE), FALSE;
    g_ptr_array_add (vms, vm);
  }
  *ret_vms = g_steal_pointer (&vms);
  return TRUE;
}
