/* qmp-call: a minimal QMP client for the kernel suite's guests (busybox nc has no AF_UNIX).
 *
 *   qmp-call [--timeout SECONDS] SOCKET COMMAND...
 *
 * Connects to QEMU's QMP unix socket (retrying until it exists and accepts: QEMU under nested
 * TCG takes seconds to start), reads the greeting, negotiates capabilities, then sends each
 * COMMAND in turn and prints its response on one line of stdout. COMMAND is either a bare
 * command name ("query-pci" -> {"execute":"query-pci"}) or a whole JSON object ("{...}").
 * Asynchronous events go to stderr ("qmp-call: event: {...}"). The whole exchange may take at
 * most SECONDS (default 60), so a wedged QEMU fails the step instead of hanging it.
 *
 * Exit: 0 when every command got a "return", 1 when one got an "error" (later commands are
 * still sent), 2 on usage, connection or protocol failure. Built by run.sh; plain libc. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE (4u << 20)   /* query-pci of a small machine is a few KiB */

static int fd = -1;
static char *buf;
static size_t len, cap;
static double deadline;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int die(const char *what)
{
    fprintf(stderr, "qmp-call: %s\n", what);
    exit(2);
}

/* One '\n'-terminated line (without "\r\n") into a malloc'd string; exits on EOF or timeout. */
static char *read_line(void)
{
    for (;;) {
        char *nl = memchr(buf, '\n', len);
        if (nl) {
            size_t n = nl - buf;
            char *line = strndup(buf, n);
            if (!line)
                die("out of memory");
            if (n > 0 && line[n - 1] == '\r')
                line[n - 1] = '\0';
            memmove(buf, nl + 1, len - n - 1);
            len -= n + 1;
            return line;
        }
        if (len == cap) {
            if (cap >= MAX_LINE)
                die("a QMP line longer than 4 MiB");
            cap = cap ? cap * 2 : 65536;
            if (!(buf = realloc(buf, cap)))
                die("out of memory");
        }
        double left = deadline - now();
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = left > 0 ? poll(&p, 1, (int)(left * 1000) + 1) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die(r == 0 ? "timed out waiting for QEMU" : "poll failed");
        ssize_t got = read(fd, buf + len, cap - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            die(got == 0 ? "QEMU closed the connection" : "read failed");
        len += got;
    }
}

/* The next response line: {"return": ...} or {"error": ...}; anything else (events, which
 * QEMU prints as {"timestamp": ..., "event": ...}) goes to stderr. */
static char *read_response(void)
{
    for (;;) {
        char *line = read_line();
        if (strncmp(line, "{\"return\"", 9) != 0 && strncmp(line, "{\"error\"", 8) != 0) {
            fprintf(stderr, "qmp-call: event: %s\n", line);
            free(line);
            continue;
        }
        return line;
    }
}

static void send_line(const char *cmd)
{
    char *msg;
    int n = cmd[0] == '{' ? asprintf(&msg, "%s\n", cmd) : asprintf(&msg, "{\"execute\":\"%s\"}\n", cmd);
    if (n < 0)
        die("out of memory");
    for (int off = 0; off < n;) {
        ssize_t w = write(fd, msg + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write failed");
        off += w;
    }
    free(msg);
}

static void connect_socket(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path)
        die("socket path too long");
    strcpy(sa.sun_path, path);
    for (;;) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            die("socket failed");
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            return;
        close(fd);
        if (errno != ENOENT && errno != ECONNREFUSED) {
            perror(path);
            exit(2);
        }
        if (now() > deadline) {
            fprintf(stderr, "qmp-call: %s: no QMP listener (%s)\n", path, strerror(errno));
            exit(2);
        }
        usleep(100 * 1000);
    }
}

int main(int argc, char **argv)
{
    double timeout = 60;
    int i = 1, failed = 0;

    if (argc > 2 && strcmp(argv[1], "--timeout") == 0) {
        timeout = atof(argv[2]);
        i = 3;
    }
    if (argc - i < 2 || timeout <= 0) {
        fprintf(stderr, "usage: qmp-call [--timeout SECONDS] SOCKET COMMAND...\n");
        return 2;
    }
    deadline = now() + timeout;
    connect_socket(argv[i++]);

    char *greeting = read_line();
    if (!strstr(greeting, "\"QMP\""))
        die("no QMP greeting");
    free(greeting);
    send_line("qmp_capabilities");
    char *caps = read_response();
    if (strncmp(caps, "{\"return\"", 9) != 0)
        die("qmp_capabilities refused");
    free(caps);

    for (; i < argc; i++) {
        send_line(argv[i]);
        char *resp = read_response();
        printf("%s\n", resp);
        fflush(stdout);
        if (strncmp(resp, "{\"return\"", 9) != 0)
            failed = 1;
        free(resp);
    }
    close(fd);
    return failed;
}
