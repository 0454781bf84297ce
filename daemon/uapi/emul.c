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
 * Nothing here calls malloc or stdio: a worker may call it between fork() and _exit().
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
 */
#define G_LOG_DOMAIN "ifb-uapi"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "iommufd-defs.h"
#include "uapi-private.h"

#define IFB_EMUL_MAGIC UINT64_C (0x314c554d45424649)    /* "IFBEMUL1" */
#define IFB_EMUL_BIND_MAGIC UINT64_C (0x31444e4942424649) /* "IFBBIND1" */
#define IFB_EMUL_VERSION 1
#define IFB_EMUL_MEMFD_NAME "ifb-emulated-iommufd"
#define IFB_EMUL_MAX_OBJECTS 1024
#define IFB_EMUL_MAX_DEVICES 64
#define IFB_EMUL_MAX_MAPS 1024
#define IFB_EMUL_PATH_MAX 512
#define IFB_EMUL_PROFILE_MAX 4096
#define IFB_EMUL_BIND_OFFSET 8192
#define IFB_EMUL_PAGE 4096u

enum { EMUL_HWPT_AUTO = 1 << 0 };               /* EmulObject.aux for HWPTs */

typedef struct {
  uint32_t type;                /* 0 = free slot, else IfbUapiObjType; written last */
  uint32_t flags;               /* HWPT alloc flags; IOAS: 1 = huge pages disabled */
  uint32_t parent_id;           /* IOAS / parent HWPT / vIOMMU / HWPT (of a vIOMMU) */
  uint32_t dev_id;              /* device it was allocated for */
  uint32_t aux;                 /* HWPT: EMUL_HWPT_AUTO; VIOMMU: type; VDEVICE: virt_id */
  uint32_t iommu_type;          /* IfbIommuType of that device: a domain's "owner" */
  int32_t creator_pid;
  char cgroup[256];
} EmulObject;

typedef struct {
  uint32_t obj_id;              /* 0 = free slot */
  uint32_t pt_id;               /* attached HWPT, 0 = none */
  uint64_t st_dev, st_ino;
  uint32_t iommu_type;
  uint32_t pad;
  uint64_t cap_reg, ecap_reg;
  uint32_t idr[6], iidr, aidr;
  char path[IFB_EMUL_PATH_MAX];
} EmulDevice;

typedef struct {
  uint32_t ioas_id;             /* 0 = free slot */
  uint32_t flags;
  uint64_t iova, length;
} EmulMap;

typedef struct {
  uint64_t magic;
  uint32_t version;
  uint32_t table_size;
  uint8_t uuid[16];
  pthread_mutex_t mutex;
  uint32_t rlimit_mode;
  uint32_t pad;
  EmulObject objects[IFB_EMUL_MAX_OBJECTS];
  EmulDevice devices[IFB_EMUL_MAX_DEVICES];
  EmulMap maps[IFB_EMUL_MAX_MAPS];
} EmulTable;

typedef struct {
  uint64_t magic;
  uint8_t ctx_uuid[16];
  uint32_t dev_id;
  uint32_t pad;
} EmulBindRecord;

typedef struct {
  uint32_t iommu_type;
  uint64_t cap_reg, ecap_reg;
  uint32_t idr[6], iidr, aidr;
} EmulProfile;

#define TABLE_SIZE (((sizeof (EmulTable)) + IFB_EMUL_PAGE - 1) & ~(size_t) (IFB_EMUL_PAGE - 1))

/* ---- small async-signal-safe helpers ------------------------------------------------- */

static char *
emul_utoa (unsigned v, char *end)
{
  *--end = '\0';
  do {
    *--end = (char) ('0' + v % 10);
    v /= 10;
  } while (v);
  return end;
}

/* "/proc/self/fd/<fd>" into buf (>= 32 bytes). */
static const char *
emul_proc_fd_path (int fd, char *buf)
{
  char num[16];
  const char *n = emul_utoa ((unsigned) fd, num + sizeof num);
  strcpy (buf, "/proc/self/fd/");
  strcat (buf, n);
  return buf;
}

static bool
emul_tail_zero (const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

/* The kernel's copy_struct_from_user() after the min_size check of iommufd_fops_ioctl(). */
static int
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

static void
emul_copy_out (void *uarg, const void *kbuf, size_t ksize, uint32_t usize)
{
  memcpy (uarg, kbuf, usize < ksize ? usize : ksize);
}

static int
emul_has_cap_sys_resource (void)
{
  struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct data[2] = { 0 };

  if (syscall (SYS_capget, &hdr, data) < 0)
    return 0;
  return (data[CAP_SYS_RESOURCE / 32].effective >> (CAP_SYS_RESOURCE % 32)) & 1;
}

/* The cgroup2 path of the calling process (the "0::" line of /proc/self/cgroup). */
static void
emul_read_cgroup (char *out, size_t outsz)
{
  char buf[4096];
  ssize_t n;
  int fd;

  out[0] = '\0';
  fd = open ("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return;
  buf[n] = '\0';
  for (char *line = buf; line && *line;) {
    char *nl = strchr (line, '\n');
    if (nl)
      *nl = '\0';
    if (strncmp (line, "0::", 3) == 0) {
      size_t len = strlen (line + 3);
      if (len >= outsz)
        len = outsz - 1;
      memcpy (out, line + 3, len);
      out[len] = '\0';
      return;
    }
    line = nl ? nl + 1 : NULL;
  }
}

static uint64_t
emul_parse_u64 (const char *s)
{
  uint64_t v = 0;
  int base = 10;

  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s += 2;
  }
  for (; *s; s++) {
    int d;
    if (*s >= '0' && *s <= '9')
      d = *s - '0';
    else if (base == 16 && *s >= 'a' && *s <= 'f')
      d = *s - 'a' + 10;
    else if (base == 16 && *s >= 'A' && *s <= 'F')
      d = *s - 'A' + 10;
    else
      break;
    v = v * (uint64_t) base + (uint64_t) d;
  }
  return v;
}

/* ---- device files -------------------------------------------------------------------- */

#define IFB_EMUL_PROFILE_HEADER "ifb-emulated-device 1\n"

static int
emul_read_profile (int fd, EmulProfile *p)
{
  char buf[IFB_EMUL_PROFILE_MAX];
  ssize_t n;

  n = pread (fd, buf, sizeof buf - 1, 0);
  if (n < 0)
    return -errno;
  buf[n] = '\0';
  if (strncmp (buf, IFB_EMUL_PROFILE_HEADER, strlen (IFB_EMUL_PROFILE_HEADER)) != 0)
    return -ENODEV;
  memset (p, 0, sizeof *p);
  for (char *line = buf; line && *line;) {
    char *nl = strchr (line, '\n');
    char *eq;
    if (nl)
      *nl = '\0';
    eq = strchr (line, '=');
    if (eq && line[0] != '#') {
      const char *k = line, *v = eq + 1;
      *eq = '\0';
      if (strcmp (k, "iommu") == 0)
        p->iommu_type = (uint32_t) ifb_iommu_type_from_string (v);
      else if (strcmp (k, "cap") == 0)
        p->cap_reg = emul_parse_u64 (v);
      else if (strcmp (k, "ecap") == 0)
        p->ecap_reg = emul_parse_u64 (v);
      else if (strncmp (k, "idr", 3) == 0 && k[3] >= '0' && k[3] <= '5' && !k[4])
        p->idr[k[3] - '0'] = (uint32_t) emul_parse_u64 (v);
      else if (strcmp (k, "iidr") == 0)
        p->iidr = (uint32_t) emul_parse_u64 (v);
      else if (strcmp (k, "aidr") == 0)
        p->aidr = (uint32_t) emul_parse_u64 (v);
    }
    line = nl ? nl + 1 : NULL;
  }
  if (p->iommu_type != IFB_IOMMU_TYPE_INTEL_VTD && p->iommu_type != IFB_IOMMU_TYPE_ARM_SMMUV3)
    return -ENODEV;
  return 0;
}

static bool
emul_is_device_fd (int fd)
{
  char buf[sizeof IFB_EMUL_PROFILE_HEADER];
  struct stat st;
  ssize_t n;

  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
    return false;
  n = pread (fd, buf, sizeof buf - 1, 0);
  return n == (ssize_t) (sizeof buf - 1) && memcmp (buf, IFB_EMUL_PROFILE_HEADER, sizeof buf - 1) == 0;
}

static void
emul_lock_init (struct flock *fl, short type)
{
  memset (fl, 0, sizeof *fl);
  fl->l_type = type;
  fl->l_whence = SEEK_SET;
  fl->l_start = IFB_EMUL_BIND_OFFSET;
  fl->l_len = sizeof (EmulBindRecord);
}

/* Is the bind lock of the device file held by anybody? Checked through a fresh open file. */
static int
emul_lock_held_path (const char *path, EmulBindRecord *ret_rec, struct stat *ret_st)
{
  struct flock fl;
  int fd, r = 0;

  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  if (ret_st && fstat (fd, ret_st) < 0)
    r = -errno;
  if (r == 0 && ret_rec && pread (fd, ret_rec, sizeof *ret_rec, IFB_EMUL_BIND_OFFSET) != sizeof *ret_rec)
    memset (ret_rec, 0, sizeof *ret_rec);
  emul_lock_init (&fl, F_WRLCK);
  if (r == 0 && fcntl (fd, F_OFD_GETLK, &fl) < 0)
    r = -errno;
  if (r == 0)
    r = fl.l_type != F_UNLCK;
  close (fd);
  return r;
}

/* 1 = this open file holds the bind, 0 = nobody does, 2 = another open file does. */
static int
emul_device_bind_state (int fd)
{
  char path[32];
  struct flock fl;
  int held;

  emul_lock_init (&fl, F_WRLCK);
  if (fcntl (fd, F_OFD_GETLK, &fl) < 0)
    return -errno;
  if (fl.l_type != F_UNLCK)
    return 2;
  held = emul_lock_held_path (emul_proc_fd_path (fd, path), NULL, NULL);
  if (held < 0)
    return held;
  return held ? 1 : 0;
}

/* ---- contexts ------------------------------------------------------------------------ */

static bool
emul_is_context_fd (int fd)
{
  struct { uint64_t magic; uint32_t version, table_size; } hdr;

  if (fcntl (fd, F_GET_SEALS) < 0)
    return false;
  if (pread (fd, &hdr, sizeof hdr, 0) != sizeof hdr)
    return false;
  return hdr.magic == IFB_EMUL_MAGIC && hdr.version == IFB_EMUL_VERSION && hdr.table_size == TABLE_SIZE;
}

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

static void emul_repair (EmulTable *t);

/*
 * Performance: a worker issues ~15 ioctls on one context, and mapping the table afresh for each
 * (mmap, the page faults of a new mapping, munmap with its TLB flush) was about a quarter of a
 * guest's setup (tests/bench, issue 9). Between ifb_uapi_emul_batch_begin() and _end() the
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
 * task's cgroup at no cost, the emulator reads /proc/self/cgroup for it, and reading it for each
 * of a worker's ~10 objects was 1/8 of a guest's setup (tests/bench). A worker does not move
 * between cgroups during its batch; the pid guards against a cache filled by another process
 * sharing this memory (a CLONE_VM worker and its parent). */
static struct {
  pid_t pid;
  char path[256];
} emul_batch_cgroup;
/* The context fd of the last locked call: ATTACH/DETACH arrive on a device fd and look for their
 * context among the process's fds; the one just used (by BIND, HWPT_ALLOC) is nearly always it,
 * and scanning /proc/self/fd costs O(fds) — thousands in a daemon with many guests. */
static int emul_last_ctx = -1;

void
ifb_uapi_emul_batch_begin (void)
{
  emul_batching = true;
  emul_batch_cgroup.pid = 0;
}

void
ifb_uapi_emul_batch_end (void)
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

/* The cgroup an object allocated now is charged to (see emul_batch_cgroup). */
static void
emul_object_cgroup (char *out, size_t outsz)
{
  pid_t self;

  if (!emul_batching) {
    emul_read_cgroup (out, outsz);
    return;
  }
  self = getpid ();
  if (emul_batch_cgroup.pid != self) {
    emul_read_cgroup (emul_batch_cgroup.path, sizeof emul_batch_cgroup.path);
    emul_batch_cgroup.pid = self;
  }
  {
    size_t len = strnlen (emul_batch_cgroup.path, sizeof emul_batch_cgroup.path - 1);
    if (len >= outsz)
      len = outsz - 1;
    memcpy (out, emul_batch_cgroup.path, len);   /* no stdio: workers call this after clone */
    out[len] = '\0';
  }
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
      return;   /* kept until ifb_uapi_emul_batch_end() */
  munmap (t, TABLE_SIZE);
}

/* Map the context and take its lock; the caller ends with emul_unlock(). */
static int
emul_lock (int fd, EmulTable **ret)
{
  EmulTable *t;
  int r;

  if (!emul_is_context_fd (fd))
    return fcntl (fd, F_GETFD) < 0 ? -EBADF : -ENOTTY;
  t = emul_map (fd);
  if (!t)
    return -errno;
  r = pthread_mutex_lock (&t->mutex);
  if (r == EOWNERDEAD) {
    /* A holder died mid-change: make the table consistent again, then carry on. */
    pthread_mutex_consistent (&t->mutex);
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

static void
emul_unlock (EmulTable *t)
{
  pthread_mutex_unlock (&t->mutex);
  emul_unmap (t);
}

int
ifb_emul_open_iommufd (int dev_dirfd, int *ret_fd)
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

int
ifb_emul_open_device (int dev_dirfd, const char *cdev_name, int *ret_fd)
{
  char path[64];
  int fd;

  if (!ifb_uapi_cdev_name_valid (cdev_name))
    return -EINVAL;
  strcpy (path, "vfio/devices/");
  strcat (path, cdev_name);
  fd = openat (dev_dirfd, path, O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  if (!emul_is_device_fd (fd)) {
    close (fd);
    return -ENODEV;
  }
  *ret_fd = fd;
  return 0;
}

/* ---- the object table ---------------------------------------------------------------- */

static EmulObject *
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

static uint32_t
emul_id (EmulTable *t, const EmulObject *o)
{
  return (uint32_t) (o - t->objects) + 1;
}

/* Like the kernel's xa_alloc() with XA_FLAGS_ALLOC1: the lowest free id. Not yet published. */
static EmulObject *
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

static void
emul_publish (EmulObject *o, uint32_t type)
{
  __atomic_store_n (&o->type, type, __ATOMIC_RELEASE);
}

static EmulDevice *
emul_device_of (EmulTable *t, uint32_t obj_id)
{
  for (size_t i = 0; i < IFB_EMUL_MAX_DEVICES; i++)
    if (t->devices[i].obj_id == obj_id && obj_id)
      return &t->devices[i];
  return NULL;
}

/* The kernel's obj->users beyond the table's own reference, recomputed from the links. */
static unsigned
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

static void
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
static void
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
static void
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
  }
  for (size_t i = 0; i < IFB_EMUL_MAX_MAPS; i++)
    if (t->maps[i].ioas_id && !emul_get (t, t->maps[i].ioas_id, IFB_UAPI_OBJ_IOAS))
      t->maps[i].ioas_id = 0;
}

static bool
emul_dev_can_nest (const EmulDevice *d)
{
  if (d->iommu_type == IFB_IOMMU_TYPE_INTEL_VTD)
    return ifb_uapi_vtd_can_nest (d->ecap_reg);
  return ifb_uapi_smmuv3_can_nest (d->idr);
}

static bool
emul_dev_dirty (const EmulDevice *d)
{
  if (d->iommu_type == IFB_IOMMU_TYPE_INTEL_VTD)
    return ifb_uapi_vtd_dirty (d->ecap_reg);
  return ifb_uapi_smmuv3_dirty (d->idr);
}

/* ---- IOMMUFD commands ---------------------------------------------------------------- */

static int
emul_destroy (EmulTable *t, struct ifb_iommu_destroy *cmd)
{
  EmulObject *o = emul_get (t, cmd->id, 0);

  if (!o)
    return -ENOENT;
  /* The VFIO binding holds a device object until its fd is closed. */
  if (o->type == IFB_UAPI_OBJ_DEVICE || emul_users (t, cmd->id) > 0)
    return -EBUSY;
  emul_free (t, o);
  return 0;
}

static int
emul_ioas_alloc (EmulTable *t, struct ifb_iommu_ioas_alloc *cmd)
{
  EmulObject *o;

  if (cmd->flags)
    return -EOPNOTSUPP;
  o = emul_alloc (t, 0, 0);
  if (!o)
    return -ENOMEM;
  cmd->out_ioas_id = emul_id (t, o);
  emul_publish (o, IFB_UAPI_OBJ_IOAS);
  return 0;
}

static bool
emul_overlaps (EmulTable *t, uint32_t ioas, uint64_t iova, uint64_t last, size_t *ret_idx)
{
  for (size_t i = 0; i < IFB_EMUL_MAX_MAPS; i++) {
    EmulMap *m = &t->maps[i];
    if (m->ioas_id == ioas && iova <= m->iova + m->length - 1 && m->iova <= last) {
      if (ret_idx)
        *ret_idx = i;
      return true;
    }
  }
  return false;
}

static int
emul_ioas_map (EmulTable *t, struct ifb_iommu_ioas_map *cmd)
{
  const uint32_t valid = IFB_IOMMU_IOAS_MAP_FIXED_IOVA | IFB_IOMMU_IOAS_MAP_WRITEABLE |
                         IFB_IOMMU_IOAS_MAP_READABLE;
  EmulMap *slot = NULL;
  uint64_t iova, last;
  size_t hit;

  if ((cmd->flags & ~valid) || cmd->__reserved)
    return -EOPNOTSUPP;
  if (cmd->iova >= UINT64_MAX || cmd->length >= UINT64_MAX)
    return -EOVERFLOW;
  if (!(cmd->flags & (IFB_IOMMU_IOAS_MAP_WRITEABLE | IFB_IOMMU_IOAS_MAP_READABLE)))
    return -EINVAL;
  if (!emul_get (t, cmd->ioas_id, IFB_UAPI_OBJ_IOAS))
    return -ENOENT;
  if (!cmd->length)
    return -EINVAL;
  if (!cmd->user_va)
    return -EFAULT;

  if (cmd->flags & IFB_IOMMU_IOAS_MAP_FIXED_IOVA) {
    iova = cmd->iova;
    if (__builtin_add_overflow (iova, cmd->length - 1, &last))
      return -EOVERFLOW;
    if (emul_overlaps (t, cmd->ioas_id, iova, last, NULL))
      return -EEXIST;
  } else {
    /* Keep the page offset of the user address, as iopt_alloc_iova() does. */
    iova = (UINT64_C (1) << 20) + (cmd->user_va & (IFB_EMUL_PAGE - 1));
    for (;;) {
      if (__builtin_add_overflow (iova, cmd->length - 1, &last))
        return -ENOSPC;
      if (!emul_overlaps (t, cmd->ioas_id, iova, last, &hit))
        break;
      iova = ((t->maps[hit].iova + t->maps[hit].length + IFB_EMUL_PAGE - 1) & ~(uint64_t) (IFB_EMUL_PAGE - 1)) +
             (cmd->user_va & (IFB_EMUL_PAGE - 1));
    }
  }
  for (size_t i = 0; i < IFB_EMUL_MAX_MAPS && !slot; i++)
    if (!t->maps[i].ioas_id)
      slot = &t->maps[i];
  if (!slot)
    return -ENOMEM;
  slot->flags = cmd->flags;
  slot->iova = iova;
  slot->length = cmd->length;
  __atomic_store_n (&slot->ioas_id, cmd->ioas_id, __ATOMIC_RELEASE);
  cmd->iova = iova;
  return 0;
}

static int
emul_ioas_unmap (EmulTable *t, struct ifb_iommu_ioas_unmap *cmd)
{
  uint64_t unmapped = 0, last;
  bool all = cmd->iova == 0 && cmd->length == UINT64_MAX;

  if (!emul_get (t, cmd->ioas_id, IFB_UAPI_OBJ_IOAS))
    return -ENOENT;
  if (!all) {
    if (cmd->iova >= UINT64_MAX || cmd->length >= UINT64_MAX)
      return -EOVERFLOW;
    if (!cmd->length)
      return -EINVAL;
    if (__builtin_add_overflow (cmd->iova, cmd->length - 1, &last))
      return -EOVERFLOW;
    /* Areas may not be split: any area crossing the range's edges is ENOENT. */
    for (size_t i = 0; i < IFB_EMUL_MAX_MAPS; i++) {
      EmulMap *m = &t->maps[i];
      if (m->ioas_id == cmd->ioas_id && cmd->iova <= m->iova + m->length - 1 && m->iova <= last &&
          (m->iova < cmd->iova || m->iova + m->length - 1 > last))
        return -ENOENT;
    }
  } else {
    last = UINT64_MAX;
  }
  for (size_t i = 0; i < IFB_EMUL_MAX_MAPS; i++) {
    EmulMap *m = &t->maps[i];
    if (m->ioas_id == cmd->ioas_id && m->iova >= cmd->iova && m->iova + m->length - 1 <= last) {
      unmapped += m->length;
      m->ioas_id = 0;
    }
  }
  if (!all && !unmapped)
    return -ENOENT;
  cmd->length = unmapped;
  return 0;
}

static int
emul_object_count (EmulTable *t)
{
  int n = 0;
  for (size_t i = 0; i < IFB_EMUL_MAX_OBJECTS; i++)
    n += t->objects[i].type != 0;
  return n;
}

static int
emul_option (EmulTable *t, struct ifb_iommu_option *cmd)
{
  EmulObject *ioas;

  if (cmd->__reserved)
    return -EOPNOTSUPP;
  switch (cmd->option_id) {
  case IFB_IOMMU_OPTION_RLIMIT_MODE:
    if (cmd->object_id)
      return -EOPNOTSUPP;
    if (cmd->op == IFB_IOMMU_OPTION_OP_GET) {
      cmd->val64 = t->rlimit_mode;
      return 0;
    }
    if (cmd->op != IFB_IOMMU_OPTION_OP_SET)
      return -EOPNOTSUPP;
    if (!emul_has_cap_sys_resource ())
      return -EPERM;
    if (emul_object_count (t) > 0)
      return -EBUSY;
    if (cmd->val64 > 1)
      return -EINVAL;
    t->rlimit_mode = (uint32_t) cmd->val64;
    return 0;
  case IFB_IOMMU_OPTION_HUGE_PAGES:
    ioas = emul_get (t, cmd->object_id, IFB_UAPI_OBJ_IOAS);
    if (!ioas)
      return -ENOENT;
    if (cmd->op == IFB_IOMMU_OPTION_OP_GET) {
      cmd->val64 = !(ioas->flags & 1);
      return 0;
    }
    if (cmd->op != IFB_IOMMU_OPTION_OP_SET)
      return -EOPNOTSUPP;
    if (cmd->val64 > 1)
      return -EINVAL;
    ioas->flags = cmd->val64 ? 0 : 1;
    return 0;
  default:
    return -EOPNOTSUPP;
  }
}

/* Reads driver data the way iommu_copy_struct_from_user() does. */
static int
emul_copy_user_data (void *dst, size_t dsize, size_t min, uint64_t uptr, uint32_t len)
{
  const void *src = (const void *) (uintptr_t) uptr;

  if (len < min)
    return -EINVAL;
  if (!src)
    return -EFAULT;
  if (len > dsize && !emul_tail_zero ((const uint8_t *) src + dsize, len - dsize))
    return -E2BIG;
  memset (dst, 0, dsize);
  memcpy (dst, src, len < dsize ? len : dsize);
  return 0;
}

static int
emul_hwpt_alloc (EmulTable *t, struct ifb_iommu_hwpt_alloc *cmd)
{
  const uint32_t paging_flags = IFB_IOMMU_HWPT_ALLOC_NEST_PARENT | IFB_IOMMU_HWPT_ALLOC_DIRTY_TRACKING |
                                IFB_IOMMU_HWPT_FAULT_ID_VALID | IFB_IOMMU_HWPT_ALLOC_PASID;
  const uint32_t nested_flags = IFB_IOMMU_HWPT_FAULT_ID_VALID | IFB_IOMMU_HWPT_ALLOC_PASID;
  EmulObject *pt, *o;
  EmulDevice *dev;
  uint32_t type;
  int r;

  if (cmd->__reserved)
    return -EOPNOTSUPP;
  if ((cmd->data_type == IFB_IOMMU_HWPT_DATA_NONE && cmd->data_len) ||
      (cmd->data_type != IFB_IOMMU_HWPT_DATA_NONE && !cmd->data_len))
    return -EINVAL;
  if (!emul_get (t, cmd->dev_id, IFB_UAPI_OBJ_DEVICE) || !(dev = emul_device_of (t, cmd->dev_id)))
    return -ENOENT;
  pt = emul_get (t, cmd->pt_id, 0);
  if (!pt)
    return -EINVAL;

  if (pt->type == IFB_UAPI_OBJ_IOAS) {
    if (cmd->flags & ~paging_flags)
      return -EOPNOTSUPP;
    if ((cmd->flags & IFB_IOMMU_HWPT_ALLOC_DIRTY_TRACKING) && !emul_dev_dirty (dev))
      return -EOPNOTSUPP;
    if ((cmd->flags & IFB_IOMMU_HWPT_FAULT_ID_VALID) && (cmd->flags & IFB_IOMMU_HWPT_ALLOC_NEST_PARENT))
      return -EOPNOTSUPP;
    /* The drivers: no user data on a paging domain, NEST_PARENT only where the IOMMU nests. */
    if (cmd->data_len)
      return -EOPNOTSUPP;
    if ((cmd->flags & IFB_IOMMU_HWPT_ALLOC_NEST_PARENT) && !emul_dev_can_nest (dev))
      return -EOPNOTSUPP;
    type = IFB_UAPI_OBJ_HWPT_PAGING;
  } else if (pt->type == IFB_UAPI_OBJ_HWPT_PAGING) {
    /* Arm SMMUv3 nests only through a vIOMMU: its driver has no domain_alloc_nested. */
    if ((cmd->flags & ~nested_flags) || !cmd->data_len || dev->iommu_type != IFB_IOMMU_TYPE_INTEL_VTD)
      return -EOPNOTSUPP;
    if ((pt->aux & EMUL_HWPT_AUTO) || !(pt->flags & IFB_IOMMU_HWPT_ALLOC_NEST_PARENT) ||
        pt->iommu_type != dev->iommu_type)
      return -EINVAL;
    if (cmd->data_type != IFB_IOMMU_HWPT_DATA_VTD_S1)
      return -EOPNOTSUPP;
    {
      struct ifb_iommu_hwpt_vtd_s1 s1;
      r = emul_copy_user_data (&s1, sizeof s1, sizeof s1, cmd->data_uptr, cmd->data_len);
      if (r < 0)
        return r;
      if (s1.flags & ~(uint64_t) (IFB_IOMMU_VTD_S1_SRE | IFB_IOMMU_VTD_S1_EAFE | IFB_IOMMU_VTD_S1_WPE))
        return -EINVAL;
    }
    type = IFB_UAPI_OBJ_HWPT_NESTED;
  } else if (pt->type == IFB_UAPI_OBJ_VIOMMU) {
    if (pt->iommu_type != dev->iommu_type)
      return -EINVAL;
    if ((cmd->flags & ~nested_flags) || !cmd->data_len)
      return -EOPNOTSUPP;
    if (cmd->data_type != IFB_IOMMU_HWPT_DATA_ARM_SMMUV3)
      return -EOPNOTSUPP;
    {
      struct ifb_iommu_hwpt_arm_smmuv3 ste;
      r = emul_copy_user_data (&ste, sizeof ste, sizeof ste, cmd->data_uptr, cmd->data_len);
      if (r < 0)
        return r;
    }
    type = IFB_UAPI_OBJ_HWPT_NESTED;
  } else {
    return -EINVAL;
  }
  /* Fault queues are not modelled: no fault id can exist. */
  if (cmd->flags & IFB_IOMMU_HWPT_FAULT_ID_VALID)
    return -ENOENT;

  o = emul_alloc (t, cmd->dev_id, dev->iommu_type);
  if (!o)
    return -ENOMEM;
  o->flags = cmd->flags;
  o->parent_id = cmd->pt_id;
  cmd->out_hwpt_id = emul_id (t, o);
  emul_publish (o, type);
  return 0;
}

static int
emul_get_hw_info (EmulTable *t, struct ifb_iommu_hw_info *cmd)
{
  union {
    struct ifb_iommu_hw_info_vtd vtd;
    struct ifb_iommu_hw_info_arm_smmuv3 smmu;
  } data;
  uint32_t len, copy;
  EmulDevice *dev;
  uint8_t *uptr = (uint8_t *) (uintptr_t) cmd->data_uptr;

  /* 6.12 semantics: no flags at all (6.17's IOMMU_HW_INFO_FLAG_INPUT_TYPE is not modelled). */
  if (cmd->flags || cmd->__reserved[0] || cmd->__reserved[1] || cmd->__reserved[2])
    return -EOPNOTSUPP;
  if (!emul_get (t, cmd->dev_id, IFB_UAPI_OBJ_DEVICE) || !(dev = emul_device_of (t, cmd->dev_id)))
    return -ENOENT;
  memset (&data, 0, sizeof data);
  if (dev->iommu_type == IFB_IOMMU_TYPE_INTEL_VTD) {
    data.vtd.cap_reg = dev->cap_reg;
    data.vtd.ecap_reg = dev->ecap_reg;
    len = sizeof data.vtd;
    cmd->out_data_type = IFB_IOMMU_HW_INFO_TYPE_INTEL_VTD;
  } else {
    memcpy (data.smmu.idr, dev->idr, sizeof data.smmu.idr);
    data.smmu.iidr = dev->iidr;
    data.smmu.aidr = dev->aidr;
    len = sizeof data.smmu;
    cmd->out_data_type = IFB_IOMMU_HW_INFO_TYPE_ARM_SMMUV3;
  }
  copy = cmd->data_len < len ? cmd->data_len : len;
  if (cmd->data_len && !uptr)
    return -EFAULT;
  if (copy)
    memcpy (uptr, &data, copy);
  if (cmd->data_len > copy)
    memset (uptr + copy, 0, cmd->data_len - copy);
  cmd->data_len = len;
  cmd->out_max_pasid_log2 = 0;
  cmd->out_capabilities = emul_dev_dirty (dev) ? IFB_IOMMU_HW_CAP_DIRTY_TRACKING : 0;
  return 0;
}

static int
emul_viommu_alloc (EmulTable *t, struct ifb_iommu_viommu_alloc *cmd)
{
  EmulObject *hwpt, *o;
  EmulDevice *dev;

  if (cmd->flags || cmd->type == IFB_IOMMU_VIOMMU_TYPE_DEFAULT)
    return -EOPNOTSUPP;
  if (!emul_get (t, cmd->dev_id, IFB_UAPI_OBJ_DEVICE) || !(dev = emul_device_of (t, cmd->dev_id)))
    return -ENOENT;
  if (dev->iommu_type != IFB_IOMMU_TYPE_ARM_SMMUV3 || cmd->type != IFB_IOMMU_VIOMMU_TYPE_ARM_SMMUV3)
    return -EOPNOTSUPP;
  hwpt = emul_get (t, cmd->hwpt_id, IFB_UAPI_OBJ_HWPT_PAGING);
  if (!hwpt)
    return -ENOENT;
  if (!(hwpt->flags & IFB_IOMMU_HWPT_ALLOC_NEST_PARENT))
    return -EINVAL;
  o = emul_alloc (t, cmd->dev_id, dev->iommu_type);
  if (!o)
    return -ENOMEM;
  o->parent_id = cmd->hwpt_id;
  o->aux = cmd->type;
  cmd->out_viommu_id = emul_id (t, o);
  emul_publish (o, IFB_UAPI_OBJ_VIOMMU);
  return 0;
}

static int
emul_vdevice_alloc (EmulTable *t, struct ifb_iommu_vdevice_alloc *cmd)
{
  EmulObject *viommu, *o;

  viommu = emul_get (t, cmd->viommu_id, IFB_UAPI_OBJ_VIOMMU);
  if (!viommu)
    return -ENOENT;
  if (!emul_get (t, cmd->dev_id, IFB_UAPI_OBJ_DEVICE))
    return -ENOENT;
  if (cmd->virt_id > UINT32_MAX)
    return -EINVAL;
  if (viommu->dev_id != cmd->dev_id && viommu->iommu_type != emul_get (t, cmd->dev_id, 0)->iommu_type)
    return -EINVAL;
  for (size_t i = 0; i < IFB_EMUL_MAX_OBJECTS; i++)
    if (t->objects[i].type == IFB_UAPI_OBJ_VDEVICE && t->objects[i].dev_id == cmd->dev_id)
      return -EEXIST;
  o = emul_alloc (t, cmd->dev_id, viommu->iommu_type);
  if (!o)
    return -ENOMEM;
  o->parent_id = cmd->viommu_id;
  o->aux = (uint32_t) cmd->virt_id;
  cmd->out_vdevice_id = emul_id (t, o);
  emul_publish (o, IFB_UAPI_OBJ_VDEVICE);
  return 0;
}

#define EMUL_CMD(fn, type, min)                                                   \
  do {                                                                            \
    type cmd;                                                                     \
    uint32_t usize;                                                               \
    r = emul_copy_in (&cmd, sizeof cmd, (min), arg, &usize);                      \
    if (r < 0)                                                                    \
      break;                                                                      \
    r = emul_lock (fd, &t);                                                       \
    if (r < 0)                                                                    \
      break;                                                                      \
    emul_reap (t);                                                                \
    r = fn (t, &cmd);                                                             \
    emul_unlock (t);                                                              \
    if (r == 0)                                                                   \
      emul_copy_out (arg, &cmd, sizeof cmd, usize);                               \
  } while (0)

static int
emul_iommufd_ioctl (int fd, unsigned long request, void *arg)
{
  EmulTable *t;
  int r;

  switch (request) {
  case IFB_IOMMU_DESTROY:
    EMUL_CMD (emul_destroy, struct ifb_iommu_destroy, IFB_IOMMU_DESTROY_MIN_SIZE);
    return r;
  case IFB_IOMMU_IOAS_ALLOC:
    EMUL_CMD (emul_ioas_alloc, struct ifb_iommu_ioas_alloc, IFB_IOMMU_IOAS_ALLOC_MIN_SIZE);
    return r;
  case IFB_IOMMU_IOAS_MAP:
    EMUL_CMD (emul_ioas_map, struct ifb_iommu_ioas_map, IFB_IOMMU_IOAS_MAP_MIN_SIZE);
    return r;
  case IFB_IOMMU_IOAS_UNMAP:
    EMUL_CMD (emul_ioas_unmap, struct ifb_iommu_ioas_unmap, IFB_IOMMU_IOAS_UNMAP_MIN_SIZE);
    return r;
  case IFB_IOMMU_OPTION: {
    /* Only val64 is written back, as iommufd_option() does. */
    struct ifb_iommu_option cmd;
    uint32_t usize;
    r = emul_copy_in (&cmd, sizeof cmd, IFB_IOMMU_OPTION_MIN_SIZE, arg, &usize);
    if (r < 0)
      return r;
    r = emul_lock (fd, &t);
    if (r < 0)
      return r;
    emul_reap (t);
    r = emul_option (t, &cmd);
    emul_unlock (t);
    if (r == 0)
      memcpy ((uint8_t *) arg + offsetof (struct ifb_iommu_option, val64), &cmd.val64, sizeof cmd.val64);
    return r;
  }
  case IFB_IOMMU_HWPT_ALLOC:
    EMUL_CMD (emul_hwpt_alloc, struct ifb_iommu_hwpt_alloc, IFB_IOMMU_HWPT_ALLOC_MIN_SIZE);
    return r;
  case IFB_IOMMU_GET_HW_INFO:
    EMUL_CMD (emul_get_hw_info, struct ifb_iommu_hw_info, IFB_IOMMU_GET_HW_INFO_MIN_SIZE);
    return r;
  case IFB_IOMMU_VIOMMU_ALLOC:
    EMUL_CMD (emul_viommu_alloc, struct ifb_iommu_viommu_alloc, IFB_IOMMU_VIOMMU_ALLOC_MIN_SIZE);
    return r;
  case IFB_IOMMU_VDEVICE_ALLOC:
    EMUL_CMD (emul_vdevice_alloc, struct ifb_iommu_vdevice_alloc, IFB_IOMMU_VDEVICE_ALLOC_MIN_SIZE);
    return r;
  default:
    return -ENOTTY;
  }
}

/* ---- VFIO device commands ------------------------------------------------------------ */

static int
emul_device_bind (int fd, void *arg)
{
  struct ifb_vfio_device_bind_iommufd bind;
  EmulBindRecord rec;
  EmulProfile prof;
  EmulDevice *dev = NULL;
  EmulObject *o;
  EmulTable *t;
  struct flock fl;
  struct stat st;
  char procpath[32];
  ssize_t n;
  uint32_t usize;
  int r, state;

  r = emul_copy_in (&bind, sizeof bind, IFB_VFIO_DEVICE_BIND_MIN_SIZE, arg, &usize);
  if (r < 0)
    return r;
  if (bind.iommufd < 0 || bind.flags)
    return -EINVAL;
  /* "one device cannot be bound twice" and the cdev path opens a device only once. */
  state = emul_device_bind_state (fd);
  if (state < 0)
    return state;
  if (state > 0)
    return -EINVAL;
  if (!emul_is_context_fd (bind.iommufd))
    return fcntl (bind.iommufd, F_GETFD) < 0 ? -EBADF : -EBADFD;
  r = emul_read_profile (fd, &prof);
  if (r < 0)
    return r;
  if (fstat (fd, &st) < 0)
    return -errno;

  emul_lock_init (&fl, F_WRLCK);
  if (fcntl (fd, F_OFD_SETLK, &fl) < 0)
    return errno == EAGAIN || errno == EACCES ? -EINVAL : -errno;

  r = emul_lock (bind.iommufd, &t);
  if (r < 0)
    goto fail_unlock_file;
  emul_reap (t);
  for (size_t i = 0; i < IFB_EMUL_MAX_DEVICES && !dev; i++)
    if (!t->devices[i].obj_id)
      dev = &t->devices[i];
  o = dev ? emul_alloc (t, 0, prof.iommu_type) : NULL;
  if (!o) {
    r = -ENOMEM;
    goto fail_unlock_ctx;
  }
  memset (dev, 0, sizeof *dev);
  n = readlink (emul_proc_fd_path (fd, procpath), dev->path, sizeof dev->path - 1);
  if (n <= 0 || n >= (ssize_t) sizeof dev->path - 1) {
    r = n < 0 ? -errno : -ENAMETOOLONG;
    goto fail_unlock_ctx;
  }
  dev->path[n] = '\0';
  dev->st_dev = (uint64_t) st.st_dev;
  dev->st_ino = (uint64_t) st.st_ino;
  dev->iommu_type = prof.iommu_type;
  dev->cap_reg = prof.cap_reg;
  dev->ecap_reg = prof.ecap_reg;
  memcpy (dev->idr, prof.idr, sizeof dev->idr);
  dev->iidr = prof.iidr;
  dev->aidr = prof.aidr;

  memset (&rec, 0, sizeof rec);
  rec.magic = IFB_EMUL_BIND_MAGIC;
  memcpy (rec.ctx_uuid, t->uuid, sizeof rec.ctx_uuid);
  rec.dev_id = emul_id (t, o);
  if (pwrite (fd, &rec, sizeof rec, IFB_EMUL_BIND_OFFSET) != sizeof rec) {
    r = -EIO;
    goto fail_unlock_ctx;
  }
  o->dev_id = rec.dev_id;
  emul_publish (o, IFB_UAPI_OBJ_DEVICE);
  __atomic_store_n (&dev->obj_id, rec.dev_id, __ATOMIC_RELEASE);
  emul_unlock (t);

  bind.out_devid = rec.dev_id;
  emul_copy_out (arg, &bind, sizeof bind, usize);
  return 0;

fail_unlock_ctx:
  emul_unlock (t);
fail_unlock_file:
  emul_lock_init (&fl, F_UNLCK);
  fcntl (fd, F_OFD_SETLK, &fl);
  return r;
}

/* The context a bound device fd belongs to, among this process's fds (see the top comment). */
static int
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

static int
emul_device_attach_detach (int fd, bool attach, void *arg)
{
  struct ifb_vfio_device_attach_iommufd_pt at = { 0 };
  struct ifb_vfio_device_detach_iommufd_pt de = { 0 };
  EmulBindRecord rec;
  EmulDevice *dev;
  EmulObject *pt;
  EmulTable *t;
  uint32_t old, new_pt;
  int ctx, r;

  if (!arg)
    return -EFAULT;
  if (attach) {
    memcpy (&at, arg, IFB_VFIO_DEVICE_ATTACH_MIN_SIZE);
    if (at.argsz < IFB_VFIO_DEVICE_ATTACH_MIN_SIZE)
      return -EINVAL;
    if (at.flags & ~(uint32_t) IFB_VFIO_DEVICE_ATTACH_PASID)
      return -EINVAL;
    if (at.flags)
      return -EOPNOTSUPP;        /* no pasid_attach_ioas on emulated devices */
  } else {
    memcpy (&de, arg, IFB_VFIO_DEVICE_DETACH_MIN_SIZE);
    if (de.argsz < IFB_VFIO_DEVICE_DETACH_MIN_SIZE)
      return -EINVAL;
    if (de.flags & ~(uint32_t) IFB_VFIO_DEVICE_DETACH_PASID)
      return -EINVAL;
    if (de.flags)
      return -EOPNOTSUPP;
  }
  if (pread (fd, &rec, sizeof rec, IFB_EMUL_BIND_OFFSET) != sizeof rec || rec.magic != IFB_EMUL_BIND_MAGIC)
    return -EINVAL;
  ctx = emul_find_context (rec.ctx_uuid);
  if (ctx < 0)
    return ctx;
  r = emul_lock (ctx, &t);
  if (r < 0)
    return r;
  emul_reap (t);
  dev = emul_device_of (t, rec.dev_id);
  if (!dev) {
    r = -ENODEV;
    goto out;
  }
  old = dev->pt_id;
  if (!attach) {
    dev->pt_id = 0;
    emul_put_pt (t, old);
    r = 0;
    goto out;
  }
  pt = emul_get (t, at.pt_id, 0);
  if (!pt) {
    r = -ENOENT;
    goto out;
  }
  if (pt->type == IFB_UAPI_OBJ_IOAS) {
    /* An auto domain: reuse a compatible one on this IOAS, as iommufd_device_auto_get_domain(). */
    EmulObject *hw = NULL;
    for (size_t i = 0; i < IFB_EMUL_MAX_OBJECTS && !hw; i++) {
      EmulObject *o = &t->objects[i];
      if (o->type == IFB_UAPI_OBJ_HWPT_PAGING && (o->aux & EMUL_HWPT_AUTO) && o->parent_id == at.pt_id &&
          o->iommu_type == dev->iommu_type)
        hw = o;
    }
    if (!hw) {
      hw = emul_alloc (t, rec.dev_id, dev->iommu_type);
      if (!hw) {
        r = -ENOMEM;
        goto out;
      }
      hw->parent_id = at.pt_id;
      hw->aux = EMUL_HWPT_AUTO;
      emul_publish (hw, IFB_UAPI_OBJ_HWPT_PAGING);
    }
    new_pt = emul_id (t, hw);
  } else if (pt->type == IFB_UAPI_OBJ_HWPT_PAGING || pt->type == IFB_UAPI_OBJ_HWPT_NESTED) {
    if (pt->iommu_type != dev->iommu_type) {
      r = -EINVAL;
      goto out;
    }
    if ((pt->flags & IFB_IOMMU_HWPT_ALLOC_DIRTY_TRACKING) && !emul_dev_dirty (dev)) {
      r = -EINVAL;
      goto out;
    }
    new_pt = at.pt_id;
  } else {
    r = -EINVAL;
    goto out;
  }
  dev->pt_id = new_pt;
  if (old != new_pt)
    emul_put_pt (t, old);
  at.pt_id = new_pt;
  memcpy ((uint8_t *) arg + offsetof (struct ifb_vfio_device_attach_iommufd_pt, pt_id), &at.pt_id, sizeof at.pt_id);
  r = 0;
out:
  emul_unlock (t);
  return r;
}

static int
emul_device_ioctl (int fd, unsigned long request, void *arg)
{
  int state;

  if (request == IFB_VFIO_DEVICE_BIND_IOMMUFD)
    return emul_device_bind (fd, arg);
  /* Everything but BIND needs access granted through this open file. */
  state = emul_device_bind_state (fd);
  if (state < 0)
    return state;
  if (state != 1)
    return -EINVAL;
  if (request == IFB_VFIO_DEVICE_ATTACH_IOMMUFD_PT)
    return emul_device_attach_detach (fd, true, arg);
  if (request == IFB_VFIO_DEVICE_DETACH_IOMMUFD_PT)
    return emul_device_attach_detach (fd, false, arg);
  return -ENOTTY;
}

int
ifb_emul_ioctl (int fd, unsigned long request, void *arg)
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
      out->flags = o->flags;
      out->parent_id = o->parent_id;
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
