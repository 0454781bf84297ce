/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The emulator's VFIO device commands: BIND_IOMMUFD, ATTACH_IOMMUFD_PT and DETACH_IOMMUFD_PT on
 * an emulated device cdev fd (see "Devices" and "Device fd <-> context" in emul.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emul-context.h"
#include "emul-copy.h"
#include "emul-device.h"
#include "emul-vfio.h"
#include "iommufd-defs.h"

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
  emul_device_reset_delay ();   /* vfio_df_open() -> vfio_pci_core_enable(): the device is reset */
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
  dev->features = prof.canwbs ? EMUL_DEV_CANWBS : 0;

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

int
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
