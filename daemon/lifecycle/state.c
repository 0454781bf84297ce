/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * Writing: one file per guest, replaced atomically (see state.h). Reading, at start-up, trusts
 * nothing in the runtime directory: the directory and each file are opened without following
 * symlinks; a file must be a regular file of at most IFB_STATE_MAX_SIZE bytes, parse, carry our
 * version and pass every field's check (names, UUID, cgroup paths, device addresses and cdevs,
 * indexes and ids in range, no device twice). Then across files (IfbStateSet): one name, one
 * fd-store slot and each device belong to one guest only, no guest's cgroup is equal to,
 * inside or above another's (a VMM is authorized by its cgroup) — the oldest keeps them — and
 * no more than [limits] max-vms guests. A file that fails is moved to guests/rejected/ with the reason in the
 * log, and every other guest is restored: one bad file never stops the daemon nor costs the
 * others. A guest quarantined this way keeps its file for the operator, never deleted.
 */
#define G_LOG_DOMAIN "ifb-state"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "errors.h"
#include "fault.h"
#include "json.h"
#include "device-kind.h"
#include "state.h"
#include "util.h"

static int
open_state_dir (int runtime_dirfd, gboolean create)
{
  int fd;
  if (create && mkdirat (runtime_dirfd, IFB_STATE_DIR, 0700) < 0 && errno != EEXIST)
    return -errno;
  fd = openat (runtime_dirfd, IFB_STATE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
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

  fd = openat (dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
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

static gboolean
optional_cgroup_is_valid (const char *path)
{
  return !path || ifb_cgroup_path_validate (path, NULL);
}

/* An integer member, when present, within lo..hi. */
static gboolean
int_in_range (json_object *o, const char *key, gint64 lo, gint64 hi)
{
  json_object *v = ifb_json_get (o, key);
  gint64 n;
  if (!v)
    return TRUE;
  if (!json_object_is_type (v, json_type_int))
    return FALSE;
  n = json_object_get_int64 (v);
  return n >= lo && n <= hi;
}

static gboolean
reject (GError **error, const char *what)
{
  return g_set_error_literal (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, what), FALSE;
}

/* Every field of one guest, beyond what ifb_vm_from_json() needs to build it. */
static gboolean
validate (json_object *jvm, const IfbVm *vm, GError **error)
{
  json_object *jdevs = ifb_json_get (jvm, "devices");
  g_autofree char *lower = g_ascii_strdown (vm->uuid, -1);

  if (!ifb_vm_name_validate (vm->name, NULL))
    return reject (error, "invalid guest name");
  if (!g_uuid_string_is_valid (vm->uuid) || strcmp (lower, vm->uuid) != 0)
    return reject (error, "invalid UUID (lower-case RFC 4122 text expected)");
  if (!vm->cgroup || !ifb_cgroup_path_validate (vm->cgroup, NULL))
    return reject (error, "missing or invalid cgroup path");
  if (strcmp (vm->cgroup, "/") == 0)
    return reject (error, "cgroup '/' (every process would pass the guest's cgroup check)");
  if (!optional_cgroup_is_valid (vm->ioas_cgroup))
    return reject (error, "invalid ioas_cgroup");
  if (!int_in_range (jvm, "ioas_id", 0, G_MAXUINT32) || !int_in_range (jvm, "vmm_pid", 0, G_MAXINT32) ||
      !int_in_range (jvm, "created_usec", 0, G_MAXINT64))
    return reject (error, "ioas_id, vmm_pid or created_usec out of range");
  if (ifb_json_get (jvm, "holders") && (!json_object_is_type (ifb_json_get (jvm, "holders"), json_type_array) ||
                                         json_object_array_length (ifb_json_get (jvm, "holders")) > 64))
    return reject (error, "holders is not a list of at most 64");
  if (!int_in_range (jvm, "vmm_exits", 0, G_MAXINT64))
    return reject (error, "vmm_exits out of range");
  if (vm->devices->len > IFB_VM_MAX_DEVICE_INDEX)
    return reject (error, "more devices than a guest can have");
  for (guint i = 0; i < vm->devices->len; i++) {
    const IfbVmDevice *d = g_ptr_array_index (vm->devices, i);
    json_object *jd = json_object_array_get_idx (jdevs, i);
    const char *state = ifb_json_get_string (jd, "state");

    if (!ifb_device_kind_of (d->bdf)->saved_valid (d->bdf, d->cdev))
      return reject (error, "invalid device address or cdev");
    if (!state || ifb_vm_device_state_from_string (state) == IFB_VM_DEVICE_STATE_INVALID)
      return reject (error, "invalid device state");
    if (!int_in_range (jd, "dev_id", 0, G_MAXUINT32) || !int_in_range (jd, "hwpt_id", 0, G_MAXUINT32) ||
        !int_in_range (jd, "worker_pid", 0, G_MAXINT32))
      return reject (error, "device ids out of range");
    if (!optional_cgroup_is_valid (d->cgroup))
      return reject (error, "invalid device cgroup");
    if (d->managed && !ifb_vm_driver_name_valid (d->host_driver))
      return reject (error, "invalid host driver of a managed device");
    for (guint j = 0; j < i; j++) {
      const IfbVmDevice *e = g_ptr_array_index (vm->devices, j);
      if (strcmp (d->bdf, e->bdf) == 0 || d->index == e->index)
        return reject (error, "a device (or device index) listed twice");
    }
  }
  return TRUE;
}

IfbVm *
ifb_state_parse (const char *text, size_t len, const char *expect_uuid, GError **error)
{
  g_autoptr (json_object) root = NULL;
  g_autoptr (IfbVm) vm = NULL;
  gint64 version;

  if (len > IFB_STATE_MAX_SIZE)
    return reject (error, "larger than any guest's state"), NULL;
  root = ifb_json_parse (text, len, 16, error);
  if (!root)
    return NULL;
  if (!json_object_is_type (root, json_type_object) || !ifb_json_get_int (root, "version", &version) ||
      version != IFB_STATE_VERSION)
    return reject (error, "unsupported version"), NULL;
  if (!json_object_is_type (ifb_json_get (root, "vm"), json_type_object))
    return reject (error, "no guest object"), NULL;
  vm = ifb_vm_from_json (ifb_json_get (root, "vm"), error);
  if (!vm || !validate (ifb_json_get (root, "vm"), vm, error))
    return NULL;
  if (expect_uuid && strcmp (expect_uuid, vm->uuid) != 0)
    return reject (error, "holds another guest's UUID than its file name"), NULL;
  return g_steal_pointer (&vm);
}

/* Read a regular file of at most IFB_STATE_MAX_SIZE bytes, never through a symlink. */
static char *
read_file (int dirfd, const char *name, size_t *ret_len, GError **error)
{
  ifb_autofd int fd = openat (dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  g_autofree char *buf = NULL;
  struct stat st;
  size_t off = 0;
  ssize_t n;

  if (fd < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "cannot be opened (a symlink?)"), NULL;
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
    return reject (error, "not a regular file"), NULL;
  if (st.st_size > IFB_STATE_MAX_SIZE)
    return reject (error, "larger than any guest's state"), NULL;
  buf = g_malloc (IFB_STATE_MAX_SIZE + 1);
  while ((n = read (fd, buf + off, IFB_STATE_MAX_SIZE + 1 - off)) > 0 && off + (size_t) n <= IFB_STATE_MAX_SIZE)
    off += (size_t) n;
  if (n < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "cannot be read"), NULL;
  if (n > 0)
    return reject (error, "larger than any guest's state"), NULL;
  buf[off] = 0;
  *ret_len = off;
  return g_steal_pointer (&buf);
}

/* Move a state file the daemon cannot trust out of the way, keeping it for the operator. */
static void
quarantine (int dirfd, const char *name, const char *why)
{
  ifb_autofd int rejfd = -1;

  if (mkdirat (dirfd, IFB_STATE_REJECTED_DIR, 0700) < 0 && errno != EEXIST)
    goto fail;
  rejfd = openat (dirfd, IFB_STATE_REJECTED_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (rejfd < 0 || renameat (dirfd, name, rejfd, name) < 0)
    goto fail;
  g_warning ("State file %s/%s moved to %s/%s/: %s; its guest is not restored", IFB_STATE_DIR, name,
             IFB_STATE_DIR, IFB_STATE_REJECTED_DIR, why);
  return;
fail:
  g_warning ("State file %s/%s cannot be trusted (%s) nor moved to %s/ (%s); its guest is not restored", IFB_STATE_DIR,
             name, why, IFB_STATE_REJECTED_DIR, g_strerror (errno));
}

/* ---- what guests may not share ----------------------------------------------------------- */

struct IfbStateSet {
  guint max_vms, n;
  GHashTable *names;            /* name -> IfbVm* */
  GHashTable *slots;            /* slot -> IfbVm* */
  GHashTable *owners;           /* bdf -> IfbVm* */
  GHashTable *cgroups;          /* cgroup -> IfbVm* */
  GHashTable *above;            /* every proper ancestor of a kept cgroup (owned) -> one IfbVm* below it */
};

IfbStateSet *
ifb_state_set_new (guint max_vms)
{
  IfbStateSet *s = g_new0 (IfbStateSet, 1);
  s->max_vms = max_vms;
  s->names = g_hash_table_new (g_str_hash, g_str_equal);
  s->slots = g_hash_table_new (g_direct_hash, g_direct_equal);
  s->owners = g_hash_table_new (g_str_hash, g_str_equal);
  s->cgroups = g_hash_table_new (g_str_hash, g_str_equal);
  s->above = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return s;
}

IfbStateSet *
ifb_state_set_free (IfbStateSet *s)
{
  if (!s)
    return NULL;
  g_hash_table_unref (s->names);
  g_hash_table_unref (s->slots);
  g_hash_table_unref (s->owners);
  g_hash_table_unref (s->cgroups);
  g_hash_table_unref (s->above);
  g_free (s);
  return NULL;
}

/* The guest of the set whose cgroup is a proper ancestor of path, if any: O(depth) lookups. */
static IfbVm *
kept_above (IfbStateSet *s, const char *path)
{
  g_autofree char *p = g_strdup (path);
  char *slash;

  while ((slash = strrchr (p, '/'))) {
    IfbVm *vm;
    if (slash == p)
      slash[1] = '\0';   /* "/": never a guest's, but checked all the same */
    else
      *slash = '\0';
    if ((vm = g_hash_table_lookup (s->cgroups, p)))
      return vm;
    if (slash == p)
      break;
  }
  return NULL;
}

char *
ifb_state_set_add (IfbStateSet *s, IfbVm *vm)
{
  IfbVm *other;

  if (g_hash_table_contains (s->names, vm->name))
    return g_strdup ("another guest has its name");
  if (g_hash_table_contains (s->slots, GUINT_TO_POINTER (vm->slot)))
    return g_strdup ("another guest has its fd-store slot");
  if (s->n >= s->max_vms)
    return g_strdup ("more guests than [limits] max-vms");
  for (guint j = 0; j < vm->devices->len; j++)
    if (g_hash_table_contains (s->owners, ((IfbVmDevice *) g_ptr_array_index (vm->devices, j))->bdf))
      return g_strdup ("one of its devices belongs to another guest");
  if ((other = g_hash_table_lookup (s->cgroups, vm->cgroup)))
    return g_strdup_printf ("its cgroup %s is guest '%s''s too", vm->cgroup, other->name);
  if ((other = g_hash_table_lookup (s->above, vm->cgroup)))
    return g_strdup_printf ("its cgroup %s contains guest '%s''s cgroup %s", vm->cgroup, other->name, other->cgroup);
  if ((other = kept_above (s, vm->cgroup)))
    return g_strdup_printf ("its cgroup %s lies inside guest '%s''s cgroup %s", vm->cgroup, other->name, other->cgroup);

  s->n++;
  g_hash_table_insert (s->names, vm->name, vm);
  g_hash_table_insert (s->slots, GUINT_TO_POINTER (vm->slot), vm);
  for (guint j = 0; j < vm->devices->len; j++)
    g_hash_table_insert (s->owners, ((IfbVmDevice *) g_ptr_array_index (vm->devices, j))->bdf, vm);
  g_hash_table_insert (s->cgroups, vm->cgroup, vm);
  for (const char *p = strrchr (vm->cgroup, '/'); p && p > vm->cgroup; p = g_strrstr_len (vm->cgroup, p - vm->cgroup, "/"))
    g_hash_table_replace (s->above, g_strndup (vm->cgroup, (gsize) (p - vm->cgroup)), vm);
  return NULL;
}

/* ---- loading ------------------------------------------------------------------------------- */

typedef struct {
  char *file;
  IfbVm *vm;
} Loaded;

static int
cmp_loaded (gconstpointer a, gconstpointer b)
{
  const Loaded *x = a, *y = b;
  if (x->vm->created_usec != y->vm->created_usec)
    return x->vm->created_usec < y->vm->created_usec ? -1 : 1;
  return strcmp (x->file, y->file);
}

static int
cmp_name (gconstpointer a, gconstpointer b)
{
  return strcmp ((*(IfbVm *const *) a)->name, (*(IfbVm *const *) b)->name);
}

/* The state directory, never through a symlink. Something else in its place is moved aside. */
static int
open_state_dir_checked (int runtime_dirfd)
{
  int fd = open_state_dir (runtime_dirfd, FALSE);
  if (fd == -ELOOP || fd == -ENOTDIR) {
    g_autofree char *aside = g_strdup_printf ("%s.rejected-%" G_GINT64_FORMAT, IFB_STATE_DIR, g_get_real_time ());
    if (renameat (runtime_dirfd, IFB_STATE_DIR, runtime_dirfd, aside) < 0)
      return -errno;
    g_warning ("The state directory '%s' is not a directory (a symlink?): moved to '%s', no guest restored from it",
               IFB_STATE_DIR, aside);
    return -ENOENT;
  }
  return fd;
}

gboolean
ifb_state_load (int runtime_dirfd, guint max_vms, GPtrArray **ret_vms, GError **error)
{
  g_autoptr (GPtrArray) vms = g_ptr_array_new_with_free_func ((GDestroyNotify) ifb_vm_free);
  g_autoptr (GArray) loaded = g_array_new (FALSE, FALSE, sizeof (Loaded));
  g_autoptr (IfbStateSet) set = ifb_state_set_new (max_vms);
  int dirfd = open_state_dir_checked (runtime_dirfd);
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
    g_autoptr (GError) local = NULL;
    g_autofree char *text = NULL;
    g_autofree char *uuid = NULL;
    size_t len = 0;
    IfbVm *vm;

    if (e->d_name[0] == '.' || strcmp (e->d_name, IFB_STATE_REJECTED_DIR) == 0)
      continue;
    if (g_str_has_suffix (e->d_name, ".tmp")) {   /* a write a crash interrupted: the old file stands */
      unlinkat (dirfd, e->d_name, 0);
      continue;
    }
    if (!g_str_has_suffix (e->d_name, ".json"))
      continue;
    uuid = g_strndup (e->d_name, strlen (e->d_name) - 5);
    if (!(text = read_file (dirfd, e->d_name, &len, &local)) ||
        !(vm = ifb_state_parse (text, len, uuid, &local))) {
      quarantine (dirfd, e->d_name, local->message);
      continue;
    }
    g_array_append_val (loaded, ((Loaded) { g_strdup (e->d_name), vm }));
  }
  /* Across guests: the oldest keeps a name, slot, device or cgroup the others also claim. */
  g_array_sort (loaded, cmp_loaded);
  for (guint i = 0; i < loaded->len; i++) {
    Loaded *l = &g_array_index (loaded, Loaded, i);
    g_autofree char *why = ifb_state_set_add (set, l->vm);

    if (why) {
      quarantine (dirfd, l->file, why);
      ifb_vm_free (l->vm);
    } else {
      g_ptr_array_add (vms, l->vm);
    }
    g_free (l->file);
  }
  closedir (d);
  g_ptr_array_sort (vms, cmp_name);
  *ret_vms = g_steal_pointer (&vms);
  return TRUE;
}
