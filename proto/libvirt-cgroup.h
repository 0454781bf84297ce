/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvirt's names for a QEMU domain's cgroup, as a privileged libvirtd 9.0 makes them: built by
 * the libvirt hook from a domain's XML, recognized again by the daemon's libvirt watcher.
 * Paths are relative to the cgroup2 mount ("/machine/qemu-1-vm.libvirt-qemu").
 */
#pragma once

#include <glib.h>

typedef enum {
  IFB_LIBVIRT_CGROUP_MANUAL,    /* no systemd-machined: libvirt makes the cgroups itself */
  IFB_LIBVIRT_CGROUP_MACHINED,  /* a systemd host: machined makes a scope per domain */
} IfbLibvirtCgroupLayout;

/* The partition a domain without <resource><partition> gets. */
#define IFB_LIBVIRT_DEFAULT_PARTITION "/machine"

/* libvirt's machine name: "qemu-<id>-<name>" where the name keeps only [A-Za-z0-9], '-' and '.'
 * (a run of '-'/'.' becomes its first, none leads), stops once the whole is 64 bytes, and loses
 * trailing '-' and '.'. */
char *ifb_libvirt_machine_name (int id, const char *name);

/* systemd unit-name escaping as libvirt does it: '/' becomes '-'; '-', '\\', a leading '.' and
 * every byte outside [A-Za-z0-9:_.] become "\xNN" (lower-case hex). */
char *ifb_libvirt_unit_escape (const char *s);
/* The inverse: "\xNN" becomes the byte, '-' becomes '/'. NULL when s is not what
 * ifb_libvirt_unit_escape() makes of any string (a byte it would have escaped, a bad "\x"). */
char *ifb_libvirt_unit_unescape (const char *s);

/* The domain's cgroup. Manual: "<partition>/<machine>.libvirt-qemu", each partition component
 * but a first "machine", "system" or "user" with ".partition" appended unless it has a '.', and a
 * '_' before any component that could be taken for a cgroup file. Machined: the domain's scope in
 * the partition's slice, "/machine.slice/machine-<machine, unit-escaped>.scope" for "/machine"
 * (QEMU itself runs in its "libvirt" child). partition NULL or "": the default; it must be
 * absolute (libvirt refuses any other). */
char *ifb_libvirt_cgroup_path (IfbLibvirtCgroupLayout layout, const char *partition, int id, const char *name);

/* Whether path is a cgroup ifb_libvirt_cgroup_path() makes, in either layout: its last
 * component is "<machine>.libvirt-qemu" or "machine-<machine, unit-escaped>.scope" with a machine
 * name "qemu-<id>[-<name>]". On TRUE, the out-parameters that are not NULL get the layout, the
 * machine name and the id. */
gboolean ifb_libvirt_cgroup_parse (const char *path, IfbLibvirtCgroupLayout *ret_layout, char **ret_machine,
                                   int *ret_id);
