/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The emulator's contexts (the memfd, mapping and the batch cache, locking, repair) and their
 * object table (alloc, free, publish, reap).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "emul-layout.h"

/*
 * The emulator's mutable process-wide state (the batch's mapping cache emul_maps, emul_batching,
 * emul_batch_cgroup and emul_last_ctx) exists once, static in emul-context.c; the other files
 * reach it only through the functions below (emul_lock(), emul_reap(), emul_find_context(), ...).
 */

bool emul_is_context_fd (int fd);
int emul_lock (int fd, EmulTable **ret);
void emul_unlock (EmulTable *t);
int emul_find_context (const uint8_t uuid[16]);

/* The object table. */
EmulObject *emul_get (EmulTable *t, uint32_t id, uint32_t type);
uint32_t emul_id (EmulTable *t, const EmulObject *o);
EmulObject *emul_alloc (EmulTable *t, uint32_t dev_id, uint32_t iommu_type);
void emul_publish (EmulObject *o, uint32_t type);
EmulDevice *emul_device_of (EmulTable *t, uint32_t obj_id);
unsigned emul_users (EmulTable *t, uint32_t id);
void emul_free (EmulTable *t, EmulObject *o);
void emul_put_pt (EmulTable *t, uint32_t pt_id);
void emul_reap (EmulTable *t);

/* The backend operations on contexts (emul.c's table): a fresh context memfd; a worker's batch. */
int emul_open_iommufd (int dev_dirfd, int *ret_fd);
void emul_batch_begin (void);
void emul_batch_end (void);
