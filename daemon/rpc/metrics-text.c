/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Theory of operation
 *
 * Two kinds of numbers: the counters of metrics.c (RPC calls, workers), and state read when the
 * text is rendered: guests from the registry (labels vm and uuid: names the broker validated, at
 * most max-vms of them; their hand-off mode, holders and VMM exits), devices from sysfs, the
 * gauges the transport keeps in the core, and where the memory controller is on cgroup2 each
 * guest cgroup's memory.stat.
 *
 * One renderer writes two dialects. They differ only in how a counter family is named (the
 * OpenMetrics family "x" has samples "x_total"; the Prometheus text format types "x_total"
 * itself) and in OpenMetrics' closing "# EOF"; every family is a counter, gauge or histogram,
 * which both parsers know. The `metrics` method returns OpenMetrics; [metrics] textfile= gets
 * the Prometheus text format, which node_exporter's textfile collector parses.
 */
#define G_LOG_DOMAIN "ifb-metrics"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dispatch.h"
#include "errors.h"
#include "ifb-config.h"
#include "metrics.h"
#include "metrics-text.h"
#include "notify.h"
#include "pci-device.h"
#include "util.h"
#include "vm.h"
#include "worker.h"

static guint textfile_source;
static gboolean textfile_failing;

/* ---- rendering ---------------------------------------------------------------------------- */

typedef struct {
  GString *s;
  IfbMetricsFormat format;
} Out;

static void
family (Out *o, const char *name, const char *type, const char *help)
{
  const char *suffix = strcmp (type, "counter") == 0 && o->format == IFB_METRICS_PROMETHEUS_TEXT ? "_total" : "";
  g_string_append_printf (o->s, "# HELP %s%s %s\n# TYPE %s%s %s\n", name, suffix, help, name, suffix, type);
}

/* Append key="value" to a label list, escaped as both formats want (\\, \", \n). */
static void
label (GString *l, const char *key, const char *value)
{
  if (l->len)
    g_string_append_c (l, ',');
  g_string_append_printf (l, "%s=\"", key);
  for (const char *p = value ? value : ""; *p; p++) {
    if (*p == '\\' || *p == '"')
      g_string_append_c (l, '\\'), g_string_append_c (l, *p);
    else if (*p == '\n')
      g_string_append (l, "\\n");
    else
      g_string_append_c (l, *p);
  }
  g_string_append_c (l, '"');
}

static void
sample_prefix (Out *o, const char *name, const char *suffix, const GString *labels, const char *extra)
{
  g_string_append (o->s, name);
  g_string_append (o->s, suffix);
  if ((labels && labels->len) || extra) {
    g_string_append_c (o->s, '{');
    if (labels && labels->len)
      g_string_append_len (o->s, labels->str, (gssize) labels->len);
    if (extra)
      g_string_append_printf (o->s, "%s%s", labels && labels->len ? "," : "", extra);
    g_string_append_c (o->s, '}');
  }
  g_string_append_c (o->s, ' ');
}

static void
sample (Out *o, const char *name, const char *suffix, const GString *labels, guint64 v)
{
  sample_prefix (o, name, suffix, labels, NULL);
  g_string_append_printf (o->s, "%" G_GUINT64_FORMAT "\n", v);
}

static void
sample_double (Out *o, const char *name, const char *suffix, const GString *labels, double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  sample_prefix (o, name, suffix, labels, NULL);
  g_string_append_printf (o->s, "%s\n", g_ascii_formatd (buf, sizeof buf, "%.9g", v));
}

static void
histogram (Out *o, const char *name, const GString *labels, const IfbHistogram *h, const IfbBuckets *b)
{
  guint64 cum = 0;
  for (guint i = 0; i < b->n; i++) {
    g_autofree char *le = g_strdup_printf ("le=\"%s\"", b->text[i]);
    cum += h->bucket[i];
    sample_prefix (o, name, "_bucket", labels, le);
    g_string_append_printf (o->s, "%" G_GUINT64_FORMAT "\n", cum);
  }
  sample_prefix (o, name, "_bucket", labels, "le=\"+Inf\"");
  g_string_append_printf (o->s, "%" G_GUINT64_FORMAT "\n", h->count);
  sample (o, name, "_count", labels, h->count);
  sample_double (o, name, "_sum", labels, h->sum);
}

static GString *
vm_labels (const IfbVm *vm)
{
  GString *l = g_string_new (NULL);
  label (l, "vm", vm->name);
  label (l, "uuid", vm->uuid);
  return l;
}

/* sec_pagetables and kernel from the guest cgroup's memory.stat; FALSE when not readable. */
static gboolean
read_memory_stat (IfbCore *core, const IfbVm *vm, guint64 *ret_sec_pagetables, guint64 *ret_kernel)
{
  ifb_autofd int dirfd = -1, fd = -1;
  g_autoptr (GError) error = NULL;
  char buf[8192];
  gboolean have_pt = FALSE, have_kernel = FALSE;
  ssize_t n;

  if (!core->cgroups || !ifb_cgroup_root_has_memory (core->cgroups) || !vm->cgroup ||
      !ifb_cgroup_open (core->cgroups, vm->cgroup, &dirfd, &error))
    return FALSE;
  if ((fd = openat (dirfd, "memory.stat", O_RDONLY | O_CLOEXEC)) < 0)
    return FALSE;
  n = read (fd, buf, sizeof buf - 1);
  if (n <= 0)
    return FALSE;
  buf[n] = '\0';
  for (char *line = buf, *next; line && *line; line = next) {
    guint64 v;
    if ((next = strchr (line, '\n')))
      *next++ = '\0';
    if (sscanf (line, "sec_pagetables %" G_GUINT64_FORMAT, &v) == 1)
      *ret_sec_pagetables = v, have_pt = TRUE;
    else if (sscanf (line, "kernel %" G_GUINT64_FORMAT, &v) == 1)
      *ret_kernel = v, have_kernel = TRUE;
  }
  return have_pt && have_kernel;
}

static guint
fds_in_store (IfbCore *core, GPtrArray *vms)
{
  guint n = 0;
  if (!ifb_notify_enabled ())
    return 0;
  for (guint i = 0; i < vms->len; i++) {
    IfbVm *vm = g_ptr_array_index (vms, i);
    n += vm->iommufd >= 0;
    for (guint j = 0; j < vm->devices->len; j++)
      n += ((IfbVmDevice *) g_ptr_array_index (vm->devices, j))->fd >= 0;
  }
  return n;
}

static void
render_daemon (Out *o, IfbCore *core, GPtrArray *vms)
{
  g_autoptr (GString) l = g_string_new (NULL);

  family (o, "ifb_build_info", "gauge", "The broker's version and backend (always 1).");
  label (l, "version", IFB_VERSION);
  label (l, "backend", ifb_uapi_backend_name (core->backend));
  sample (o, "ifb_build_info", "", l, 1);
  family (o, "ifb_uptime_seconds", "gauge", "Seconds since the daemon started.");
  sample_double (o, "ifb_uptime_seconds", "", NULL, (double) (g_get_monotonic_time () - core->started_usec) / G_USEC_PER_SEC);
  family (o, "ifb_vms", "gauge", "Guests the broker holds.");
  sample (o, "ifb_vms", "", NULL, vms->len);
  family (o, "ifb_connections", "gauge", "Open client connections.");
  sample (o, "ifb_connections", "", NULL, core->gauges.connections);
  family (o, "ifb_fdstore_fds", "gauge", "Guest fds kept in the service manager's fd store (0 without one).");
  sample (o, "ifb_fdstore_fds", "", NULL, fds_in_store (core, vms));

  family (o, "ifb_rpc_calls", "counter", "JSON-RPC calls handled, by method.");
  for (const IfbMethod *mt = ifb_methods; mt->name; mt++) {
    const IfbMethodStats *ms = ifb_metrics_method (mt->name);
    g_string_truncate (l, 0);
    label (l, "method", mt->name);
    sample (o, "ifb_rpc_calls", "_total", l, ms ? ms->calls : 0);
  }
  family (o, "ifb_rpc_errors", "counter", "JSON-RPC calls answered with an error, by method and error name.");
  for (const IfbMethod *mt = ifb_methods; mt->name; mt++) {
    const IfbMethodStats *ms = ifb_metrics_method (mt->name);
    for (int e = 0; ms && e < _IFB_ERROR_MAX; e++) {
      if (!ms->errors[e])
        continue;
      g_string_truncate (l, 0);
      label (l, "method", mt->name);
      label (l, "error", ifb_error_to_name ((IfbError) e));
      sample (o, "ifb_rpc_errors", "_total", l, ms->errors[e]);
    }
  }
  family (o, "ifb_rpc_duration_seconds", "histogram", "Time from a request's dispatch to its reply, by method.");
  for (const IfbMethod *mt = ifb_methods; mt->name; mt++) {
    const IfbMethodStats *ms = ifb_metrics_method (mt->name);
    if (!ms || !ms->calls)
      continue;
    g_string_truncate (l, 0);
    label (l, "method", mt->name);
    histogram (o, "ifb_rpc_duration_seconds", l, &ms->duration, &ifb_metrics_rpc_buckets);
  }

  family (o, "ifb_worker_spawns", "counter",
          "Workers started, by strategy (vfork: vforked, exec'd, moved into the guest's cgroup.procs).");
  for (guint i = 0; i < ifb_metrics_n_strategies (); i++) {
    const IfbWorkerStats *ws;
    const char *strategy = ifb_metrics_strategy (i, &ws);
    g_string_truncate (l, 0);
    label (l, "strategy", strategy);
    sample (o, "ifb_worker_spawns", "_total", l, ws->spawns);
  }
  family (o, "ifb_worker_failures", "counter", "Workers that died, timed out or could not be placed, by strategy.");
  for (guint i = 0; i < ifb_metrics_n_strategies (); i++) {
    const IfbWorkerStats *ws;
    const char *strategy = ifb_metrics_strategy (i, &ws);
    g_string_truncate (l, 0);
    label (l, "strategy", strategy);
    sample (o, "ifb_worker_failures", "_total", l, ws->failures);
  }
  family (o, "ifb_workers_running", "gauge", "Workers running now ([broker] max-workers bounds them).");
  sample (o, "ifb_workers_running", "", NULL, ifb_worker_n_running ());
  family (o, "ifb_workers_waiting", "gauge", "Batches waiting for a worker slot.");
  sample (o, "ifb_workers_waiting", "", NULL, ifb_worker_n_waiting ());
  family (o, "ifb_worker_duration_seconds", "histogram", "Time from a worker's spawn to its reaping, by strategy.");
  for (guint i = 0; i < ifb_metrics_n_strategies (); i++) {
    const IfbWorkerStats *ws;
    const char *strategy = ifb_metrics_strategy (i, &ws);
    g_string_truncate (l, 0);
    label (l, "strategy", strategy);
    histogram (o, "ifb_worker_duration_seconds", l, &ws->duration, &ifb_metrics_worker_buckets);
  }
}

static void
render_vms (Out *o, IfbCore *core, GPtrArray *vms)
{
  static const char *const vm_states[] = { "pending", "ready" };
  static const char *const hwpt_kinds[] = { "nest-parent", "plain" };
  g_autofree guint64 *pt = g_new0 (guint64, MAX (vms->len, 1));
  g_autofree guint64 *kernel = g_new0 (guint64, MAX (vms->len, 1));
  g_autofree gboolean *have_mem = g_new0 (gboolean, MAX (vms->len, 1));
  gboolean any_mem = FALSE;

  family (o, "ifb_vm_state", "gauge", "A guest's state: 1 for the one it is in (pending: no IOMMUFD context yet).");
  for (guint i = 0; i < vms->len; i++) {
    IfbVm *vm = g_ptr_array_index (vms, i);
    for (guint s = 0; s < G_N_ELEMENTS (vm_states); s++) {
      g_autoptr (GString) l = vm_labels (vm);
      label (l, "state", vm_states[s]);
      sample (o, "ifb_vm_state", "", l, (vm->iommufd >= 0) == (s == 1));
    }
  }
  family (o, "ifb_vm_handoff", "gauge",
          "A guest's hand-off: 1 for its mode (unbound: the VMM binds and allocates; bound: the broker does).");
  for (guint i = 0; i < vms->len; i++) {
    IfbVm *vm = g_ptr_array_index (vms, i);
    for (int h = 0; h < _IFB_HANDOFF_MAX; h++) {
      g_autoptr (GString) l = vm_labels (vm);
      label (l, "handoff", ifb_handoff_to_string ((IfbHandoff) h));
      sample (o, "ifb_vm_handoff", "", l, vm->options.handoff == (IfbHandoff) h);
    }
  }
  family (o, "ifb_vm_holders", "gauge", "Processes holding a guest's fds (its VMM), watched by the broker.");
  for (guint i = 0; i < vms->len; i++) {
    IfbVm *vm = g_ptr_array_index (vms, i);
    g_autoptr (GString) l = vm_labels (vm);
    sample (o, "ifb_vm_holders", "", l, vm->holders ? vm->holders->len : 0);
  }
  family (o, "ifb_vm_vmm_exits", "counter", "Times a guest's context was replaced because the last holder of its fds exited.");
  for (guint i = 0; i < vms->len; i++) {
    IfbVm *vm = g_ptr_array_index (vms, i);
    g_autoptr (GString) l = vm_labels (vm);
    sample (o, "ifb_vm_vmm_exits", "_total", l, vm->vmm_exits);
  }
  family (o, "ifb_vm_devices", "gauge", "Devices attached to or reserved for a guest.");
  for (guint i = 0; i < vms->len; i++) {
    IfbVm *vm = g_ptr_array_index (vms, i);
    g_autoptr (GString) l = vm_labels (vm);
    sample (o, "ifb_vm_devices", "", l, vm->devices->len);
  }
  family (o, "ifb_vm_hwpts", "gauge", "HWPTs the broker allocated for a guest, by kind.");
  for (guint i = 0; i < vms->len; i++) {
    IfbVm *vm = g_ptr_array_index (vms, i);
    guint n[G_N_ELEMENTS (hwpt_kinds)] = { 0 };
    for (guint j = 0; j < vm->devices->len; j++) {
      IfbVmDevice *d = g_ptr_array_index (vm->devices, j);
      if (d->hwpt_id)
        n[d->hwpt_flags & IFB_HWPT_NEST_PARENT ? 0 : 1]++;
    }
    for (guint k = 0; k < G_N_ELEMENTS (hwpt_kinds); k++) {
      g_autoptr (GString) l = vm_labels (vm);
      label (l, "kind", hwpt_kinds[k]);
      sample (o, "ifb_vm_hwpts", "", l, n[k]);
    }
  }
  family (o, "ifb_vm_viommu_objects", "gauge",
          "Objects the broker made on a guest's NEST_PARENT for its vIOMMU (options.viommu), by kind: the vIOMMU, "
          "its vEVENTQ, and a vDEVICE per device.");
  for (guint i = 0; i < vms->len; i++) {
    IfbVm *vm = g_ptr_array_index (vms, i);
    static const char *const kinds[] = { "viommu", "veventq", "vdevice" };
    guint n[G_N_ELEMENTS (kinds)] = { vm->viommu_id != 0, vm->veventq_id != 0, 0 };
    for (guint j = 0; j < vm->devices->len; j++)
      n[2] += ((IfbVmDevice *) g_ptr_array_index (vm->devices, j))->vdev_id != 0;
    for (guint k = 0; k < G_N_ELEMENTS (kinds); k++) {
      g_autoptr (GString) l = vm_labels (vm);
      label (l, "kind", kinds[k]);
      sample (o, "ifb_vm_viommu_objects", "", l, n[k]);
    }
  }

  for (guint i = 0; i < vms->len; i++)
    any_mem |= (have_mem[i] = read_memory_stat (core, g_ptr_array_index (vms, i), &pt[i], &kernel[i]));
  if (!any_mem)
    return;   /* memory controller not on cgroup2, or no guest cgroup exists yet */
  family (o, "ifb_vm_cgroup_sec_pagetables_bytes", "gauge",
          "sec_pagetables of the guest cgroup's memory.stat: IOMMU page tables charged to the guest.");
  for (guint i = 0; i < vms->len; i++) {
    g_autoptr (GString) l = vm_labels (g_ptr_array_index (vms, i));
    if (have_mem[i])
      sample (o, "ifb_vm_cgroup_sec_pagetables_bytes", "", l, pt[i]);
  }
  family (o, "ifb_vm_cgroup_kernel_bytes", "gauge", "kernel of the guest cgroup's memory.stat.");
  for (guint i = 0; i < vms->len; i++) {
    g_autoptr (GString) l = vm_labels (g_ptr_array_index (vms, i));
    if (have_mem[i])
      sample (o, "ifb_vm_cgroup_kernel_bytes", "", l, kernel[i]);
  }
}

static void
render_devices (Out *o, IfbCore *core)
{
  static const char *const states[] = { "free", "reserved", "ready" };
  g_autoptr (GPtrArray) devs = NULL;
  g_autoptr (GError) error = NULL;

  if (core->sys_dirfd < 0 || !(devs = ifb_pci_device_scan (core->sys_dirfd, &error))) {
    g_debug ("No devices for the metrics: %s", error ? error->message : "no sysfs");
    return;
  }
  family (o, "ifb_device_state", "gauge", "A vfio-pci device's state: 1 for the one it is in.");
  for (guint i = 0; i < devs->len; i++) {
    IfbPciDevice *pd = g_ptr_array_index (devs, i);
    const char *bdf = ifb_pci_device_get_bdf (pd);
    IfbVm *owner = ifb_registry_device_owner (core->registry, bdf);
    IfbVmDevice *d = owner ? ifb_vm_find_device (owner, bdf) : NULL;
    guint state = !d ? 0 : d->state == IFB_VM_DEVICE_READY ? 2 : 1;
    if (!ifb_pci_device_is_vfio (pd))
      continue;
    for (guint s = 0; s < G_N_ELEMENTS (states); s++) {
      g_autoptr (GString) l = g_string_new (NULL);
      label (l, "device", bdf);
      label (l, "state", states[s]);
      sample (o, "ifb_device_state", "", l, s == state);
    }
  }
  family (o, "ifb_device_owner", "gauge", "The guest that owns a device (1; a device no guest owns has no series).");
  for (guint i = 0; i < devs->len; i++) {
    const char *bdf = ifb_pci_device_get_bdf (g_ptr_array_index (devs, i));
    IfbVm *owner = ifb_registry_device_owner (core->registry, bdf);
    g_autoptr (GString) l = NULL;
    if (!owner)
      continue;
    l = vm_labels (owner);
    label (l, "device", bdf);
    sample (o, "ifb_device_owner", "", l, 1);
  }
}

char *
ifb_metrics_render (IfbCore *core, IfbMetricsFormat format)
{
  g_autoptr (GPtrArray) vms = ifb_registry_list (core->registry);
  Out o = { g_string_sized_new (8192), format };

  render_daemon (&o, core, vms);
  render_vms (&o, core, vms);
  render_devices (&o, core);
  if (format == IFB_METRICS_OPENMETRICS)
    g_string_append (o.s, "# EOF\n");
  return g_string_free (o.s, FALSE);
}

/* ---- [metrics] textfile ------------------------------------------------------------------- */

/*
 * The textfile's directory is often one others may write (node_exporter's collector directory),
 * so nothing there is trusted: the directory is opened without blocking (a FIFO planted in its
 * place is not a directory, and O_DIRECTORY refuses it before any open), a directory others may
 * write without the sticky bit is refused, and the new text goes into a file no planted name can
 * be: an unnamed O_TMPFILE linked in under a random name, or where the filesystem has no
 * O_TMPFILE a random name created O_CREAT|O_EXCL|O_NOFOLLOW|O_NONBLOCK, never opened if it exists.
 * rename() then replaces whatever is at the target (a symlink there is replaced, not followed).
 */
static gboolean
textfile_dir_open (const char *dir, int *ret_dirfd, GError **error)
{
  ifb_autofd int dirfd = open (dir, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;

  if (dirfd < 0 || fstat (dirfd, &st) < 0)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Opening the directory '%s'", dir);
  /* Root renames into it: anyone else who may write there could swap names under us. */
  if ((st.st_mode & S_IWOTH || (st.st_mode & S_IWGRP && st.st_gid != 0)) && !(st.st_mode & S_ISVTX))
    return g_set_error (error, IFB_ERROR, IFB_ERROR_INVALID_ARGUMENT,
                        "The directory '%s' may be written by %s (mode %04o) and has no sticky bit: refusing to "
                        "write metrics there (make it 0755, or 1777 like /tmp)", dir,
                        st.st_mode & S_IWOTH ? "every user" : "its group", (unsigned) (st.st_mode & 07777)), FALSE;
  *ret_dirfd = ifb_steal_fd (&dirfd);
  return TRUE;
}

/* A new, empty, unnamed or freshly named file in dirfd; *ret_name is set when it has a name. */
static gboolean
textfile_tmp_open (int dirfd, const char *dir, int *ret_fd, char **ret_name, GError **error)
{
  int fd = openat (dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);

  if (fd >= 0) {
    *ret_fd = fd;
    *ret_name = NULL;
    return TRUE;
  }
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Creating a file in '%s'", dir);
  for (int i = 0; i < 16; i++) {
    g_autofree char *name = g_strdup_printf (".ifb-metrics.%08x%08x.tmp", g_random_int (), g_random_int ());
    fd = openat (dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd >= 0) {
      *ret_fd = fd;
      *ret_name = g_steal_pointer (&name);
      return TRUE;
    }
    if (errno != EEXIST)
      break;
  }
  return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Creating a file in '%s'", dir);
}

/* Give the unnamed file fd a random name in dirfd (linkat() refuses a name that exists). */
static gboolean
textfile_tmp_link (int fd, int dirfd, const char *dir, char **ret_name, GError **error)
{
  g_autofree char *proc = g_strdup_printf ("/proc/self/fd/%d", fd);

  for (int i = 0; i < 16; i++) {
    g_autofree char *name = g_strdup_printf (".ifb-metrics.%08x%08x.tmp", g_random_int (), g_random_int ());
    /* through /proc: AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH */
    if (linkat (AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW) == 0) {
      *ret_name = g_steal_pointer (&name);
      return TRUE;
    }
    if (errno != EEXIST)
      break;
  }
  return ifb_error_set_errno (error, IFB_ERROR_FAILED, -errno, "Naming the new file in '%s'", dir);
}

gboolean
ifb_metrics_textfile_write (IfbCore *core, GError **error)
{
  const char *path = core->config->metrics_textfile;
  g_autofree char *text = NULL, *dir = NULL, *base = NULL, *tmp = NULL;
  ifb_autofd int dirfd = -1, fd = -1;
  size_t len, off = 0;
  int e;

  if (!path)
    return TRUE;
  dir = g_path_get_dirname (path);
  base = g_path_get_basename (path);
  if (!textfile_dir_open (dir, &dirfd, error) || !textfile_tmp_open (dirfd, dir, &fd, &tmp, error))
    return FALSE;
  text = ifb_metrics_render (core, IFB_METRICS_PROMETHEUS_TEXT);
  len = strlen (text);
  /* No fsync: a reader sees the old file or the new one, and after a crash the next interval
   * rewrites it. node_exporter reads only *.prom, so the temporary name is never read. */
  while (off < len) {
    ssize_t n = write (fd, text + off, len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      e = -errno;
      goto fail;
    }
    off += (size_t) n;
  }
  if (fchmod (fd, 0644) < 0) {   /* readable by the collector whatever the umask */
    e = -errno;
    goto fail;
  }
  if (!tmp && !textfile_tmp_link (fd, dirfd, dir, &tmp, error))
    return FALSE;
  if (renameat (dirfd, tmp, dirfd, base) < 0) {
    e = -errno;
    goto fail;
  }
  return TRUE;

fail:
  if (tmp)
    unlinkat (dirfd, tmp, 0);
  return ifb_error_set_errno (error, IFB_ERROR_FAILED, e, "Writing '%s'", path);
}

static gboolean
on_textfile_timer (gpointer data)
{
  IfbCore *core = data;
  g_autoptr (GError) error = NULL;

  if (!ifb_metrics_textfile_write (core, &error)) {
    if (!textfile_failing)
      g_warning ("[metrics] textfile: %s (said once until it works again), ignoring", error->message);
    textfile_failing = TRUE;
  } else {
    if (textfile_failing)
      g_message ("[metrics] textfile: '%s' written again", core->config->metrics_textfile);
    textfile_failing = FALSE;
  }
  return G_SOURCE_CONTINUE;
}

void
ifb_metrics_textfile_start (IfbCore *core)
{
  if (!core->config->metrics_textfile || textfile_source)
    return;
  on_textfile_timer (core);
  textfile_source = g_timeout_add_seconds (core->config->metrics_interval_sec, on_textfile_timer, core);
}

void
ifb_metrics_textfile_stop (void)
{
  if (textfile_source)
    g_source_remove (textfile_source);
  textfile_source = 0;
}
