/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Run a command under the seccomp condition systemd's RestrictNamespaces= creates for clone3():
 * the syscall answers ENOSYS (its flags live in memory a filter cannot inspect). The broker must
 * then place workers by fork + cgroup.procs.
 *
 *   no-clone3 CMD [ARGS...]
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_clone3
#define __NR_clone3 435
#endif

int
main (int argc, char **argv)
{
  struct sock_filter filter[] = {
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, arch)),
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, nr)),
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { .len = sizeof (filter) / sizeof (filter[0]), .filter = filter };

  if (argc < 2) {
    fprintf (stderr, "usage: no-clone3 CMD [ARGS...]\n");
    return 2;
  }
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
    perror ("no-clone3: seccomp");
    return 1;
  }
  execvp (argv[1], argv + 1);
  perror ("no-clone3: exec");
  return 127;
}
