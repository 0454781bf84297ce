/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the /proc/PID/cgroup parser (daemon/host/proc-cgroup.c) on any bytes, into a
 * buffer whose size the first byte picks (0-255). Oracles beyond ASan/UBSan: on success the path
 * is absolute, fits the buffer with its NUL and is, byte for byte, the rest of a line of the
 * input that starts with "0::" and ends in '\n'; on failure the buffer is empty and the error is
 * one of those documented.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proc-cgroup.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char buf[256];
  const char *text;
  size_t len, bufsize;
  int r;

  if (size < 1)
    return 0;
  bufsize = data[0];
  text = (const char *) data + 1;
  len = size - 1;
  memset (buf, 'x', sizeof buf);
  r = ifb_proc_cgroup_parse (text, len, buf, bufsize);
  if (r == 0) {
    size_t n = strnlen (buf, bufsize);
    const char *at;
    if (n >= bufsize || buf[0] != '/')
      abort ();
    /* "\n0::<path>\n", or the same at the very start */
    at = memmem (text, len, buf, n);
    for (; at; at = memmem (at + 1, len - (size_t) (at + 1 - text), buf, n))
      if (at - text >= 3 && memcmp (at - 3, "0::", 3) == 0 && (at - 3 == text || at[-4] == '\n') &&
          (size_t) (at - text) + n < len && at[n] == '\n')
        break;
    if (!at)
      abort ();
  } else {
    if (r != -ENOENT && r != -EINVAL && r != -ENAMETOOLONG)
      abort ();
    if (bufsize > 0 && buf[0] != '\0')
      abort ();
  }
  return 0;
}
