/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one scenario list mirroring the kernel's IOMMUFD selftests (cmd_length, alloc_hwpt,
 * alloc_hwpt_nested, ioas_destroy, get_hw_info, ...), run through the uAPI layer on either
 * backend. Each scenario prints exactly one line:
 *
 *   scenario <name>[@<iommu>[+nest]]: ok
 *   scenario <name>[@<iommu>[+nest]]: <step>: got <ERRNO|ok> expected <ERRNO|ok>
 *   scenario <name>[@<iommu>[+nest]]: skipped (<reason>)
 *
 * Device scenarios are suffixed with what the device under test reports (GET_HW_INFO type and
 * can_nest, e.g. "@intel-vtd", "@intel-vtd+nest", "@selftest+nest"), never with its name, so a
 * run on the emulated backend and a run on a real kernel diff line by line when their devices
 * have the same kind of IOMMU. Expectations follow what the device reports (NEST_PARENT is ok on
 * a nesting IOMMU and EOPNOTSUPP elsewhere), so the list is meaningful on every device.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "uapi.h"

typedef struct {
  const IfbUapiBackend *backend;
  int dev_dirfd;                /* /dev or the emulated root's dev/ */
  const char *const *cdevs;     /* "vfio0", ... */
  size_t n_cdevs;
  bool mock;                    /* also run device scenarios on the IOMMUFD_TEST mock device */
  const char *only;             /* run only scenarios whose name starts with this; NULL = all */
} IfbScenarioEnv;

/* Run the list; prints one line per scenario to out. Returns the number of mismatches. */
unsigned ifb_scenarios_run (const IfbScenarioEnv *env, FILE *out);
