/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iommufdctl exec: placeholder until the VMM launcher lands (libvirt integration issue). */
#include "ctl.h"

int
ifb_ctl_cmd_exec (IfbCtl *ctl, int argc, char **argv)
{
  return ifb_ctl_usage_error ("exec is not available in this build yet");
}
