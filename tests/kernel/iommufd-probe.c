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
 *   --cgroup GUEST_CG [--daemon-cgroup DAEMON_CG]
 *                  the broker's accounting pattern: this process (in DAEMON_CG) maps 64 MiB into
 *                  the IOAS, a forked worker joins GUEST_CG and allocates 8 HWPTs on the same
 *                  iommufd; prints both memory.current deltas. On VT-d the page tables (~1 MiB)
 *                  must be charged to GUEST_CG and not to DAEMON_CG (asserted); the mock
 *                  domain's tables are not accounted (printed only).
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/sched.h>
#include <signal.h>
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

static int join_cgroup(const char *cg)
{
    char p[512];
    snprintf(p, sizeof p, "%s/cgroup.procs", cg);
    FILE *f = fopen(p, "w");
    int ok = f && fprintf(f, "%d\n", getpid()) > 0;
    ok = (f && fclose(f) == 0) && ok;
    return ok ? 0 : -1;
}

/* The broker's pattern: this process (the "daemon", in daemon_cg) owns the iommufd and has
 * 64 MiB mapped in the IOAS; a forked worker moves itself into guest_cg and allocates 8 HWPTs
 * on the inherited fd, then exits (the objects stay in the context). The page-table charge
 * must land in guest_cg, not in daemon_cg. With want_kib > 0 the guest delta must reach it and
 * the daemon delta must stay under a quarter of the guest's (memcg per-CPU batching noise). */
static void charge(const char *daemon_cg, const char *guest_cg, uint32_t dev, uint32_t ioas,
                   uint32_t flags, long long want_kib)
{
    size_t len = 64 << 20;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
        CHECK("charge-mmap", 0, "%s", strerror(errno));
        return;
    }
    int r = map(ioas, p, len, CHARGE_IOVA);
    CHECK("charge-map-64MiB", r == 0, "%s", err(r));

    int pfd[2];
    uint32_t h[8];
    int n = 0;
    if (pipe(pfd)) {
        CHECK("charge-pipe", 0, "%s", strerror(errno));
        return;
    }
    long long g0 = memcur(guest_cg), d0 = daemon_cg ? memcur(daemon_cg) : -1;
    /* like the broker: clone3(CLONE_INTO_CGROUP), so the worker is born in the guest's cgroup
     * and not even its fork-time allocations are charged to the daemon; fork + join otherwise */
    int cgfd = open(guest_cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct clone_args ca = { .flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)cgfd };
    int joined = 1;
    pid_t pid = cgfd >= 0 ? (pid_t)syscall(SYS_clone3, &ca, sizeof ca) : -1;
    if (pid < 0) {
        joined = 0;
        pid = fork();
    }
    if (pid == 0) {
        close(pfd[0]);
        if (!joined && join_cgroup(guest_cg))
            _exit(3);
        for (n = 0; n < 8; n++)
            if (hwpt_alloc(dev, ioas, flags, IOMMU_HWPT_DATA_NONE, NULL, 0, &h[n]))
                break;
        if (write(pfd[1], h, n * sizeof h[0]) < 0)
            _exit(4);
        _exit(n == 8 ? 0 : 5);
    }
    close(pfd[1]);
    if (cgfd >= 0)
        close(cgfd);
    printf("iommufd-probe: charge worker pid %d started with %s\n", (int)pid,
           joined ? "clone3(CLONE_INTO_CGROUP)" : "fork + cgroup.procs");
    ssize_t got = read(pfd[0], h, sizeof h);
    close(pfd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    n = got > 0 ? (int)(got / sizeof h[0]) : 0;
    long long g1 = memcur(guest_cg), d1 = daemon_cg ? memcur(daemon_cg) : -1;
    long long gk = (g1 - g0) / 1024, dk = (d1 - d0) / 1024;
    CHECK("charge-worker-hwpt-alloc-x8", WIFEXITED(st) && WEXITSTATUS(st) == 0 && n == 8,
          "worker in %s allocated %d HWPTs (exit %d)", guest_cg, n, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    printf("iommufd-probe: charge guest %s: %lld -> %lld, delta %+lld KiB\n", guest_cg, g0, g1, gk);
    if (daemon_cg)
        printf("iommufd-probe: charge daemon %s: %lld -> %lld, delta %+lld KiB\n", daemon_cg, d0, d1, dk);
    if (want_kib > 0)
        CHECK("charge-lands-in-guest", gk >= want_kib && (!daemon_cg || dk * 4 < gk),
              "page tables of %d HWPTs over 64 MiB: guest %+lld KiB (want >= %lld), daemon %+lld KiB", n,
              gk, want_kib, dk);
    for (int i = 0; i < n; i++)
        destroy(h[i]);
    unmap(ioas, CHARGE_IOVA, len);
    munmap(p, len);
}

static void vtd(const char *path, const char *dcg, const char *cg)
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
        charge(dcg, cg, b.out_devid, ioas, 0, 512);
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

static void mock(const char *dcg, const char *cg)
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
        charge(dcg, cg, idev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, 0); /* mock tables: not accounted */
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
    const char *dev = NULL, *cg = NULL, *dcg = NULL;
    int m = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc)
            dev = argv[++i];
        else if (!strcmp(argv[i], "--cgroup") && i + 1 < argc)
            cg = argv[++i];
        else if (!strcmp(argv[i], "--daemon-cgroup") && i + 1 < argc)
            dcg = argv[++i];
        else if (!strcmp(argv[i], "--mock"))
            m = 1;
        else {
            fprintf(stderr, "usage: %s (--device /dev/vfio/devices/vfioN | --mock) [--cgroup GUEST_CG [--daemon-cgroup DAEMON_CG]]\n", argv[0]);
            return 2;
        }
    }
    if (!dev == !m || (dcg && !cg)) {
        fprintf(stderr, "%s: give exactly one of --device, --mock; --daemon-cgroup needs --cgroup\n", argv[0]);
        return 2;
    }
    if (dcg)
        CHECK("join-daemon-cgroup", join_cgroup(dcg) == 0, "%s", dcg);
    ifd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
    CHECK("open-iommu", ifd >= 0, "/dev/iommu: %s", ifd < 0 ? strerror(errno) : "fd ok");
    if (ifd < 0)
        return 1;
    if (dev)
        vtd(dev, dcg, cg);
    else
        mock(dcg, cg);
    return failed;
}
