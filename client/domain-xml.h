/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbDomainXml: what the libvirt hook needs from a domain's XML — name, UUID, libvirt's id, the
 * resource partition, and the broker's own block in <metadata> (devices + options) — and the
 * cgroup2 path libvirt 9.0 gives that domain's QEMU.
 */
#pragma once

#include <glib.h>

#include "handoff.h"
#include "libvirt-cgroup.h"

/* The broker's XML namespace inside a domain's <metadata>. Never change it: domains carry it. */
#define IFB_DOMAIN_XMLNS "https://iommufd-broker.example/xmlns/1"
/* The fd group under which `iommufdctl libvirt-start` associates the broker's iommufd with a
 * domain (libvirt >= 12.2: <iommufd enabled='yes' fdgroup='iommufd-broker'/>). Never change it. */
#define IFB_LIBVIRT_FDGROUP "iommufd-broker"

typedef enum { IFB_TRI_DEFAULT = -1, IFB_TRI_NO = 0, IFB_TRI_YES = 1 } IfbTri;

typedef struct {
  char *name;
  char *uuid;
  int id;                       /* libvirt's domain id, -1 when the XML has none (inactive) */
  char *partition;              /* <resource><partition> (absolute), NULL when absent */
  gboolean has_broker;          /* a <ifb:broker> element is in <metadata> */
  GPtrArray *devices;           /* of char*: PCI addresses, in document order */
  GArray *virt_ids;             /* of gint64, one per device: its virtual id in the guest's vIOMMU, -1: none */
  GPtrArray *managed_devices;   /* PCI addresses of those with managed="yes" (not in devices) */
  GArray *managed_virt_ids;     /* their virtual ids, as virt_ids */
  IfbTri nest_parent, allow_plain, dirty_tracking;
  char *viommu;                 /* <options viommu=…>: the vIOMMU type, NULL: none */
  guint veventq_depth;          /* <options veventq-depth=…>, 0: none */
  IfbHandoff handoff;           /* <options handoff=…>: IFB_HANDOFF_UNBOUND unless it says bound */
  guint64 memory_mib;           /* <maxMemory> if given (memory hotplug), else <memory>, rounded up; 0: none */
  /* libvirt's own iommufd (>= 12.2): <iommufd enabled='yes' fdgroup='NAME'/>, NULL when absent
   * or not enabled; and its PCI <hostdev>s (subsystem, type pci) as addresses, libvirt-managed
   * ones apart */
  char *iommufd_fdgroup;
  GPtrArray *hostdevs;
  GPtrArray *managed_hostdevs;
} IfbDomainXml;

/* The domain takes its iommufd from the broker's fd group (the libvirt >= 12.2 path). */
gboolean ifb_domain_xml_is_native (const IfbDomainXml *d);

/* Parse a domain XML document (len bytes). FALSE with a message on malformed XML or broker
 * metadata that does not follow the schema (tests/libvirt/README.md). */
gboolean ifb_domain_xml_parse (const char *xml, size_t len, IfbDomainXml **ret, GError **error);
IfbDomainXml *ifb_domain_xml_free (IfbDomainXml *d);

/* The guest's cgroup libvirt gives the domain in layout (proto/libvirt-cgroup.h), from its id,
 * name and partition; NULL when the XML has no id (an inactive domain). */
char *ifb_domain_cgroup (const IfbDomainXml *d, IfbLibvirtCgroupLayout layout);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbDomainXml, ifb_domain_xml_free)
