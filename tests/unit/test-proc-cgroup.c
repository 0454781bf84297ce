/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/host/proc-cgroup.c: the one /proc/PID/cgroup parser (daemon, worker program, emulator).
 * The cgroup2 line wherever it is, and every way the input can be wrong or too long answered
 * with an error and an empty buffer — never a path cut short.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib.h>

#include "proc-cgroup.h"

static int
parse (const char *text, char *buf, size_t size)
{
  memset (buf, 'x', size);
  return ifb_proc_cgroup_parse (text, strlen (text), buf, size);
}

static void
test_found (void)
{
  /* The rest of the "0::" line, whether it is alone (pure cgroup2) or after the v1 lines of a
   * hybrid host, and never a "0::" that is not at the start of a line. */
  static const struct { const char *text, *path; } cases[] = {
    { "0::/\n", "/" },
    { "0::/machine/qemu-1-vm.libvirt-qemu/emulator\n", "/machine/qemu-1-vm.libvirt-qemu/emulator" },
    { "12:pids:/system.slice\n9:name=systemd:/0::/not-this\n1:cpu:/\n0::/user.slice/a b\n", "/user.slice/a b" },
    { "10::/v1-named\n0::/v2\n", "/v2" },
    { "0::/first\n0::/second\n", "/first" },
    { "0::/path with : and 0:: in it\n", "/path with : and 0:: in it" },
  };
  char buf[64];

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_assert_cmpint (parse (cases[i].text, buf, sizeof buf), ==, 0);
    g_assert_cmpstr (buf, ==, cases[i].path);
  }
}

static void
test_refused (void)
{
  /* No cgroup2 line, a cut or malformed one: an error, and buf is "". */
  static const struct { const char *text; int err; } cases[] = {
    { "", -ENOENT },
    { "12:pids:/\n4:memory:/x\n", -ENOENT },        /* cgroup v1 only */
    { "1:name=systemd:/0::/x\n", -ENOENT },
    { "0:", -ENOENT },
    { "0::/cut-before-the-newline", -EINVAL },
    { "4:memory:/\n0::/cut", -EINVAL },
    { "0::\n", -EINVAL },
    { "0::relative\n", -EINVAL },
  };
  char buf[64];

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_assert_cmpint (parse (cases[i].text, buf, sizeof buf), ==, cases[i].err);
    g_assert_cmpstr (buf, ==, "");
  }
  /* a NUL inside the path (len covers it) */
  {
    static const char nul[] = "0::/a\0b\n";
    memset (buf, 'x', sizeof buf);
    g_assert_cmpint (ifb_proc_cgroup_parse (nul, sizeof nul - 1, buf, sizeof buf), ==, -EINVAL);
    g_assert_cmpstr (buf, ==, "");
  }
}

static void
test_too_long (void)
{
  /* A path that fits with its NUL is returned whole; one byte more is -ENAMETOOLONG, never a
   * path cut to the buffer. */
  char buf[8];

  g_assert_cmpint (parse ("4:memory:/\n0::/abcdef\n", buf, sizeof buf), ==, 0);
  g_assert_cmpstr (buf, ==, "/abcdef");
  g_assert_cmpint (parse ("4:memory:/\n0::/abcdefg\n", buf, sizeof buf), ==, -ENAMETOOLONG);
  g_assert_cmpstr (buf, ==, "");
  g_assert_cmpint (parse ("0::/\n", buf, 1), ==, -ENAMETOOLONG);
  g_assert_cmpint (ifb_proc_cgroup_parse ("0::/\n", 5, NULL, 0), ==, -ENAMETOOLONG);
}

static int
memfd_with (const char *text, size_t len)
{
  int fd = memfd_create ("proc-cgroup", MFD_CLOEXEC);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (write (fd, text, len), ==, (ssize_t) len);
  g_assert_cmpint (lseek (fd, 0, SEEK_SET), ==, 0);
  return fd;
}

static void
test_read (void)
{
  /* The reader takes a file up to IFB_PROC_CGROUP_FILE_MAX bytes whole, however the cgroup2 line
   * falls, and refuses a longer one (-EFBIG) rather than parse a part of it. */
  g_autofree char *v1 = g_strnfill (IFB_PROC_CGROUP_FILE_MAX - 8, 'v');
  g_autofree char *fits = NULL;
  g_autofree char *over = NULL;
  char buf[PATH_MAX];
  int fd;

  v1[0] = '4', v1[1] = ':', v1[2] = 'x', v1[3] = ':', v1[4] = '/';
  fits = g_strdup_printf ("%s\n0::/ab\n", v1);          /* exactly the limit */
  g_assert_cmpuint (strlen (fits), ==, IFB_PROC_CGROUP_FILE_MAX);
  fd = memfd_with (fits, strlen (fits));
  g_assert_cmpint (ifb_proc_cgroup_read (fd, buf, sizeof buf), ==, 0);
  g_assert_cmpstr (buf, ==, "/ab");
  close (fd);

  over = g_strdup_printf ("%s\n0::/abc\n", v1);        /* one byte more */
  fd = memfd_with (over, strlen (over));
  g_assert_cmpint (ifb_proc_cgroup_read (fd, buf, sizeof buf), ==, -EFBIG);
  g_assert_cmpstr (buf, ==, "");
  close (fd);

  g_assert_cmpint (ifb_proc_cgroup_read (-1, buf, sizeof buf), ==, -EBADF);
}

static void
test_self (void)
{
  /* /proc/self/cgroup read the plain way gives the same path. */
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;
  const char *want = NULL;
  char buf[PATH_MAX];

  g_assert_true (g_file_get_contents ("/proc/self/cgroup", &text, NULL, NULL));
  lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l && !want; l++)
    if (g_str_has_prefix (*l, "0::"))
      want = *l + 3;
  if (!want) {
    g_test_skip ("this host has no cgroup2 hierarchy (/proc/self/cgroup has no 0:: line)");
    return;
  }
  g_assert_cmpint (ifb_proc_cgroup_self (buf, sizeof buf), ==, 0);
  g_assert_cmpstr (buf, ==, want);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ifb/proc-cgroup/found", test_found);
  g_test_add_func ("/ifb/proc-cgroup/refused", test_refused);
  g_test_add_func ("/ifb/proc-cgroup/too-long", test_too_long);
  g_test_add_func ("/ifb/proc-cgroup/read", test_read);
  g_test_add_func ("/ifb/proc-cgroup/self", test_self);
  return g_test_run ();
}
