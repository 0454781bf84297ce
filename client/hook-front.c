/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iommufd-broker-hook: the libvirt QEMU hook (installed into /etc/libvirt/hooks/qemu.d/).
 *
 * Theory of operation
 *
 * libvirtd runs this for every operation of every QEMU domain, holding the domain's lock, so it
 * must be quick; the XML parser (libxml2, which drags in ICU) alone costs more to load than the
 * rest of the hook. So this front links no parser and does what needs none:
 *
 *   migrate, restore   the XML passes through to stdout unchanged (an XML over the 16 MiB the
 *                      hook reads is refused with an error, never passed on cut short);
 *   other operations   not ours: exit 0;
 *   not the broker's   the domain's XML mentions neither the broker's namespace URI nor its fd
 *                      group (fdgroup='iommufd-broker': libvirt's own iommufd from the broker): exit
 *                      0 without contacting the broker (a namespace must be declared by its URI);
 *   started            vm.started with QEMU's pid, by domain name (argv[1]) and UUID (the XML's);
 *   release            vm.destroy by domain name and UUID: a guest of that name but another
 *                      UUID is not this domain's and stays;
 *   prepare, reconnect these need the metadata: exec iommufd-broker-hook-xml (hook.c) with the
 *                      same arguments and the XML on stdin (a memfd).
 *
 * The XML program is looked for next to this one (the build tree) and then in libexecdir — not
 * in qemu.d, where libvirtd would run it as a hook of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "domain-xml.h"   /* IFB_DOMAIN_XMLNS only: nothing of libxml2 is called here */
#include "errors.h"
#include "hook-common.h"
#include "ifb-config.h"
#include "util.h"

#define XML_PROGRAM "iommufd-broker-hook-xml"

static int
exec_xml_program (char **argv, const char *xml, size_t len)
{
  g_autofree char *self = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *dir = self ? g_path_get_dirname (self) : NULL;
  g_autofree char *sibling = dir ? g_build_filename (dir, XML_PROGRAM, NULL) : NULL;
  const char *prog = sibling && access (sibling, X_OK) == 0 ? sibling : IFB_LIBEXECDIR "/" XML_PROGRAM;
  int fd = memfd_create ("domain-xml", 0);   /* no CLOEXEC: it becomes the program's stdin */

  if (fd < 0 || write (fd, xml, len) != (ssize_t) len || lseek (fd, 0, SEEK_SET) < 0 || dup2 (fd, STDIN_FILENO) < 0) {
    fprintf (stderr, IFB_HOOK_PREFIX "%s: passing the domain XML on: %s\n", argv[1], g_strerror (errno));
    return 1;
  }
  close (fd);
  argv[0] = (char *) prog;
  execv (prog, argv);
  fprintf (stderr, IFB_HOOK_PREFIX "%s: cannot run %s: %s\n", argv[1], prog, g_strerror (errno));
  return 1;
}

int
main (int argc, char **argv)
{
  g_autofree char *xml = NULL;
  g_autofree char *sock = NULL;
  g_autofree char *uuid = NULL;
  g_autoptr (IfbRpcClient) c = NULL;
  g_autoptr (GError) error = NULL;
  const char *op;
  size_t len;

  if (argc < 3) {
    fprintf (stderr, "Usage: %s NAME OPERATION [SUBOP [EXTRA]] < domain.xml\n"
                     "The libvirt QEMU hook of iommufd-broker (see libvirt's hooks documentation).\n", argv[0]);
    return 2;
  }
  op = argv[2];
  xml = ifb_hook_read_stdin (&len, &error);
  if (!xml)
    return ifb_hook_fail (argv[1], error);
  if (strcmp (op, "migrate") == 0 || strcmp (op, "restore") == 0)
    return fwrite (xml, 1, len, stdout) == len && fflush (stdout) == 0 ? 0 : 1;
  if (strcmp (op, "prepare") != 0 && strcmp (op, "started") != 0 && strcmp (op, "release") != 0 &&
      strcmp (op, "reconnect") != 0)
    return 0;
  if (!memmem (xml, len, IFB_DOMAIN_XMLNS, strlen (IFB_DOMAIN_XMLNS)) &&
      !memmem (xml, len, "fdgroup='" IFB_LIBVIRT_FDGROUP "'", strlen ("fdgroup='" IFB_LIBVIRT_FDGROUP "'")) &&
      !memmem (xml, len, "fdgroup=\"" IFB_LIBVIRT_FDGROUP "\"", strlen ("fdgroup=\"" IFB_LIBVIRT_FDGROUP "\"")))
    return 0;
  if (strcmp (op, "prepare") == 0 || strcmp (op, "reconnect") == 0)
    return exec_xml_program (argv, xml, len);

  sock = ifb_hook_socket_path ();
  c = ifb_rpc_client_connect (sock, &error);
  if (!c)
    return ifb_hook_fail (argv[1], error), strcmp (op, "started") == 0 ? 1 : 0;
  uuid = ifb_hook_domain_uuid (xml, len);
  if (strcmp (op, "started") == 0)
    return ifb_hook_started (c, argv[1], uuid, &error) ? 0 : ifb_hook_fail (argv[1], error);
  return ifb_hook_release (c, argv[1], uuid);
}
