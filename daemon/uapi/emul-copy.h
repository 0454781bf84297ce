/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The emulator's copying of ioctl arguments from and to the caller, as the kernel does
 * (copy_struct_from_user(): a larger user struct must be zero beyond what is known).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool emul_tail_zero (const uint8_t *p, size_t n);
int emul_copy_in (void *kbuf, size_t ksize, size_t min_size, const void *uarg, uint32_t *ret_usize);
void emul_copy_out (void *uarg, const void *kbuf, size_t ksize, uint32_t usize);
