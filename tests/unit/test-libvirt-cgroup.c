/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * proto/libvirt-cgroup.c: libvirt's cgroup names for a QEMU domain, built as the hook does and
 * recognized again as the daemon's watcher does. The machine, scope and slice names expected
 * here are what libvirt 9.0's own functions (virDomainDriverGenerateMachineName,
 * virSystemdMakeScopeName, virSystemdMakeSliceName in Debian 12's libvirt0) returned for the
 * same input.
 */
#include <string.h>
#include <glib.h>

#include "libvirt-cgroup.h"

static void
test_machine_name (void)
{
  /* Only hostname characters survive, runs of '-'/'.' collapse to their first (a dropped byte in
   * between does not split the run), none leads or trails, and the whole stops at 64 bytes. */
  static const struct { int id; const char *name, *machine; } cases[] = {
    { 1, "ifb-capture", "qemu-1-ifb-capture" },
    { 1, "a.%.b", "qemu-1-a.b" },
    { 1, "a..b", "qemu-1-a.b" },
    { 1, "-x-", "qemu-1-x" },
    { 1, ".dot", "qemu-1-dot" },
    { 1, "back\\slash", "qemu-1-backslash" },
    { 1, "a_b c", "qemu-1-abc" },
    { 1, "h\xc3\xa9llo w\xc3\xb6rld", "qemu-1-hllowrld" },
    { 1, "\xe6\x97\xa5\xe6\x9c\xac", "qemu-1" },
    { 0, "", "qemu-0" },
    /* 7 + 56 bytes, then the '-' makes 64 and stops the copy; trimming removes it again */
    { 1, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bcd",
      "qemu-1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
    { 2147483647, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
      "qemu-2147483647-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *m = ifb_libvirt_machine_name (cases[i].id, cases[i].name);
    g_assert_cmpstr (m, ==, cases[i].machine);
    g_assert_cmpuint (strlen (m), <=, 64);
  }
}

static void
test_unit_escape_both_ways (void)
{
  /* Escaping is systemd's as libvirt spells it, and unescaping gives back every string, byte
   * for byte, from its escaped form. */
  static const struct { const char *plain, *escaped; } cases[] = {
    { "machine", "machine" },
    { "machine/tenant", "machine-tenant" },
    { "a-b/c.d", "a\\x2db-c.d" },
    { "back\\x", "back\\x5cx" },
    { "h\xc3\xa9llo", "h\\xc3\\xa9llo" },
    { ".x", "\\x2ex" },
    { "x.y", "x.y" },
    { "machine/x:y_z", "machine-x:y_z" },
    { "a b", "a\\x20b" },
    { "qemu-1-vm", "qemu\\x2d1\\x2dvm" },
    { "", "" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *e = ifb_libvirt_unit_escape (cases[i].plain);
    g_autofree char *u = ifb_libvirt_unit_unescape (cases[i].escaped);
    g_assert_cmpstr (e, ==, cases[i].escaped);
    g_assert_cmpstr (u, ==, cases[i].plain);
  }
  /* every byte but NUL, one at a time and all together */
  {
    char all[256];
    g_autofree char *e = NULL;
    g_autofree char *u = NULL;
    for (int b = 1; b < 256; b++) {
      char one[2] = { (char) b, 0 };
      g_autofree char *e1 = ifb_libvirt_unit_escape (one);
      g_autofree char *u1 = ifb_libvirt_unit_unescape (e1);
      g_assert_cmpstr (u1, ==, one);
      all[b - 1] = (char) b;
    }
    all[255] = 0;
    e = ifb_libvirt_unit_escape (all);
    u = ifb_libvirt_unit_unescape (e);
    g_assert_cmpstr (u, ==, all);
  }
}

static void
test_unit_unescape_refuses_other_spellings (void)
{
  /* Only the spelling libvirt makes is a name it made: anything else is refused, not guessed. */
  static const char *const bad[] = {
    "qemu\\x2D1",       /* upper-case hex */
    "a b",              /* a byte that is always escaped */
    "a\\x2",            /* a cut escape */
    "a\\xzz",
    "a\\x00b",          /* NUL */
    "a\\x61",           /* 'a' escaped */
    ".x",               /* a leading '.' raw */
    "a/b",              /* '/' is written '-' */
    "a\\b",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *u = ifb_libvirt_unit_unescape (bad[i]);
    if (u)
      g_error ("'%s' unescaped to '%s'", bad[i], u);
  }
}

static void
test_paths (void)
{
  /* The cgroup of a domain in each layout and partition, as libvirt 9.0 names it. */
  static const struct { IfbLibvirtCgroupLayout layout; const char *partition, *name, *path; } cases[] = {
    { IFB_LIBVIRT_CGROUP_MANUAL, NULL, "ifb-capture", "/machine/qemu-1-ifb-capture.libvirt-qemu" },
    { IFB_LIBVIRT_CGROUP_MANUAL, "", "vm", "/machine/qemu-1-vm.libvirt-qemu" },
    { IFB_LIBVIRT_CGROUP_MANUAL, "/machine/tenant", "vm", "/machine/tenant.partition/qemu-1-vm.libvirt-qemu" },
    { IFB_LIBVIRT_CGROUP_MANUAL, "/tenant", "vm", "/tenant.partition/qemu-1-vm.libvirt-qemu" },
    { IFB_LIBVIRT_CGROUP_MANUAL, "/system", "vm", "/system/qemu-1-vm.libvirt-qemu" },
    { IFB_LIBVIRT_CGROUP_MANUAL, "/machine/machine", "vm", "/machine/machine.partition/qemu-1-vm.libvirt-qemu" },
    /* a component with a '.' keeps its name; '_' before what could be a control file */
    { IFB_LIBVIRT_CGROUP_MANUAL, "/a.b/cpu.x/cgroup.y/_u/memory", "vm",
      "/a.b/_cpu.x/_cgroup.y/__u.partition/_memory.partition/qemu-1-vm.libvirt-qemu" },
    { IFB_LIBVIRT_CGROUP_MANUAL, "/", "vm", "/qemu-1-vm.libvirt-qemu" },
    { IFB_LIBVIRT_CGROUP_MANUAL, "//machine//", "vm", "/machine.partition/qemu-1-vm.libvirt-qemu" },
    { IFB_LIBVIRT_CGROUP_MACHINED, NULL, "ifb-capture", "/machine.slice/machine-qemu\\x2d1\\x2difb\\x2dcapture.scope" },
    { IFB_LIBVIRT_CGROUP_MACHINED, "/machine/tenant", "a.%.b",
      "/machine.slice/machine-tenant.slice/machine-qemu\\x2d1\\x2da.b.scope" },
    { IFB_LIBVIRT_CGROUP_MACHINED, "/a-b/c.d", "vm", "/a\\x2db.slice/a\\x2db-c.d.slice/machine-qemu\\x2d1\\x2dvm.scope" },
    { IFB_LIBVIRT_CGROUP_MACHINED, "/h\xc3\xa9llo", "vm", "/h\\xc3\\xa9llo.slice/machine-qemu\\x2d1\\x2dvm.scope" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *p = ifb_libvirt_cgroup_path (cases[i].layout, cases[i].partition, 1, cases[i].name);
    g_autofree char *machine = NULL;
    g_autofree char *want = ifb_libvirt_machine_name (1, cases[i].name);
    IfbLibvirtCgroupLayout layout;
    int id = -1;
    g_assert_cmpstr (p, ==, cases[i].path);
    /* and the watcher recognizes it again */
    g_assert_true (ifb_libvirt_cgroup_parse (p, &layout, &machine, &id));
    g_assert_cmpint (layout, ==, cases[i].layout);
    g_assert_cmpint (id, ==, 1);
    g_assert_cmpstr (machine, ==, want);
  }
}

static void
test_parse_refuses (void)
{
  /* Only a domain's own cgroup, named as libvirt names a QEMU domain's, is a libvirt guest's:
   * not a child of it, another driver's, a hand-made look-alike or a non-canonical spelling. */
  static const char *const bad[] = {
    "/machine/qemu-1-vm.libvirt-lxc",
    "/machine/lxc-1-vm.libvirt-qemu",
    "/machine.slice/machine-qemu\\x2d1\\x2dvm.scope/libvirt",
    "/machine/qemu-1-vm.libvirt-qemu/emulator",
    "/machine.slice/machine-qemu\\x2dvm.scope",          /* no id */
    "/machine.slice/machine-qemu\\x2D1\\x2dvm.scope",    /* upper-case hex */
    "/machine.slice/machine-qemu-1-vm.scope",            /* '-' is '/' in a unit name */
    "/machine.slice/machine-lxc\\x2d1\\x2dvm.scope",
    "/machine/qemu-01-vm.libvirt-qemu",
    "/machine/qemu-1-.libvirt-qemu",
    "/machine/qemu-1-a..b.libvirt-qemu",
    "/machine/qemu-1-a_b.libvirt-qemu",
    "/machine/qemu--1-vm.libvirt-qemu",
    "/machine/qemu-99999999999-vm.libvirt-qemu",
    "machine/qemu-1-vm.libvirt-qemu",
    "qemu-1-vm.libvirt-qemu",
    "/",
    "",
  };

  g_autofree char *a58 = g_strnfill (58, 'a');
  g_autofree char *long_machine = g_strdup_printf ("/machine/qemu-1-%s.libvirt-qemu", a58);   /* 65 bytes */
  g_autofree char *a57 = g_strnfill (57, 'a');
  g_autofree char *longest = g_strdup_printf ("/machine/qemu-1-%s.libvirt-qemu", a57);      /* 64 bytes */

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    if (ifb_libvirt_cgroup_parse (bad[i], NULL, NULL, NULL))
      g_error ("'%s' taken for a libvirt domain's cgroup", bad[i]);
  g_assert_false (ifb_libvirt_cgroup_parse (NULL, NULL, NULL, NULL));
  g_assert_false (ifb_libvirt_cgroup_parse (long_machine, NULL, NULL, NULL));
  g_assert_true (ifb_libvirt_cgroup_parse (longest, NULL, NULL, NULL));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ifb/libvirt-cgroup/machine-name", test_machine_name);
  g_test_add_func ("/ifb/libvirt-cgroup/unit-escape-both-ways", test_unit_escape_both_ways);
  g_test_add_func ("/ifb/libvirt-cgroup/unit-unescape-refuses-other-spellings", test_unit_unescape_refuses_other_spellings);
  g_test_add_func ("/ifb/libvirt-cgroup/paths", test_paths);
  g_test_add_func ("/ifb/libvirt-cgroup/parse-refuses", test_parse_refuses);
  return g_test_run ();
}
