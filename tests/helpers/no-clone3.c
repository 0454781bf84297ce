/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Run a command under the seccomp condition systemd's RestrictNamespaces= creates for clone3():
 * the syscall answers ENOSYS (its flags live in memory a filter cannot inspect). The broker's
 * workers (vfork + cgroup.procs) must not care.
 *
 *   no-clone3 CMD [ARGS...]
 */
#include <errno.h>
#include <sys/syscall.h>

#include "seccomp-exec.h"

#ifndef __NR_clone3
#define __NR_clone3 435
#endif

int
main (int argc, char **argv)
{
  struct sock_filter filter[] = {
    SECCOMP_EXEC_ARCH_CHECK,
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  return seccomp_exec ("no-clone3", filter, sizeof (filter) / sizeof (filter[0]), argc, argv);
}
