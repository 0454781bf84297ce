/* libprobe: proves inside the test guest that the broker's runtime (the shared libraries the
 * initramfs got through ldd, and the kernel features the daemon relies on) works, before and
 * independently of the daemon itself. Linked against the same libraries as the broker:
 * glib, json-c, libsystemd, libvirt, libvirt-glib, libxml2. Built by tests/kernel/run.sh.
 * Prints one "libprobe: NAME ok" line per check and exits non-zero on the first failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>
#include <json-c/json.h>
#include <libvirt-glib/libvirt-glib.h>
#include <libvirt/libvirt.h>
#include <libxml/parser.h>
#include <systemd/sd-daemon.h>

static int failed;

static void check(const char *name, int ok, const char *detail)
{
    printf("libprobe: %s %s%s%s\n", name, ok ? "ok" : "FAIL", detail ? ": " : "", detail ? detail : "");
    if (!ok)
        failed = 1;
}

static gboolean quit_cb(gpointer loop)
{
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

int main(void)
{
    char buf[128];

    GMainLoop *loop = g_main_loop_new(NULL, FALSE);
    g_timeout_add(10, quit_cb, loop);
    g_main_loop_run(loop);
    g_main_loop_unref(loop);
    check("glib-mainloop", 1, glib_check_version(2, 0, 0) ? "old" : NULL);

    json_object *o = json_tokener_parse("{\"jsonrpc\":\"2.0\",\"id\":1}");
    check("json-c", o && json_object_get_int(json_object_object_get(o, "id")) == 1, NULL);
    json_object_put(o);

    xmlDocPtr doc = xmlReadMemory("<domain><name>g</name></domain>", 31, "x.xml", NULL, 0);
    check("libxml2", doc != NULL, NULL);
    xmlFreeDoc(doc);

    unsigned long ver = 0;
    int r = virGetVersion(&ver, NULL, NULL);
    snprintf(buf, sizeof buf, "libvirt %lu", ver);
    check("libvirt", r == 0 && ver > 0, buf);
    check("libvirt-glib", gvir_init_check(NULL, NULL, NULL), NULL);

    r = sd_booted(); /* no systemd in the guest: 0, but the library must load and answer */
    snprintf(buf, sizeof buf, "sd_booted=%d", r);
    check("libsystemd", r >= 0, buf);

    int sv[2];
    r = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
    check("af_unix", r == 0, r ? strerror(errno) : NULL);
    int mfd = memfd_create("ifb-probe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    check("memfd", mfd >= 0 && ftruncate(mfd, 4096) == 0, mfd < 0 ? strerror(errno) : NULL);
    int efd = eventfd(0, EFD_CLOEXEC), ep = epoll_create1(EPOLL_CLOEXEC);
    check("eventfd+epoll", efd >= 0 && ep >= 0, NULL);
    return failed;
}
