/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define G_LOG_DOMAIN "ifb-state"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "fault.h"
#include "json.h"
#include "state.h"
#include "util.h"

static int
open_state_dir (int runtime_dirfd, gboolean create)
{
  int fd;
  if (create && mkdirat (runtime_dirfd, IFB_STATE_DIR, 0700) < 0 && errno != EEXIST)
    return -errno;
  fd = openat (runtime_dirfd, IFB_STATE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

static gboolean
write_all (int fd, const char *text, size_t len)
{
  size_t off = 0;
  while (off < len) {
    ssize_t n = write (fd, text + off, len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return FALSE;
    off += (size_t) n;
  }
  return TRUE;
}

gboolean
ifb_state_save_vm (int runtime_dirfd, const IfbVm *vm, GError **error)
{
  g_autoptr (json_object) root = json_object_new_object ();
  g_autofree char *name = g_strdup_printf ("%s.json", vm->uuid);
  g_autofree char *tmp = g_strdup_printf ("%s.json.tmp", vm->uuid);
  ifb_autofd int dirfd = -1, fd = -1;
  const char *text;
  size_t len;
  int r;

  if ((r = ifb_fault_check ("state-write")))
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, r, "Writing the state of guest '%s'", vm->name);
  if ((dirfd = open_state_dir (runtime_dirfd, TRUE)) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, dirfd, "Opening the state directory");

  json_object_object_add (root, "version", json_object_new_int (IFB_STATE_VERSION));
  json_object_object_add (root, "vm", ifb_vm_to_json (vm, TRUE));
  text = json_object_to_json_string_length (root, JSON_C_TO_STRING_PLAIN, &len);

  fd = openat (dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Creating %s", tmp);
  if (!write_all (fd, text, len) || fsync (fd) < 0) {
    int e = errno;
    unlinkat (dirfd, tmp, 0);
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -e, "Writing %s", tmp);
  }
  if (renameat (dirfd, tmp, dirfd, name) < 0) {
    int e = errno;
    unlinkat (dirfd, tmp, 0);
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -e, "Replacing %s", name);
  }
  fsync (dirfd);
  return TRUE;
}

gboolean
ifb_state_remove_vm (int runtime_dirfd, const char *uuid, GError **error)
{
  g_autofree char *name = g_strdup_printf ("%s.json", uuid);
  ifb_autofd int dirfd = open_state_dir (runtime_dirfd, FALSE);

  if (dirfd == -ENOENT)
    return TRUE;
  if (dirfd < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, dirfd, "Opening the state directory");
  if (unlinkat (dirfd, name, 0) < 0 && errno != ENOENT)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Removing %s", name);
  fsync (dirfd);
  return TRUE;
}

static IfbVm *
load_one (int dirfd, const char *name, GError **error)
{
  g_autoptr (GString) text = g_string_new (NULL);
  g_autoptr (json_object) root = NULL;
  ifb_autofd int fd = openat (dirfd, name, O_RDONLY | O_CLOEXEC);
  char buf[16384];
  gint64 version;
  ssize_t n;

  if (fd < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Opening %s", name), NULL;
  while ((n = read (fd, buf, sizeof (buf))) > 0)
    g_string_append_len (text, buf, n);
  if (n < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Reading %s", name), NULL;
  root = ifb_json_parse (text->str, text->len, 16, error);
  if (!root)
    return g_prefix_error (error, "%s: ", name), NULL;
  if (!ifb_json_get_int (root, "version", &version) || version != IFB_STATE_VERSION)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_FAILED, "%s: unsupported version", name), NULL;
  {
    IfbVm *vm = ifb_vm_from_json (ifb_json_get (root, "vm"), error);
    if (!vm)
      return g_prefix_error (error, "%s: ", name), NULL;
    if (!g_str_has_prefix (name, vm->uuid)) {
      ifb_vm_free (vm);
      return g_set_error (error, IFB_ERROR, IFB_ERROR_FAILED, "%s: holds another guest's UUID", name), NULL;
    }
    return vm;
  }
}

static int
cmp_name (gconstpointer a, gconstpointer b)
{
  return strcmp ((*(IfbVm *const *) a)->name, (*(IfbVm *const *) b)->name);
}

gboolean
ifb_state_load (int runtime_dirfd, GPtrArray **ret_vms, GError **error)
{
  g_autoptr (GPtrArray) vms = g_ptr_array_new_with_free_func ((GDestroyNotify) ifb_vm_free);
  int dirfd = open_state_dir (runtime_dirfd, FALSE);
  DIR *d;
  struct dirent *e;

  if (dirfd == -ENOENT) {
    *ret_vms = g_steal_pointer (&vms);
    return TRUE;
  }
  if (dirfd < 0 || !(d = fdopendir (dirfd))) {
    int r = dirfd < 0 ? dirfd : -errno;
    ifb_close (dirfd);
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, r, "Opening the state directory");
  }
  while ((e = readdir (d))) {
    IfbVm *vm;
    if (e->d_name[0] == '.')
      continue;
    if (g_str_has_suffix (e->d_name, ".tmp")) {   /* a write a crash interrupted: the old file stands */
      unlinkat (dirfd, e->d_name, 0);
      continue;
    }
    if (!g_str_has_suffix (e->d_name, ".json"))
      continue;
    if (!(vm = load_one (dirfd, e->d_name, error))) {
      closedir (d);
      return g_prefix_error (error, "%s/", IFB_STATE_DIR), FALSE;
    }
    g_ptr_array_add (vms, vm);
  }
  closedir (d);
  g_ptr_array_sort (vms, cmp_name);
  *ret_vms = g_steal_pointer (&vms);
  return TRUE;
}
