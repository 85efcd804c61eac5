/* File descriptors: the bridge's budget of them. A session holds about 6
 * (its socket, its pipeline bus's wakeup pair, eventfds of cancellable
 * waits); GLib aborts the whole process when it cannot make a wakeup
 * descriptor, so a new guest is refused while a session's worth is not
 * free, instead of letting any session run out.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Descriptors set aside for each session: 6 measured with x264enc and no
 * export, the rest for the helix export's socket and ring, DMA-BUFs in
 * flight and hardware encoders' device descriptors. */
#define BRIDGE_FDS_PER_SESSION 16

/* Raises the soft RLIMIT_NOFILE to the hard one; returns the soft limit
 * in force after it. */
guint bridge_fds_raise_limit (void);

/* Descriptors this process has open now (0 where that cannot be read). */
guint bridge_fds_in_use (void);

/* The spare descriptor: held open so that an accept() failing for lack of
 * descriptors can still take the connection and close it (otherwise the
 * listening socket stays readable and the main loop spins). */
void bridge_fds_hold_spare (void);
void bridge_fds_release_spare (void);

G_END_DECLS
