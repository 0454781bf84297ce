/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the daemon's read path, from bytes on the socket to the reply line.
 *
 * The input is fed to an IfbFrameReader in small chunks, as partial reads would deliver it, and
 * every completed line goes through ifb_dispatch_line() on a real IfbManager (emulated backend,
 * private runtime dir, real method table). Input layout:
 *
 *   byte 0   bits 0-3  largest chunk (1..15 bytes; 0 = up to 4096)
 *            bit 4     the peer is an unprivileged uid (else root, which may call everything)
 *            bits 5-6  how often a chunk carries fds: never, 1/4, 1/2, always
 *            bit 7     fd batches up to 8 instead of up to 2
 *   byte 1   seed of the chunk/fd generator
 *   rest     the bytes the peer sends
 *
 * The fds are fresh dups of /dev/null and of both ends of a pipe, so methods that take fds see
 * real, wrong ones. Oracles beyond ASan/UBSan: every reply is one line that our own strict parser
 * accepts; GLib criticals abort; no fd survives the input (the lowest free fd number must be the
 * same before and after).
 *
 * Containment: the manager's cgroup2 root is dropped after start-up, so no worker can ever be
 * spawned and no cgroup is read or created (vm.create succeeds only with options.defer, leaving a
 * pending guest); [limits] max-vms is 4; and every guest is destroyed after each input.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dispatch.h"
#include "frame.h"
#include "json.h"
#include "lifecycle.h"
#include "manager.h"
#include "peer.h"
#include "util.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static IfbManager *manager;
static IfbPeer peer_root = { .pid = 1, .uid = 0, .gid = 0, .pidfd = -1 };
static IfbPeer peer_user = { .pid = 1, .uid = 65534, .gid = 65534, .pidfd = -1 };
static int fd_sources[3] = { -1, -1, -1 };
static char *tmp_dir;

static void
remove_tmp_dir (void)
{
  if (tmp_dir) {
    g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", tmp_dir);
    if (system (cmd) != 0)
      fprintf (stderr, "fuzz-dispatch: could not remove %s\n", tmp_dir);
  }
}

static gboolean verbose;

/* Quiet unless IFB_FUZZ_VERBOSE; a critical (a g_return_if_fail() that failed) is a crash. */
static void
log_handler (const char *domain, GLogLevelFlags level, const char *message, gpointer data)
{
  if (verbose || (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR)))
    fprintf (stderr, "%s: %s\n", domain ? domain : "?", message);
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR))
    abort ();
}

/* The structured half (ifb_log_vm() and friends) goes the same way. */
static GLogWriterOutput
log_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
  if (verbose || (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR)))
    g_log_writer_standard_streams (level, fields, n_fields, data);
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR))
    abort ();
  return G_LOG_WRITER_HANDLED;
}

static int
lowest_free_fd (void)
{
  int fd = fcntl (0, F_DUPFD_CLOEXEC, 0);
  ifb_close (fd);
  return fd;
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = NULL, *text = NULL;
  const char *tmpl = g_getenv ("IFB_FUZZ_TEMPLATE");
  IfbConfig *config;
  int p[2];

  if (!tmpl)
    tmpl = IFB_FUZZ_TEMPLATE;
  verbose = g_getenv ("IFB_FUZZ_VERBOSE") != NULL;
  g_log_set_default_handler (log_handler, NULL);
  g_log_set_writer_func (log_writer, NULL, NULL);
  /* Not socket-activated, no service manager: the fd store and sd_notify are no-ops. */
  g_unsetenv ("LISTEN_FDS");
  g_unsetenv ("NOTIFY_SOCKET");
  g_unsetenv ("WATCHDOG_USEC");

  /* On tmpfs when there is one: every guest change fsyncs the registry, which on a disk makes
   * the target I/O-bound (370 execs/s on /tmp here, against thousands on /dev/shm). */
  if (g_file_test ("/dev/shm", G_FILE_TEST_IS_DIR) && !g_getenv ("TMPDIR")) {
    dir = g_strdup ("/dev/shm/ifb-fuzz-XXXXXX");
    g_assert_nonnull (g_mkdtemp (dir));
  } else {
    dir = g_dir_make_tmp ("ifb-fuzz-XXXXXX", &error);
    g_assert_no_error (error);
  }
  tmp_dir = g_strdup (dir);
  atexit (remove_tmp_dir);
  text = g_strdup_printf ("[broker]\nsocket=%s/rpc.sock\nruntime-dir=%s/run\nbackend=emulated\n"
                          "emulated-template=%s\n[limits]\nmax-vms=4\nmax-batch=8\nmax-devices-per-vm=4\n"
                          "[accounting]\nrlimit-per-process=false\n", dir, dir, tmpl);
  config = ifb_config_load_data (text, strlen (text), &error);
  g_assert_no_error (error);
  manager = ifb_manager_new (config, &error);
  if (!ifb_manager_start (manager, &error))
    g_error ("fuzz-dispatch: starting the manager: %s", error->message);
  /* Containment (see the top): no cgroup2 root, so no worker and no cgroup access. */
  manager->core->cgroups = ifb_cgroup_root_free (manager->core->cgroups);

  g_assert_no_errno (fd_sources[0] = open ("/dev/null", O_RDWR | O_CLOEXEC));
  g_assert_no_errno (pipe2 (p, O_CLOEXEC));
  fd_sources[1] = p[0];
  fd_sources[2] = p[1];
  return 0;
}

static guint32
next_rand (guint32 *s)
{
  /* xorshift32: deterministic per input, so a crash reproduces */
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static void
check_reply (json_object *reply)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (json_object) back = NULL;
  size_t len;
  const char *line = ifb_json_to_line (reply, &len);

  /* One protocol line that a strict peer (our own parser) accepts. */
  if (memchr (line, '\n', len))
    abort ();
  back = ifb_json_parse (line, len, 64, &error);
  if (!back) {
    fprintf (stderr, "reply does not parse (%s): %.*s\n", error->message, (int) MIN (len, 2000), line);
    abort ();
  }
}

static void
dispatch_all (IfbFrameReader *r, const IfbPeer *peer)
{
  char *line;
  size_t len;
  IfbFdList *fds;

  while (ifb_frame_reader_pop (r, &line, &len, &fds)) {
    g_autoptr (json_object) reply = NULL;
    g_autoptr (IfbFdList) out_fds = NULL;

    if (len == 0 || (len == 1 && line[0] == '\r')) {   /* as connection.c: blank lines are skipped */
      g_free (line);
      ifb_fd_list_free (fds);
      continue;
    }
    ifb_dispatch_line (manager->core, NULL, peer, line, len, fds, &reply, &out_fds);
    g_free (line);
    if (reply)
      check_reply (reply);
  }
}

static void
reset_state (void)
{
  g_autoptr (GPtrArray) vms = ifb_registry_list (manager->core->registry);
  for (guint i = 0; i < vms->len; i++)
    ifb_lifecycle_destroy (manager->core, g_ptr_array_index (vms, i), NULL, NULL);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (IfbFrameReader) r = NULL;
  const IfbPeer *peer;
  guint max_chunk, fd_odds, max_batch;
  guint32 seed;
  int before;

  if (size < 2)
    return 0;
  max_chunk = (data[0] & 0x0f) ? (data[0] & 0x0f) : 4096;
  peer = (data[0] & 0x10) ? &peer_user : &peer_root;
  fd_odds = (data[0] >> 5) & 3;
  max_batch = (data[0] & 0x80) ? 8 : 2;
  seed = 0x9e3779b9u ^ data[1];
  data += 2;
  size -= 2;

  before = lowest_free_fd ();
  r = ifb_frame_reader_new (manager->core->config->max_frame);
  while (size > 0) {
    size_t want = 1 + next_rand (&seed) % max_chunk;   /* not inside MIN(): it evaluates twice */
    size_t n = MIN (size, want);
    int fds[8];
    size_t n_fds = 0;

    if (fd_odds && next_rand (&seed) % 4 < (fd_odds == 3 ? 4u : fd_odds)) {
      n_fds = 1 + next_rand (&seed) % max_batch;
      for (size_t i = 0; i < n_fds; i++) {
        int src = fd_sources[next_rand (&seed) % 3];
        g_assert_no_errno (fds[i] = fcntl (src, F_DUPFD_CLOEXEC, 3));
      }
    }
    if (ifb_frame_reader_feed (r, (const char *) data, n, fds, n_fds) < 0)
      break;   /* over the frame limit: the connection would be closed */
    dispatch_all (r, peer);
    data += n;
    size -= n;
  }
  r = ifb_frame_reader_free (r);   /* closes the fds of an unfinished line */
  reset_state ();

  if (lowest_free_fd () != before) {
    fprintf (stderr, "fd leak: lowest free fd was %d, is now %d\n", before, lowest_free_fd ());
    abort ();
  }
  return 0;
}
