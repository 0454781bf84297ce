/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

static char fault_list[256];

void
ifb_fault_init (void)
{
  const char *e = getenv ("IFB_FAULT");
  fault_list[0] = 0;
  if (e && strlen (e) + 3 < sizeof (fault_list)) {
    fault_list[0] = ',';
    strcpy (fault_list + 1, e);
    strcat (fault_list, ",");
  }
}

int
ifb_fault_check (const char *step)
{
  size_t n = strlen (step);
  const char *p = fault_list;

  while ((p = strstr (p, step))) {
    if (p > fault_list && p[-1] == ',' && p[n] == ',')
      return -EIO;
    p += n;
  }
  return 0;
}
