/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The main loop's work shared out by uid. Each uid may dispatch IFB_UID_QUEUE_TURN_LINES lines
 * per loop turn (fdwatch's turn) from the loop's ready list, over all its connections together.
 * A connection with more to do once its uid's share is spent is parked: it stops watching for
 * input, and waits in its uid's queue. Parked connections are stepped from an idle source, one
 * connection of the next uid (round robin over uids) per loop iteration, so whatever one uid
 * sends, every other uid's ready connection is served within a turn and a step.
 */
#pragma once

#include <sys/types.h>
#include <glib.h>

#define IFB_UID_QUEUE_TURN_LINES 8   /* lines per uid per loop turn, from the ready list */
#define IFB_UID_QUEUE_STEP_LINES 8   /* lines a parked connection dispatches per step */

/* What the uid may still dispatch this turn. */
guint ifb_uid_queue_left (uid_t uid);
/* n lines of uid dispatched (counted against this turn's share). */
void ifb_uid_queue_used (uid_t uid, guint n);
/* Put item at the tail of uid's queue; step (item) is called from the loop when its turn comes
 * (the item is then out of the queue: step parks it again if it still has work). */
void ifb_uid_queue_park (uid_t uid, gpointer item, void (*step) (gpointer item));
/* Take item out of uid's queue (it is going away). */
void ifb_uid_queue_remove (uid_t uid, gpointer item);
