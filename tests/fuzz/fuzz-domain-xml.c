/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the libvirt hook's domain-XML reader (client/domain-xml.c, libxml2 underneath),
 * then what the hook derives from it: the machine name and the cgroup path (proto/libvirt-cgroup.c).
 * Oracles beyond ASan/UBSan: exactly one of a result and an error; a result's hand-off has a name
 * (the hook sends it to vm.create); a derived cgroup path is absolute, and the watcher's parser
 * recognizes it with the same machine name and id.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domain-xml.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (IfbDomainXml) d = NULL;
  gboolean ok = ifb_domain_xml_parse ((const char *) data, size, &d, &error);

  if (ok != (d != NULL) || ok == (error != NULL))
    abort ();
  if (d) {
    g_autofree char *machine = ifb_libvirt_machine_name (d->id, d->name ? d->name : "");
    g_autofree char *cgroup = ifb_domain_cgroup (d, IFB_LIBVIRT_CGROUP_MANUAL);
    g_autofree char *scope = ifb_domain_cgroup (d, IFB_LIBVIRT_CGROUP_MACHINED);
    if (!ifb_handoff_to_string (d->handoff))
      abort ();
    if (machine && strlen (machine) > 64)
      abort ();
    if (cgroup && cgroup[0] != '/')
      abort ();
    /* both paths are recognized again as the watcher does, giving back the machine name and id */
    for (int i = 0; i < 2; i++) {
      const char *p = i ? scope : cgroup;
      g_autofree char *parsed = NULL;
      int id = -1;
      if (p && (!ifb_libvirt_cgroup_parse (p, NULL, &parsed, &id) || strcmp (parsed, machine) != 0 || id != d->id))
        abort ();
    }
    /* a scope path is "/...slice/machine-X.scope" with no ".." and no empty component */
    if (scope && (scope[0] != '/' || !g_str_has_suffix (scope, ".scope") || strstr (scope, "//") ||
                  strstr (scope, "/../") || strstr (scope, "/./")))
      abort ();
  }
  return 0;
}
