/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * client/domain-xml.c: what the libvirt hook reads from a domain's XML. The broker block's
 * <options handoff=…> (unbound unless it says bound; anything else refused with a message that
 * names the value and both choices), the yes/no options, the schema's refusals, the cgroup
 * libvirt 9.0 gives the captured domain (tests/libvirt/fixtures) and the partition's part in it
 * (the naming itself: test-libvirt-cgroup.c).
 */
#include <string.h>

#include "domain-xml.h"
#include "errors.h"

#define NS "https://iommufd-broker.example/xmlns/1"

/* A domain with id 3 and the broker block holding `inner`. */
static char *
domain_with (const char *inner)
{
  return g_strdup_printf ("<domain type='qemu' id='3'><name>web1</name>"
                          "<uuid>6f1c0a52-0b7e-4c3e-9f3e-3b1d2c6a7e01</uuid><metadata>"
                          "<ifb:broker xmlns:ifb='" NS "'>%s</ifb:broker></metadata></domain>", inner);
}

static IfbDomainXml *
parse_ok (const char *xml)
{
  g_autoptr (GError) error = NULL;
  IfbDomainXml *d = NULL;

  g_assert_true (ifb_domain_xml_parse (xml, strlen (xml), &d, &error));
  g_assert_no_error (error);
  g_assert_nonnull (d);
  return d;
}

static GError *
parse_refused (const char *xml)
{
  GError *error = NULL;
  IfbDomainXml *d = NULL;

  g_assert_false (ifb_domain_xml_parse (xml, strlen (xml), &d, &error));
  g_assert_null (d);
  g_assert_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT);
  return error;
}

static void
test_handoff_names (void)
{
  /* the names are the broker's vm.create values, and the tables agree both ways */
  g_assert_cmpstr (ifb_handoff_to_string (IFB_HANDOFF_UNBOUND), ==, "unbound");
  g_assert_cmpstr (ifb_handoff_to_string (IFB_HANDOFF_BOUND), ==, "bound");
  g_assert_null (ifb_handoff_to_string (IFB_HANDOFF_INVALID));
  g_assert_null (ifb_handoff_to_string (_IFB_HANDOFF_MAX));
  for (int i = 0; i < _IFB_HANDOFF_MAX; i++)
    g_assert_cmpint (ifb_handoff_from_string (ifb_handoff_to_string (i)), ==, i);
  g_assert_cmpint (ifb_handoff_from_string (NULL), ==, IFB_HANDOFF_INVALID);
  g_assert_cmpint (ifb_handoff_from_string ("Bound"), ==, IFB_HANDOFF_INVALID);
  g_assert_cmpint (ifb_handoff_from_string (""), ==, IFB_HANDOFF_INVALID);
}

static void
test_handoff_default_unbound (void)
{
  /* without handoff= the hook asks for unbound: what unmodified QEMU takes */
  static const char *const inners[] = {
    "",
    "<ifb:device address='0000:65:00.0'/>",
    "<ifb:options nest-parent='yes'/><ifb:device address='0000:65:00.0'/>",
    NULL,
  };
  for (const char *const *i = inners; *i; i++) {
    g_autofree char *xml = domain_with (*i);
    g_autoptr (IfbDomainXml) d = parse_ok (xml);
    g_assert_true (d->has_broker);
    g_assert_cmpint (d->handoff, ==, IFB_HANDOFF_UNBOUND);
  }
  {
    const char *plain = "<domain><name>plain</name></domain>";
    g_autoptr (IfbDomainXml) d = parse_ok (plain);
    g_assert_false (d->has_broker);
    g_assert_cmpint (d->handoff, ==, IFB_HANDOFF_UNBOUND);
  }
}

static void
test_handoff_values (void)
{
  /* both values are read, next to the other options, which keep their own meaning */
  g_autofree char *bound = domain_with ("<ifb:options handoff='bound' nest-parent='no' allow-plain='yes'/>"
                                        "<ifb:device address='0000:65:00.0'/>");
  g_autofree char *unbound = domain_with ("<ifb:device address='0000:65:00.0'/><ifb:options handoff='unbound'/>");
  g_autoptr (IfbDomainXml) b = parse_ok (bound);
  g_autoptr (IfbDomainXml) u = parse_ok (unbound);

  g_assert_cmpint (b->handoff, ==, IFB_HANDOFF_BOUND);
  g_assert_cmpint (b->nest_parent, ==, IFB_TRI_NO);
  g_assert_cmpint (b->allow_plain, ==, IFB_TRI_YES);
  g_assert_cmpint (b->dirty_tracking, ==, IFB_TRI_DEFAULT);
  g_assert_cmpuint (b->devices->len, ==, 1);
  g_assert_cmpint (u->handoff, ==, IFB_HANDOFF_UNBOUND);
  g_assert_cmpint (u->nest_parent, ==, IFB_TRI_DEFAULT);
  g_assert_cmpuint (u->devices->len, ==, 1);
}

static void
test_managed_devices (void)
{
  /* managed='yes' devices are listed apart (the hook attaches them with managed), in document
   * order; managed='no' is the default; any other value refuses the domain */
  g_autofree char *xml = domain_with ("<ifb:device address='0000:65:00.0'/>"
                                      "<ifb:device address='0000:00:19.0' managed='yes'/>"
                                      "<ifb:device address='0000:66:00.0' managed='no'/>"
                                      "<ifb:device address='0000:03:00.1' managed='yes'/>");
  g_autofree char *bad = domain_with ("<ifb:device address='0000:00:19.0' managed='true'/>");
  g_autoptr (IfbDomainXml) d = parse_ok (xml);
  g_autoptr (GError) error = parse_refused (bad);

  g_assert_cmpuint (d->devices->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (d->devices, 1), ==, "0000:66:00.0");
  g_assert_cmpuint (d->managed_devices->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (d->managed_devices, 0), ==, "0000:00:19.0");
  g_assert_cmpstr (g_ptr_array_index (d->managed_devices, 1), ==, "0000:03:00.1");
  g_assert_nonnull (strstr (error->message, "<device managed='true'> must be 'yes' or 'no'"));
}

static void
test_native_iommufd (void)
{
  /* libvirt's own iommufd: <iommufd enabled='yes' fdgroup=…/> names the group; only the broker's
   * makes the domain ours; PCI hostdevs are read as addresses (libvirt-managed ones apart), other
   * hostdevs ignored, a PCI hostdev without a valid address refused */
  static const char head[] = "<domain type='kvm' id='3'><name>n</name>";
  static const char hostdevs[] =
    "<devices>"
    "<hostdev mode='subsystem' type='pci' managed='yes'><driver iommufd='yes'/>"
    "<source><address domain='0x0000' bus='0x00' slot='0x19' function='0x0'/></source></hostdev>"
    "<hostdev mode='subsystem' type='pci' managed='no'>"
    "<source><address domain='0x0000' bus='0x65' slot='0x00' function='0x1'/></source></hostdev>"
    "<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/></source></hostdev>"
    "</devices></domain>";
  g_autofree char *ours = g_strconcat (head, "<iommufd enabled='yes' fdgroup='iommufd-broker'/>", hostdevs, NULL);
  g_autofree char *other = g_strconcat (head, "<iommufd enabled='yes' fdgroup='kubevirt'/>", hostdevs, NULL);
  g_autofree char *off = g_strconcat (head, "<iommufd enabled='no' fdgroup='iommufd-broker'/>", hostdevs, NULL);
  g_autofree char *bad = g_strconcat (head, "<devices><hostdev mode='subsystem' type='pci'><source>"
                                      "<address domain='0x0000' bus='0x100' slot='0x00' function='0x0'/>"
                                      "</source></hostdev></devices></domain>", NULL);
  g_autoptr (IfbDomainXml) d = parse_ok (ours);
  g_autoptr (IfbDomainXml) o = parse_ok (other);
  g_autoptr (IfbDomainXml) f = parse_ok (off);
  g_autoptr (GError) error = parse_refused (bad);

  g_assert_true (ifb_domain_xml_is_native (d));
  g_assert_false (d->has_broker);
  g_assert_cmpuint (d->managed_hostdevs->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (d->managed_hostdevs, 0), ==, "0000:00:19.0");
  g_assert_cmpuint (d->hostdevs->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (d->hostdevs, 0), ==, "0000:65:00.1");
  g_assert_false (ifb_domain_xml_is_native (o));
  g_assert_false (ifb_domain_xml_is_native (f));
  g_assert_nonnull (strstr (error->message, "<hostdev>"));
}

static void
test_handoff_refused (void)
{
  /* any other value refuses the domain (prepare aborts the start with this message): the
   * message quotes the value and names both choices */
  static const char *const bad[] = { "Bound", "", "yes", "bound ", "unbound,bound", "bind", NULL };
  for (const char *const *v = bad; *v; v++) {
    g_autofree char *inner = g_strdup_printf ("<ifb:options handoff='%s'/>", *v);
    g_autofree char *xml = domain_with (inner);
    g_autofree char *want = g_strdup_printf ("<options handoff='%s'>", *v);
    g_autoptr (GError) error = parse_refused (xml);
    g_assert_nonnull (strstr (error->message, want));
    g_assert_nonnull (strstr (error->message, "'unbound'"));
    g_assert_nonnull (strstr (error->message, "'bound'"));
  }
}

static void
test_schema_refusals (void)
{
  /* a typo in the broker's namespace refuses the domain rather than dropping a setting */
  static const struct {
    const char *inner, *message;
  } cases[] = {
    { "<ifb:options hand-off='bound'/>", "unknown attribute 'hand-off' on <options>" },
    { "<ifb:options nest-parent='true'/>", "<options nest-parent='true'> must be 'yes' or 'no'" },
    { "<ifb:handoff value='bound'/>", "unknown element <handoff>" },
    { "<ifb:device/>", "needs an address" },
    { "<device address='0000:65:00.0'/>", "outside the broker's namespace" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *xml = domain_with (cases[i].inner);
    g_autoptr (GError) error = parse_refused (xml);
    if (!strstr (error->message, cases[i].message))
      g_error ("%s: got '%s', want '%s'", cases[i].inner, error->message, cases[i].message);
  }
}

static void
test_capture (void)
{
  /* the XML libvirtd 9.0 passed at prepare: what the hook creates the guest from */
  g_autofree char *path = g_build_filename (IFB_LIBVIRT_FIXTURES, "prepare-begin.xml", NULL);
  g_autofree char *xml = NULL;
  g_autofree char *manual = NULL;
  g_autofree char *scope = NULL;
  g_autoptr (IfbDomainXml) d = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (path, &xml, &len, NULL));
  d = parse_ok (xml);
  g_assert_cmpstr (d->name, ==, "ifb-capture");
  g_assert_cmpstr (d->uuid, ==, "6f1c0a52-0b7e-4c3e-9f3e-3b1d2c6a7e01");
  g_assert_cmpint (d->id, ==, 1);
  g_assert_cmpint (d->handoff, ==, IFB_HANDOFF_UNBOUND);
  g_assert_cmpint (d->nest_parent, ==, IFB_TRI_YES);
  g_assert_cmpuint (d->devices->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (d->devices, 0), ==, "0000:65:00.0");
  manual = ifb_domain_cgroup (d, IFB_LIBVIRT_CGROUP_MANUAL);
  scope = ifb_domain_cgroup (d, IFB_LIBVIRT_CGROUP_MACHINED);
  g_assert_cmpstr (manual, ==, "/machine/qemu-1-ifb-capture.libvirt-qemu");
  g_assert_cmpstr (scope, ==, "/machine.slice/machine-qemu\\x2d1\\x2difb\\x2dcapture.scope");
}

static void
test_partition (void)
{
  /* The partition goes into the cgroup path; a relative one, which libvirt refuses to define,
   * is refused here too rather than turned into some path. */
  static const char xml[] = "<domain type='qemu' id='4'><name>vm</name><resource><partition>%s</partition>"
                            "</resource></domain>";
  g_autofree char *abs = g_strdup_printf (xml, "/machine/tenant");
  g_autofree char *rel = g_strdup_printf (xml, "machine/tenant");
  g_autoptr (IfbDomainXml) d = parse_ok (abs);
  g_autofree char *manual = ifb_domain_cgroup (d, IFB_LIBVIRT_CGROUP_MANUAL);
  g_autoptr (GError) error = parse_refused (rel);

  g_assert_cmpstr (manual, ==, "/machine/tenant.partition/qemu-4-vm.libvirt-qemu");
  g_assert_nonnull (strstr (error->message, "'machine/tenant' is not an absolute path"));
}

static void
test_memory (void)
{
  /* the guest's memory in MiB, rounded up, from libvirt's scaled integers: <maxMemory> (memory
   * hot-plug) before <memory>, KiB without a unit; what is not a size is refused */
  static const struct { const char *elements; guint64 mib; } cases[] = {
    { "<memory unit='KiB'>2097152</memory>", 2048 },
    { "<memory>1048577</memory>", 1025 },
    { "<memory unit='MiB'>512</memory>", 512 },
    { "<memory unit='G'>4</memory>", 4096 },
    { "<memory unit='GB'>1</memory>", 954 },
    { "<memory unit='bytes'>1</memory>", 1 },
    { "<memory unit='TiB'>1</memory>", 1 << 20 },
    { "<memory unit='GiB'>2</memory><maxMemory slots='4' unit='GiB'>8</maxMemory>", 8192 },
    { "", 0 },
  };
  static const char *const refused[] = {
    "<memory unit='KiB'>-1</memory>", "<memory unit='KiB'>1x</memory>", "<memory unit='furlong'>1</memory>",
    "<memory unit='KiB'></memory>", "<memory unit='EiB'>100</memory>",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *xml = g_strdup_printf ("<domain id='1'><name>m</name>%s</domain>", cases[i].elements);
    g_autoptr (IfbDomainXml) d = parse_ok (xml);
    g_assert_cmpuint (d->memory_mib, ==, cases[i].mib);
  }
  for (gsize i = 0; i < G_N_ELEMENTS (refused); i++) {
    g_autofree char *xml = g_strdup_printf ("<domain id='1'><name>m</name>%s</domain>", refused[i]);
    g_autoptr (GError) e = parse_refused (xml);
  }
}

static void
test_viommu (void)
{
  /* viommu= and veventq-depth= go to vm.create as they are; each device's virtual id is its
   * virt-id or its guest-side PCI address's requester id (bus << 8 | dev << 3 | fn), -1 when
   * neither is given; malformed values and both at once are refused naming them */
  g_autofree char *xml = domain_with ("<ifb:options handoff='bound' viommu='arm-smmuv3' veventq-depth='64'/>"
                                      "<ifb:device address='0000:0a:00.0' guest-address='0000:01:03.2'/>"
                                      "<ifb:device address='0000:65:00.0' virt-id='0x20'/>"
                                      "<ifb:device address='0000:66:00.0'/>");
  g_autoptr (IfbDomainXml) d = parse_ok (xml);
  static const char *const bad[] = {
    "<ifb:device address='0000:0a:00.0' guest-address='0000:01:03.2' virt-id='1'/>",
    "<ifb:device address='0000:0a:00.0' guest-address='0000:01:33.0'/>",
    "<ifb:device address='0000:0a:00.0' guest-address='00:03.0'/>",
    "<ifb:device address='0000:0a:00.0' virt-id='-1'/>",
    "<ifb:device address='0000:0a:00.0' virt-id='x'/>",
    "<ifb:options viommu='arm-smmuv3' veventq-depth='0'/>",
    "<ifb:options veventq-depth='8'/>",
    NULL,
  };

  g_assert_cmpstr (d->viommu, ==, "arm-smmuv3");
  g_assert_cmpuint (d->veventq_depth, ==, 64);
  g_assert_cmpuint (d->virt_ids->len, ==, 3);
  g_assert_cmpint (g_array_index (d->virt_ids, gint64, 0), ==, 1 << 8 | 3 << 3 | 2);
  g_assert_cmpint (g_array_index (d->virt_ids, gint64, 1), ==, 0x20);
  g_assert_cmpint (g_array_index (d->virt_ids, gint64, 2), ==, -1);
  for (const char *const *b = bad; *b; b++) {
    g_autofree char *x = domain_with (*b);
    g_autoptr (GError) e = parse_refused (x);
    g_assert_nonnull (strstr (e->message, "broker metadata"));
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ifb/domain-xml/handoff-names", test_handoff_names);
  g_test_add_func ("/ifb/domain-xml/handoff-default-unbound", test_handoff_default_unbound);
  g_test_add_func ("/ifb/domain-xml/handoff-values", test_handoff_values);
  g_test_add_func ("/ifb/domain-xml/handoff-refused", test_handoff_refused);
  g_test_add_func ("/ifb/domain-xml/managed-devices", test_managed_devices);
  g_test_add_func ("/ifb/domain-xml/native-iommufd", test_native_iommufd);
  g_test_add_func ("/ifb/domain-xml/schema-refusals", test_schema_refusals);
  g_test_add_func ("/ifb/domain-xml/capture", test_capture);
  g_test_add_func ("/ifb/domain-xml/partition", test_partition);
  g_test_add_func ("/ifb/domain-xml/memory", test_memory);
  g_test_add_func ("/ifb/domain-xml/viommu", test_viommu);
  return g_test_run ();
}
