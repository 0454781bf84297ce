/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ifb-bench: the C side of tests/bench/run. Both the figure and its baseline are measured by
 * this same program, so neither carries interpreter overhead the other lacks.
 *
 *   echo-server PATH [REPLY-FILE [json]]
 *                                   single-threaded epoll server, like the daemon's main loop:
 *                                   answers every '\n'-terminated line with the line itself, or
 *                                   with the bytes of REPLY-FILE (the daemon's own reply, so both
 *                                   sides move the same bytes). With "json", what json-c alone
 *                                   costs per call is added: each request is parsed with a fresh
 *                                   json_tokener, and the reply is built by parsing REPLY-FILE
 *                                   and serialized again, as the daemon parses, builds and
 *                                   serializes. Runs until killed.
 *   rtt PATH N LINE                 N sequential round trips of LINE on one connection (after
 *                                   N/10 warm-up ones); prints "median_ns p99_ns reply_bytes".
 *                                   The client waits for each reply in poll(POLLIN), as event-loop
 *                                   clients (QEMU, libvirt, proto/rpc-client.c) do; with
 *                                   IFB_BENCH_WAIT=read it blocks in recvmsg() instead. The two
 *                                   differ in the kernel: a reader blocked in recvmsg() on an
 *                                   AF_UNIX stream socket is also woken when the server consumes
 *                                   the request (unix_write_space() wakes the sender's wait queue,
 *                                   and that wait is not keyed by event), so against any server
 *                                   slower than the client takes to fall asleep it pays a spurious
 *                                   wake-up and context switch per call; poll() filters by event.
 *   tput PATH CLIENTS MS LINE       CLIENTS connections, one request in flight each, driven by one
 *                                   epoll loop for MS milliseconds; prints "calls_per_sec"
 *   clone3 CGROUP-DIR N             N times: clone3(CLONE_INTO_CGROUP|CLONE_PIDFD), the child
 *                                   _exit()s, the parent polls the pidfd and reaps it - what the
 *                                   daemon's worker costs without any work; prints
 *                                   "median_ns p99_ns"
 *   setup PATH CGROUP N BDF...      N times: vm.create, vm.attach {devices: BDF...}, vm.fds (fds
 *                                   received and closed), timed together; then vm.destroy
 *                                   (not timed); prints "median_ns p99_ns create_ns attach_ns fds_ns"
 *                                   (the last three: medians of each call)
 *   populate PATH CGROUP N K BDF-FILE   N guests with K devices each, guest i in the cgroup
 *                                   CGROUP/guestNNNNN (which must exist), BDFs taken in order from
 *                                   BDF-FILE (one per line); prints "seconds"
 *   exec N CMD ARG...               N times fork+execve+wait of CMD (stdin from $IFB_BENCH_STDIN or
 *                                   /dev/null, stdout to /dev/null); prints "median_ns p99_ns"
 *
 * A reply containing "\"error\"" where a result is expected aborts with exit status 1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json.h>

#include "bench-stats.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static void
die (const char *what)
{
  fprintf (stderr, "ifb-bench: %s: %s\n", what, strerror (errno));
  exit (1);
}

static int
connect_to (const char *path)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    die ("socket");
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0)
    die ("connect");
  return fd;
}

static void
write_all (int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t k = write (fd, p, n);
    if (k < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        struct pollfd pf = { .fd = fd, .events = POLLOUT };
        poll (&pf, 1, -1);
        continue;
      }
      die ("write");
    }
    p += k;
    n -= (size_t) k;
  }
}

/* One reply line from a blocking socket; fds that arrive are closed. Returns its length
 * (without '\n'); the line is in *buf. Bytes after the '\n' are not expected (one request in
 * flight). */
typedef struct {
  char *buf;
  size_t len, cap;
} Buf;

static int wait_in_poll;

static size_t
read_line (int fd, Buf *b, int *n_fds)
{
  b->len = 0;
  for (;;) {
    union {
      struct cmsghdr align;
      char c[CMSG_SPACE (sizeof (int) * 64)];
    } ctl;
    struct iovec iov;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.c, .msg_controllen = sizeof ctl.c };
    ssize_t k;

    if (b->cap - b->len < 65536) {
      b->cap = b->cap ? b->cap * 2 : 262144;
      b->buf = realloc (b->buf, b->cap);
      if (!b->buf)
        die ("realloc");
    }
    iov.iov_base = b->buf + b->len;
    iov.iov_len = b->cap - b->len - 1;
    if (wait_in_poll) {
      struct pollfd pf = { .fd = fd, .events = POLLIN };
      poll (&pf, 1, -1);
    }
    k = recvmsg (fd, &msg, MSG_CMSG_CLOEXEC);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      die ("recvmsg");
    }
    if (k == 0) {
      errno = ECONNRESET;
      die ("peer closed");
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR (&msg); c; c = CMSG_NXTHDR (&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        size_t m = (c->cmsg_len - CMSG_LEN (0)) / sizeof (int);
        int fds[64];
        memcpy (fds, CMSG_DATA (c), m * sizeof (int));
        for (size_t i = 0; i < m; i++)
          close (fds[i]);
        if (n_fds)
          *n_fds += (int) m;
      }
    b->len += (size_t) k;
    if (b->buf[b->len - 1] == '\n') {
      b->buf[--b->len] = 0;
      return b->len;
    }
  }
}

static void
call_ok (int fd, Buf *b, const char *line, int *n_fds)
{
  write_all (fd, line, strlen (line));
  read_line (fd, b, n_fds);
  if (strstr (b->buf, "\"error\"")) {
    fprintf (stderr, "ifb-bench: %.*s -> %s\n", (int) strlen (line) - 1, line, b->buf);
    exit (1);
  }
}

/* ---- echo server ---- */

static ssize_t
send_all (int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t k = write (fd, p, n);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) {
      struct pollfd pf = { .fd = fd, .events = POLLOUT };
      poll (&pf, 1, -1);
      continue;
    }
    if (k < 0)
      return -1;
    p += k;
    n -= (size_t) k;
  }
  return 1;
}

typedef struct {
  int fd;
  char buf[65536];
  size_t len;
} EchoConn;

/* The json-c share of one call: parse the request, build the reply (by parsing its text),
 * serialize it, send it, free both. */
static ssize_t
json_answer (int fd, const char *line, size_t len, const char *reply)
{
  json_tokener *tok = json_tokener_new_ex (JSON_TOKENER_DEFAULT_DEPTH);
  json_object *req, *rep;
  const char *text;
  size_t text_len;
  ssize_t k;
  char *buf;

  json_tokener_set_flags (tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  req = json_tokener_parse_ex (tok, line, (int) len);
  json_tokener_free (tok);
  if (!req)
    return -1;
  rep = json_tokener_parse (reply);
  text = json_object_to_json_string_length (rep, JSON_C_TO_STRING_PLAIN, &text_len);
  buf = malloc (text_len + 1);
  memcpy (buf, text, text_len);
  buf[text_len] = '\n';
  k = send_all (fd, buf, text_len + 1);
  free (buf);
  json_object_put (rep);
  json_object_put (req);
  return k;
}

static int
cmd_echo_server (int argc, char **argv)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  char *reply = NULL;
  size_t reply_len = 0;
  int lfd, ep;
  int json = argc >= 3 && strcmp (argv[2], "json") == 0;

  if (argc < 1 || (json && argc < 2))
    return 2;
  if (argc >= 2) {
    FILE *f = fopen (argv[1], "rb");
    if (!f)
      die ("reply file");
    fseek (f, 0, SEEK_END);
    reply_len = (size_t) ftell (f);
    rewind (f);
    reply = malloc (reply_len + 2);
    if (fread (reply, 1, reply_len, f) != reply_len)
      die ("reading reply file");
    fclose (f);
    if (reply_len == 0 || reply[reply_len - 1] != '\n')
      reply[reply_len++] = '\n';
    reply[reply_len] = '\0';
  }
  signal (SIGPIPE, SIG_IGN);
  lfd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", argv[0]);
  unlink (argv[0]);
  if (bind (lfd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen (lfd, 256) < 0)
    die ("bind/listen");
  ep = epoll_create1 (EPOLL_CLOEXEC);
  {
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl (ep, EPOLL_CTL_ADD, lfd, &ev);
  }
  for (;;) {
    struct epoll_event evs[64];
    int n = epoll_wait (ep, evs, 64, -1);
    for (int i = 0; i < n; i++) {
      EchoConn *c = evs[i].data.ptr;
      if (!c) {
        int cfd;
        while ((cfd = accept4 (lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
          struct epoll_event ev = { .events = EPOLLIN };
          c = calloc (1, sizeof *c);
          c->fd = cfd;
          ev.data.ptr = c;
          epoll_ctl (ep, EPOLL_CTL_ADD, cfd, &ev);
        }
        continue;
      }
      for (;;) {
        ssize_t k = read (c->fd, c->buf + c->len, sizeof c->buf - c->len);
        char *start, *nl;
        if (k < 0 && errno == EAGAIN)
          break;
        if (k > 0) {
          c->len += (size_t) k;
          start = c->buf;
          while ((nl = memchr (start, '\n', c->len - (size_t) (start - c->buf)))) {
            if (json)
              k = json_answer (c->fd, start, (size_t) (nl - start), reply);
            else if (reply)
              k = send_all (c->fd, reply, reply_len);
            else
              k = send_all (c->fd, start, (size_t) (nl - start) + 1);
            if (k < 0)
              break;
            start = nl + 1;
          }
        }
        if (k <= 0) {   /* EOF, or the client left while we answered (the end of a tput run) */
          epoll_ctl (ep, EPOLL_CTL_DEL, c->fd, NULL);
          close (c->fd);
          free (c);
          break;
        }
        c->len -= (size_t) (start - c->buf);
        memmove (c->buf, start, c->len);
        if (c->len == sizeof c->buf)
          c->len = 0;   /* a line longer than the buffer: drop it (never sent by this bench) */
      }
    }
  }
}

/* ---- round trip ---- */

static char *
with_newline (const char *s)
{
  size_t n = strlen (s);
  char *p = malloc (n + 2);
  memcpy (p, s, n);
  if (n == 0 || s[n - 1] != '\n')
    p[n++] = '\n';
  p[n] = 0;
  return p;
}

static int
cmd_rtt (int argc, char **argv)
{
  int fd, n;
  char *line, extra[64];
  uint64_t *v;
  Buf b = { 0 };

  if (argc < 3)
    return 2;
  fd = connect_to (argv[0]);
  n = atoi (argv[1]);
  line = with_newline (argv[2]);
  v = calloc ((size_t) n, sizeof *v);
  for (int i = 0; i < n / 10 + 1; i++)
    call_ok (fd, &b, line, NULL);
  for (int i = 0; i < n; i++) {
    uint64_t t0 = now_ns ();
    write_all (fd, line, strlen (line));
    read_line (fd, &b, NULL);
    v[i] = now_ns () - t0;
  }
  snprintf (extra, sizeof extra, " %zu", b.len + 1);
  print_stats (v, (size_t) n, extra);
  return 0;
}

/* ---- throughput ---- */

typedef struct {
  int fd;
  size_t got;
  char buf[65536];
} TputConn;

static int
cmd_tput (int argc, char **argv)
{
  int clients, ms, ep;
  char *line;
  size_t line_len;
  TputConn *cs;
  uint64_t done = 0, t0, t_end;

  if (argc < 4)
    return 2;
  clients = atoi (argv[1]);
  ms = atoi (argv[2]);
  line = with_newline (argv[3]);
  line_len = strlen (line);
  cs = calloc ((size_t) clients, sizeof *cs);
  ep = epoll_create1 (EPOLL_CLOEXEC);
  for (int i = 0; i < clients; i++) {
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &cs[i] };
    cs[i].fd = connect_to (argv[0]);
    epoll_ctl (ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }
  /* warm-up: one call each, sequentially */
  {
    Buf b = { 0 };
    for (int i = 0; i < clients; i++)
      call_ok (cs[i].fd, &b, line, NULL);
    free (b.buf);
  }
  t0 = now_ns ();
  t_end = t0 + (uint64_t) ms * 1000000u;
  for (int i = 0; i < clients; i++)
    write_all (cs[i].fd, line, line_len);
  for (;;) {
    struct epoll_event evs[256];
    int n = epoll_wait (ep, evs, 256, 1000);
    uint64_t t = now_ns ();
    for (int i = 0; i < n; i++) {
      TputConn *c = evs[i].data.ptr;
      ssize_t k = read (c->fd, c->buf, sizeof c->buf);
      if (k <= 0)
        die ("read (throughput)");
      for (ssize_t j = 0; j < k; j++)
        if (c->buf[j] == '\n') {
          done++;
          if (t < t_end)
            write_all (c->fd, line, line_len);
        }
    }
    if (t >= t_end)
      break;
  }
  printf ("%.0f\n", (double) done / ((double) (now_ns () - t0) / 1e9));
  return 0;
}

/* ---- clone3 into a cgroup (the worker's floor) ---- */

struct clone_args_v2 {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
  uint64_t set_tid, set_tid_size, cgroup;
};

static int
cmd_clone3 (int argc, char **argv)
{
  int cg, n;
  uint64_t *v;

  if (argc < 2)
    return 2;
  cg = open (argv[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0)
    die ("open cgroup");
  n = atoi (argv[1]);
  v = calloc ((size_t) n, sizeof *v);
  for (int i = 0; i < n + n / 10 + 1; i++) {
    int pidfd = -1;
    struct clone_args_v2 a = {
      .flags = CLONE_INTO_CGROUP | CLONE_PIDFD, .pidfd = (uint64_t) (uintptr_t) &pidfd,
      .exit_signal = SIGCHLD, .cgroup = (uint64_t) cg,
    };
    struct pollfd p;
    siginfo_t si;
    uint64_t t0 = now_ns ();
    long pid = syscall (SYS_clone3, &a, sizeof a);
    if (pid < 0)
      die ("clone3");
    if (pid == 0)
      _exit (0);
    p = (struct pollfd) { .fd = pidfd, .events = POLLIN };
    poll (&p, 1, -1);
    waitid (P_PIDFD, (id_t) pidfd, &si, WEXITED);
    close (pidfd);
    if (i >= n / 10 + 1)
      v[i - n / 10 - 1] = now_ns () - t0;
  }
  print_stats (v, (size_t) n, NULL);
  return 0;
}

/* ---- guest setup ---- */

static int
cmd_setup (int argc, char **argv)
{
  int fd, n, n_dev, warm;
  char req[4096], devs[2048] = "", name[64];
  uint64_t *v, *ph[3];
  char extra[128];
  Buf b = { 0 };

  if (argc < 4)
    return 2;
  fd = connect_to (argv[0]);
  n = atoi (argv[2]);
  for (int k = 0; k < 3; k++)
    ph[k] = calloc ((size_t) n, sizeof (uint64_t));
  n_dev = argc - 3;
  for (int i = 0; i < n_dev; i++)
    snprintf (devs + strlen (devs), sizeof devs - strlen (devs), "%s\"%s\"", i ? "," : "", argv[3 + i]);
  v = calloc ((size_t) n, sizeof *v);
  warm = n / 10 + 1;
  for (int i = 0; i < n + warm; i++) {
    int got = 0;
    uint64_t t0 = now_ns (), t1, t2;
    snprintf (name, sizeof name, "bench-%d-%d", (int) getpid (), i);
    snprintf (req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"vm.create\",\"params\":{\"name\":\"%s\",\"cgroup\":\"%s\",\"options\":{\"handoff\":\"bound\"}}}\n",
              name, argv[1]);
    call_ok (fd, &b, req, NULL);
    t1 = now_ns ();
    snprintf (req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"vm.attach\",\"params\":{\"vm\":\"%s\",\"devices\":[%s]}}\n",
              name, devs);
    call_ok (fd, &b, req, NULL);
    t2 = now_ns ();
    if (!strstr (b.buf, "\"nest-parent\"")) {
      fprintf (stderr, "ifb-bench: attach gave no NEST_PARENT HWPT: %s\n", b.buf);
      return 1;
    }
    snprintf (req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"vm.fds\",\"params\":{\"vm\":\"%s\"}}\n", name);
    call_ok (fd, &b, req, &got);
    if (got != n_dev + 1) {
      fprintf (stderr, "ifb-bench: vm.fds gave %d fds, wanted %d\n", got, n_dev + 1);
      return 1;
    }
    if (i >= warm) {
      uint64_t t3 = now_ns ();
      v[i - warm] = t3 - t0;
      ph[0][i - warm] = t1 - t0;
      ph[1][i - warm] = t2 - t1;
      ph[2][i - warm] = t3 - t2;
    }
    snprintf (req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"vm.destroy\",\"params\":{\"vm\":\"%s\"}}\n", name);
    call_ok (fd, &b, req, NULL);
  }
  for (int k = 0; k < 3; k++)
    qsort (ph[k], (size_t) n, sizeof (uint64_t), cmp_u64);
  snprintf (extra, sizeof extra, " %llu %llu %llu", (unsigned long long) ph[0][n / 2],
            (unsigned long long) ph[1][n / 2], (unsigned long long) ph[2][n / 2]);
  print_stats (v, (size_t) n, extra);
  return 0;
}

/* ---- populate (scale) ---- */

static int
cmd_populate (int argc, char **argv)
{
  int fd, n, k;
  char req[8192], line[64];
  FILE *f;
  Buf b = { 0 };
  uint64_t t0;

  if (argc < 5)
    return 2;
  fd = connect_to (argv[0]);
  n = atoi (argv[2]);
  k = atoi (argv[3]);
  f = fopen (argv[4], "r");
  if (!f)
    die ("BDF file");
  t0 = now_ns ();
  for (int i = 0; i < n; i++) {
    char devs[4096] = "";
    for (int j = 0; j < k; j++) {
      if (!fgets (line, sizeof line, f)) {
        fprintf (stderr, "ifb-bench: not enough BDFs for %d guests x %d\n", n, k);
        return 1;
      }
      line[strcspn (line, "\n")] = 0;
      snprintf (devs + strlen (devs), sizeof devs - strlen (devs), "%s\"%s\"", j ? "," : "", line);
    }
    snprintf (req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"vm.create\",\"params\":{\"name\":\"guest%05d\",\"cgroup\":\"%s/guest%05d\",\"options\":{\"handoff\":\"bound\"}}}\n",
              i, argv[1], i);
    call_ok (fd, &b, req, NULL);
    snprintf (req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"vm.attach\",\"params\":{\"vm\":\"guest%05d\",\"devices\":[%s]}}\n",
              i, devs);
    call_ok (fd, &b, req, NULL);
  }
  printf ("%.3f\n", (double) (now_ns () - t0) / 1e9);
  return 0;
}

/* ---- exec ---- */

static int
cmd_exec (int argc, char **argv)
{
  int n, warm;
  uint64_t *v;

  if (argc < 2)
    return 2;
  n = atoi (argv[0]);
  warm = n / 10 + 1;
  v = calloc ((size_t) n, sizeof *v);
  for (int i = 0; i < n + warm; i++) {
    int status;
    uint64_t t0 = now_ns ();
    pid_t pid = fork ();
    if (pid < 0)
      die ("fork");
    if (pid == 0) {
      int null = open ("/dev/null", O_WRONLY);
      const char *in = getenv ("IFB_BENCH_STDIN");   /* the hook reads the domain XML on stdin */
      int in_fd = open (in ? in : "/dev/null", O_RDONLY);
      dup2 (null, 1);
      dup2 (in_fd, 0);
      execv (argv[1], argv + 1);
      _exit (127);
    }
    if (waitpid (pid, &status, 0) < 0)
      die ("waitpid");
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
      fprintf (stderr, "ifb-bench: %s exited with status %d\n", argv[1], status);
      return 1;
    }
    if (i >= warm)
      v[i - warm] = now_ns () - t0;
  }
  print_stats (v, (size_t) n, NULL);
  return 0;
}

int
main (int argc, char **argv)
{
  static const struct {
    const char *name;
    int (*fn) (int, char **);
  } cmds[] = {
    { "echo-server", cmd_echo_server }, { "rtt", cmd_rtt }, { "tput", cmd_tput }, { "clone3", cmd_clone3 },
    { "setup", cmd_setup }, { "populate", cmd_populate }, { "exec", cmd_exec },
  };
  setvbuf (stdout, NULL, _IOLBF, 0);
  wait_in_poll = !(getenv ("IFB_BENCH_WAIT") && strcmp (getenv ("IFB_BENCH_WAIT"), "read") == 0);
  for (size_t i = 0; argc > 1 && i < sizeof cmds / sizeof cmds[0]; i++)
    if (strcmp (argv[1], cmds[i].name) == 0) {
      int r = cmds[i].fn (argc - 2, argv + 2);
      if (r == 2)
        fprintf (stderr, "ifb-bench %s: missing arguments (see the comment at the top of ifb-bench.c)\n", argv[1]);
      return r;
    }
  fprintf (stderr, "usage: ifb-bench echo-server|rtt|tput|clone3|setup|populate|exec ...\n");
  return 2;
}
