/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PCI device discovery through a sysfs root fd, on the emulated fixture tree. */
#include <fcntl.h>
#include <unistd.h>
#include <glib.h>

#include "errors.h"
#include "pci-device.h"
#include "util.h"

static int
open_fixture_sys (void)
{
  g_autofree char *path = g_build_filename (g_getenv ("IFB_TEST_EMUL_TEMPLATE"), "sys", NULL);
  int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  g_assert_cmpint (fd, >=, 0);
  return fd;
}

static void
test_scan_fixture (void)
{
  /* Invariant: a scan lists exactly the fixture's devices, sorted by BDF, with driver, vfio
   * cdev, IOMMU group and ids as sysfs shows them. */
  static const struct { const char *bdf, *driver, *cdev; int group; guint16 vendor, device; } want[] = {
    { "0000:00:19.0", "e1000e", NULL, 5, 0x8086, 0x15b8 },
    { "0000:0a:00.0", "vfio-pci", "vfio3", 20, 0x15b3, 0x1021 },
    { "0000:65:00.0", "vfio-pci", "vfio0", 12, 0x15b3, 0x101d },
    { "0000:66:00.0", "vfio-pci", "vfio1", 13, 0x10de, 0x2330 },
    { "0000:67:00.0", "vfio-pci", "vfio2", 14, 0x8086, 0x10d3 },
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) devs = NULL;
  ifb_autofd int sys = open_fixture_sys ();

  devs = ifb_pci_device_scan (sys, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (devs->len, ==, G_N_ELEMENTS (want));
  for (guint i = 0; i < devs->len; i++) {
    const IfbPciDevice *d = devs->pdata[i];
    g_assert_cmpstr (ifb_pci_device_get_bdf (d), ==, want[i].bdf);
    g_assert_cmpstr (ifb_pci_device_get_driver (d), ==, want[i].driver);
    g_assert_cmpstr (ifb_pci_device_get_vfio_cdev (d), ==, want[i].cdev);
    g_assert_cmpint (ifb_pci_device_get_iommu_group (d), ==, want[i].group);
    g_assert_cmpuint (ifb_pci_device_get_vendor (d), ==, want[i].vendor);
    g_assert_cmpuint (ifb_pci_device_get_device (d), ==, want[i].device);
    g_assert_cmpint (ifb_pci_device_is_vfio (d), ==, want[i].cdev != NULL);
  }
}

static void
test_lookup (void)
{
  /* Invariant: lookup validates the BDF strictly before touching any path, and tells a bad
   * address from an absent device. */
  static const char *const bad[] = {
    "../x", "..", "", "0000:65:00.0/..", "0000:65:00.0/../../..", "0000:65:00", "0000:65:00.8",
    "0000:65:20.0", "0000:65:00.0 ", " 0000:65:00.0", "0000:65:0A.0", "000:065:00.0", "0000/65:00.0",
    "0000:65:00.00",
  };
  g_autoptr (IfbPciDevice) dev = NULL;
  ifb_autofd int sys = open_fixture_sys ();

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GError) error = NULL;
    IfbPciDevice *d = NULL;
    g_assert_false (ifb_pci_device_lookup (sys, bad[i], &d, &error));
    g_assert_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT);
    g_assert_null (d);
  }
  {
    g_autoptr (GError) error = NULL;
    IfbPciDevice *d = NULL;
    g_assert_false (ifb_pci_device_lookup (sys, "0000:99:00.0", &d, &error));
    g_assert_error (error, IFB_ERROR, IFB_ERROR_NO_SUCH_DEVICE);
    g_assert_null (d);
  }
  {
    g_autoptr (GError) error = NULL;
    g_assert_true (ifb_pci_device_lookup (sys, "0000:67:00.0", &dev, &error));
    g_assert_no_error (error);
    g_assert_cmpstr (ifb_pci_device_get_vfio_cdev (dev), ==, "vfio2");
  }
}

static void
test_real_sys (void)
{
  /* Invariant: the same code scans the host's real /sys without error. */
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) devs = NULL;
  ifb_autofd int sys = open ("/sys", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (sys < 0 || faccessat (sys, "bus/pci/devices", F_OK, 0) < 0) {
    g_test_skip ("no /sys/bus/pci");
    return;
  }
  devs = ifb_pci_device_scan (sys, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < devs->len; i++)
    g_assert_true (ifb_pci_bdf_is_valid (ifb_pci_device_get_bdf (devs->pdata[i])));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ifb/pci/scan-fixture", test_scan_fixture);
  g_test_add_func ("/ifb/pci/lookup", test_lookup);
  g_test_add_func ("/ifb/pci/real-sys", test_real_sys);
  return g_test_run ();
}
