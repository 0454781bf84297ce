/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The emulated IOMMUFD: the kernel's uAPI (same request numbers, same structs, same errno for
 * the same mistake) over state that lives in files, so that it behaves like a kernel object
 * across processes.
 *
 * Theory of operation
 *
 * Contexts. An emulated /dev/iommu open is a memfd ("ifb-emulated-iommufd", sealed against
 * shrinking and growing) holding one fixed-layout EmulTable: a magic/version header, a random
 * context uuid, a process-shared *robust* mutex, the RLIMIT mode, an object array (object id N
 * lives in slot N-1, ids are the lowest free one like the kernel's xa_alloc), a device array and
 * an IOAS mapping array. Every ioctl mmaps the memfd, takes the mutex, works, unlocks and
 * munmaps. Anything holding the fd therefore sees and changes one state: a forked worker placed
 * in another cgroup, a VMM that received the fd over SCM_RIGHTS, the daemon after a restart that
 * got it back from systemd's fd store. The state dies with the last fd, as a kernel context does.
 * Nothing in emul*.c calls malloc or stdio: a worker may call it between fork() and _exit().
 *
 * Crashes. The mutex is robust: if a holder dies, the next locker gets EOWNERDEAD, marks the
 * mutex consistent and runs emul_repair(). Objects are published by writing their type last and
 * reference counts ("users") are never stored but recomputed from the parent links, so a
 * half-done change leaves at worst an unpublished slot or a dangling link that repair drops.
 *
 * Devices. An emulated device cdev is a regular file dev/vfio/devices/vfioN in the emulated
 * root; its first bytes are the device profile (key=value: IOMMU type and raw registers). The
 * kernel ties a bind to the open file, so the emulator does too: BIND takes an OFD write lock
 * (F_OFD_SETLK) on a record region of the file (IFB_EMUL_BIND_OFFSET) and writes into that
 * region a record {context uuid, dev_id}. OFD locks belong to the open file description, are
 * shared by dup()/fork()/SCM_RIGHTS copies and vanish when the last of them is closed - exactly
 * when the kernel unbinds. "Is this fd bound?" = F_OFD_GETLK on the fd itself reports no
 * conflict (its own lock never conflicts) while a fresh open of /proc/self/fd/N sees the lock.
 * A second BIND on a bound file, or on another open file of a bound device, fails with EINVAL,
 * as vfio_df_ioctl_bind_iommufd()/vfio_df_open() do.
 *
 * Device fd <-> context. The context's device slot records the device file's path, st_dev and
 * st_ino. Before each context operation the emulator re-opens each recorded file and checks that
 * its record still names this context and dev_id and that the lock is still held; a device whose
 * fd was closed is reaped then (detached, its auto domain freed, its object removed), so destroy
 * ordering works as after the kernel's unbind. ATTACH/DETACH arrive on the device fd, which
 * carries no pointer to the context: the emulator reads the record's uuid and finds the context
 * memfd with that uuid among the calling process's own fds (/proc/self/fd). The caller must thus
 * hold the context fd too (QEMU, the daemon and its workers always do); otherwise -EBADFD.
 *
 * Not modelled: page pinning and RLIMIT_MEMLOCK accounting, IOVA ranges/reserved regions and
 * alignment, faults, dirty bitmaps, invalidation, PASID, IOMMU_TEST_CMD (-ENOTTY), the user
 * buffer beyond `size` (the kernel returns EFAULT for unmapped memory; this reads it).
 *
 * Files. emul-layout.h: the layouts described above (EmulTable, EmulDevice, the bind record).
 * emul-copy.c: copying ioctl arguments in and out, as the kernel does. emul-device.c: device files (profiles, the bind lock and record).
 * emul-context.c: contexts (the memfd, mapping and the batch cache, locking, repair) and the
 * object table (alloc, free, publish, reap). emul-iommufd.c: the IOMMUFD commands. emul-vfio.c:
 * the VFIO device commands. This file: the backend's table and its public entry points
 * (ioctl dispatch, fd kind, object listing, the tests' debug lock).
 */
#define G_LOG_DOMAIN "ifb-uapi"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "emul-context.h"
#include "emul-device.h"
#include "emul-iommufd.h"
#include "emul-root.h"
#include "emul-vfio.h"
#include "emul.h"

/* ---- public entry points ------------------------------------------------------------- */

int
ifb_emul_fd_kind (int fd)
{
  if (fd < 0)
    return 0;
  if (emul_is_context_fd (fd))
    return 1;
  if (emul_is_device_fd (fd))
    return 2;
  return 0;
}

static int
emul_ioctl (int fd, unsigned long request, void *arg)
{
  switch (ifb_emul_fd_kind (fd)) {
  case 1:
    return emul_iommufd_ioctl (fd, request, arg);
  case 2:
    return emul_device_ioctl (fd, request, arg);
  default:
    return fcntl (fd, F_GETFD) < 0 ? -EBADF : -ENOTTY;
  }
}

int
ifb_uapi_emul_list_objects (int iommufd, IfbUapiObject *objs, size_t max, size_t *ret_n)
{
  EmulTable *t;
  size_t n = 0;
  int r;

  r = emul_lock (iommufd, &t);
  if (r < 0)
    return r;
  emul_reap (t);
  for (size_t i = 0; i < IFB_EMUL_MAX_OBJECTS; i++) {
    const EmulObject *o = &t->objects[i];
    if (!o->type)
      continue;
    if (n < max) {
      IfbUapiObject *out = &objs[n];
      memset (out, 0, sizeof *out);
      out->id = (uint32_t) i + 1;
      out->type = (IfbUapiObjType) o->type;
      out->parent_id = o->parent_id;
      out->dev_id = o->dev_id;
      if (o->type == IFB_UAPI_OBJ_VDEVICE)
        out->virt_id = (uint64_t) o->flags << 32 | o->aux;
      else
        out->flags = o->flags;
      out->creator_pid = o->creator_pid;
      memcpy (out->cgroup, o->cgroup, sizeof out->cgroup);
      out->cgroup[sizeof out->cgroup - 1] = '\0';
    }
    n++;
  }
  emul_unlock (t);
  *ret_n = n;
  return 0;
}

int
ifb_emul_debug_lock (int fd)
{
  EmulTable *t;
  int r = emul_lock (fd, &t);

  /* Leave the mapping and the lock held: the caller is about to be killed. */
  return r;
}

void
ifb_uapi_emul_batch_begin (void)
{
  emul_batch_begin ();
}

void
ifb_uapi_emul_batch_end (void)
{
  emul_batch_end ();
}

void
ifb_uapi_emul_set_reset_ms (unsigned ms)
{
  emul_set_reset_ms (ms);
}

static const IfbUapiBackend emulated_backend = {
  .name = "emulated",
  .emulated = true,
  .open_iommufd = emul_open_iommufd,
  .open_device = emul_open_device,
  .ioctl = emul_ioctl,
  .device_rdev = emul_device_rdev,
  .device_close = emul_device_close,
  .list_objects = ifb_uapi_emul_list_objects,
  .batch_begin = emul_batch_begin,
  .batch_end = emul_batch_end,
  .set_device_reset_ms = emul_set_reset_ms,
  .sysfs_write = ifb_emul_root_sysfs_write,
};

const IfbUapiBackend *
ifb_uapi_backend_emulated (void)
{
  return &emulated_backend;
}
