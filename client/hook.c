/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iommufd-broker-hook-xml: the XML-reading half of the libvirt QEMU hook. The hook itself
 * (hook-front.c, in /etc/libvirt/hooks/qemu.d/) handles what needs no parser and execs this
 * program (from libexecdir) for prepare and reconnect, the operations described below that need
 * the broker metadata; the others are described here to keep the whole contract in one place.
 *
 * Theory of operation
 *
 * libvirtd runs every executable in qemu.d as `HOOK NAME OPERATION SUBOP EXTRA` with the live
 * domain XML on stdin and a scrubbed environment (PATH, HOME, LC_ALL only), while it holds the
 * domain's lock: we must never call back into libvirt, and we must be quick. A non-zero exit of
 * prepare/start/started aborts the start and libvirt shows our stderr to the user.
 *
 *   prepare   (a domain on libvirt's own iommufd from the broker's fd group: vm.place into the cgroup
 *             libvirt is about to create, the guest made by iommufdctl libvirt-start, then
 *             vm.attach of its <hostdev>s; otherwise:)
 *             vm.create {defer, handoff} with the cgroup libvirt is about to create, then vm.attach
 *             (which only reserves devices while the cgroup does not exist; managed="yes" ones in a
 *             second call with managed, which binds them to vfio-pci). Refusal: undo, exit 1.
 *             The hand-off is the metadata's, else "unbound", sent explicitly so the guest is
 *             what QEMU can take whatever the broker's default: QEMU binds the device fds itself,
 *             and the kernel binds a device once.
 *   started   vm.started {pid from /run/libvirt/qemu/NAME.pid}: the broker checks that QEMU runs
 *             inside the guest's cgroup and allocates whatever the launcher has not pulled yet.
 *   release   vm.destroy; a guest the broker does not know is fine (idempotent).
 *   reconnect libvirtd restarted and found the domain running: make sure the broker still has
 *             the guest (re-created and its devices reserved again if it lost it — QEMU keeps
 *             the fds it got, the reservation keeps other guests off the devices) and record
 *             the pid. Never fails: a failed reconnect hook would make libvirtd kill the guest.
 *   migrate, restore   the XML passes through to stdout unchanged.
 *
 * A domain without broker metadata is left alone without contacting the broker. The broker's
 * socket: $IOMMUFD_BROKER_SOCKET (libvirtd does not pass it; for tests), else `[broker] socket`
 * of the broker's own config file (IFB_CONFIG_FILE, or $IOMMUFD_BROKER_CONFIG), else the default.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "domain-xml.h"
#include "hook-common.h"
#include "errors.h"
#include "ifb-config.h"
#include "json.h"
#include "rpc-client.h"
#include "util.h"

#define PREFIX IFB_HOOK_PREFIX

static void
add_tri (json_object *o, const char *key, IfbTri t)
{
  if (t != IFB_TRI_DEFAULT)
    json_object_object_add (o, key, json_object_new_boolean (t == IFB_TRI_YES));
}

/* The domain's devices: the metadata's <ifb:device>s, or for a domain on libvirt's own iommufd
 * path its PCI <hostdev>s. First those on vfio-pci already, then (managed) those the broker takes
 * from their host drivers: libvirt's managed='yes' hostdevs too, which libvirt then finds on
 * vfio-pci and leaves to the broker, which gives them back at release. With a vIOMMU each device
 * alone, with its virtual id (the broker refuses one without). */
static gboolean
attach_devices (IfbRpcClient *c, const IfbDomainXml *d, GError **error)
{
  gboolean native = ifb_domain_xml_is_native (d);

  for (int managed = 0; managed < 2; managed++) {
    GPtrArray *devs = managed ? (native ? d->managed_hostdevs : d->managed_devices) : (native ? d->hostdevs : d->devices);
    GArray *virt_ids = native ? NULL : managed ? d->managed_virt_ids : d->virt_ids;
    gboolean one_by_one = d->viommu && virt_ids;
    for (guint i = 0; i < devs->len; i += one_by_one ? 1 : devs->len) {
      json_object *p = ifb_hook_vm_param (d->name, d->uuid);
      if (one_by_one) {
        gint64 virt = g_array_index (virt_ids, gint64, i);
        json_object_object_add (p, "device", json_object_new_string (g_ptr_array_index (devs, i)));
        if (virt >= 0)
          json_object_object_add (p, "virt_id", json_object_new_int64 (virt));
      } else {
        json_object *a = json_object_new_array ();
        for (guint j = 0; j < devs->len; j++)
          json_object_array_add (a, json_object_new_string (g_ptr_array_index (devs, j)));
        json_object_object_add (p, "devices", a);
      }
      if (managed)
        json_object_object_add (p, "managed", json_object_new_boolean (TRUE));
      if (!ifb_hook_call (c, "vm.attach", p, NULL, error))
        return FALSE;
    }
  }
  return TRUE;
}

/* vm.create (deferred) + vm.attach; on an attach refusal the guest is destroyed again. */
static gboolean
create_guest (IfbRpcClient *c, const IfbDomainXml *d, const char *cgroup, GError **error)
{
  json_object *p = json_object_new_object ();
  json_object *o = json_object_new_object ();
  g_autoptr (GError) undo = NULL;

  json_object_object_add (p, "name", json_object_new_string (d->name));
  if (d->uuid)
    json_object_object_add (p, "uuid", json_object_new_string (d->uuid));
  json_object_object_add (p, "cgroup", json_object_new_string (cgroup));
  json_object_object_add (o, "defer", json_object_new_boolean (TRUE));
  json_object_object_add (o, "handoff", json_object_new_string (ifb_handoff_to_string (d->handoff)));
  add_tri (o, "nest_parent", d->nest_parent);
  add_tri (o, "allow_plain", d->allow_plain);
  add_tri (o, "dirty_tracking", d->dirty_tracking);
  if (d->memory_mib)   /* the broker raises the VMM's RLIMIT_MEMLOCK from it at vm.fds */
    json_object_object_add (o, "memory_mib", json_object_new_int64 ((gint64) d->memory_mib));
  if (d->viommu)
    json_object_object_add (o, "viommu", json_object_new_string (d->viommu));
  if (d->veventq_depth)
    json_object_object_add (o, "veventq_depth", json_object_new_int64 (d->veventq_depth));
  json_object_object_add (p, "options", o);
  if (!ifb_hook_call (c, "vm.create", p, NULL, error))
    return FALSE;
  if (attach_devices (c, d, error))
    return TRUE;
  ifb_hook_call (c, "vm.destroy", ifb_hook_vm_param (d->name, d->uuid), NULL, &undo);
  return FALSE;
}

/* libvirt gives domains to systemd-machined when systemd runs the host and machined can be
 * activated on D-Bus (virSystemdHasMachined); the same test without D-Bus: systemd's runtime
 * directory and machined's D-Bus service file. */
static gboolean
host_has_machined (void)
{
  static const char *const dirs[] = { "/usr/local/share/dbus-1/system-services", "/usr/share/dbus-1/system-services",
                                      "/lib/dbus-1/system-services", NULL };

  if (!g_file_test ("/run/systemd/system", G_FILE_TEST_IS_DIR))
    return FALSE;
  for (const char *const *d = dirs; *d; d++) {
    g_autofree char *f = g_build_filename (*d, "org.freedesktop.machine1.service", NULL);
    if (g_file_test (f, G_FILE_TEST_EXISTS))
      return TRUE;
  }
  return FALSE;
}

/* [libvirt] cgroup-layout of the broker's config: auto (default), systemd or manual. */
static gboolean
cgroup_layout (IfbLibvirtCgroupLayout *ret, GError **error)
{
  g_autofree char *v = ifb_hook_config_get ("libvirt", "cgroup-layout");

  if (!v || strcmp (v, "auto") == 0)
    *ret = host_has_machined () ? IFB_LIBVIRT_CGROUP_MACHINED : IFB_LIBVIRT_CGROUP_MANUAL;
  else if (strcmp (v, "systemd") == 0)
    *ret = IFB_LIBVIRT_CGROUP_MACHINED;
  else if (strcmp (v, "manual") == 0)
    *ret = IFB_LIBVIRT_CGROUP_MANUAL;
  else
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                        "%s: [libvirt] cgroup-layout '%s' is not one of auto, systemd, manual",
                        ifb_hook_config_path (), v), FALSE;
  return TRUE;
}

/* The domain's cgroup as libvirt will make it; NULL with *error set, or NULL and no error when
 * the XML has no domain id. */
static char *
domain_cgroup (const IfbDomainXml *d, GError **error)
{
  IfbLibvirtCgroupLayout layout;
  return cgroup_layout (&layout, error) ? ifb_domain_cgroup (d, layout) : NULL;
}

static int
op_prepare (IfbRpcClient *c, const IfbDomainXml *d)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *cgroup = domain_cgroup (d, &error);
  g_autoptr (json_object) old = NULL;

  if (error)
    return ifb_hook_fail (d->name, error);
  if (!cgroup)
    return fprintf (stderr, PREFIX "domain '%s': the XML at prepare carries no domain id, so its cgroup "
                            "is unknown\n", d->name), 1;
  /* A guest left over from a run whose release hook was missed (the watcher normally reaps it):
   * the same domain (same UUID) may replace it; anything else keeps its name. */
  if (ifb_hook_call (c, "vm.show", ifb_hook_vm_param (d->name, NULL), &old, NULL)) {
    const char *uuid = json_object_get_string (ifb_json_get (old, "uuid"));
    if (!d->uuid || g_ascii_strcasecmp (uuid, d->uuid) != 0)
      return fprintf (stderr, PREFIX "domain '%s': the broker already has a guest of that name with UUID %s\n",
                      d->name, uuid), 1;
    fprintf (stderr, PREFIX "domain '%s': replacing a stale guest of the same UUID (its release was missed)\n", d->name);
    if (!ifb_hook_call (c, "vm.destroy", ifb_hook_vm_param (d->name, d->uuid), NULL, &error))
      return ifb_hook_fail (d->name, error);
  }
  if (!create_guest (c, d, cgroup, &error))
    return ifb_hook_fail (d->name, error);
  return 0;
}

/*
 * libvirt >= 12.2 taking the domain's iommufd from the broker's fd group: `iommufdctl
 * libvirt-start` created the guest and associated its iommufd on the connection that starts the
 * domain, before libvirt named the domain's cgroup. Here the guest is placed in that cgroup and
 * its hostdevs reserved, so the one-owner rule and the audit hold as for any guest; release
 * destroys it as any other. Without the guest (autostart, `virsh start`: no client associated
 * the broker's iommufd) the start is refused, saying how to start the domain.
 */
static int
op_prepare_native (IfbRpcClient *c, const IfbDomainXml *d)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) undo = NULL;
  g_autofree char *cgroup = domain_cgroup (d, &error);
  json_object *p;

  if (error)
    return ifb_hook_fail (d->name, error);
  if (!cgroup)
    return fprintf (stderr, PREFIX "domain '%s': the XML at prepare carries no domain id, so its cgroup "
                            "is unknown\n", d->name), 1;
  if (!ifb_hook_call (c, "vm.show", ifb_hook_vm_param (d->name, d->uuid), NULL, &error)) {
    if (!g_error_matches (error, IFB_ERROR, IFB_ERROR_NO_SUCH_VM))
      return ifb_hook_fail (d->name, error);
    return fprintf (stderr, PREFIX "domain '%s' takes its iommufd from the broker's fd group '%s', but no client "
                            "associated one: start it with 'iommufdctl libvirt-start %s' (autostart and a plain "
                            "start cannot)\n", d->name, IFB_LIBVIRT_FDGROUP, d->name), 1;
  }
  p = ifb_hook_vm_param (d->name, d->uuid);
  json_object_object_add (p, "cgroup", json_object_new_string (cgroup));
  if (ifb_hook_call (c, "vm.place", p, NULL, &error) && attach_devices (c, d, &error))
    return 0;
  ifb_hook_call (c, "vm.destroy", ifb_hook_vm_param (d->name, d->uuid), NULL, &undo);
  return ifb_hook_fail (d->name, error);
}

static int
op_reconnect (IfbRpcClient *c, const IfbDomainXml *d)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (json_object) vm = NULL;

  if (!ifb_hook_call (c, "vm.show", ifb_hook_vm_param (d->name, d->uuid), &vm, &error)) {
    g_autofree char *cgroup = NULL;
    if (!g_error_matches (error, IFB_ERROR, IFB_ERROR_NO_SUCH_VM))
      return ifb_hook_fail (d->name, error), 0;
    g_clear_error (&error);
    cgroup = domain_cgroup (d, &error);
    if (!cgroup && !error)
      g_set_error (&error, IFB_ERROR, IFB_ERROR_NO_SUCH_VM,
                   "the broker has no guest for this running domain and its XML carries no domain id to "
                   "re-create it with");
    if (!cgroup)
      return ifb_hook_fail (d->name, error), 0;
    fprintf (stderr, PREFIX "domain '%s' is running but the broker has no guest for it: re-creating it "
                            "and reserving its devices (QEMU keeps the fds it has)\n", d->name);
    if (!create_guest (c, d, cgroup, &error))
      return ifb_hook_fail (d->name, error), 0;
  }
  if (!ifb_hook_started (c, d->name, d->uuid, &error))
    ifb_hook_fail (d->name, error);
  return 0;
}

int
main (int argc, char **argv)
{
  g_autofree char *xml = NULL;
  g_autofree char *sock = NULL;
  g_autoptr (IfbDomainXml) d = NULL;
  g_autoptr (IfbRpcClient) c = NULL;
  g_autoptr (GError) error = NULL;
  gboolean prepare;
  size_t len;

  /* The front (hook-front.c) sends only these two; it has already read and checked the rest. */
  if (argc < 3 || (strcmp (argv[2], "prepare") != 0 && strcmp (argv[2], "reconnect") != 0)) {
    fprintf (stderr, "Usage: %s NAME prepare|reconnect [SUBOP [EXTRA]] < domain.xml\n"
                     "The XML-reading half of iommufd-broker's libvirt hook, run by iommufd-broker-hook.\n", argv[0]);
    return 2;
  }
  prepare = strcmp (argv[2], "prepare") == 0;
  xml = ifb_hook_read_stdin (&len, &error);
  if (!xml || !ifb_domain_xml_parse (xml, len, &d, &error)) {
    /* Only prepare can refuse; a broken XML later on must not kill a running guest. */
    ifb_hook_fail (argv[1], error);
    return prepare ? 1 : 0;
  }
  if (!d->has_broker && !ifb_domain_xml_is_native (d))
    return 0;

  sock = ifb_hook_socket_path ();
  c = ifb_rpc_client_connect (sock, &error);
  if (!c) {
    ifb_hook_fail (d->name, error);
    return prepare ? 1 : 0;
  }
  if (prepare)
    return ifb_domain_xml_is_native (d) ? op_prepare_native (c, d) : op_prepare (c, d);
  return op_reconnect (c, d);
}
