/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iommufdctl libvirt-start DOMAIN [--connect URI]
 *
 * Starts a libvirt (>= 12.2) domain that takes its iommufd from the broker: its XML has
 * <iommufd enabled='yes' fdgroup='iommufd-broker'/>, so libvirt passes QEMU the /dev/iommu file
 * that a client associated with the domain under that fd group, on the connection that starts it,
 * and opens the VFIO cdevs itself. This command is that client:
 *   1. reads the domain's XML (inactive) and refuses one that does not name the broker's fd group;
 *   2. vm.create: the guest, unbound hand-off, in a provisional cgroup (libvirt names the domain's
 *      only as it starts it; the hook's prepare places the guest there, vm.place, and reserves its
 *      hostdevs); a stale guest of the same UUID (a start that failed half-way) is replaced;
 *   3. vm.fds: the guest's iommufd, opened by the broker with its RLIMIT mode set (which needs
 *      CAP_SYS_RESOURCE: the broker has it, the client and QEMU need not);
 *   4. virDomainFDAssociate(fdgroup 'iommufd-broker') then virDomainCreate, on one connection; a
 *      failed association or start destroys the guest again, and the domain is not started.
 * The broker watches this process as the holder of the guest's fds until the `started` hook has
 * recorded QEMU's pid, so the guest's context lives on with QEMU when this process exits.
 */
#include <stdlib.h>
#include <string.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "ctl.h"
#include "domain-xml.h"
#include "errors.h"
#include "json.h"
#include "util.h"

static int
libvirt_fail (const char *what, const char *domain)
{
  const virError *e = virGetLastError ();
  fprintf (stderr, "iommufdctl: libvirt-start: %s%s%s: %s\n", what, domain ? " " : "", domain ? domain : "",
           e && e->message ? e->message : "failed");
  return IFB_EXIT_FAILED;
}

static void
destroy_guest (IfbCtl *ctl, IfbRpcClient *c, const char *name, const char *uuid)
{
  json_object *p = json_object_new_object ();
  g_autoptr (json_object) r = NULL;
  g_autoptr (GError) error = NULL;

  json_object_object_add (p, "vm", json_object_new_string (name));
  json_object_object_add (p, "uuid", json_object_new_string (uuid));
  ifb_rpc_client_call (c, "vm.destroy", p, NULL, &r, NULL, &error);
}

static gboolean
create_guest (IfbCtl *ctl, IfbRpcClient *c, const char *name, const char *uuid)
{
  for (int attempt = 0; attempt < 2; attempt++) {
    json_object *p = json_object_new_object ();
    json_object *o = json_object_new_object ();
    g_autofree char *cgroup = g_strdup_printf ("/machine.slice/iommufd-broker-pending-%.8s.scope", uuid);
    g_autoptr (json_object) r = NULL;
    g_autoptr (GError) error = NULL;

    json_object_object_add (p, "name", json_object_new_string (name));
    json_object_object_add (p, "uuid", json_object_new_string (uuid));
    json_object_object_add (p, "cgroup", json_object_new_string (cgroup));
    json_object_object_add (o, "handoff", json_object_new_string ("unbound"));
    json_object_object_add (o, "defer", json_object_new_boolean (TRUE));
    json_object_object_add (p, "options", o);
    if (ifb_rpc_client_call (c, "vm.create", p, NULL, &r, NULL, &error))
      return TRUE;
    if (attempt > 0 || !g_error_matches (error, IFB_ERROR, IFB_ERROR_VM_EXISTS)) {
      fprintf (stderr, "iommufdctl: libvirt-start: vm.create: %s\n", error->message);
      return FALSE;
    }
    /* the domain is not running (checked): a guest of its name and UUID is left from a start
     * that failed half-way; one of another UUID is refused by vm.destroy's check */
    destroy_guest (ctl, c, name, uuid);
  }
  return FALSE;
}

int
ifb_ctl_cmd_libvirt_start (IfbCtl *ctl, int argc, char **argv)
{
  const char *uri = NULL, *name = NULL;
  g_autoptr (IfbDomainXml) d = NULL;
  g_autoptr (IfbRpcClient) c = NULL;
  g_autoptr (json_object) r = NULL;
  g_autoptr (IfbFdList) fds = NULL;
  g_autoptr (GError) error = NULL;
  char uuid[VIR_UUID_STRING_BUFLEN];
  virConnectPtr conn = NULL;
  virDomainPtr dom = NULL;
  char *xml = NULL;
  gint64 idx;
  int fd, rc = IFB_EXIT_FAILED;

  for (int i = 1; i < argc; i++) {
    if (strcmp (argv[i], "--connect") == 0 && i + 1 < argc)
      uri = argv[++i];
    else if (g_str_has_prefix (argv[i], "--connect="))
      uri = argv[i] + strlen ("--connect=");
    else if (argv[i][0] == '-' || name)
      return ifb_ctl_usage_fail ("libvirt-start", "libvirt-start: unexpected argument '%s'", argv[i]);
    else
      name = argv[i];
  }
  if (!name)
    return ifb_ctl_usage_fail ("libvirt-start", "libvirt-start: missing DOMAIN");

  if (!(conn = virConnectOpen (uri)))
    return libvirt_fail ("connecting to libvirt", uri);
  if (!(dom = virDomainLookupByName (conn, name))) {
    libvirt_fail ("looking up domain", name);
    goto out;
  }
  if (virDomainIsActive (dom) == 1) {
    fprintf (stderr, "iommufdctl: libvirt-start: domain '%s' is running already\n", name);
    goto out;
  }
  if (!(xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE)) || virDomainGetUUIDString (dom, uuid) < 0) {
    libvirt_fail ("reading domain", name);
    goto out;
  }
  if (!ifb_domain_xml_parse (xml, strlen (xml), &d, &error)) {
    fprintf (stderr, "iommufdctl: libvirt-start: domain '%s': %s\n", name, error->message);
    goto out;
  }
  if (!ifb_domain_xml_is_native (d)) {
    fprintf (stderr, "iommufdctl: libvirt-start: domain '%s' does not take its iommufd from the broker: its XML "
                     "needs <iommufd enabled='yes' fdgroup='%s'/> (libvirt >= 12.2)\n", name, IFB_LIBVIRT_FDGROUP);
    goto out;
  }

  if (!(c = ifb_ctl_connect (ctl)) || !create_guest (ctl, c, name, uuid))
    goto out;
  {
    json_object *p = json_object_new_object ();
    json_object_object_add (p, "vm", json_object_new_string (name));
    json_object_object_add (p, "uuid", json_object_new_string (uuid));
    if (!ifb_ctl_call (ctl, c, "vm.fds", p, &r, &fds) || !ifb_json_get_int (r, "iommufd", &idx) ||
        (fd = ifb_fd_list_get (fds, (guint) idx)) < 0) {
      fprintf (stderr, "iommufdctl: libvirt-start: no iommufd for guest '%s'\n", name);
      destroy_guest (ctl, c, name, uuid);
      goto out;
    }
  }
  if (virDomainFDAssociate (dom, IFB_LIBVIRT_FDGROUP, 1, &fd, 0) < 0) {
    libvirt_fail ("associating the broker's iommufd with domain", name);
    destroy_guest (ctl, c, name, uuid);
    goto out;
  }
  if (virDomainCreate (dom) < 0) {
    libvirt_fail ("starting domain", name);
    destroy_guest (ctl, c, name, uuid);
    goto out;
  }
  printf ("Domain '%s' started with the broker's iommufd (fd group '%s')\n", name, IFB_LIBVIRT_FDGROUP);
  rc = IFB_EXIT_OK;

out:
  free (xml);
  if (dom)
    virDomainFree (dom);
  virConnectClose (conn);
  return rc;
}
