/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The emulator's contexts (see "Contexts" and "Crashes" in emul.c): creating the memfd, mapping
 * it (and the mapping cache of a batch), locking and repair, finding a device's context; and the
 * object table inside a context: allocating, publishing, freeing and reaping.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "emul-context.h"
#include "emul-device.h"
#include "proc-cgroup.h"

/* ---- contexts ------------------------------------------------------------------------ */

bool
emul_is_context_fd (int fd)
{
  struct { uint64_t magic; uint32_t version, table_size; } hdr;

  if (fcntl (fd, F_GET_SEALS) < 0)
    return false;
  if (pread (fd, &hdr, sizeof hdr, 0) != sizeof hdr)
    return false;
  return hdr.magic == IFB_EMUL_MAGIC && hdr.version == IFB_EMUL_VERSION && hdr.table_size == TABLE_SIZE;
}

static void emul_repair (EmulTable *t);

/*
 * A worker issues ~15 ioctls on one context, and mapping the table afresh for each (mmap, the
 * page faults of a new mapping, munmap with its TLB flush) would cost more than the ioctls
 * themselves. Between emul_batch_begin() and _end() the
 * mapping of each context is kept, keyed by fd and checked by inode so a reused fd number
 * cannot hit the wrong table. Outside a batch nothing is kept, so the state still dies with the
 * last fd (a mapping would pin the memfd).
 */
static struct {
  int fd;
  dev_t dev;
  ino_t ino;
  EmulTable *t;
  bool reaped;          /* devices checked once in this batch: a batch is a few ioctls long */
} emul_maps[4];
static bool emul_batching;
/* The caller's cgroup, read once per batch: the kernel charges an object to the allocating
 * task's cgroup at no cost, the emulator reads /proc/self/cgroup for it (open, read, parse), once
 * for all of a worker's ~10 objects. A worker does not move between cgroups during its batch;
 * the pid guards against a cache filled before a fork by the parent process. */
static struct {
  pid_t pid;
  char path[256];
} emul_batch_cgroup;
/* The context fd of the last locked call: ATTACH/DETACH arrive on a device fd and look for their
 * context among the process's fds; the one just used (by BIND, HWPT_ALLOC) is nearly always it,
 * and scanning /proc/self/fd costs O(fds) — thousands in a daemon with many guests. */
static int emul_last_ctx = -1;

void
emul_batch_begin (void)
{
  emul_batching = true;
  emul_batch_cgroup.pid = 0;
}

void
emul_batch_end (void)
{
  emul_batching = false;
  emul_batch_cgroup.pid = 0;
  for (size_t i = 0; i < sizeof emul_maps / sizeof emul_maps[0]; i++)
    if (emul_maps[i].t) {
      munmap (emul_maps[i].t, TABLE_SIZE);
      emul_maps[i].t = NULL;
      emul_maps[i].reaped = false;
    }
}

/* The cgroup an object allocated now is charged to (see emul_batch_cgroup); "" when it cannot
 * be read or is longer than out. */
static void
emul_object_cgroup (char *out, size_t outsz)
{
  pid_t self;
  size_t len;

  if (!emul_batching) {
    ifb_proc_cgroup_self (out, outsz);
    return;
  }
  self = getpid ();
  if (emul_batch_cgroup.pid != self) {
    ifb_proc_cgroup_self (emul_batch_cgroup.path, sizeof emul_batch_cgroup.path);
    emul_batch_cgroup.pid = self;
  }
  len = strlen (emul_batch_cgroup.path);
  if (len < outsz)
    memcpy (out, emul_batch_cgroup.path, len + 1);
  else
    out[0] = '\0';
}

static EmulTable *
emul_map (int fd)
{
  struct stat st;
  size_t i, free_slot = SIZE_MAX;
  void *p;

  if (!emul_batching || fstat (fd, &st) < 0) {
    p = mmap (NULL, TABLE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
  }
  for (i = 0; i < sizeof emul_maps / sizeof emul_maps[0]; i++) {
    if (emul_maps[i].t && emul_maps[i].fd == fd && emul_maps[i].dev == st.st_dev && emul_maps[i].ino == st.st_ino)
      return emul_maps[i].t;
    if (!emul_maps[i].t && free_slot == SIZE_MAX)
      free_slot = i;
  }
  p = mmap (NULL, TABLE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return NULL;
  if (free_slot != SIZE_MAX) {
    emul_maps[free_slot].fd = fd;
    emul_maps[free_slot].dev = st.st_dev;
    emul_maps[free_slot].ino = st.st_ino;
    emul_maps[free_slot].t = p;
    emul_maps[free_slot].reaped = false;
  }
  return p;
}

static void
emul_unmap (EmulTable *t)
{
  for (size_t i = 0; i < sizeof emul_maps / sizeof emul_maps[0]; i++)
    if (emul_maps[i].t == t)
      return;   /* kept until emul_batch_end() */
  munmap (t, TABLE_SIZE);
}

/* The robust-futex word's bits (the kernel's ABI, linux/futex.h), in glibc's lock word. */
#define EMUL_FUTEX_WAITERS 0x80000000u
#define EMUL_FUTEX_OWNER_DIED 0x40000000u
#define EMUL_FUTEX_TID_MASK 0x3fffffffu

/*
 * pthread_mutex_lock(), except that a lock whose holder died unseen is taken over. The kernel
 * marks a robust lock's dead holder only from that task's own robust list, and with CLONE_VM
 * workers that list is not always right: a worker queues its locks on the daemon's list under
 * the daemon's TID (it shares the daemon's thread pointer), and the kernel's walk of a list
 * stops at the first entry it cannot read (one left in memory unmapped since). So a lock held
 * for over a second is checked: if the task its word names is gone, the word is marked as the
 * kernel would have (OWNER_DIED), and the next try gets EOWNERDEAD. Nobody holds this lock for a
 * second while alive: an ioctl's work is microseconds.
 */
static int
emul_mutex_lock (EmulTable *t)
{
  unsigned int *word = (unsigned int *) &t->mutex.__data.__lock;

  for (;;) {
    struct timespec until;
    unsigned int v;
    pid_t owner;
    int r;

    clock_gettime (CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    r = pthread_mutex_timedlock (&t->mutex, &until);
    if (r != ETIMEDOUT)
      return r;
    v = __atomic_load_n (word, __ATOMIC_ACQUIRE);
    owner = (pid_t) (v & EMUL_FUTEX_TID_MASK);
    if (owner > 0 && kill (owner, 0) < 0 && errno == ESRCH)
      __atomic_compare_exchange_n (word, &v, (v & EMUL_FUTEX_WAITERS) | EMUL_FUTEX_OWNER_DIED, false,
                                   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
  }
}

/* Map the context and take its lock; the caller ends with emul_unlock(). */
int
emul_lock (int fd, EmulTable **ret)
{
  EmulTable *t;
  int r;

  if (!emul_is_context_fd (fd))
    return fcntl (fd, F_GETFD) < 0 ? -EBADF : -ENOTTY;
  t = emul_map (fd);
  if (!t)
    return -errno;
  r = emul_mutex_lock (t);
  if (r == EOWNERDEAD) {
    /* A holder died mid-change: make the table consistent again, then carry on. */
    pthread_mutex_consistent (&t->mutex);
    emul_repair (t);
    r = 0;
  } else if (r == EDEADLK) {
    /* We hold it, says glibc, yet no code here nests locks: a worker sharing our memory
     * (daemon/workers/worker.c's CLONE_VM workers) took it and died inside. glibc recorded our thread as
     * the owner, since the worker shares our thread pointer, and queued the lock on our robust
     * list, so the kernel could not see the death. It is ours now: repair and carry on. */
    emul_repair (t);
    r = 0;
  }
  if (r != 0) {
    emul_unmap (t);
    return -r;
  }
  emul_last_ctx = fd;
  *ret = t;
  return 0;
}

void
emul_unlock (EmulTable *t)
{
  pthread_mutex_unlock (&t->mutex);
  emul_unmap (t);
}

int
emul_open_iommufd (int dev_dirfd, int *ret_fd)
{
  pthread_mutexattr_t attr;
  EmulTable *t;
  int fd, r;

  /* The emulated root must provide dev/iommu, as a host must for the kernel backend. */
  if (faccessat (dev_dirfd, "iommu", F_OK, 0) < 0)
    return -errno;

  fd = memfd_create (IFB_EMUL_MEMFD_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    return -errno;
  if (ftruncate (fd, (off_t) TABLE_SIZE) < 0) {
    r = -errno;
    close (fd);
    return r;
  }
  t = mmap (NULL, TABLE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (t == MAP_FAILED) {
    r = -errno;
    close (fd);
    return r;
  }
  /* The memfd is zero-filled; only the header and the mutex need writing. */
  if (getrandom (t->uuid, sizeof t->uuid, 0) != sizeof t->uuid) {
    r = -EIO;
    goto fail;
  }
  pthread_mutexattr_init (&attr);
  pthread_mutexattr_setpshared (&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust (&attr, PTHREAD_MUTEX_ROBUST);
  /* Error-checking, so that a lock a dead CLONE_VM worker left says EDEADLK instead of waiting
   * forever: see emul_lock(). */
  pthread_mutexattr_settype (&attr, PTHREAD_MUTEX_ERRORCHECK);
  r = -pthread_mutex_init (&t->mutex, &attr);
  pthread_mutexattr_destroy (&attr);
  if (r < 0)
    goto fail;
  t->version = IFB_EMUL_VERSION;
  t->table_size = TABLE_SIZE;
  __atomic_store_n (&t->magic, IFB_EMUL_MAGIC, __ATOMIC_RELEASE);
  munmap (t, TABLE_SIZE);
  if (fcntl (fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
    r = -errno;
    close (fd);
    return r;
  }
  *ret_fd = fd;
  return 0;

fail:
  munmap (t, TABLE_SIZE);
  close (fd);
  return r;
}

/* The context a bound device fd belongs to, among this process's fds (see "Device fd <-> context"
 * in emul.c). Here rather than beside its caller in emul-vfio.c because it reads emul_last_ctx. */
int
emul_find_context (const uint8_t uuid[16])
{
  char buf[4096];
  int dfd, found = -EBADFD;
  long n;

  if (emul_last_ctx >= 0 && emul_is_context_fd (emul_last_ctx)) {
    uint8_t u[16];
    if (pread (emul_last_ctx, u, sizeof u, offsetof (EmulTable, uuid)) == sizeof u && memcmp (u, uuid, 16) == 0)
      return emul_last_ctx;
  }

  dfd = open ("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return -errno;
  while (found < 0 && (n = syscall (SYS_getdents64, dfd, buf, sizeof buf)) > 0) {
    for (long off = 0; off < n;) {
      struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; } *de =
        (void *) (buf + off);
      int fd = 0;
      off += de->reclen;
      if (de->name[0] < '0' || de->name[0] > '9')
        continue;
      for (const char *p = de->name; *p; p++)
        fd = fd * 10 + (*p - '0');
      if (fd != dfd && emul_is_context_fd (fd)) {
        uint8_t u[16];
        if (pread (fd, u, sizeof u, offsetof (EmulTable, uuid)) == sizeof u && memcmp (u, uuid, 16) == 0) {
          found = fd;
          break;
        }
      }
    }
  }
  close (dfd);
  return found;
}

/* ---- the object table ---------------------------------------------------------------- */

EmulObject *
emul_get (EmulTable *t, uint32_t id, uint32_t type)
{
  EmulObject *o;

  if (id == 0 || id > IFB_EMUL_MAX_OBJECTS)
    return NULL;
  o = &t->objects[id - 1];
  if (o->type == 0 || (type && o->type != type))
    return NULL;
  return o;
}

uint32_t
emul_id (EmulTable *t, const EmulObject *o)
{
  return (uint32_t) (o - t->objects) + 1;
}

/* Like the kernel's xa_alloc() with XA_FLAGS_ALLOC1: the lowest free id. Not yet published. */
EmulObject *
emul_alloc (EmulTable *t, uint32_t dev_id, uint32_t iommu_type)
{
  for (size_t i = 0; i < IFB_EMUL_MAX_OBJECTS; i++) {
    EmulObject *o = &t->objects[i];
    if (o->type != 0)
      continue;
    memset (o, 0, sizeof *o);
    o->dev_id = dev_id;
    o->iommu_type = iommu_type;
    o->creator_pid = (int32_t) getpid ();
    emul_object_cgroup (o->cgroup, sizeof o->cgroup);
    return o;
  }
  return NULL;
}

void
emul_publish (EmulObject *o, uint32_t type)
{
  __atomic_store_n (&o->type, type, __ATOMIC_RELEASE);
}

EmulDevice *
emul_device_of (EmulTable *t, uint32_t obj_id)
{
  for (size_t i = 0; i < IFB_EMUL_MAX_DEVICES; i++)
    if (t->devices[i].obj_id == obj_id && obj_id)
      return &t->devices[i];
  return NULL;
}

/* The kernel's obj->users beyond the table's own reference, recomputed from the links. */
unsigned
emul_users (EmulTable *t, uint32_t id)
{
  unsigned n = 0;

  for (size_t i = 0; i < IFB_EMUL_MAX_OBJECTS; i++)
    if (t->objects[i].type && t->objects[i].parent_id == id)
      n++;
  for (size_t i = 0; i < IFB_EMUL_MAX_DEVICES; i++)
    if (t->devices[i].obj_id && t->devices[i].pt_id == id)
      n++;
  return n;
}

void
emul_free (EmulTable *t, EmulObject *o)
{
  uint32_t id = emul_id (t, o);

  if (o->type == IFB_UAPI_OBJ_IOAS)
    for (size_t i = 0; i < IFB_EMUL_MAX_MAPS; i++)
      if (t->maps[i].ioas_id == id)
        t->maps[i].ioas_id = 0;
  o->type = 0;
}

/* An auto domain lives as long as a device is attached to it. */
void
emul_put_pt (EmulTable *t, uint32_t pt_id)
{
  EmulObject *o = emul_get (t, pt_id, IFB_UAPI_OBJ_HWPT_PAGING);

  if (o && (o->aux & EMUL_HWPT_AUTO) && emul_users (t, pt_id) == 0)
    emul_free (t, o);
}

static void
emul_device_remove (EmulTable *t, EmulDevice *d)
{
  uint32_t id = d->obj_id, pt = d->pt_id;
  EmulObject *o;

  /* Like the kernel's unbind: detach, drop the vDEVICEs on it, then the device object. */
  d->pt_id = 0;
  emul_put_pt (t, pt);
  for (size_t i = 0; i < IFB_EMUL_MAX_OBJECTS; i++)
    if (t->objects[i].type == IFB_UAPI_OBJ_VDEVICE && t->objects[i].dev_id == id)
      emul_free (t, &t->objects[i]);
  o = emul_get (t, id, IFB_UAPI_OBJ_DEVICE);
  if (o)
    emul_free (t, o);
  d->obj_id = 0;
}

/* Drop devices whose file was closed (bind lock gone) or rebound elsewhere. */
static void
emul_reap_now (EmulTable *t)
{
  for (size_t i = 0; i < IFB_EMUL_MAX_DEVICES; i++) {
    EmulDevice *d = &t->devices[i];
    EmulBindRecord rec;
    struct stat st;
    int held;

    if (!d->obj_id)
      continue;
    held = emul_lock_held_path (d->path, &rec, &st);
    if (held > 0 && rec.magic == IFB_EMUL_BIND_MAGIC && rec.dev_id == d->obj_id &&
        memcmp (rec.ctx_uuid, t->uuid, sizeof rec.ctx_uuid) == 0 &&
        (uint64_t) st.st_dev == d->st_dev && (uint64_t) st.st_ino == d->st_ino)
      continue;
    emul_device_remove (t, d);
  }
}

/* emul_reap_now(), once per context per batch: a worker's batch is a handful of ioctls in a row,
 * and re-opening every device file before each of them was most of a guest's setup time. */
void
emul_reap (EmulTable *t)
{
  for (size_t i = 0; emul_batching && i < sizeof emul_maps / sizeof emul_maps[0]; i++) {
    if (emul_maps[i].t == t) {
      if (emul_maps[i].reaped)
        return;
      emul_maps[i].reaped = true;
    }
  }
  emul_reap_now (t);
}

static void
emul_repair (EmulTable *t)
{
  for (size_t i = 0; i < IFB_EMUL_MAX_DEVICES; i++) {
    EmulDevice *d = &t->devices[i];
    if (d->obj_id && !emul_get (t, d->obj_id, IFB_UAPI_OBJ_DEVICE))
      d->obj_id = 0;
    if (d->obj_id && d->pt_id && !emul_get (t, d->pt_id, 0))
      d->pt_id = 0;
  }
  for (size_t i = 0; i < IFB_EMUL_MAX_OBJECTS; i++) {
    EmulObject *o = &t->objects[i];
    if (o->type == IFB_UAPI_OBJ_DEVICE && !emul_device_of (t, (uint32_t) i + 1))
      o->type = 0;
    else if (o->type && o->parent_id && !emul_get (t, o->parent_id, 0))
      o->type = 0;
    else if (o->type == IFB_UAPI_OBJ_VDEVICE && !emul_get (t, o->dev_id, IFB_UAPI_OBJ_DEVICE))
      o->type = 0;
  }
  for (size_t i = 0; i < IFB_EMUL_MAX_MAPS; i++)
    if (t->maps[i].ioas_id && !emul_get (t, t->maps[i].ioas_id, IFB_UAPI_OBJ_IOAS))
      t->maps[i].ioas_id = 0;
}
