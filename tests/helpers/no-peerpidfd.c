/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Run a command as if the kernel had no SO_PEERPIDFD (Linux before 6.5, e.g. Debian 12's 6.1):
 * getsockopt(SOL_SOCKET, SO_PEERPIDFD) answers ENOPROTOOPT, as an old kernel does for an option
 * it does not know. The broker must then identify peers by SO_PEERCRED and a checked pidfd_open.
 *
 *   no-peerpidfd CMD [ARGS...]
 */
#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "seccomp-exec.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

int
main (int argc, char **argv)
{
  struct sock_filter filter[] = {
    SECCOMP_EXEC_ARCH_CHECK,
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, __NR_getsockopt, 0, 5),
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, args[1])),   /* level (low half) */
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, SOL_SOCKET, 0, 3),
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, args[2])),   /* optname */
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, SO_PEERPIDFD, 0, 1),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOPROTOOPT & SECCOMP_RET_DATA)),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  return seccomp_exec ("no-peerpidfd", filter, sizeof (filter) / sizeof (filter[0]), argc, argv);
}
