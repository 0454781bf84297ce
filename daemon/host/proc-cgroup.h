/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A process's cgroup2 path as /proc/PID/cgroup gives it: the rest of the "0::" line (on a hybrid
 * host the cgroup v1 hierarchies come first, as "N:controllers:path"). No GLib, no allocation,
 * only open/read/close: the worker program and the emulator use it as well as the daemon.
 *
 * One rule for size: a path that does not fit the caller's buffer, or a file that does not fit
 * ours, is an error and leaves the buffer empty — never a path cut short.
 */
#pragma once

#include <stddef.h>

/* The largest /proc/PID/cgroup read: a line per hierarchy, a dozen on a hybrid host. A file
 * longer than this (paths near PATH_MAX in several hierarchies) is refused, not cut. */
#define IFB_PROC_CGROUP_FILE_MAX 16384

/*
 * The cgroup2 path in text (len bytes, not necessarily NUL-terminated) into buf (size bytes,
 * NUL included). 0 on success; on failure buf is "" (when size > 0) and the result is
 * -ENOENT       no line starts with "0::" (no cgroup2 hierarchy, or not such a file);
 * -EINVAL       the "0::" line does not end in '\n' (the text was cut), holds a NUL, or its path
 *               is not absolute;
 * -ENAMETOOLONG the path and its NUL do not fit in size.
 */
int ifb_proc_cgroup_parse (const char *text, size_t len, char *buf, size_t size);

/* Read the /proc/PID/cgroup file open at fd to its end and parse it as above; -EFBIG when it
 * is longer than IFB_PROC_CGROUP_FILE_MAX, -errno when read() fails. */
int ifb_proc_cgroup_read (int fd, char *buf, size_t size);

/* The calling process's cgroup2 path, from /proc/self/cgroup as above. */
int ifb_proc_cgroup_self (char *buf, size_t size);
