/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copying ioctl arguments in and out of the caller's memory, as the kernel does: `size` first,
 * a struct larger than known only if its tail is zero, and out no more than the caller's size.
 */
#include <errno.h>
#include <string.h>

#include "emul-copy.h"

/* ---- small async-signal-safe helpers ------------------------------------------------- */

bool
emul_tail_zero (const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

/* The kernel's copy_struct_from_user() after the min_size check of iommufd_fops_ioctl(). */
int
emul_copy_in (void *kbuf, size_t ksize, size_t min_size, const void *uarg, uint32_t *ret_usize)
{
  uint32_t usize;

  if (!uarg)
    return -EFAULT;
  memcpy (&usize, uarg, sizeof usize);
  if (usize < min_size)
    return -EINVAL;
  if (usize > ksize && !emul_tail_zero ((const uint8_t *) uarg + ksize, usize - ksize))
    return -E2BIG;
  memset (kbuf, 0, ksize);
  memcpy (kbuf, uarg, usize < ksize ? usize : ksize);
  *ret_usize = usize;
  return 0;
}

void
emul_copy_out (void *uarg, const void *kbuf, size_t ksize, uint32_t usize)
{
  memcpy (uarg, kbuf, usize < ksize ? usize : ksize);
}
