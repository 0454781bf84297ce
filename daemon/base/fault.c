/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IFB_FAULT="step[@N],..." — "step" fails every time, "step@N" only its N-th time (counted in the
 * daemon process; steps checked inside a worker count per worker). Parsed once into a fixed table
 * so the check stays async-signal-safe. Most steps make an operation fail; "crash-after-fdstore"
 * kills the daemon right after it stored an fd, before the guest's state is written.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

typedef struct {
  char name[32];
  unsigned nth;     /* 0: always */
  unsigned hits;
} Fault;

static Fault faults[16];
static unsigned n_faults;

void
ifb_fault_init (void)
{
  const char *e = getenv ("IFB_FAULT");
  n_faults = 0;
  while (e && *e && n_faults < sizeof (faults) / sizeof (faults[0])) {
    const char *end = strchr (e, ',');
    size_t len = end ? (size_t) (end - e) : strlen (e);
    const char *at = memchr (e, '@', len);
    size_t nlen = at ? (size_t) (at - e) : len;
    Fault *f = &faults[n_faults];

    if (nlen > 0 && nlen < sizeof (f->name)) {
      memcpy (f->name, e, nlen);
      f->name[nlen] = 0;
      f->nth = at ? (unsigned) strtoul (at + 1, NULL, 10) : 0;
      f->hits = 0;
      n_faults++;
    }
    e = end ? end + 1 : NULL;
  }
}

int
ifb_fault_check (const char *step)
{
  for (unsigned i = 0; i < n_faults; i++) {
    Fault *f = &faults[i];
    if (strcmp (f->name, step) != 0)
      continue;
    f->hits++;
    if (f->nth == 0 || f->hits == f->nth)
      return -EIO;
  }
  return 0;
}
