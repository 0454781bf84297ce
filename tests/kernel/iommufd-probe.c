/* iommufd-probe: raw IOMMUFD uAPI checks in the test guest — a platform proof independent of
 * the broker (the broker's own scenarios run as ifb-uapi-scenarios). Compiled by run.sh against
 * the uAPI headers of the kernel that is booted (saved by build-kernel.sh next to bzImage).
 *
 *   iommufd-probe --device /dev/vfio/devices/vfioN   (vtd boot)
 *     bind the cdev to a fresh iommufd, GET_HW_INFO (expects Intel VT-d), IOAS_ALLOC,
 *     HWPT_ALLOC NEST_PARENT (QEMU's VT-d has no nesting: EOPNOTSUPP expected), plain
 *     HWPT_ALLOC, attach, map/unmap 2 MiB, destroy.
 *   iommufd-probe --mock                             (mock boot)
 *     IOAS_ALLOC, IOMMU_TEST_OP_MOCK_DOMAIN, HWPT_ALLOC NEST_PARENT (must work), a nested
 *     child (IOMMU_HWPT_DATA_SELFTEST), destroy in kernel order.
 *   --cgroup DIR   move this process into cgroup DIR first; with 64 MiB mapped into the IOAS,
 *                  allocate 8 HWPTs and print the memory.current delta of DIR (the page-table
 *                  charge of HWPT_ALLOC lands in the caller's cgroup).
 * One "iommufd-probe: NAME ok|FAIL ..." line per check; exit 1 on any unexpected result. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>
#include "iommufd_test.h"

static int failed;
static int ifd = -1;

#define CHECK(name, cond, ...)                                                             \
    do {                                                                                   \
        int ok_ = (cond);                                                                  \
        printf("iommufd-probe: %s %s", name, ok_ ? "ok" : "FAIL");                         \
        printf(" " __VA_ARGS__);                                                           \
        putchar('\n');                                                                     \
        fflush(stdout);                                                                    \
        if (!ok_)                                                                          \
            failed = 1;                                                                    \
    } while (0)

static const char *err(int r) { return r ? strerror(errno) : "ok"; }

static int ioas_alloc(uint32_t *id)
{
    struct iommu_ioas_alloc a = { .size = sizeof(a) };
    int r = ioctl(ifd, IOMMU_IOAS_ALLOC, &a);
    *id = a.out_ioas_id;
    return r;
}

static int hwpt_alloc(uint32_t dev, uint32_t pt, uint32_t flags, uint32_t dtype, void *data,
                      uint32_t dlen, uint32_t *out)
{
    struct iommu_hwpt_alloc h = { .size = sizeof(h), .flags = flags, .dev_id = dev, .pt_id = pt,
                                  .data_type = dtype, .data_len = dlen,
                                  .data_uptr = (uintptr_t)data };
    int r = ioctl(ifd, IOMMU_HWPT_ALLOC, &h);
    *out = h.out_hwpt_id;
    return r;
}

static int destroy(uint32_t id)
{
    struct iommu_destroy d = { .size = sizeof(d), .id = id };
    return ioctl(ifd, IOMMU_DESTROY, &d);
}

static int map(uint32_t ioas, void *p, size_t len, uint64_t iova)
{
    struct iommu_ioas_map m = { .size = sizeof(m), .ioas_id = ioas, .user_va = (uintptr_t)p,
                                .length = len, .iova = iova,
                                .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
                                         IOMMU_IOAS_MAP_WRITEABLE };
    return ioctl(ifd, IOMMU_IOAS_MAP, &m);
}

static int unmap(uint32_t ioas, uint64_t iova, size_t len)
{
    struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = ioas, .iova = iova, .length = len };
    return ioctl(ifd, IOMMU_IOAS_UNMAP, &u);
}

static long long memcur(const char *cg)
{
    char p[512];
    long long v = -1;
    snprintf(p, sizeof p, "%s/memory.current", cg);
    FILE *f = fopen(p, "r");
    if (f) {
        if (fscanf(f, "%lld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* inside the mock domain's aperture [16 MiB, 2 GiB) and VT-d's */
#define CHARGE_IOVA (32ull << 20)

/* With 64 MiB mapped into ioas, allocate 8 HWPTs for dev and report the charge to cg. */
static void charge(const char *cg, uint32_t dev, uint32_t ioas, uint32_t flags)
{
    size_t len = 64 << 20;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
        CHECK("charge-mmap", 0, "%s", strerror(errno));
        return;
    }
    int r = map(ioas, p, len, CHARGE_IOVA);
    CHECK("charge-map-64MiB", r == 0, "%s", err(r));
    long long before = memcur(cg);
    uint32_t h[8];
    int n = 0;
    for (; n < 8; n++)
        if (hwpt_alloc(dev, ioas, flags, IOMMU_HWPT_DATA_NONE, NULL, 0, &h[n]))
            break;
    long long after = memcur(cg);
    CHECK("charge-hwpt-alloc-x8", n == 8, "%d allocated%s%s", n, n < 8 ? ": " : "",
          n < 8 ? strerror(errno) : "");
    printf("iommufd-probe: charge %s memory.current %lld -> %lld (delta %lld KiB for %d HWPTs over 64 MiB)\n",
           cg, before, after, (after - before) / 1024, n);
    for (int i = 0; i < n; i++)
        destroy(h[i]);
    unmap(ioas, CHARGE_IOVA, len);
    munmap(p, len);
}

static void vtd(const char *path, const char *cg)
{
    int dfd = open(path, O_RDWR | O_CLOEXEC);
    CHECK("open-cdev", dfd >= 0, "%s: %s", path, dfd < 0 ? strerror(errno) : "fd ok");
    if (dfd < 0)
        return;
    struct vfio_device_bind_iommufd b = { .argsz = sizeof(b), .iommufd = ifd };
    int r = ioctl(dfd, VFIO_DEVICE_BIND_IOMMUFD, &b);
    CHECK("bind-iommufd", r == 0, "dev_id=%u (%s)", b.out_devid, err(r));
    if (r)
        return;

    struct iommu_hw_info_vtd vtdinfo = { 0 };
    struct iommu_hw_info hi = { .size = sizeof(hi), .dev_id = b.out_devid,
                                .data_len = sizeof(vtdinfo), .data_uptr = (uintptr_t)&vtdinfo };
    r = ioctl(ifd, IOMMU_GET_HW_INFO, &hi);
    CHECK("get-hw-info", r == 0 && hi.out_data_type == IOMMU_HW_INFO_TYPE_INTEL_VTD,
          "type=%u (INTEL_VTD=%u) cap=0x%llx ecap=0x%llx caps=0x%llx (%s)", hi.out_data_type,
          IOMMU_HW_INFO_TYPE_INTEL_VTD, (unsigned long long)vtdinfo.cap_reg,
          (unsigned long long)vtdinfo.ecap_reg, (unsigned long long)hi.out_capabilities, err(r));

    uint32_t ioas, hwpt, parent;
    r = ioas_alloc(&ioas);
    CHECK("ioas-alloc", r == 0, "ioas=%u (%s)", ioas, err(r));
    if (r)
        return;
    r = hwpt_alloc(b.out_devid, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_DATA_NONE, NULL, 0, &parent);
    int e = errno;
    CHECK("hwpt-nest-parent", r != 0 && e == EOPNOTSUPP,
          "NEST_PARENT on QEMU VT-d: %s (expected EOPNOTSUPP: no nesting in ecap)", r ? strerror(e) : "allocated?!");
    if (r == 0)
        destroy(parent);
    r = hwpt_alloc(b.out_devid, ioas, 0, IOMMU_HWPT_DATA_NONE, NULL, 0, &hwpt);
    CHECK("hwpt-alloc", r == 0, "hwpt=%u (%s)", hwpt, err(r));
    struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = hwpt };
    r = ioctl(dfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
    CHECK("attach-hwpt", r == 0, "pt=%u (%s)", hwpt, err(r));
    void *p = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    r = map(ioas, p, 2 << 20, 0x100000);
    CHECK("ioas-map-2MiB", r == 0, "%s", err(r));
    r = unmap(ioas, 0x100000, 2 << 20);
    CHECK("ioas-unmap", r == 0, "%s", err(r));
    if (cg)
        charge(cg, b.out_devid, ioas, 0);
    struct vfio_device_detach_iommufd_pt dt = { .argsz = sizeof(dt) };
    r = ioctl(dfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &dt);
    CHECK("detach", r == 0, "%s", err(r));
    r = destroy(ioas);
    CHECK("destroy-ioas-busy", r != 0 && errno == EBUSY, "IOAS with a HWPT: %s (expected EBUSY)",
          r ? strerror(errno) : "destroyed?!");
    r = destroy(hwpt);
    CHECK("destroy-hwpt", r == 0, "%s", err(r));
    r = destroy(ioas);
    CHECK("destroy-ioas", r == 0, "%s", err(r));
    close(dfd);
}

static void mock(const char *cg)
{
    uint32_t ioas, parent, child;
    int r = ioas_alloc(&ioas);
    CHECK("ioas-alloc", r == 0, "ioas=%u (%s)", ioas, err(r));
    if (r)
        return;
    struct iommu_test_cmd t = { .size = sizeof(t), .op = IOMMU_TEST_OP_MOCK_DOMAIN, .id = ioas };
    r = ioctl(ifd, IOMMU_TEST_CMD, &t);
    CHECK("mock-domain", r == 0, "stdev=%u hwpt=%u idev=%u (%s)", t.mock_domain.out_stdev_id,
          t.mock_domain.out_hwpt_id, t.mock_domain.out_idev_id, err(r));
    if (r)
        return;
    uint32_t idev = t.mock_domain.out_idev_id;
    r = hwpt_alloc(idev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_DATA_NONE, NULL, 0, &parent);
    CHECK("hwpt-nest-parent", r == 0, "NEST_PARENT hwpt=%u (%s)", parent, err(r));
    if (r)
        return;
    struct iommu_hwpt_selftest data = { .iotlb = IOMMU_TEST_IOTLB_DEFAULT };
    r = hwpt_alloc(idev, parent, 0, IOMMU_HWPT_DATA_SELFTEST, &data, sizeof(data), &child);
    CHECK("hwpt-nested-child", r == 0, "child hwpt=%u of parent %u (%s)", child, parent, err(r));
    if (cg)
        charge(cg, idev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT);
    r = destroy(parent);
    CHECK("destroy-parent-busy", r != 0 && errno == EBUSY, "parent with a child: %s (expected EBUSY)",
          r ? strerror(errno) : "destroyed?!");
    if (r == 0)
        return;
    r = destroy(child);
    CHECK("destroy-child", r == 0, "%s", err(r));
    r = destroy(parent);
    CHECK("destroy-parent", r == 0, "%s", err(r));
    r = destroy(t.mock_domain.out_stdev_id);
    CHECK("destroy-mock-dev", r == 0, "%s", err(r));
    r = destroy(ioas);
    CHECK("destroy-ioas", r == 0, "%s", err(r));
}

int main(int argc, char **argv)
{
    const char *dev = NULL, *cg = NULL;
    int m = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc)
            dev = argv[++i];
        else if (!strcmp(argv[i], "--cgroup") && i + 1 < argc)
            cg = argv[++i];
        else if (!strcmp(argv[i], "--mock"))
            m = 1;
        else {
            fprintf(stderr, "usage: %s (--device /dev/vfio/devices/vfioN | --mock) [--cgroup DIR]\n", argv[0]);
            return 2;
        }
    }
    if (!dev == !m) {
        fprintf(stderr, "%s: give exactly one of --device, --mock\n", argv[0]);
        return 2;
    }
    if (cg) {
        char p[512];
        snprintf(p, sizeof p, "%s/cgroup.procs", cg);
        FILE *f = fopen(p, "w");
        int ok = f && fprintf(f, "%d\n", getpid()) > 0;
        ok = (f && fclose(f) == 0) && ok;
        CHECK("join-cgroup", ok, "%s", cg);
    }
    ifd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
    CHECK("open-iommu", ifd >= 0, "/dev/iommu: %s", ifd < 0 ? strerror(errno) : "fd ok");
    if (ifd < 0)
        return 1;
    if (dev)
        vtd(dev, cg);
    else
        mock(cg);
    return failed;
}
