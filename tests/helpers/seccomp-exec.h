/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the seccomp test helpers (no-clone3, no-peerpidfd) share: the filter's x86-64 check and
 * running a command under it. Each helper writes only the part of the filter that says what the
 * "old" or "restricted" kernel refuses.
 */
#pragma once

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

/* The first instructions of every filter: other architectures are let through. */
#define SECCOMP_EXEC_ARCH_CHECK                                                        \
  BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, arch)),           \
  BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),                       \
  BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),                                       \
  BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, nr))

/* Install the filter and exec argv[1..]; returns the exit status when that fails. */
static inline int
seccomp_exec (const char *name, struct sock_filter *filter, unsigned short len, int argc, char **argv)
{
  struct sock_fprog prog = { .len = len, .filter = filter };

  if (argc < 2) {
    fprintf (stderr, "usage: %s CMD [ARGS...]\n", name);
    return 2;
  }
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
    fprintf (stderr, "%s: seccomp: ", name);
    perror (NULL);
    return 1;
  }
  execvp (argv[1], argv + 1);
  fprintf (stderr, "%s: exec %s: ", name, argv[1]);
  perror (NULL);
  return 127;
}
