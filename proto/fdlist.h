/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IfbFdList: an owned list of file descriptors that travel with one message. The list owns
 * its fds and closes whatever nobody stole when it is freed.
 */
#pragma once

#include <glib.h>

typedef struct IfbFdList IfbFdList;

IfbFdList *ifb_fd_list_new (void);
IfbFdList *ifb_fd_list_free (IfbFdList *l);
/* Append fd, taking ownership (closed on free unless stolen). */
void ifb_fd_list_push (IfbFdList *l, int fd);
/* Append a dup (O_CLOEXEC) of fd; returns the index or -errno. */
int ifb_fd_list_push_dup (IfbFdList *l, int fd);
guint ifb_fd_list_len (const IfbFdList *l);
/* Borrow fd at index, -1 when out of range. */
int ifb_fd_list_get (const IfbFdList *l, guint idx);
/* Take fd at index out of the list (leaves -1 in its slot), -1 when out of range. */
int ifb_fd_list_steal (IfbFdList *l, guint idx);
const int *ifb_fd_list_data (const IfbFdList *l);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (IfbFdList, ifb_fd_list_free)
