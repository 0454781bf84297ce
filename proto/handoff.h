/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a guest's VMM receives from vm.fds (vm.create's option "handoff", and the libvirt
 * metadata's <options handoff=…>). The kernel allows one bind per device, and every released
 * QEMU binds the fd it is given, so what QEMU, libvirt, cloud-hypervisor, Kata and KubeVirt
 * consume is an unbound device fd: the broker checks and reserves, the VMM binds and allocates
 * (from inside the guest's cgroup, where the launcher runs it). "bound" is for VMMs that take a
 * bound device fd plus object ids: the broker binds and allocates the HWPTs itself.
 */
#pragma once

typedef enum {
  IFB_HANDOFF_UNBOUND,          /* iommufd + fresh unbound cdev fds; the VMM binds and allocates */
  IFB_HANDOFF_BOUND,            /* the broker binds, allocates IOAS + NEST_PARENT HWPTs, attaches */
  _IFB_HANDOFF_MAX,
  IFB_HANDOFF_INVALID = -1,
} IfbHandoff;

/* "unbound", "bound"; NULL for anything else. */
const char *ifb_handoff_to_string (IfbHandoff h);
/* The value for a name, IFB_HANDOFF_INVALID for anything else (case matters). */
IfbHandoff ifb_handoff_from_string (const char *s);
