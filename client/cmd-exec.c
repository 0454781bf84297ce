/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iommufdctl exec: the VMM launcher.
 *
 * Theory of operation
 *
 *   iommufdctl exec (--vm NAME | --vm-from-argv) [--] CMD [ARGS...]
 *
 * asks the broker for the guest's fds (vm.fds: allowed because libvirt has already placed us in
 * the guest's cgroup; a pending guest is allocated now, by a worker in that cgroup), replaces
 * the placeholders in ARGS with numbers, clears close-on-exec on exactly the guest's fds and
 * execs CMD. Every fd this program opened itself (the RPC socket, received fds are
 * MSG_CMSG_CLOEXEC) is close-on-exec; fds inherited from our parent (libvirt hands QEMU its
 * monitor socket this way) are left as they are.
 *
 *   %{iommufd}   the iommufd fd          %{ioas}         the IOAS id
 *   %{dev:BDF}   the device's cdev fd    %{devid:BDF}    its IOMMUFD device id
 *   %{hwpt:BDF}  its HWPT id             %%              a literal '%' (only needed before '{')
 *   %{viommu}    the guest's vIOMMU id   %{vdev:BDF}     the device's vDEVICE id in it
 *   %{veventq}   the vIOMMU's vEVENTQ fd
 *
 * The ids exist only for a guest with the bound hand-off (the vIOMMU ones only for a guest
 * created with a vIOMMU). An unbound guest's %{dev:BDF} is a
 * fresh, unbound cdev fd that the VMM binds itself (what unmodified QEMU does with
 * `-device vfio-pci,iommufd=ID,fd=N`); the broker watches this process — the VMM once exec'd —
 * and replaces the guest's context when it exits.
 *
 * As a libvirt <emulator>, a two-line wrapper script runs
 *   exec iommufdctl exec --vm-from-argv -- /usr/bin/qemu-system-x86_64 "$@"
 * and the guest name comes from libvirt's `-name guest=NAME,...`. libvirt also runs the emulator
 * without a guest to probe its capabilities (no -name): then, as for a domain the broker does not
 * manage, CMD is exec'd unchanged — unless ARGS hold placeholders, which cannot be honoured.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "errors.h"
#include "ifb-config.h"
#include "json.h"
#include "util.h"

/* QEMU's -name value: "guest=NAME,debug-threads=on", "debug-threads=on,guest=NAME" or a bare
 * "NAME,..." (only as the first item); ",," is a literal ','. NULL when it names no guest. */
static char *
guest_from_name_value (const char *v)
{
  g_autoptr (GPtrArray) items = g_ptr_array_new_with_free_func (g_free);
  GString *s = g_string_new (NULL);

  for (;; v++) {
    if (*v == ',' && v[1] == ',') {
      g_string_append_c (s, ',');
      v++;
    } else if (*v == ',' || !*v) {
      g_ptr_array_add (items, g_string_free (s, FALSE));
      if (!*v)
        break;
      s = g_string_new (NULL);
    } else {
      g_string_append_c (s, *v);
    }
  }
  for (guint i = 0; i < items->len; i++) {
    const char *item = g_ptr_array_index (items, i);
    if (g_str_has_prefix (item, "guest="))
      return g_strdup (item + 6);
    if (i == 0 && *item && !strchr (item, '='))
      return g_strdup (item);
  }
  return NULL;
}

/* The guest of QEMU's last -name option, as QEMU itself takes the last one. */
static char *
name_from_qemu_argv (char **args)
{
  const char *value = NULL;

  for (int i = 0; args[i]; i++)
    if ((strcmp (args[i], "-name") == 0 || strcmp (args[i], "--name") == 0) && args[i + 1])
      value = args[++i];
  return value ? guest_from_name_value (value) : NULL;
}

static gboolean
has_placeholders (char **args)
{
  for (int i = 0; args[i]; i++)
    if (strstr (args[i], "%{"))
      return TRUE;
  return FALSE;
}

static json_object *
find_device (json_object *r, const char *bdf)
{
  json_object *devs = ifb_json_get (r, "devices");
  for (size_t i = 0; devs && i < json_object_array_length (devs); i++) {
    json_object *d = json_object_array_get_idx (devs, i);
    if (g_ascii_strcasecmp (json_object_get_string (ifb_json_get (d, "device")), bdf) == 0)
      return d;
  }
  return NULL;
}

static gboolean
fd_of (json_object *o, const char *key, IfbFdList *fds, gint64 *ret, GError **error)
{
  gint64 idx;
  int fd;
  if (!ifb_json_get_int (o, key, &idx) || idx < 0 || (fd = ifb_fd_list_get (fds, (guint) idx)) < 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_FAILED, "the broker's reply lacks the fd for '%s'", key), FALSE;
  *ret = fd;
  return TRUE;
}

/* Expand one placeholder body ("iommufd", "dev:0000:65:00.0", ...) into its number. */
static gboolean
expand_one (const char *key, json_object *r, IfbFdList *fds, GString *out, GError **error)
{
  const char *bdf = strchr (key, ':');
  g_autofree char *kind = bdf ? g_strndup (key, bdf - key) : g_strdup (key);
  json_object *d;
  gint64 v;

  if (bdf)
    bdf++;
  gboolean id_kind = strcmp (kind, "ioas") == 0 || strcmp (kind, "devid") == 0 || strcmp (kind, "hwpt") == 0 ||
                     strcmp (kind, "viommu") == 0 || strcmp (kind, "vdev") == 0;

  if (id_kind &&
      g_strcmp0 (ifb_json_get_string (r, "handoff"), "bound") != 0)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                        "placeholder %%{%s}: guest '%s' uses the %s hand-off, where the VMM binds its devices and "
                        "allocates its own objects, so there are no broker ids to give; create the guest with "
                        "--handoff bound for a VMM that takes ids", key, ifb_json_get_string (r, "vm"),
                        ifb_json_get_string (r, "handoff") ? ifb_json_get_string (r, "handoff") : "unbound"), FALSE;
  if (!bdf && strcmp (kind, "iommufd") == 0) {
    if (!fd_of (r, "iommufd", fds, &v, error))
      return FALSE;
  } else if (!bdf && strcmp (kind, "ioas") == 0) {
    if (!ifb_json_get_int (r, "ioas_id", &v))
      return g_set_error (error, IFB_ERROR, IFB_ERROR_FAILED, "the broker's reply lacks ioas_id"), FALSE;
  } else if (!bdf && strcmp (kind, "veventq") == 0) {
    if (!ifb_json_get (r, "veventq"))
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "placeholder %%{veventq}: guest '%s' has no "
                          "vEVENTQ (create it with --viommu TYPE --veventq-depth N)", ifb_json_get_string (r, "vm")), FALSE;
    if (!fd_of (r, "veventq", fds, &v, error))
      return FALSE;
  } else if (!bdf && strcmp (kind, "viommu") == 0) {
    if (!ifb_json_get_int (r, "viommu_id", &v))
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "placeholder %%{viommu}: guest '%s' has no "
                          "vIOMMU (create it with --viommu TYPE)", ifb_json_get_string (r, "vm")), FALSE;
  } else if (bdf && (strcmp (kind, "dev") == 0 || strcmp (kind, "devid") == 0 || strcmp (kind, "hwpt") == 0 ||
                     strcmp (kind, "vdev") == 0)) {
    const char *field = strcmp (kind, "devid") == 0 ? "dev_id" : strcmp (kind, "vdev") == 0 ? "vdev_id" : "hwpt_id";
    if (!(d = find_device (r, bdf)))
      return g_set_error (error, IFB_ERROR, IFB_ERROR_NOT_ATTACHED,
                          "placeholder %%{%s}: device %s is not attached to the guest", key, bdf), FALSE;
    if (strcmp (kind, "dev") == 0 ? !fd_of (d, "fd", fds, &v, error) : !ifb_json_get_int (d, field, &v)) {
      if (strcmp (kind, "vdev") == 0 && !(error && *error))
        return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "placeholder %%{%s}: device %s has no "
                            "vDEVICE (the guest has no vIOMMU)", key, bdf), FALSE;
      return g_prefix_error (error, "placeholder %%{%s}: ", key), FALSE;
    }
  } else {
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "unknown placeholder %%{%s} (known: iommufd, "
                        "ioas, viommu, veventq, dev:BDF, devid:BDF, hwpt:BDF, vdev:BDF)", key), FALSE;
  }
  g_string_append_printf (out, "%" G_GINT64_FORMAT, v);
  return TRUE;
}

static char *
expand (const char *arg, json_object *r, IfbFdList *fds, GError **error)
{
  g_autoptr (GString) out = g_string_new (NULL);

  for (const char *p = arg; *p;) {
    const char *end;
    if (p[0] == '%' && p[1] == '%' && p[2] == '{') {
      g_string_append_c (out, '%');
      p += 2;   /* "%%{" -> "%{" */
      g_string_append_c (out, '{');
      p++;
      continue;
    }
    if (p[0] != '%' || p[1] != '{') {
      g_string_append_c (out, *p++);
      continue;
    }
    if (!(end = strchr (p + 2, '}')))
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "unterminated placeholder in '%s'", arg), NULL;
    {
      g_autofree char *key = g_strndup (p + 2, end - p - 2);
      if (!r)
        return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                            "placeholder %%{%s} but no guest: give --vm NAME (or -name guest=NAME with --vm-from-argv)",
                            key), NULL;
      if (!expand_one (key, r, fds, out, error))
        return NULL;
    }
    p = end + 1;
  }
  return g_string_free (g_steal_pointer (&out), FALSE);
}


static int
do_exec (char **args)
{
  execvp (args[0], args);
  fprintf (stderr, "iommufdctl: exec: cannot run '%s': %s\n", args[0], g_strerror (errno));
  return 127;
}

int
ifb_ctl_cmd_exec (IfbCtl *ctl, int argc, char **argv)
{
  const char *vm = NULL;
  gboolean from_argv = FALSE;
  g_autofree char *argv_name = NULL;
  g_autoptr (IfbRpcClient) c = NULL;
  g_autoptr (json_object) r = NULL;
  g_autoptr (IfbFdList) fds = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) out = g_ptr_array_new_with_free_func (g_free);
  char **cmd;
  int i = 1;

  for (; i < argc; i++) {
    if (strcmp (argv[i], "--vm") == 0 && i + 1 < argc)
      vm = argv[++i];
    else if (g_str_has_prefix (argv[i], "--vm="))
      vm = argv[i] + 5;
    else if (strcmp (argv[i], "--vm-from-argv") == 0)
      from_argv = TRUE;
    else if (strcmp (argv[i], "--") == 0) {
      i++;
      break;
    } else if (argv[i][0] == '-')
      return ifb_ctl_usage_fail ("exec", "exec: unknown option '%s'", argv[i]);
    else
      break;
  }
  if (i >= argc)
    return ifb_ctl_usage_fail ("exec", "exec: missing CMD");
  if (!!vm == !!from_argv)
    return ifb_ctl_usage_fail ("exec", "exec: give exactly one of --vm NAME or --vm-from-argv");
  cmd = argv + i;

  if (from_argv)
    vm = argv_name = name_from_qemu_argv (cmd + 1);
  /* The VMM socket when no socket was chosen: libvirt runs us as its QEMU user, which is in no
   * group of the broker's; without a VMM socket (a broker not started by its units), the RPC one. */
  if (!ctl->socket_chosen && g_file_test (IFB_DEFAULT_VMM_SOCKET, G_FILE_TEST_EXISTS))
    ctl->socket_path = IFB_DEFAULT_VMM_SOCKET;
  if (vm) {
    if (!(c = ifb_ctl_connect (ctl)))
      return IFB_EXIT_FAILED;
    if (!ifb_rpc_client_call (c, "vm.fds", ifb_ctl_vm_param (vm), NULL, &r, &fds, &error)) {
      /* A domain the broker does not manage may still use the wrapper as its emulator. */
      if (!(from_argv && g_error_matches (error, IFB_ERROR, IFB_ERROR_NO_SUCH_VM) && !has_placeholders (cmd + 1))) {
        fprintf (stderr, "iommufdctl: exec: guest '%s': %s\n", vm, error->message);
        return IFB_EXIT_FAILED;
      }
      g_clear_error (&error);
    }
  }

  for (int k = 0; cmd[k]; k++) {
    char *e = expand (cmd[k], r, fds, &error);
    if (!e) {
      fprintf (stderr, "iommufdctl: exec: %s\n", error->message);
      return IFB_EXIT_USAGE;
    }
    g_ptr_array_add (out, e);
  }
  g_ptr_array_add (out, NULL);

  /* Exactly the guest's fds survive the exec. */
  for (guint k = 0; fds && k < ifb_fd_list_len (fds); k++) {
    int fd = ifb_fd_list_get (fds, k);
    if (fd >= 0 && fcntl (fd, F_SETFD, 0) < 0) {
      fprintf (stderr, "iommufdctl: exec: clearing close-on-exec on fd %d: %s\n", fd, g_strerror (errno));
      return IFB_EXIT_FAILED;
    }
  }
  fflush (NULL);
  return do_exec ((char **) out->pdata);
}
