/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * libvirt names a QEMU domain's cgroup after its "machine name" (src/hypervisor/domain_driver.c,
 * virDomainDriverGenerateMachineName: "qemu-<id>-<name>" cut to hostname characters and 64
 * bytes). Where the cgroup goes depends on the host:
 *
 *  - without systemd-machined libvirt makes it itself (src/util/vircgroup.c,
 *    virCgroupNewMachineManual): the partition, each component given a ".partition" suffix
 *    (virCgroupSetPartitionSuffix), then "<machine>.libvirt-qemu" (virCgroupNewDomainPartition),
 *    every component prefixed with '_' where it could be taken for a cgroup control file
 *    (virCgroupPartitionEscape);
 *  - with machined (virCgroupNewMachineSystemd) machined makes the scope
 *    "machine-<machine>.scope" in the partition's slice, both unit-escaped
 *    (src/util/virsystemd.c, virSystemdMakeScopeName, virSystemdMakeSliceName,
 *    virSystemdEscapeName); a slice's cgroup sits inside those of its '-'-separated prefixes.
 *
 * These rules were checked against libvirt 9.0's own functions (Debian 12's libvirt0); the unit
 * test tests/unit/test-libvirt-cgroup.c holds the names they produced.
 *
 * Which controller names need the '_' depends on /proc/cgroups of the host libvirtd runs on; the
 * list here is every name Linux 6.x shows there, so a component starting "<controller>." is
 * escaped even on a host that lacks that controller.
 */
#include <limits.h>
#include <string.h>

#include "libvirt-cgroup.h"

#define MACHINE_NAME_MAX 64

static const char *const controllers[] = {
  "cpuset", "cpu", "cpuacct", "blkio", "io", "memory", "devices", "freezer", "net_cls", "perf_event",
  "net_prio", "hugetlb", "pids", "rdma", "misc", "debug", NULL,
};

char *
ifb_libvirt_machine_name (int id, const char *name)
{
  GString *s = g_string_new (NULL);
  gboolean skip = TRUE;   /* no '-' or '.' first, nor two in a row */

  g_string_append_printf (s, "qemu-%d-", id);
  for (const char *p = name; *p && s->len < MACHINE_NAME_MAX; p++) {
    if (*p == '.' || *p == '-') {
      if (!skip)
        g_string_append_c (s, *p);
      skip = TRUE;
    } else if (g_ascii_isalnum (*p)) {
      g_string_append_c (s, *p);
      skip = FALSE;
    }
    /* any other byte is dropped and leaves skip as it was: "a.%.b" gives "a.b" */
  }
  while (s->len > 0 && (s->str[s->len - 1] == '-' || s->str[s->len - 1] == '.'))
    g_string_truncate (s, s->len - 1);
  return g_string_free (s, FALSE);
}

static gboolean
unit_char_is_plain (char c)
{
  return g_ascii_isalnum (c) || c == ':' || c == '_' || c == '.';
}

static void
append_unit_escaped (GString *s, const char *name)
{
  for (const char *p = name; *p; p++) {
    if (*p == '/')
      g_string_append_c (s, '-');
    else if (unit_char_is_plain (*p) && !(p == name && *p == '.'))
      g_string_append_c (s, *p);
    else
      g_string_append_printf (s, "\\x%02x", (unsigned char) *p);
  }
}

char *
ifb_libvirt_unit_escape (const char *s)
{
  GString *out = g_string_new (NULL);
  append_unit_escaped (out, s);
  return g_string_free (out, FALSE);
}

char *
ifb_libvirt_unit_unescape (const char *s)
{
  g_autoptr (GString) out = g_string_new (NULL);
  g_autofree char *again = NULL;

  for (const char *p = s; *p; p++) {
    if (*p == '-') {
      g_string_append_c (out, '/');
    } else if (*p == '\\') {
      int hi, lo;
      if (p[1] != 'x' || (hi = g_ascii_xdigit_value (p[2])) < 0 || (lo = g_ascii_xdigit_value (p[3])) < 0 ||
          (hi << 4 | lo) == 0)
        return NULL;
      g_string_append_c (out, (char) (hi << 4 | lo));
      p += 3;
    } else {
      g_string_append_c (out, *p);
    }
  }
  /* Only the spelling ifb_libvirt_unit_escape() makes: "\x2D", a raw ' ' or an escaped 'a' is
   * not a name libvirt made. */
  again = ifb_libvirt_unit_escape (out->str);
  if (strcmp (again, s) != 0)
    return NULL;
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* virCgroupPartitionEscape: '_' before a component that starts with '_', '.', "cgroup." or
 * "<controller>.". */
static void
append_partition_escaped (GString *s, const char *comp)
{
  gboolean esc = comp[0] == '_' || comp[0] == '.' || g_str_has_prefix (comp, "cgroup.");

  for (const char *const *c = controllers; *c && !esc; c++)
    esc = g_str_has_prefix (comp, *c) && comp[strlen (*c)] == '.';
  if (esc)
    g_string_append_c (s, '_');
  g_string_append (s, comp);
}

static char *
manual_path (const char *partition, const char *machine)
{
  g_auto (GStrv) comps = g_strsplit (partition, "/", -1);
  g_autofree char *group = g_strconcat (machine, ".libvirt-qemu", NULL);
  GString *s = g_string_new (NULL);

  /* comps[0] is the empty string before the leading '/' */
  for (guint i = 1; comps[i]; i++) {
    const char *c = comps[i];
    g_autofree char *suffixed = NULL;
    if (!*c)
      continue;   /* "//" names the same directory as "/" */
    g_string_append_c (s, '/');
    if (i == 1 && (strcmp (c, "machine") == 0 || strcmp (c, "system") == 0 || strcmp (c, "user") == 0)) {
      g_string_append (s, c);
      continue;
    }
    if (!strchr (c, '.'))
      c = suffixed = g_strconcat (c, ".partition", NULL);
    append_partition_escaped (s, c);
  }
  g_string_append_c (s, '/');
  append_partition_escaped (s, group);
  return g_string_free (s, FALSE);
}

static char *
machined_path (const char *partition, const char *machine)
{
  g_autofree char *slice = ifb_libvirt_unit_escape (partition + 1);
  GString *s = g_string_new (NULL);

  for (const char *p = slice; *p; p++)
    if (*p == '-')
      g_string_append_printf (s, "/%.*s.slice", (int) (p - slice), slice);
  g_string_append_printf (s, "/%s.slice/machine-", slice);
  append_unit_escaped (s, machine);
  g_string_append (s, ".scope");
  return g_string_free (s, FALSE);
}

char *
ifb_libvirt_cgroup_path (IfbLibvirtCgroupLayout layout, const char *partition, int id, const char *name)
{
  g_autofree char *machine = NULL;

  if (!partition || !*partition)
    partition = IFB_LIBVIRT_DEFAULT_PARTITION;
  g_return_val_if_fail (partition[0] == '/', NULL);
  machine = ifb_libvirt_machine_name (id, name);
  return layout == IFB_LIBVIRT_CGROUP_MACHINED ? machined_path (partition, machine) : manual_path (partition, machine);
}

/* "qemu-<id>" or "qemu-<id>-<rest>", as ifb_libvirt_machine_name() makes them. */
static gboolean
parse_machine (const char *m, size_t len, int *ret_id)
{
  const char *p = m + 5;
  const char *end = m + len;
  gint64 id = 0;

  if (len > MACHINE_NAME_MAX || len < 6 || strncmp (m, "qemu-", 5) != 0)
    return FALSE;
  if (*p == '0' && p + 1 < end && g_ascii_isdigit (p[1]))
    return FALSE;   /* "%d" writes no leading zero */
  for (; p < end && g_ascii_isdigit (*p); p++) {
    id = id * 10 + (*p - '0');
    if (id > INT_MAX)
      return FALSE;
  }
  if (p == m + 5)
    return FALSE;
  if (p < end) {
    if (*p != '-' || p + 1 == end)
      return FALSE;
    /* hostname characters; a '-' or '.' only between two others */
    for (const char *q = p + 1; q < end; q++) {
      gboolean sep = *q == '-' || *q == '.';
      if (!g_ascii_isalnum (*q) && !(sep && q > p + 1 && g_ascii_isalnum (q[-1]) && q + 1 < end))
        return FALSE;
    }
  }
  *ret_id = (int) id;
  return TRUE;
}

gboolean
ifb_libvirt_cgroup_parse (const char *path, IfbLibvirtCgroupLayout *ret_layout, char **ret_machine, int *ret_id)
{
  const char *last = path ? strrchr (path, '/') : NULL;
  g_autofree char *machine = NULL;
  IfbLibvirtCgroupLayout layout;
  int id;

  if (!last || path[0] != '/')
    return FALSE;
  last++;
  if (g_str_has_suffix (last, ".libvirt-qemu")) {
    layout = IFB_LIBVIRT_CGROUP_MANUAL;
    machine = g_strndup (last, strlen (last) - strlen (".libvirt-qemu"));
  } else if (g_str_has_prefix (last, "machine-") && g_str_has_suffix (last, ".scope")) {
    g_autofree char *escaped = g_strndup (last + 8, strlen (last) - 8 - strlen (".scope"));
    layout = IFB_LIBVIRT_CGROUP_MACHINED;
    if (!(machine = ifb_libvirt_unit_unescape (escaped)))
      return FALSE;
  } else {
    return FALSE;
  }
  if (!parse_machine (machine, strlen (machine), &id))
    return FALSE;
  if (ret_layout)
    *ret_layout = layout;
  if (ret_id)
    *ret_id = id;
  if (ret_machine)
    *ret_machine = g_steal_pointer (&machine);
  return TRUE;
}
