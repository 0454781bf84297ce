/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbDomainXml: what the libvirt hook needs from a domain's XML — name, UUID, libvirt's id, the
 * resource partition, and the broker's own block in <metadata> (devices + options) — and the
 * cgroup2 path libvirt 9.0 gives that domain's QEMU.
 */
#pragma once

#include <glib.h>

#include "libvirt-cgroup.h"

/* The broker's XML namespace inside a domain's <metadata>. Never change it: domains carry it. */
#define IFB_DOMAIN_XMLNS "https://iommufd-broker.example/xmlns/1"

typedef enum { IFB_TRI_DEFAULT = -1, IFB_TRI_NO = 0, IFB_TRI_YES = 1 } IfbTri;

/* <options handoff=…>: what the VMM receives (the broker's vm.create option of the same name).
 * unbound, the default: fresh unbound device fds, the VMM binds (QEMU, cloud-hypervisor: the
 * kernel allows one bind per device and they always bind). bound: fds the broker bound, plus
 * ids, for VMMs that take them. */
typedef enum {
  IFB_DOMAIN_HANDOFF_UNBOUND,
  IFB_DOMAIN_HANDOFF_BOUND,
  _IFB_DOMAIN_HANDOFF_MAX,
  IFB_DOMAIN_HANDOFF_INVALID = -1,
} IfbDomainHandoff;

typedef struct {
  char *name;
  char *uuid;
  int id;                       /* libvirt's domain id, -1 when the XML has none (inactive) */
  char *partition;              /* <resource><partition> (absolute), NULL when absent */
  gboolean has_broker;          /* a <ifb:broker> element is in <metadata> */
  GPtrArray *devices;           /* of char*: PCI addresses, in document order */
  IfbTri nest_parent, allow_plain, dirty_tracking;
  IfbDomainHandoff handoff;     /* IFB_DOMAIN_HANDOFF_UNBOUND unless the metadata says bound */
} IfbDomainXml;

/* "unbound", "bound"; NULL for anything else. */
const char *ifb_domain_handoff_to_string (IfbDomainHandoff h);
/* The value for a name, IFB_DOMAIN_HANDOFF_INVALID for anything else (case matters, as in XML). */
IfbDomainHandoff ifb_domain_handoff_from_string (const char *s);

/* Parse a domain XML document (len bytes). FALSE with a message on malformed XML or broker
 * metadata that does not follow the schema (tests/libvirt/README.md). */
gboolean ifb_domain_xml_parse (const char *xml, size_t len, IfbDomainXml **ret, GError **error);
IfbDomainXml *ifb_domain_xml_free (IfbDomainXml *d);

/* The guest's cgroup libvirt gives the domain in layout (proto/libvirt-cgroup.h), from its id,
 * name and partition; NULL when the XML has no id (an inactive domain). */
char *ifb_domain_cgroup (const IfbDomainXml *d, IfbLibvirtCgroupLayout layout);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbDomainXml, ifb_domain_xml_free)
