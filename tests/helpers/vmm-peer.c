/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A VMM stand-in for tests: fetch a guest's fds with vm.fds and use them as a VMM would —
 * allocate a nested stage-1 HWPT on each NEST_PARENT HWPT, map memory into the IOAS — through
 * the same uAPI layer (the backend is found from the fd: emulated context or real /dev/iommu).
 * For a guest with the unbound hand-off it first does what QEMU does with such fds: bind each
 * device to the iommufd, allocate its own IOAS and a HWPT per device (NEST_PARENT, or plain
 * where the IOMMU cannot nest) and attach. With --viommu-nested (a bound guest with a vIOMMU)
 * it does what a VMM does when the guest programs its vIOMMU: a nested HWPT per device through
 * the vIOMMU (IOMMU_HWPT_ALLOC with the vIOMMU's id as pt_id and the IOMMU's stage-1 data) and
 * the device attached to it (VFIO_DEVICE_ATTACH_IOMMUFD_PT; the selftest mock, which has no
 * device fd, is moved with IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE on its kind_object_id). Prints
 * one JSON object on stdout; exit 0 when everything asked for worked, 1 otherwise.
 *
 *   vmm-peer SOCKET VM [--nested] [--viommu-nested] [--map BYTES] [--hold SECONDS]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "errors.h"
#include "json.h"
#include "rpc-client.h"
#include "uapi.h"
#include "util.h"

static int
fail (json_object *out, const char *what, const char *name, const char *message)
{
  json_object_object_add (out, "ok", json_object_new_boolean (FALSE));
  json_object_object_add (out, "failed", json_object_new_string (what));
  json_object_object_add (out, "error", json_object_new_string (name));
  json_object_object_add (out, "message", json_object_new_string (message));
  printf ("%s\n", json_object_to_json_string_ext (out, JSON_C_TO_STRING_PLAIN));
  json_object_put (out);
  return 1;
}

/* --viommu-nested: for each device, a nested HWPT on the guest's vIOMMU and the device attached
 * to it; out["viommu_nested"] lists them. 0, or the first -errno (its entry says which step). */
static int
viommu_nested (const IfbUapiBackend *b, int iommufd, json_object *r, IfbFdList *fds, json_object *out)
{
  json_object *list = json_object_new_array (), *devs = ifb_json_get (r, "devices");
  gint64 viommu = 0;

  json_object_object_add (out, "viommu_nested", list);   /* owned by out from here on */
  if (!ifb_json_get_int (r, "viommu_id", &viommu) || viommu <= 0)
    return -ENOENT;   /* no vIOMMU in vm.fds: not a bound guest with one */
  for (size_t i = 0; devs && i < json_object_array_length (devs); i++) {
    json_object *d = json_object_array_get_idx (devs, i), *n = json_object_new_object ();
    gint64 dev_id = 0, fdidx = -1, mock = 0;
    uint32_t child = 0;
    const char *step = "hwpt_alloc";
    int rc;

    json_object_array_add (list, n);
    json_object_object_add (n, "device", json_object_new_string (ifb_json_get_string (d, "device")));
    json_object_object_add (n, "viommu_id", json_object_new_int64 (viommu));
    ifb_json_get_int (d, "dev_id", &dev_id);
    ifb_json_get_int (d, "fd", &fdidx);
    rc = ifb_uapi_hwpt_alloc_nested (b, iommufd, (uint32_t) dev_id, (uint32_t) viommu, &child);
    if (rc == 0) {
      json_object_object_add (n, "nested_id", json_object_new_int64 (child));
      step = "attach";
      if (ifb_json_get_int (d, "kind_object_id", &mock) && mock > 0)
        rc = ifb_uapi_mock_domain_replace (b, iommufd, (uint32_t) mock, child);
      else
        rc = ifb_uapi_device_attach (b, ifb_fd_list_get (fds, (guint) fdidx), child);
    }
    json_object_object_add (n, "result", json_object_new_string (rc == 0 ? "ok" : ifb_errno_to_name (-rc)));
    if (rc < 0) {
      json_object_object_add (n, "failed", json_object_new_string (step));
      return rc;
    }
  }
  return 0;
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (IfbRpcClient) c = NULL;
  g_autoptr (json_object) r = NULL;
  g_autoptr (IfbFdList) fds = NULL;
  json_object *out = json_object_new_object (), *devs, *nested = json_object_new_array ();
  gboolean want_nested = FALSE, want_viommu_nested = FALSE;
  guint64 map_bytes = 0;
  int hold = 0, iommufd;
  gint64 idx, ioas = 0;
  gboolean unbound;
  const IfbUapiBackend *b;

  if (argc < 3) {
    fprintf (stderr, "usage: vmm-peer SOCKET VM [--nested] [--viommu-nested] [--map BYTES] [--hold SECONDS]\n");
    return 2;
  }
  for (int i = 3; i < argc; i++) {
    if (strcmp (argv[i], "--nested") == 0)
      want_nested = TRUE;
    else if (strcmp (argv[i], "--viommu-nested") == 0)
      want_viommu_nested = TRUE;
    else if (strcmp (argv[i], "--map") == 0 && i + 1 < argc)
      map_bytes = g_ascii_strtoull (argv[++i], NULL, 10);
    else if (strcmp (argv[i], "--hold") == 0 && i + 1 < argc)
      hold = atoi (argv[++i]);
  }

  json_object_object_add (out, "pid", json_object_new_int (getpid ()));
  json_object_object_add (out, "nested", nested);   /* owned by out from here on */
  if (!(c = ifb_rpc_client_connect (argv[1], &error)))
    return fail (out, "connect", "unavailable", error->message);
  {
    json_object *p = json_object_new_object ();
    json_object_object_add (p, "vm", json_object_new_string (argv[2]));
    if (!ifb_rpc_client_call (c, "vm.fds", p, NULL, &r, &fds, &error))
      return fail (out, "vm.fds", error->domain == IFB_ERROR ? ifb_error_to_name (error->code) : "failed", error->message);
  }
  unbound = g_strcmp0 (ifb_json_get_string (r, "handoff"), "unbound") == 0;
  if (!ifb_json_get_int (r, "iommufd", &idx) || (!unbound && !ifb_json_get_int (r, "ioas_id", &ioas)))
    return fail (out, "vm.fds", "bad-reply", "no iommufd/ioas_id in the reply");
  iommufd = ifb_fd_list_get (fds, (guint) idx);
  b = ifb_uapi_backend_for_fd (iommufd);
  json_object_object_add (out, "backend", json_object_new_string (ifb_uapi_backend_name (b)));
  json_object_object_add (out, "handoff", json_object_new_string (unbound ? "unbound" : "bound"));
  json_object_object_add (out, "n_fds", json_object_new_int ((int) ifb_fd_list_len (fds)));

  devs = ifb_json_get (r, "devices");
  if (unbound) {
    /* What QEMU does with -device vfio-pci,iommufd=ID,fd=N: bind, its own IOAS, HWPT, attach. */
    uint32_t own_ioas = 0;
    int rc = ifb_uapi_ioas_alloc (b, iommufd, &own_ioas);
    if (rc < 0)
      return fail (out, "ioas_alloc", ifb_errno_to_name (-rc), "IOMMU_IOAS_ALLOC failed");
    ioas = own_ioas;
    for (size_t i = 0; devs && i < json_object_array_length (devs); i++) {
      json_object *d = json_object_array_get_idx (devs, i);
      uint32_t dev_id = 0, hwpt_id = 0;
      gint64 fdidx = -1;
      int dfd;
      IfbHwInfo info;
      if (!ifb_json_get_int (d, "fd", &fdidx) || (dfd = ifb_fd_list_get (fds, (guint) fdidx)) < 0)
        return fail (out, "vm.fds", "bad-reply", "a device without its fd");
      if ((rc = ifb_uapi_device_bind (b, dfd, iommufd, &dev_id)) < 0)
        return fail (out, "bind", ifb_errno_to_name (-rc), "VFIO_DEVICE_BIND_IOMMUFD failed");
      if ((rc = ifb_uapi_get_hw_info (b, iommufd, dev_id, &info)) < 0)
        return fail (out, "hw_info", ifb_errno_to_name (-rc), "IOMMU_GET_HW_INFO failed");
      rc = ifb_uapi_hwpt_alloc (b, iommufd, dev_id, own_ioas, IFB_HWPT_NEST_PARENT, &hwpt_id);
      json_object_object_add (d, "nest_parent", json_object_new_boolean (rc == 0));
      if (rc == -EOPNOTSUPP)
        rc = ifb_uapi_hwpt_alloc (b, iommufd, dev_id, own_ioas, 0, &hwpt_id);
      if (rc < 0)
        return fail (out, "hwpt_alloc", ifb_errno_to_name (-rc), "IOMMU_HWPT_ALLOC failed");
      if ((rc = ifb_uapi_device_attach (b, dfd, hwpt_id)) < 0)
        return fail (out, "attach", ifb_errno_to_name (-rc), "VFIO_DEVICE_ATTACH_IOMMUFD_PT failed");
      json_object_object_add (d, "dev_id", json_object_new_int64 (dev_id));
      json_object_object_add (d, "hwpt_id", json_object_new_int64 (hwpt_id));
    }
    json_object_object_add (out, "devices", json_object_get (devs));
  }
  json_object_object_add (out, "ioas_id", json_object_new_int64 (ioas));

  for (size_t i = 0; want_nested && devs && i < json_object_array_length (devs); i++) {
    json_object *d = json_object_array_get_idx (devs, i);
    json_object *n = json_object_new_object ();
    gint64 dev_id = 0, hwpt_id = 0;
    uint32_t child = 0;
    int rc;

    ifb_json_get_int (d, "dev_id", &dev_id);
    ifb_json_get_int (d, "hwpt_id", &hwpt_id);
    rc = ifb_uapi_hwpt_alloc_nested (b, iommufd, (uint32_t) dev_id, (uint32_t) hwpt_id, &child);
    json_object_object_add (n, "device", json_object_new_string (ifb_json_get_string (d, "device")));
    json_object_object_add (n, "parent", json_object_new_int64 (hwpt_id));
    json_object_object_add (n, "result", json_object_new_string (rc == 0 ? "ok" : ifb_errno_to_name (-rc)));
    json_object_object_add (n, "nested_id", json_object_new_int64 (child));
    json_object_array_add (nested, n);
    if (rc < 0)
      return fail (out, "nested", ifb_errno_to_name (-rc), "IOMMU_HWPT_ALLOC of a nested child failed");
  }

  if (want_viommu_nested) {
    int rc = viommu_nested (b, iommufd, r, fds, out);
    if (rc < 0)
      return fail (out, "viommu-nested", ifb_errno_to_name (-rc), "a nested HWPT through the vIOMMU, or attaching to it, failed");
  }

  if (map_bytes) {
    void *mem = mmap (NULL, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t iova = 0;
    int rc;
    if (mem == MAP_FAILED)
      return fail (out, "mmap", "ENOMEM", "mmap failed");
    memset (mem, 1, map_bytes);
    rc = ifb_uapi_ioas_map (b, iommufd, (uint32_t) ioas, mem, map_bytes, &iova, FALSE);
    if (rc < 0)
      return fail (out, "ioas_map", ifb_errno_to_name (-rc), "IOMMU_IOAS_MAP failed");
    json_object_object_add (out, "mapped_iova", json_object_new_int64 ((int64_t) iova));
    json_object_object_add (out, "mapped_bytes", json_object_new_int64 ((int64_t) map_bytes));
  }
  json_object_object_add (out, "ok", json_object_new_boolean (TRUE));
  printf ("%s\n", json_object_to_json_string_ext (out, JSON_C_TO_STRING_PLAIN));
  fflush (stdout);
  json_object_put (out);
  if (hold)
    sleep ((unsigned) hold);
  return 0;
}
