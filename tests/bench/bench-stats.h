/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The clock and the "median_ns p99_ns" line shared by the benchmark helpers. */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static inline int
cmp_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
  return x < y ? -1 : x > y;
}

/* Sorts v; prints "median p99" and extra (may be NULL) on one line. */
static inline void
print_stats (uint64_t *v, size_t n, const char *extra)
{
  qsort (v, n, sizeof *v, cmp_u64);
  printf ("%llu %llu%s\n", (unsigned long long) v[n / 2], (unsigned long long) v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1],
          extra ? extra : "");
}
