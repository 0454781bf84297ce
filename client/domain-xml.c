/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * The hook gets the live domain XML on stdin. We read the few things we need with libxml2's
 * tree API (no XPath, no network, no entity expansion: XML_PARSE_NONET, and libxml2 2.9 does not
 * substitute entities unless asked). The broker's block is
 *
 *   <metadata>
 *     <ifb:broker xmlns:ifb="https://iommufd-broker.example/xmlns/1">
 *       <ifb:options handoff="bound" nest-parent="yes" allow-plain="no" dirty-tracking="no"
 *                    viommu="arm-smmuv3" veventq-depth="64"/>
 *       <ifb:device address="0000:65:00.0" guest-address="0000:00:03.0"/>
 *       <ifb:device address="0000:00:19.0" managed="yes"/>
 *     </ifb:broker>
 *   </metadata>
 *
 * viommu (bound only) gives the guest a vIOMMU of that type; each device then needs its virtual
 * id in it: guest-address, the device's PCI address inside the guest, gives its requester id
 * (bus << 8 | device << 3 | function: what a vSMMU's StreamID is for a PCI device), or
 * virt-id="N" gives the number itself. The hook then attaches the devices one at a time.
 *
 * handoff is "unbound" (the default: what QEMU takes) or "bound"; the yes/no options shape the
 * HWPTs the broker allocates, so they matter to bound guests. A device with managed="yes" is taken
 * from its host driver by the broker and given back after (vm.attach's managed). The broker's elements are
 * matched by namespace URI, never by prefix (libvirt keeps the prefix it was given, but any is
 * valid). Unknown elements or attributes in our namespace are errors: a typo must not silently
 * give a guest fewer devices.
 *
 * The guest's memory is what libvirt bases a VFIO guest's RLIMIT_MEMLOCK on: <maxMemory> when
 * the domain can hot-plug memory, else <memory>, each a libvirt scaled integer (unit= b, KB, K,
 * KiB, MB, M, MiB, GB, G, GiB, TB, T, TiB; KiB when absent). The broker raises the VMM's limit
 * from it, so no <memoryBacking><locked/> is needed.
 *
 * libvirt >= 12.2's own iommufd (<iommufd enabled='yes' fdgroup='NAME'/> under <domain>) and the
 * domain's PCI <hostdev>s are read too: a domain whose fd group is the broker's
 * (IFB_LIBVIRT_FDGROUP) gets its iommufd from the broker (iommufdctl libvirt-start), and the hook
 * reserves its hostdevs with the broker.
 *
 * The domain's cgroup follows libvirt's naming (proto/libvirt-cgroup.c, shared with the daemon's
 * libvirt watcher) from the id, name and partition read here.
 */
#include <stdio.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "domain-xml.h"
#include "errors.h"

#define MAX_DEVICES 64

IfbDomainXml *
ifb_domain_xml_free (IfbDomainXml *d)
{
  if (!d)
    return NULL;
  g_free (d->name);
  g_free (d->uuid);
  g_free (d->partition);
  if (d->devices)
    g_ptr_array_unref (d->devices);
  if (d->virt_ids)
    g_array_unref (d->virt_ids);
  g_free (d->viommu);
  if (d->managed_devices)
    g_ptr_array_unref (d->managed_devices);
  if (d->managed_virt_ids)
    g_array_unref (d->managed_virt_ids);
  g_free (d->iommufd_fdgroup);
  if (d->hostdevs)
    g_ptr_array_unref (d->hostdevs);
  if (d->managed_hostdevs)
    g_ptr_array_unref (d->managed_hostdevs);
  g_free (d);
  return NULL;
}

static gboolean
is_element (xmlNode *n, const char *name)
{
  return n->type == XML_ELEMENT_NODE && strcmp ((const char *) n->name, name) == 0 &&
         (!n->ns || !n->ns->href);
}

static gboolean
is_ours (xmlNode *n)
{
  return n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
         strcmp ((const char *) n->ns->href, IFB_DOMAIN_XMLNS) == 0;
}

static char *
node_text (xmlNode *n)
{
  xmlChar *c = xmlNodeGetContent (n);
  char *s = g_strstrip (g_strdup ((const char *) c));
  xmlFree (c);
  return s;
}

static gboolean
parse_yes_no (xmlNode *n, const char *attr, IfbTri *ret, GError **error)
{
  xmlChar *v = xmlGetProp (n, (const xmlChar *) attr);
  gboolean ok = TRUE;

  if (!v)
    return TRUE;
  if (strcmp ((const char *) v, "yes") == 0)
    *ret = IFB_TRI_YES;
  else if (strcmp ((const char *) v, "no") == 0)
    *ret = IFB_TRI_NO;
  else
    ok = (g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                       "broker metadata: <%s %s='%s'> must be 'yes' or 'no'", (const char *) n->name, attr,
                       (const char *) v), FALSE);
  xmlFree (v);
  return ok;
}

/* handoff='unbound|bound'; absent leaves *ret as it is (the default, unbound). */
static gboolean
parse_handoff (xmlNode *n, IfbHandoff *ret, GError **error)
{
  xmlChar *v = xmlGetProp (n, (const xmlChar *) "handoff");
  IfbHandoff h;

  if (!v)
    return TRUE;
  h = ifb_handoff_from_string ((const char *) v);
  if (h == IFB_HANDOFF_INVALID) {
    g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                 "broker metadata: <options handoff='%s'> must be 'unbound' (the VMM binds the devices: "
                 "QEMU, cloud-hypervisor) or 'bound' (the broker binds: VMMs that take a bound fd and ids)",
                 (const char *) v);
    xmlFree (v);
    return FALSE;
  }
  xmlFree (v);
  *ret = h;
  return TRUE;
}

static gboolean
check_attrs (xmlNode *n, const char *const *allowed, GError **error)
{
  for (xmlAttr *a = n->properties; a; a = a->next) {
    gboolean ok = FALSE;
    for (const char *const *k = allowed; *k && !ok; k++)
      ok = strcmp ((const char *) a->name, *k) == 0;
    if (!ok)
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                          "broker metadata: unknown attribute '%s' on <%s>", (const char *) a->name,
                          (const char *) n->name), FALSE;
  }
  return TRUE;
}

/* A device's virtual id: virt-id="N" (decimal or 0x hex), or guest-address="DDDD:BB:DD.F"'s
 * requester id; -1 when neither is given. */
static gboolean
parse_virt_id (xmlNode *n, gint64 *ret, GError **error)
{
  xmlChar *num = xmlGetProp (n, (const xmlChar *) "virt-id");
  xmlChar *ga = xmlGetProp (n, (const xmlChar *) "guest-address");
  unsigned dom, bus, dev, fn;
  char tail;
  gboolean ok = TRUE;

  *ret = -1;
  if (num && ga)
    ok = (g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                       "broker metadata: <device> takes virt-id or guest-address, not both"), FALSE);
  else if (num) {
    char *end;
    guint64 v = g_ascii_strtoull ((const char *) num, &end, 0);
    if (!*num || *end || v > G_MAXINT64 || num[0] == '-')
      ok = (g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                         "broker metadata: <device virt-id='%s'> must be a non-negative number", (const char *) num), FALSE);
    else
      *ret = (gint64) v;
  } else if (ga) {
    if (sscanf ((const char *) ga, "%4x:%2x:%2x.%1u%c", &dom, &bus, &dev, &fn, &tail) != 4 || dev > 31 || fn > 7)
      ok = (g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                         "broker metadata: <device guest-address='%s'> must be a PCI address DDDD:BB:DD.F",
                         (const char *) ga), FALSE);
    else
      *ret = (gint64) (bus << 8 | dev << 3 | fn);
  }
  xmlFree (num);
  xmlFree (ga);
  return ok;
}

static gboolean
parse_broker (IfbDomainXml *d, xmlNode *broker, GError **error)
{
  static const char *const options_attrs[] = { "handoff", "nest-parent", "allow-plain", "dirty-tracking", "viommu",
                                               "veventq-depth", NULL };
  static const char *const device_attrs[] = { "address", "virt-id", "guest-address", "managed", NULL };

  d->has_broker = TRUE;
  for (xmlNode *c = broker->children; c; c = c->next) {
    if (c->type != XML_ELEMENT_NODE)
      continue;
    if (!is_ours (c))
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                          "broker metadata: unexpected element <%s> outside the broker's namespace",
                          (const char *) c->name), FALSE;
    if (strcmp ((const char *) c->name, "options") == 0) {
      if (!check_attrs (c, options_attrs, error) ||
          !parse_handoff (c, &d->handoff, error) ||
          !parse_yes_no (c, "nest-parent", &d->nest_parent, error) ||
          !parse_yes_no (c, "allow-plain", &d->allow_plain, error) ||
          !parse_yes_no (c, "dirty-tracking", &d->dirty_tracking, error))
        return FALSE;
      {
        xmlChar *vi = xmlGetProp (c, (const xmlChar *) "viommu");
        xmlChar *depth = xmlGetProp (c, (const xmlChar *) "veventq-depth");
        char *end = NULL;
        guint64 n = depth ? g_ascii_strtoull ((const char *) depth, &end, 10) : 0;
        gboolean bad = depth && (!*depth || *end || n == 0 || n > 65536 || !vi);
        g_free (d->viommu);
        d->viommu = vi ? g_strdup ((const char *) vi) : NULL;
        d->veventq_depth = bad ? 0 : (guint) n;
        if (bad)
          g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "broker metadata: <options veventq-depth='%s'> "
                       "must be 1-65536 events, with viommu=", (const char *) depth);
        xmlFree (vi);
        xmlFree (depth);
        if (bad)
          return FALSE;
      }
    } else if (strcmp ((const char *) c->name, "device") == 0) {
      IfbTri managed = IFB_TRI_NO;
      xmlChar *addr;
      gint64 virt;
      if (!check_attrs (c, device_attrs, error) || !parse_virt_id (c, &virt, error) ||
          !parse_yes_no (c, "managed", &managed, error))
        return FALSE;
      addr = xmlGetProp (c, (const xmlChar *) "address");
      if (!addr || !*addr) {
        xmlFree (addr);
        return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                            "broker metadata: <device> needs an address='DDDD:BB:DD.F'"), FALSE;
      }
      if (d->devices->len + d->managed_devices->len >= MAX_DEVICES) {
        xmlFree (addr);
        return g_set_error (error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED,
                            "broker metadata: more than %d devices", MAX_DEVICES), FALSE;
      }
      g_ptr_array_add (managed == IFB_TRI_YES ? d->managed_devices : d->devices, g_ascii_strdown ((const char *) addr, -1));
      g_array_append_val (managed == IFB_TRI_YES ? d->managed_virt_ids : d->virt_ids, virt);
      xmlFree (addr);
    } else {
      return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                          "broker metadata: unknown element <%s> (expected <options> or <device>)",
                          (const char *) c->name), FALSE;
    }
  }
  return TRUE;
}

/* A libvirt scaled integer (virScaleInteger: "b"/"bytes", or k, m, g, t, p, e alone or with "iB"
 * for powers of 1024 and with "B" for powers of 1000, any case; KiB when absent) in MiB, rounded
 * up. */
static gboolean
memory_mib (xmlNode *n, guint64 *ret_mib, GError **error)
{
  xmlChar *unit = xmlGetProp (n, (const xmlChar *) "unit");
  const char *u = unit ? (const char *) unit : "KiB";
  g_autofree char *text = NULL;
  const char *power = u[0] ? strchr ("kmgtpe", g_ascii_tolower (u[0])) : NULL;
  guint64 scale = 0, v;
  char *end;

  if (g_ascii_strcasecmp (u, "b") == 0 || g_ascii_strcasecmp (u, "bytes") == 0)
    scale = 1;
  else if (power) {
    guint64 base = !u[1] || g_ascii_strcasecmp (u + 1, "ib") == 0 ? 1024 : g_ascii_strcasecmp (u + 1, "b") == 0 ? 1000 : 0;
    scale = base;
    for (const char *p = "kmgtpe"; base && p < power; p++)
      scale *= base;
  }
  if (!scale) {
    g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "domain XML: <%s> has an unknown unit '%s'",
                 (const char *) n->name, u);
    xmlFree (unit);
    return FALSE;
  }
  xmlFree (unit);
  text = node_text (n);
  v = g_ascii_strtoull (text ? text : "", &end, 10);
  if (!text || !g_ascii_isdigit (text[0]) || *end || v > G_MAXUINT64 / scale)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "domain XML: <%s> is not a size: '%s'",
                        (const char *) n->name, text ? text : ""), FALSE;
  v *= scale;
  *ret_mib = v / (1 << 20) + (v % (1 << 20) != 0);
  return TRUE;
}

gboolean
ifb_domain_xml_is_native (const IfbDomainXml *d)
{
  return g_strcmp0 (d->iommufd_fdgroup, IFB_LIBVIRT_FDGROUP) == 0;
}

/* An attribute as a number (libvirt writes PCI address parts as "0x65"), -1 when absent or bad. */
static gint64
prop_number (xmlNode *n, const char *name)
{
  xmlChar *v = xmlGetProp (n, (const xmlChar *) name);
  char *end = NULL;
  gint64 r = -1;

  if (v && *v)
    r = g_ascii_strtoll ((const char *) v, &end, 0);
  if (!v || !*v || *end || r < 0)
    r = -1;
  xmlFree (v);
  return r;
}

static gboolean
prop_is (xmlNode *n, const char *name, const char *want)
{
  xmlChar *v = xmlGetProp (n, (const xmlChar *) name);
  gboolean is = v && strcmp ((const char *) v, want) == 0;
  xmlFree (v);
  return is;
}

/* <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain= bus= slot= function=/> */
static gboolean
parse_hostdev (IfbDomainXml *d, xmlNode *h, GError **error)
{
  if (!prop_is (h, "mode", "subsystem") || !prop_is (h, "type", "pci"))
    return TRUE;
  for (xmlNode *s = h->children; s; s = s->next) {
    if (!is_element (s, "source"))
      continue;
    for (xmlNode *a = s->children; a; a = a->next) {
      gint64 dom, bus, slot, fn;
      if (!is_element (a, "address"))
        continue;
      dom = prop_number (a, "domain"), bus = prop_number (a, "bus");
      slot = prop_number (a, "slot"), fn = prop_number (a, "function");
      if (dom < 0 || dom > 0xffff || bus < 0 || bus > 0xff || slot < 0 || slot > 0x1f || fn < 0 || fn > 7)
        return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                            "domain XML: a PCI <hostdev> without a valid <source><address>"), FALSE;
      if (d->hostdevs->len + d->managed_hostdevs->len >= MAX_DEVICES)
        return g_set_error (error, IFB_ERROR, IFB_ERROR_LIMIT_EXCEEDED, "domain XML: more than %d hostdevs", MAX_DEVICES), FALSE;
      g_ptr_array_add (prop_is (h, "managed", "yes") ? d->managed_hostdevs : d->hostdevs,
                       g_strdup_printf ("%04x:%02x:%02x.%x", (unsigned) dom, (unsigned) bus, (unsigned) slot, (unsigned) fn));
      return TRUE;
    }
  }
  return TRUE;
}

gboolean
ifb_domain_xml_parse (const char *xml, size_t len, IfbDomainXml **ret, GError **error)
{
  g_autoptr (IfbDomainXml) d = g_new0 (IfbDomainXml, 1);
  xmlDoc *doc;
  xmlNode *root;
  xmlChar *id;
  gboolean ok = TRUE;
  guint64 memory = 0, max_memory = 0;

  if (len > G_MAXINT)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "domain XML too large"), FALSE;
  d->id = -1;
  d->nest_parent = d->allow_plain = d->dirty_tracking = IFB_TRI_DEFAULT;
  d->handoff = IFB_HANDOFF_UNBOUND;
  d->devices = g_ptr_array_new_with_free_func (g_free);
  d->virt_ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  d->managed_devices = g_ptr_array_new_with_free_func (g_free);
  d->managed_virt_ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  d->hostdevs = g_ptr_array_new_with_free_func (g_free);
  d->managed_hostdevs = g_ptr_array_new_with_free_func (g_free);
  doc = xmlReadMemory (xml, (int) len, "domain.xml", NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (!doc) {
    const xmlError *e = xmlGetLastError ();
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "domain XML is not well-formed: %s",
                        e && e->message ? g_strstrip (e->message) : "parse error"), FALSE;
  }
  root = xmlDocGetRootElement (doc);
  if (!root || !is_element (root, "domain")) {
    xmlFreeDoc (doc);
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "the XML's root is not <domain>"), FALSE;
  }
  if ((id = xmlGetProp (root, (const xmlChar *) "id"))) {
    char *end;
    gint64 v = g_ascii_strtoll ((const char *) id, &end, 10);
    d->id = (*end || v < 0 || v > G_MAXINT) ? -1 : (int) v;
    xmlFree (id);
  }
  for (xmlNode *n = root->children; n && ok; n = n->next) {
    if (is_element (n, "name")) {
      g_free (d->name);
      d->name = node_text (n);
    } else if (is_element (n, "memory")) {
      ok = memory_mib (n, &memory, error);
    } else if (is_element (n, "maxMemory")) {
      ok = memory_mib (n, &max_memory, error);
    } else if (is_element (n, "uuid")) {
      g_free (d->uuid);
      d->uuid = node_text (n);
    } else if (is_element (n, "resource")) {
      for (xmlNode *c = n->children; c; c = c->next)
        if (is_element (c, "partition")) {
          g_free (d->partition);
          d->partition = node_text (c);
        }
    } else if (is_element (n, "iommufd")) {
      xmlChar *group = xmlGetProp (n, (const xmlChar *) "fdgroup");
      g_free (d->iommufd_fdgroup);
      d->iommufd_fdgroup = prop_is (n, "enabled", "yes") && group ? g_strdup ((const char *) group) : NULL;
      xmlFree (group);
    } else if (is_element (n, "devices")) {
      for (xmlNode *c = n->children; c && ok; c = c->next)
        if (is_element (c, "hostdev"))
          ok = parse_hostdev (d, c, error);
    } else if (is_element (n, "metadata")) {
      for (xmlNode *c = n->children; c && ok; c = c->next)
        if (is_ours (c)) {
          if (strcmp ((const char *) c->name, "broker") != 0 || d->has_broker)
            ok = (g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                               "broker metadata: expected exactly one <broker> element, found <%s>",
                               (const char *) c->name), FALSE);
          else
            ok = parse_broker (d, c, error);
        }
    }
  }
  xmlFreeDoc (doc);
  if (!ok)
    return FALSE;
  d->memory_mib = max_memory ? max_memory : memory;
  if (!d->name || !*d->name)
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT, "domain XML has no <name>"), FALSE;
  if (d->partition && d->partition[0] != '/')
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                        "domain XML: <resource><partition> '%s' is not an absolute path", d->partition), FALSE;
  *ret = g_steal_pointer (&d);
  return TRUE;
}

char *
ifb_domain_cgroup (const IfbDomainXml *d, IfbLibvirtCgroupLayout layout)
{
  return d->id < 0 ? NULL : ifb_libvirt_cgroup_path (layout, d->partition, d->id, d->name);
}
