/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "handoff.h"

static const char *const names[_IFB_HANDOFF_MAX] = {
  [IFB_HANDOFF_UNBOUND] = "unbound",
  [IFB_HANDOFF_BOUND] = "bound",
};

const char *
ifb_handoff_to_string (IfbHandoff h)
{
  return (unsigned) h < _IFB_HANDOFF_MAX ? names[h] : NULL;
}

IfbHandoff
ifb_handoff_from_string (const char *s)
{
  for (int i = 0; s && i < _IFB_HANDOFF_MAX; i++)
    if (strcmp (names[i], s) == 0)
      return (IfbHandoff) i;
  return IFB_HANDOFF_INVALID;
}
