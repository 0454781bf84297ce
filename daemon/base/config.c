/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define G_LOG_DOMAIN "ifb-config"

#include <errno.h>
#include <grp.h>
#include <string.h>

#include "config.h"
#include "errors.h"
#include "ifb-config.h"

static const char *const backend_names[_IFB_BACKEND_CHOICE_MAX] = {
  [IFB_BACKEND_CHOICE_AUTO] = "auto",
  [IFB_BACKEND_CHOICE_KERNEL] = "kernel",
  [IFB_BACKEND_CHOICE_EMULATED] = "emulated",
};

const char *
ifb_backend_choice_to_string (IfbBackendChoice c)
{
  return (unsigned) c < _IFB_BACKEND_CHOICE_MAX ? backend_names[c] : NULL;
}

IfbBackendChoice
ifb_backend_choice_from_string (const char *s)
{
  for (int i = 0; s && i < _IFB_BACKEND_CHOICE_MAX; i++)
    if (strcmp (backend_names[i], s) == 0)
      return (IfbBackendChoice) i;
  return IFB_BACKEND_CHOICE_INVALID;
}

typedef enum { KEY_STRING, KEY_UINT, KEY_BOOL, KEY_BACKEND, KEY_MODE, KEY_CHOICE, KEY_DEVICE_LIST } KeyType;

typedef struct {
  const char *group;
  const char *key;
  KeyType type;
  size_t offset;
  guint min, max;       /* for KEY_UINT */
  const char *choices;  /* for KEY_CHOICE: "a|b|c", stored as a string */
} KeySpec;

#define S(g, k, f) { g, k, KEY_STRING, G_STRUCT_OFFSET (IfbConfig, f), 0, 0 }
#define U(g, k, f, lo, hi) { g, k, KEY_UINT, G_STRUCT_OFFSET (IfbConfig, f), lo, hi }
#define B(g, k, f) { g, k, KEY_BOOL, G_STRUCT_OFFSET (IfbConfig, f), 0, 0 }

static const KeySpec keys[] = {
  S ("broker", "socket", socket_path),
  S ("broker", "vmm-socket", vmm_socket_path),
  { "broker", "socket-mode", KEY_MODE, G_STRUCT_OFFSET (IfbConfig, socket_mode), 0, 0777 },
  S ("broker", "runtime-dir", runtime_dir),
  { "broker", "backend", KEY_BACKEND, G_STRUCT_OFFSET (IfbConfig, backend), 0, 0 },
  S ("broker", "emulated-template", emulated_template),
  S ("broker", "dev-root", dev_root),
  S ("broker", "sys-root", sys_root),
  U ("broker", "worker-timeout-ms", worker_timeout_ms, 100, 600000),
  U ("broker", "max-workers", max_workers, 1, 1024),
  U ("emulated", "device-reset-ms", emulated_device_reset_ms, 0, 10000),
  U ("limits", "max-frame", max_frame, 1024, 64u << 20),
  U ("limits", "max-depth", max_depth, 4, 64),
  U ("limits", "max-connections", max_connections, 1, 65536),
  U ("limits", "max-connections-per-uid", max_connections_per_uid, 1, 65536),
  U ("limits", "max-pending", max_pending, 1, 4096),
  U ("limits", "max-batch", max_batch, 1, 4096),
  U ("limits", "max-vms", max_vms, 1, 65536),
  U ("limits", "max-devices-per-vm", max_devices_per_vm, 1, 64),
  U ("limits", "max-queued-bytes", max_queued_bytes, 65536, 1u << 30),
  U ("limits", "max-queued-fds", max_queued_fds, 32, 65536),
  U ("limits", "max-queued-fds-per-uid", max_queued_fds_per_uid, 32, 1u << 20),
  U ("limits", "queued-fds-timeout", queued_fds_timeout, 1, 3600),
  U ("limits", "reserved-connections", reserved_connections, 0, 65535),
  U ("limits", "idle-timeout", idle_timeout, 0, 86400),
  U ("limits", "max-refusals-logged", max_refusals_logged, 0, 100000),
  U ("limits", "expensive-calls-per-second", expensive_calls_per_second, 0, 1000000),
  U ("limits", "max-guest-memory-mib", max_guest_memory_mib, 1, G_MAXUINT32),
  S ("access", "admin-group", admin_group),
  S ("access", "read-group", read_group),
  B ("accounting", "rlimit-per-process", rlimit_per_process),
  S ("libvirt", "uri", libvirt_uri),
  /* read by the libvirt hook (client/hook.c); checked here so a typo stops the daemon's start */
  { "libvirt", "cgroup-layout", KEY_CHOICE, G_STRUCT_OFFSET (IfbConfig, libvirt_cgroup_layout), 0, 0,
    "auto|systemd|manual" },
  { "devices", "allow", KEY_DEVICE_LIST, G_STRUCT_OFFSET (IfbConfig, devices_allow), 0, 0 },
  U ("devices", "bind-timeout-ms", bind_timeout_ms, 100, 600000),
  U ("devices", "return-retry-ms", return_retry_ms, 100, 3600000),
  B ("kernel", "allow-selftest", allow_selftest),
  S ("metrics", "textfile", metrics_textfile),
  U ("metrics", "interval-sec", metrics_interval_sec, 1, 86400),
  { NULL },
};

static IfbConfig *
config_new_defaults (void)
{
  IfbConfig *c = g_new0 (IfbConfig, 1);
  c->socket_path = g_strdup (IFB_DEFAULT_SOCKET);
  c->socket_mode = 0660;
  c->runtime_dir = g_strdup (IFB_DEFAULT_RUNTIME_DIR);
  c->backend = IFB_BACKEND_CHOICE_AUTO;
  c->emulated_template = NULL;   /* the built-in set (emul-builtin.h) */
  c->dev_root = g_strdup ("/dev");
  c->sys_root = g_strdup ("/sys");
  c->worker_timeout_ms = 10000;
  c->max_workers = 32;
  c->max_frame = 1u << 20;
  c->max_depth = 16;
  c->max_connections = 4096;
  c->max_connections_per_uid = 2048;
  c->max_pending = 128;
  c->max_batch = 64;
  c->max_vms = 1024;            /* x (1 + max_devices_per_vm) = the unit's FileDescriptorStoreMax=17408 */
  c->max_devices_per_vm = 16;
  c->max_queued_bytes = 16u << 20;
  c->max_queued_fds = 128;              /* 4 replies of the protocol's 32 fds */
  c->max_queued_fds_per_uid = 16384;    /* 4096 guests' VMMs (one uid) with a 4-fd reply in flight each */
  c->queued_fds_timeout = 10;
  c->reserved_connections = 16;
  c->idle_timeout = 300;
  c->max_refusals_logged = 20;
  c->expensive_calls_per_second = 200;
  c->max_guest_memory_mib = 16u << 20;   /* 16 TiB */
  c->admin_group = NULL;
  c->read_group = NULL;
  c->admin_gid = (gid_t) -1;
  c->read_gid = (gid_t) -1;
  c->rlimit_per_process = true;
  c->libvirt_uri = NULL;
  c->libvirt_cgroup_layout = g_strdup ("auto");
  c->devices_allow = NULL;
  c->bind_timeout_ms = 10000;
  c->return_retry_ms = 10000;
  c->allow_selftest = false;
  c->metrics_textfile = NULL;
  c->metrics_interval_sec = 15;
  return c;
}

IfbConfig *
ifb_config_free (IfbConfig *c)
{
  if (!c)
    return NULL;
  g_free (c->socket_path);
  g_free (c->vmm_socket_path);
  g_free (c->runtime_dir);
  g_free (c->emulated_template);
  g_free (c->dev_root);
  g_free (c->sys_root);
  g_free (c->admin_group);
  g_free (c->read_group);
  g_free (c->libvirt_uri);
  g_free (c->libvirt_cgroup_layout);
  g_free (c->metrics_textfile);
  g_strfreev (c->devices_allow);
  g_free (c);
  return NULL;
}

/* "xxxx:xx:xx.x" (a PCI address) or "xxxx:xxxx" (vendor:device), lower-case hex. */
static gboolean
device_entry_valid (const char *e)
{
  const char *pattern = strlen (e) == 12 ? "xxxx:xx:xx.x" : "xxxx:xxxx";

  if (strlen (e) != strlen (pattern))
    return FALSE;
  for (size_t i = 0; pattern[i]; i++)
    if (pattern[i] == 'x' ? !g_ascii_isxdigit (e[i]) || g_ascii_isupper (e[i]) : e[i] != pattern[i])
      return FALSE;
  return TRUE;
}

gboolean
ifb_config_device_allowed (const IfbConfig *c, const char *address, guint16 vendor, guint16 device,
                           gboolean *ret_by_address)
{
  char ids[10];
  gboolean by_ids = FALSE;

  g_snprintf (ids, sizeof ids, "%04x:%04x", vendor, device);
  for (char **e = c->devices_allow; e && *e; e++) {
    if (strcmp (*e, address) == 0) {
      *ret_by_address = TRUE;
      return TRUE;
    }
    by_ids = by_ids || strcmp (*e, ids) == 0;
  }
  *ret_by_address = FALSE;
  return by_ids;
}

static gboolean
resolve_group (const char *name, gid_t *ret, const char *key, GError **error)
{
  struct group *g;
  if (!name || !*name) {
    *ret = (gid_t) -1;
    return TRUE;
  }
  g = getgrnam (name);
  if (!g)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                        "[access] %s: no such group '%s'", key, name), FALSE;
  *ret = g->gr_gid;
  return TRUE;
}

static gboolean
apply_file (IfbConfig *c, GKeyFile *kf, const char *path, GError **error)
{
  g_auto (GStrv) groups = g_key_file_get_groups (kf, NULL);

  for (char **g = groups; *g; g++) {
    g_auto (GStrv) names = g_key_file_get_keys (kf, *g, NULL, NULL);
    for (char **k = names; k && *k; k++) {
      const KeySpec *s = keys;
      g_autoptr (GError) local = NULL;
      char *field;

      while (s->group && !(strcmp (s->group, *g) == 0 && strcmp (s->key, *k) == 0))
        s++;
      if (!s->group)
        return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                            "%s: unknown key '%s' in group [%s]", path, *k, *g), FALSE;
      field = (char *) c + s->offset;
      switch (s->type) {
      case KEY_STRING: {
        char *v = g_key_file_get_string (kf, *g, *k, &local);
        if (!v)
          break;
        g_free (*(char **) field);
        *(char **) field = *v ? v : (g_free (v), NULL);
        break;
      }
      case KEY_UINT: {
        guint64 v = g_key_file_get_uint64 (kf, *g, *k, &local);
        if (!local && (v < s->min || v > s->max))
          return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                              "%s: [%s] %s=%" G_GUINT64_FORMAT " is out of range %u..%u",
                              path, *g, *k, v, s->min, s->max), FALSE;
        *(guint *) field = (guint) v;
        break;
      }
      case KEY_BOOL: {
        gboolean v = g_key_file_get_boolean (kf, *g, *k, &local);
        *(bool *) field = v;
        break;
      }
      case KEY_MODE: {
        g_autofree char *v = g_key_file_get_string (kf, *g, *k, &local);
        char *end = NULL;
        guint64 mode = v ? g_ascii_strtoull (v, &end, 8) : 0;
        if (!local && (!v || !*v || *end || mode > s->max))
          return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                              "%s: [%s] %s='%s' is not an octal mode", path, *g, *k, v ? v : ""), FALSE;
        *(guint *) field = (guint) mode;
        break;
      }
      case KEY_CHOICE: {
        g_autofree char *v = g_key_file_get_string (kf, *g, *k, &local);
        g_auto (GStrv) choices = g_strsplit (s->choices, "|", -1);
        if (!local && (!v || !g_strv_contains ((const char *const *) choices, v))) {
          g_autofree char *list = g_strjoinv (", ", choices);
          return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                              "%s: [%s] %s='%s' is not one of %s", path, *g, *k, v ? v : "", list), FALSE;
        }
        if (!local) {
          g_free (*(char **) field);
          *(char **) field = g_steal_pointer (&v);
        }
        break;
      }
      case KEY_DEVICE_LIST: {
        g_auto (GStrv) v = g_key_file_get_string_list (kf, *g, *k, NULL, &local);
        g_autoptr (GPtrArray) list = g_ptr_array_new_with_free_func (g_free);
        for (char **e = v; !local && e && *e; e++) {
          g_autofree char *t = g_strstrip (g_strdup (*e));
          if (!*t)
            continue;
          if (!device_entry_valid (t))
            return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                                "%s: [%s] %s: '%s' is neither a PCI address (0000:65:00.0) nor vendor:device ids "
                                "(8086:10d3), in lower-case hex", path, *g, *k, t), FALSE;
          g_ptr_array_add (list, g_steal_pointer (&t));
        }
        if (!local) {
          g_ptr_array_add (list, NULL);
          g_strfreev (*(char ***) field);
          *(char ***) field = (char **) g_ptr_array_free (g_steal_pointer (&list), FALSE);
        }
        break;
      }
      case KEY_BACKEND: {
        g_autofree char *v = g_key_file_get_string (kf, *g, *k, &local);
        IfbBackendChoice b = ifb_backend_choice_from_string (v);
        if (!local && b == IFB_BACKEND_CHOICE_INVALID)
          return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                              "%s: [broker] backend='%s' is not one of auto, kernel, emulated", path, v), FALSE;
        *(IfbBackendChoice *) field = b;
        break;
      }
      }
      if (local)
        return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                            "%s: [%s] %s: %s", path, *g, *k, local->message), FALSE;
    }
  }
  return TRUE;
}

/* The same, from text in memory (no group lookups): what the config fuzzer drives. */
IfbConfig *
ifb_config_load_data (const char *data, size_t len, GError **error)
{
  g_autoptr (IfbConfig) c = config_new_defaults ();
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local = NULL;

  if (!g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, &local))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                        "Cannot parse config data: %s", local->message), NULL;
  if (!apply_file (c, kf, "(data)", error))
    return NULL;
  return g_steal_pointer (&c);
}

IfbConfig *
ifb_config_load (const char *path, gboolean path_explicit, GError **error)
{
  g_autoptr (IfbConfig) c = config_new_defaults ();
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local = NULL;

  if (path && !g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, &local)) {
    if (path_explicit || !g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                          "Cannot read config file '%s': %s", path, local->message), NULL;
  } else if (path && !apply_file (c, kf, path, error)) {
    return NULL;
  }
  if (!resolve_group (c->admin_group, &c->admin_gid, "admin-group", error) ||
      !resolve_group (c->read_group, &c->read_gid, "read-group", error))
    return NULL;
  return g_steal_pointer (&c);
}
