/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What both backends check the same way before they open a device cdev.
 */
#include <string.h>

#include "backend.h"

bool
ifb_uapi_cdev_name_valid (const char *cdev_name)
{
  size_t n;

  if (!cdev_name || strncmp (cdev_name, "vfio", 4) != 0)
    return false;
  n = strlen (cdev_name + 4);
  if (n < 1 || n > 6)
    return false;
  for (const char *p = cdev_name + 4; *p; p++)
    if (*p < '0' || *p > '9')
      return false;
  return true;
}
