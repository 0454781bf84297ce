/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Line framing with fd passing, shared by daemon and clients.
 *
 * One JSON text per line ('\n'). File descriptors ride with SCM_RIGHTS on the first byte of the
 * line they belong to (a sendmsg that carries fds starts at most one line); the reader attaches
 * them to the last line that begins in the read that brought them (see frame.c). Frame size and
 * fds per message are limited and checked before anything is buffered past the limit; a
 * truncated control message (MSG_CTRUNC) is a protocol error.
 */
#pragma once

#include <stddef.h>
#include <glib.h>

#include "fdlist.h"

typedef struct IfbFrameReader IfbFrameReader;
typedef struct IfbFrameWriter IfbFrameWriter;

#define IFB_FRAME_MAX_FDS 32    /* per message, both directions; the protocol's hard limit */
#define IFB_FRAME_READ_SIZE 16384   /* bytes one ifb_frame_reader_recv() asks for */

IfbFrameReader *ifb_frame_reader_new (size_t max_frame);
IfbFrameReader *ifb_frame_reader_free (IfbFrameReader *r);

/*
 * Read once from a (non-blocking) socket. Returns >0 bytes read, 0 on EOF, -EAGAIN when nothing
 * is there, -EMSGSIZE when a frame outgrew the limit, -EPROTO on a truncated control message or
 * unexpected ancillary data, other -errno from recvmsg().
 */
ssize_t ifb_frame_reader_recv (IfbFrameReader *r, int sockfd);

/* Feed bytes (and fds, taken over) as if received; what recv() uses, and what fuzzers call. */
int ifb_frame_reader_feed (IfbFrameReader *r, const char *data, size_t len, const int *fds, size_t n_fds);

/*
 * Pop the next complete line (without '\n', NUL-terminated, may contain NULs: use ret_len) with
 * the fds that came with it. Returns FALSE when no complete line is buffered.
 */
gboolean ifb_frame_reader_pop (IfbFrameReader *r, char **ret_line, size_t *ret_len, IfbFdList **ret_fds);

/* Bytes buffered that do not yet form a line. */
size_t ifb_frame_reader_pending (const IfbFrameReader *r);
/* fds received since the last complete line: no line has claimed them yet. */
guint ifb_frame_reader_unclaimed_fds (const IfbFrameReader *r);
/* Every fd the reader holds: those above plus those of complete lines not yet popped. */
guint ifb_frame_reader_held_fds (const IfbFrameReader *r);
/* Complete lines waiting to be popped. */
gboolean ifb_frame_reader_has_frames (const IfbFrameReader *r);

IfbFrameWriter *ifb_frame_writer_new (void);
IfbFrameWriter *ifb_frame_writer_free (IfbFrameWriter *w);
/* Queue one line (a '\n' is appended) and the fds to send with its first byte (taken over). */
void ifb_frame_writer_queue (IfbFrameWriter *w, const char *line, size_t len, IfbFdList *fds);
/* Send as much as the socket takes. 0 when all is sent, -EAGAIN when more remains, -errno. */
int ifb_frame_writer_flush (IfbFrameWriter *w, int sockfd);
gboolean ifb_frame_writer_is_empty (const IfbFrameWriter *w);
size_t ifb_frame_writer_queued_bytes (const IfbFrameWriter *w);
/* fds queued with lines not sent yet (the daemon holds them). */
guint ifb_frame_writer_queued_fds (const IfbFrameWriter *w);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbFrameReader, ifb_frame_reader_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbFrameWriter, ifb_frame_writer_free)
